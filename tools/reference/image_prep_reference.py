"""Writes tests/data/image_prep/golden.safetensors, the outputs of the zero-shot COCO evaluation
protocol's image preprocessing that tests/test_image_prep.c compares with src/eval/image_prep.c:

  square_<case>  [S, S, 3]  torchvision center_crop to min(w, h), then PIL resize((S, S), LANCZOS)
  fid_<case>     [C, S, S]  clean-fid "clean" mode: every channel a float32 "F" image resized with
                            PIL BICUBIC, clipped to [0, 255]; C = 1 (channel 0 only) for the 299 px
                            cases, to keep the file small, else 3
  clip_<case>    [C, S, S]  OpenCLIP's eval transform (image_transform(S, is_train=False)) with
                            OpenAI's mean / std; C = 1 for the 224 px case, else 3
  resize_k       [60, 40, 3] PIL resize((40, 60), BICUBIC) of image k (150x500): it loses more than
                            twice as many rows as columns, so Pillow 13 runs the vertical pass first
  gigagan        [256]      every byte through GigaGAN's EvalDataset tensor (ToTensor, Normalize 0.5 /
                            0.5) and back through its tensor2pil ((x + 1) * 127.5, clamp, uint8)
  input_<case>   [1] F64    sum over the input bytes of v * (i % 251 + 1), i the byte index: the C test
                            regenerates the images and checks it made the same ones

The inputs are not stored: image(w, h, seed) below is an integer hash the C test reproduces bit for
bit (noise, a sawtooth ramp and a saturated checkerboard in diagonal bands, so the resamplers clip).
uint8 outputs are stored as F16 (exact for 0..255). The S of every case is in the names' table of
the C test as well.

Run: /root/sid-ref-venv/bin/python tools/reference/image_prep_reference.py   (dev-time only)
"""
import os

import numpy as np
import open_clip
import PIL
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from open_clip.transform import image_transform
from PIL import Image
from safetensors.torch import save_file

M32 = 0xFFFFFFFF
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# name: (width, height, seed)
CASES = {
    "a": (640, 480, 1),
    "b": (480, 640, 2),
    "c": (333, 517, 3),
    "d": (100, 77, 4),
    "e": (256, 256, 5),
    "f": (512, 512, 6),
    "g": (1, 300, 7),
    "h": (300, 1, 8),
    "i": (299, 400, 9),
    "j": (64, 90, 10),
    "k": (150, 500, 11),
}
SQUARE = {"a": 64, "b": 64, "c": 80, "d": 96, "e": 64, "f": 96, "g": 16, "h": 16, "i": 80, "j": 48}
FID = {"a": 72, "b": 72, "c": 90, "d": 88, "e": 299, "f": 299, "g": 41, "h": 41, "j": 64, "k": 48}
CLIP = {"a": 64, "b": 64, "c": 72, "d": 80, "f": 224, "g": 16, "h": 16, "i": 50, "j": 64, "k": 48}
ONE_CHANNEL = 200  # sizes from here up store channel 0 only


def image(w, h, seed):
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing="ij")
    v = ((x * 0x9E3779B1) ^ (y * 0x85EBCA77) ^ (c * 0xC2B2AE3D) ^ np.uint64(seed * 0x27D4EB2F)) & M32
    v ^= v >> 15
    v = (v * 0x2C1B3C6D) & M32
    v ^= v >> 12
    v = (v * 0x297A2D39) & M32
    v ^= v >> 15
    noise = v & 255
    ramp = (x * 7 + y * 3 + c * 50) & 255
    checker = np.where(((x >> 3) ^ (y >> 3)) & 1, 255, 0).astype(np.uint64)
    band = (x // 23 + y // 17) % 3
    return np.where(band == 0, noise, np.where(band == 1, ramp, checker)).astype(np.uint8)


def checksum(a):
    flat = a.reshape(-1).astype(np.float64)
    return np.array([np.sum(flat * (np.arange(flat.size) % 251 + 1))], dtype=np.float64)


def square(img, side):
    pil = TF.center_crop(Image.fromarray(img, "RGB"), min(img.shape[1], img.shape[0]))
    return np.asarray(pil.resize((side, side), Image.LANCZOS))


def fid(img, side):
    chans = []
    for ch in range(3):
        f = Image.fromarray(img[:, :, ch].astype(np.float32), mode="F")
        chans.append(np.asarray(f.resize((side, side), resample=Image.BICUBIC)).clip(0, 255))
    return np.stack(chans, 0).astype(np.float32)


def clip(img, size):
    tf = image_transform(size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD)
    return tf(Image.fromarray(img, "RGB")).numpy()


def gigagan():
    x = np.arange(256, dtype=np.uint8).reshape(16, 16)
    pil = Image.fromarray(np.stack([x] * 3, -1), "RGB")
    t = T.Compose([T.ToTensor(), T.Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])])(pil)
    back = ((t + 1.0) * 127.5).clamp(0.0, 255.0).to(torch.uint8)
    return back[0].reshape(-1).numpy()


def as_u8_tensor(a):
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.float16))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    out = os.path.join(root, "tests", "data", "image_prep")
    os.makedirs(out, exist_ok=True)
    golden = {}
    for name, (w, h, seed) in CASES.items():
        img = image(w, h, seed)
        golden["input_" + name] = torch.from_numpy(checksum(img))
        if name in SQUARE:
            golden["square_" + name] = as_u8_tensor(square(img, SQUARE[name]))
        if name in FID:
            f = fid(img, FID[name])
            golden["fid_" + name] = torch.from_numpy(np.ascontiguousarray(f[:1] if FID[name] >= ONE_CHANNEL else f))
        if name in CLIP:
            c = clip(img, CLIP[name])
            golden["clip_" + name] = torch.from_numpy(np.ascontiguousarray(c[:1] if CLIP[name] >= ONE_CHANNEL else c))
    w, h, seed = CASES["k"]
    golden["resize_k"] = as_u8_tensor(np.asarray(Image.fromarray(image(w, h, seed), "RGB").resize((40, 60), Image.BICUBIC)))
    golden["gigagan"] = as_u8_tensor(gigagan())
    path = os.path.join(out, "golden.safetensors")
    save_file(golden, path, metadata={"pillow": PIL.__version__, "torch": torch.__version__,
                                      "torchvision": torchvision.__version__,
                                      "open_clip": open_clip.__version__,
                                      "generator": "tools/reference/image_prep_reference.py"})
    print(f"{path}: {os.path.getsize(path)} bytes, {len(golden)} tensors")


if __name__ == "__main__":
    main()
