"""Loads a Stable Diffusion pipeline folder (one written by sid, e.g. a distilled generator, or
tests/data/pipelines/*) in diffusers and generates from it. Dev-time only; the C tests never need it.

    /root/sid-ref-venv/bin/python tools/reference/check_exported_pipeline.py DIR [--prompt P]
        [--seed S] [--out PNG]

1. StableDiffusionPipeline.from_pretrained(DIR, safety_checker=None): diffusers must accept the
   folder; the components' classes and configs' key facts are printed.
2. pipe(prompt, num_inference_steps=1, guidance_scale=1.0, output_type="np"): the stock
   pipeline runs end to end (one scheduler step; a check that the folder generates, not of quality).
3. sid's generator, computed with the components directly (src/sid/distill.c gen_forward):
   t_init and steps come from DIR/sid_generator.json ("t_init", "steps"; 625 and 1 without it);
   z ~ N(0, 1) [1, C, S, S] (S = unet sample_size); for step i = 0..steps-1,
   t_i = int(t_init * (1 - i / steps)), a = sqrt(abar[t_i]), s = sqrt(1 - abar[t_i]),
   x_in = s * z (step 0) or a * x + s * z_i (later steps, fresh noise z_i),
   eps = unet(x_in, t_i, text).sample, x = (x_in - s * eps) / a;
   image = vae.decode(x / scaling_factor).sample, with text = text_encoder(tokenizer(prompt,
   padding="max_length", max_length=model_max_length, truncation=True)).last_hidden_state.
   ("v_prediction" schedulers: x = a * x_in - s * v.)
The PNG (--out, default DIR's parent/<DIR name>_check.png) holds the two images side by side:
the pipeline's 1-step image, then the generator's. Mean/std of both (in [-1, 1]) are printed.
Exit status 1 on any failure: a folder diffusers rejects, a component missing, a non-finite value.
"""
import argparse
import json
import os
import sys
import traceback

import numpy as np
import torch


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def stats(name, x):
    x = np.asarray(x, dtype=np.float64)
    print(f"{name}: shape {list(x.shape)} mean {x.mean():+.4f} std {x.std():.4f} min {x.min():+.4f} max {x.max():+.4f}")
    if not np.isfinite(x).all():
        fail(f"{name} has non-finite values")


def generator_image(pipe, prompt, t_init, steps, seed):
    unet, vae, te, tok, sched = pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.scheduler
    gen = torch.Generator().manual_seed(seed)
    S, C = unet.config.sample_size, unet.config.in_channels
    abar = sched.alphas_cumprod.double()
    v_pred = sched.config.get("prediction_type", "epsilon") == "v_prediction"
    with torch.no_grad():
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        text = te(ids).last_hidden_state
        x = None
        for i in range(steps):
            t = int(t_init * (1.0 - i / steps))
            a, s = float(abar[t].sqrt()), float((1 - abar[t]).sqrt())
            z = torch.randn((1, C, S, S), generator=gen)
            x_in = s * z if i == 0 else a * x + s * z
            out = unet(x_in, torch.tensor([float(t)]), encoder_hidden_states=text).sample
            x = a * x_in - s * out if v_pred else (x_in - s * out) / a
            print(f"generator step {i}: t {t}, sqrt(abar) {a:.5f}, sqrt(1-abar) {s:.5f}")
        stats("generator latent x_g", x.numpy())
        image = vae.decode(x / vae.config.scaling_factor).sample
    return image[0].permute(1, 2, 0).numpy()  # [H, W, 3] in about [-1, 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--prompt", default="a photo of a sneaker")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    d = args.dir.rstrip("/")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(d)), os.path.basename(d) + "_check.png")
    if not os.path.isdir(d):
        fail(f"{d}: not a folder")

    from diffusers import StableDiffusionPipeline
    from PIL import Image

    idx_path = os.path.join(d, "model_index.json")
    if not os.path.exists(idx_path):
        fail(f"{idx_path}: missing")
    idx = json.load(open(idx_path))
    print(f"{idx_path}: {idx.get('_class_name')}")
    for k, v in idx.items():  # name the missing component folder (diffusers' message does not)
        if not k.startswith("_") and isinstance(v, list) and v and v[0] is not None and not os.path.isdir(os.path.join(d, k)):
            print(f"  warning: model_index.json lists {k} {v} but {os.path.join(d, k)}/ is missing", file=sys.stderr)
    try:
        pipe = StableDiffusionPipeline.from_pretrained(d, safety_checker=None)
    except Exception as e:  # noqa: BLE001 - report diffusers' reason and fail
        traceback.print_exc()
        fail(f"StableDiffusionPipeline.from_pretrained({d}) rejected the folder: {e}")
    print(f"loaded {d} as {type(pipe).__name__}")
    for name, comp in pipe.components.items():
        print(f"  {name:18s} {type(comp).__module__}.{type(comp).__name__}" if comp is not None else f"  {name:18s} None")
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if getattr(pipe, name, None) is None:
            fail(f"{d}: the pipeline has no {name}")
    u, v, t = pipe.unet.config, pipe.vae.config, pipe.text_encoder.config
    print(f"  unet: sample_size {u.sample_size}, in {u.in_channels}, blocks {list(u.block_out_channels)}, "
          f"heads {u.attention_head_dim}, linear proj {u.use_linear_projection}, context {u.cross_attention_dim}, "
          f"{sum(p.numel() for p in pipe.unet.parameters())} params")
    print(f"  vae: blocks {list(v.block_out_channels)}, latent {v.latent_channels}, scaling {v.scaling_factor}")
    print(f"  text_encoder: hidden {t.hidden_size}, layers {t.num_hidden_layers}, act {t.hidden_act}, vocab {t.vocab_size}")
    tok = pipe.tokenizer
    print(f"  tokenizer: {len(tok)} tokens, max_length {tok.model_max_length}, bos/eos/pad "
          f"{tok.bos_token_id}/{tok.eos_token_id}/{tok.pad_token_id}; {args.prompt!r} -> {tok(args.prompt).input_ids}")
    print(f"  scheduler: {dict((k, pipe.scheduler.config[k]) for k in ('beta_start', 'beta_end', 'beta_schedule', 'num_train_timesteps', 'prediction_type') if k in pipe.scheduler.config)}")

    t_init, steps = 625, 1
    gj = os.path.join(d, "sid_generator.json")
    if os.path.exists(gj):
        g = json.load(open(gj))
        t_init, steps = int(g.get("t_init", 625)), int(g.get("steps", 1))
        print(f"{gj}: {g}")
    else:
        print(f"no sid_generator.json: generator emulated with t_init {t_init}, steps {steps}")
    if not (1 <= t_init <= 999 and 1 <= steps <= 4):
        fail(f"t_init {t_init} / steps {steps} out of range")

    try:
        img_pipe = pipe(args.prompt, num_inference_steps=1, guidance_scale=1.0, output_type="np",
                        generator=torch.Generator().manual_seed(args.seed)).images[0]  # [H, W, 3] in [0, 1]
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        fail(f"pipe(...) failed: {e}")
    stats("pipeline 1-step image (in [-1, 1])", img_pipe * 2 - 1)
    img_gen = generator_image(pipe, args.prompt, t_init, steps, args.seed)
    stats("generator image (in [-1, 1], unclamped)", img_gen)

    both = np.concatenate([img_pipe, np.clip(img_gen / 2 + 0.5, 0, 1)], axis=1)
    Image.fromarray((both * 255).round().astype(np.uint8)).save(out)
    print(f"wrote {out} ({both.shape[1]}x{both.shape[0]}: pipeline 1-step | sid generator)")
    print("OK")


if __name__ == "__main__":
    main()
