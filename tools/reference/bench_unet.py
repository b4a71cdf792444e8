"""The PyTorch side of bench/unet_vs_torch.sh: diffusers UNet2DConditionModel forward and
forward+backward time per sample for a config, random weights, same threads as sid."""
import json
import os
import sys
import time

import torch
from diffusers import UNet2DConditionModel


def main():
    config, batch, size, ctx_len = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(int(os.environ.get("SID_THREADS", os.cpu_count())))
    cfg = {k: v for k, v in json.load(open(config)).items() if not k.startswith("_")}
    unet = UNet2DConditionModel(**cfg).float()
    x = torch.randn(batch, cfg["in_channels"], size, size, requires_grad=True)
    t = torch.tensor([(i * 397) % 1000 for i in range(batch)], dtype=torch.float32)
    ctx = torch.randn(batch, ctx_len, cfg["cross_attention_dim"])
    best_f = best_fb = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        out = unet(x, t, encoder_hidden_states=ctx).sample
        t1 = time.perf_counter()
        out.backward(torch.randn_like(out))
        t2 = time.perf_counter()
        best_f, best_fb = min(best_f, t1 - t0), min(best_fb, t2 - t0)
        unet.zero_grad(set_to_none=True)
        x.grad = None
    n = sum(p.numel() for p in unet.parameters())
    name = os.path.basename(config)
    print(f"pytorch {name:<12} params {n:10d}  batch {batch:3d}  {size:3d}x{size:<3d}  fwd {1e3 * best_f / batch:9.2f} ms/sample"
          f"  fwd+bwd {1e3 * best_fb / batch:9.2f} ms/sample  ({torch.get_num_threads()} threads, torch {torch.__version__}, cpu {torch.backends.cpu.get_cpu_capability().lower()})")


if __name__ == "__main__":
    main()
