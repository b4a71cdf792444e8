"""Converts the FID Inception-v3 weights that pytorch-fid publishes (pt_inception-2015-12-05-6726825d.pth,
a port of the TF Inception of 2015-12-05, the network clean-fid and the COCO protocol use) into the
safetensors file `sid eval-coco --inception` and `sid fid-ref-stats --inception` read.

    python tools/reference/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth fid_inception.safetensors

The tensor names are kept ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", ...);
num_batches_tracked counters are dropped, the 1008-way fc layer is kept (sid ignores it). With
--check the script also loads the weights into pytorch-fid's architecture and prints the pool3
features of a fixed input, for a comparison with sid on the same input (tests/test_inception.c
checks the architecture on hashed weights). Dev-time only; sid itself never runs Python.
The .pth file: https://github.com/mseitzer/pytorch-fid/releases (download it on a machine with
network access; sid has none at run time).
"""
import argparse
import sys

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="pytorch-fid state dict (.pth)")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--check", action="store_true", help="run pytorch-fid's network on the converted weights")
    a = ap.parse_args()
    sd = torch.load(a.src, map_location="cpu", weights_only=True)
    if not isinstance(sd, dict) or "Conv2d_1a_3x3.conv.weight" not in sd:
        sys.exit(f"{a.src}: not pytorch-fid's FID Inception state dict (no Conv2d_1a_3x3.conv.weight)")
    out = {k: v.detach().float().contiguous() for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    save_file(out, a.dst, metadata={"source": a.src, "converter": "tools/reference/convert_fid_inception.py"})
    print(f"wrote {len(out)} tensors to {a.dst}", file=sys.stderr)
    if a.check:
        sys.path.insert(0, __file__.rsplit("/", 1)[0])
        from fid_reference import fid_inception, pool3
        net = fid_inception()
        net.load_state_dict(sd, strict=False)
        x = torch.linspace(0, 255, 3 * 299 * 299).view(1, 3, 299, 299)
        with torch.no_grad():
            f = pool3(net, (x - 128) / 128)
        print("pool3 of linspace(0, 255) input: first values", f[0, :5].tolist(), "mean", f.mean().item())


if __name__ == "__main__":
    main()
