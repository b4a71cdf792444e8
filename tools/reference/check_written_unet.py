"""Checks that a UNet folder written by sid loads in diffusers and gives the golden output.

  sid convert-unet tests/data/unet/sd15_tiny /tmp/written
  python tools/reference/check_written_unet.py /tmp/written tests/data/unet/sd15_tiny/golden.safetensors
"""
import sys

import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file


def main():
    folder, golden = sys.argv[1], load_file(sys.argv[2])
    unet = UNet2DConditionModel.from_pretrained(folder).float().eval()
    with torch.no_grad():
        out = unet(golden["x"], golden["t"], encoder_hidden_states=golden["ctx"]).sample
    err = ((out - golden["out"]).abs().max() / golden["out"].abs().max()).item()
    print(f"{folder}: loaded by diffusers {__import__('diffusers').__version__}, "
          f"{sum(p.numel() for p in unet.parameters())} parameters, output vs golden: {err:.2e} relative")
    sys.exit(0 if err < 1e-4 else 1)


if __name__ == "__main__":
    main()
