"""Writes the CLIP text encoder and AutoencoderKL reference data that tests/test_clip_vae.c reads:
tiny random models saved exactly as transformers / diffusers save them, and golden tensors
computed by the real classes (transformers.CLIPTextModel, diffusers.AutoencoderKL).

  tests/data/clip/quick/  CLIPTextModel, hidden_act quick_gelu, hidden 32, 2 layers
  tests/data/clip/gelu/   CLIPTextModel, hidden_act gelu, hidden 16, 3 layers
  tests/data/vae/tiny/    AutoencoderKL, block_out_channels (4, 8), layers_per_block 1

Each folder holds config.json, the weights file (model.safetensors or
diffusion_pytorch_model.safetensors) and golden.safetensors:

CLIP golden: `ids` [B, T] (quick: I64, T = 12 < max_position_embeddings; gelu: I32, T = 16 = all of them),
`out` = last_hidden_state, `out_skip` = final_layer_norm(hidden_states[-2]) (clip skip: all but
the last layer), `dout` an upstream gradient of `out`, and PyTorch's parameter gradients of
sum(out * dout): `grad.<name>` in full for the gelu model and for both embeddings of the quick
model; for the other quick-model parameters `grad_sample.<name>` holds the elements at indices
0, s, 2s, ... (s = max(1, numel // 64), flattened) and `grad_norm.<name>` the full L2 norm, which
keeps the committed data small.

tests/data/vae/sd-vae-keys.txt.gz lists every tensor name and shape ("name [d0, d1, ...]") of
diffusers' AutoencoderKL built from the SD1.5 vae/config.json (tests/data/vae/sd15-vae-config.json),
built on the meta device, so no weights are needed.

VAE golden: `latents` [2, 4, 3, 5], `image` = vae.decode(latents / scaling_factor).sample,
`pixels` [2, 3, 6, 10], `mean` / `logvar` = vae.encode(pixels).latent_dist.{mean, logvar}.

Every parameter is re-drawn (weights ~ N(0, 1/fan_in), biases and norm shifts ~ N(0, 0.1^2),
norm scales ~ 1 + N(0, 0.1^2)) so that no bias is zero and no norm is the identity.
Run: /root/sid-ref-venv/bin/python tools/reference/clip_vae_reference.py   (dev-time only)
"""
import gzip
import json
import os
import shutil

import diffusers
import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data")
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            is_norm = "norm" in name
            if leaf == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif is_norm:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def fresh_dir(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def clip_case(name, seed, B, T, ids_dtype, full_grads, **cfg):
    gen = torch.Generator().manual_seed(seed)
    config = CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, **cfg)  # SD's legacy ids
    model = CLIPTextModel(config).float().eval()
    randomise(model, gen)
    out_dir = fresh_dir(os.path.join(ROOT, "clip", name))
    model.save_pretrained(out_dir)

    ids = torch.randint(0, cfg["vocab_size"], (B, T), generator=gen)
    ids[1, 3] = ids[0, 5]  # a token used twice: its embedding gradient must accumulate
    res = model(input_ids=ids, output_hidden_states=True)
    out = res.last_hidden_state
    with torch.no_grad():
        out_skip = model.final_layer_norm(res.hidden_states[-2])
    dout = torch.randn(out.shape, generator=gen)
    model.zero_grad()
    out.backward(dout)

    g = {"ids": ids.to(ids_dtype), "out": out.detach(), "out_skip": out_skip, "dout": dout}
    for pname, p in model.named_parameters():
        grad = p.grad.detach().reshape(-1)
        if full_grads or "embeddings" in pname:
            g["grad." + pname] = p.grad.detach().clone()
        else:
            step = max(1, grad.numel() // 64)
            g["grad_sample." + pname] = grad[::step].clone()
            g["grad_norm." + pname] = grad.double().norm().float().reshape(1)
    save_file({k: v.contiguous() for k, v in g.items()}, os.path.join(out_dir, "golden.safetensors"))
    n = sum(p.numel() for p in model.parameters())
    print(f"clip/{name}: {n} parameters, out max {out.abs().max():.3f}")


def vae_case(name, seed):
    gen = torch.Generator().manual_seed(seed)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), layers_per_block=1,
                        latent_channels=4, norm_num_groups=2, sample_size=16, scaling_factor=0.3).float().eval()
    randomise(vae, gen)
    out_dir = fresh_dir(os.path.join(ROOT, "vae", name))
    vae.save_pretrained(out_dir, safe_serialization=True)

    latents = torch.randn(2, 4, 3, 5, generator=gen)
    pixels = torch.rand(2, 3, 6, 10, generator=gen) * 2 - 1
    with torch.no_grad():
        image = vae.decode(latents / vae.config.scaling_factor).sample
        dist = vae.encode(pixels).latent_dist
    g = {"latents": latents, "image": image, "pixels": pixels, "mean": dist.mean, "logvar": dist.logvar}
    save_file({k: v.contiguous() for k, v in g.items()}, os.path.join(out_dir, "golden.safetensors"))
    n = sum(p.numel() for p in vae.parameters())
    print(f"vae/{name}: {n} parameters, image max {image.abs().max():.3f}")


def vae_keys():
    cfg = json.load(open(os.path.join(ROOT, "vae", "sd15-vae-config.json")))
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    with torch.device("meta"):
        vae = AutoencoderKL(**cfg)
    lines = ["# diffusers %s AutoencoderKL(**sd15-vae-config.json).state_dict(): name shape" % diffusers.__version__]
    lines += ["%s [%s]" % (k, ", ".join(str(d) for d in v.shape)) for k, v in vae.state_dict().items()]
    n = sum(v.numel() for v in vae.state_dict().values())
    with open(os.path.join(ROOT, "vae", "sd-vae-keys.txt.gz"), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
            f.write(("\n".join(lines) + "\n").encode())
    print(f"vae/sd-vae-keys.txt.gz: {len(lines) - 1} tensors, {n} parameters")


def main():
    clip_case("quick", 11, B=2, T=12, ids_dtype=torch.int64, full_grads=False, vocab_size=64, hidden_size=32,
              num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=16,
              hidden_act="quick_gelu", layer_norm_eps=1e-5)
    clip_case("gelu", 12, B=2, T=16, ids_dtype=torch.int32, full_grads=True, vocab_size=100, hidden_size=16,
              num_hidden_layers=3, num_attention_heads=4, intermediate_size=32, max_position_embeddings=16,
              hidden_act="gelu", layer_norm_eps=1e-5)
    vae_case("tiny", 13)
    vae_keys()
    total = 0
    for sub in ("clip", "vae"):
        for d, _, files in os.walk(os.path.join(ROOT, sub)):
            total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print(f"tests/data/clip + tests/data/vae: {total} bytes")


if __name__ == "__main__":
    main()
