"""Writes tests/data/jpeg/: small JPEG files and the pixels Pillow decodes from them, which
tests/test_image_io.c compares with sid's decoder (src/io/jpeg.c) value for value:

  c420.jpg c444.jpg c422.jpg   colour, chroma subsampling 4:2:0 / 4:4:4 / 4:2:2, odd sizes
  prog.jpg                     progressive, 4:2:0
  gray.jpg                     one component (PIL's convert("RGB") repeats it)
  cmyk.jpg                     four components (sid refuses it in one line)
  truncated.jpg                c420.jpg cut in half (Pillow refuses it; so does sid)
  golden.safetensors           `<name>` [H, W, 3] F32: Image.open(f).convert("RGB") for each readable file

Run: /root/sid-ref-venv/bin/python tools/reference/jpeg_reference.py   (dev-time only)
"""
import os

import numpy as np
import PIL
import torch
from PIL import Image
from safetensors.torch import save_file


def scene(w, h, seed):
    """Smooth colour gradients with sharp edges and noise: every decoder path gets exercised."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / 5.0 + seed)
    g = 255 * (y / max(h - 1, 1))
    b = np.where((x // 7 + y // 5) % 2 == 0, 230.0, 20.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out = os.path.join(root, "tests", "data", "jpeg")
    os.makedirs(out, exist_ok=True)
    files = {
        "c420": (scene(37, 23, 1), dict(quality=85, subsampling=2)),
        "c444": (scene(40, 31, 2), dict(quality=95, subsampling=0)),
        "c422": (scene(33, 18, 3), dict(quality=75, subsampling=1)),
        "prog": (scene(64, 48, 4), dict(quality=80, subsampling=2, progressive=True)),
        "gray": (scene(29, 35, 5).convert("L"), dict(quality=90)),
        "cmyk": (scene(16, 16, 6).convert("CMYK"), dict(quality=90)),
    }
    golden = {}
    for name, (img, kw) in files.items():
        path = os.path.join(out, name + ".jpg")
        img.save(path, "JPEG", **kw)
        if name != "cmyk":
            golden[name] = torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.float32).copy())
    data = open(os.path.join(out, "c420.jpg"), "rb").read()
    open(os.path.join(out, "truncated.jpg"), "wb").write(data[: len(data) // 2])
    try:
        Image.open(os.path.join(out, "truncated.jpg")).convert("RGB")
        raise SystemExit("Pillow read the truncated file; the test expects it to refuse")
    except OSError:
        pass
    save_file(golden, os.path.join(out, "golden.safetensors"),
              metadata={"pillow": PIL.__version__, "generator": "tools/reference/jpeg_reference.py"})


if __name__ == "__main__":
    main()
