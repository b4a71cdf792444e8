"""The PyTorch side of bench/eval_vs_torch.sh: pytorch-fid's FID Inception-v3 (random weights, no
download) forward time per image at 299x299, same threads as sid."""
import os
import sys
import time

import torch
from fid_reference import fid_inception


def main():
    batch = int(sys.argv[1])
    torch.set_num_threads(int(os.environ.get("SID_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    net = fid_inception().eval()
    x = torch.rand(batch, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            y = net.Conv2d_1a_3x3(x)
            for name in ["Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
                         "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                         "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"]:
                y = getattr(net, name)(y)
            best = min(best, time.perf_counter() - t0)
    print(f"pytorch inception-v3 299x299  batch {batch:3d}  fwd {1e3 * best / batch:9.2f} ms/image"
          f"  ({torch.get_num_threads()} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
