"""Writes two tiny random Stable Diffusion pipelines, each a complete
StableDiffusionPipeline.save_pretrained folder that diffusers' from_pretrained loads back, and a
golden file per pipeline computed by the real classes (diffusers / transformers, CPU, fp32):

  tests/data/pipelines/sd15_tiny/          SD1.5 layout
  tests/data/pipelines/sd15_tiny_golden.safetensors
  tests/data/pipelines/sd2_tiny/           SD2.x layout
  tests/data/pipelines/sd2_tiny_golden.safetensors

Each folder: model_index.json (safety_checker / feature_extractor null, requires_safety_checker
false), unet/, vae/, text_encoder/ (config.json + fp32 safetensors), tokenizer/, scheduler/.

  unet          UNet2DConditionModel, in/out 4, sample_size 8, block_out_channels (16, 32),
                CrossAttnDownBlock2D + DownBlock2D / UpBlock2D + CrossAttnUpBlock2D,
                UNetMidBlock2DCrossAttn, layers_per_block 1, norm_num_groups 8,
                cross_attention_dim 32 (= the text hidden size);
                sd15: attention_head_dim 4 (heads, diffusers' naming), use_linear_projection false;
                sd2:  attention_head_dim [2, 4] per level, use_linear_projection true.
  vae           AutoencoderKL, block_out_channels (8, 16) (one downsample: an 8x8 latent decodes to
                16x16 RGB), layers_per_block 1, norm_num_groups 4, latent_channels 4,
                scaling_factor 0.18215.
  text_encoder  CLIPTextModel, hidden 32, intermediate 64, 2 layers, 4 heads,
                max_position_embeddings 77, vocab 678 (the tokenizer's); sd15: quick_gelu,
                sd2: gelu (OpenCLIP).
  tokenizer     the built-in Fashion-MNIST teacher's vocabulary (tests/data/sid/teacher/tokenizer,
                678 tokens: "a photo of a sneaker" is real tokens), model_max_length 77;
                sd15: vocab.json + merges.txt + SD1.5's own tokenizer_config.json and
                special_tokens_map.json (pad "<|endoftext|>" = 677), no tokenizer.json;
                sd2: what transformers 5 saves (tokenizer.json + tokenizer_config.json), pad "!"
                (= 0), and no vocab.json / merges.txt (so a loader must read tokenizer.json).
  scheduler     DDPMScheduler: scaled_linear 0.00085 -> 0.012 over 1000 steps, epsilon,
                clip_sample false, steps_offset 1, timestep_spacing "trailing" (so diffusers'
                1-step run starts at t = 999, as sid's DDIM does).

Every parameter is re-drawn (weights ~ N(0, 1/fan_in), biases and norm shifts ~ N(0, 0.1^2),
norm scales ~ 1 + N(0, 0.1^2), embeddings ~ N(0, 1)) so that no bias is zero and no norm is the
identity; seeds are fixed (sd15 101, sd2 202), so reruns give the same tensors.

Golden (<name>_golden.safetensors, F32 unless said; kept beside the folder, not in it, so that
from_pretrained never sees it):
  ids        I64 [2, 77]       tokenizer(["a photo of a sneaker", ""], padding="max_length",
                               max_length=77, truncation=True).input_ids
  text       [2, 77, 32]       text_encoder(ids).last_hidden_state
  x          [1, 4, 8, 8]      a seeded UNet input latent
  t          [1]               500.0
  eps        [1, 4, 8, 8]      unet(x, 500, text[0:1]).sample
  z          [1, 4, 8, 8]      a seeded latent
  image      [1, 3, 16, 16]    vae.decode(z / scaling_factor).sample
  gen_x      [1, 4, 8, 8]      sid's one-step generator with this UNet as generator, t_init 625,
                               noise z, prompt 0: x_in = s*z, gen_x = (x_in - s*unet(x_in, 625,
                               text[0:1]))/a, a = sqrt(abar[625]), s = sqrt(1 - abar[625])
  gen_image  [1, 3, 16, 16]    vae.decode(gen_x / scaling_factor).sample
Metadata: one key "info", a JSON object {pipeline, t_init, t, scaling_factor, prompts}.

Run: /root/sid-ref-venv/bin/python tools/reference/sd_pipeline_reference.py   (dev-time only)
"""
import json
import os
import shutil
import tempfile

import torch
from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(REPO, "tests", "data", "pipelines")
VOCAB_DIR = os.path.join(REPO, "tests", "data", "sid", "teacher", "tokenizer")
SD15_TOK_CFG = os.path.join(REPO, "tests", "data", "tokenizer", "sd15")  # SD1.5's real tokenizer configs
SD2_TOK_CFG = os.path.join(REPO, "tests", "data", "tokenizer", "sd2")
PROMPTS = ["a photo of a sneaker", ""]
T_UNET, T_INIT, SCALING = 500, 625, 0.18215
HIDDEN = 32
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif "embedding" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)


def make_tokenizer(sd2):
    """The teacher vocabulary with SD1.5's or SD2's tokenizer configs, loaded as diffusers would
    (CLIPTokenizer.from_pretrained of a vocab.json/merges.txt folder). Returns (tokenizer, tmp)."""
    tmp = tempfile.mkdtemp(prefix="sid_tok_")
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(VOCAB_DIR, f), tmp)
    for f in ("tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(SD2_TOK_CFG if sd2 else SD15_TOK_CFG, f), tmp)
    tok = CLIPTokenizer.from_pretrained(tmp)
    assert tok.model_max_length == 77, tok.model_max_length
    vocab = json.load(open(os.path.join(VOCAB_DIR, "vocab.json"), encoding="utf-8"))
    n = len(vocab)
    want_pad = 0 if sd2 else n - 1
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (n - 2, n - 1, want_pad), (
        tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    ids = tok(PROMPTS[0]).input_ids
    assert tok.unk_token_id not in ids[1:-1], ids  # real tokens, not unk
    return tok, tmp, n


def write_tokenizer_folder(pipe_dir, sd2, tmp):
    tdir = os.path.join(pipe_dir, "tokenizer")
    if sd2:
        # Keep what transformers 5 wrote (tokenizer.json + tokenizer_config.json); a loader must
        # read tokenizer.json, so no vocab.json / merges.txt.
        for f in ("vocab.json", "merges.txt"):
            if os.path.exists(os.path.join(tdir, f)):
                os.remove(os.path.join(tdir, f))
        assert os.path.exists(os.path.join(tdir, "tokenizer.json")), os.listdir(tdir)
    else:
        # SD1.5's hub layout: vocab.json, merges.txt and its two configs, no tokenizer.json.
        shutil.rmtree(tdir)
        os.makedirs(tdir)
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(tmp, f), tdir)
    cfg = json.load(open(os.path.join(tdir, "tokenizer_config.json")))
    assert cfg["model_max_length"] == 77, cfg


def build(name, seed, sd2):
    gen = torch.Generator().manual_seed(seed)
    tok, tmp, n_vocab = make_tokenizer(sd2)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=n_vocab, hidden_size=HIDDEN, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, hidden_act="gelu" if sd2 else "quick_gelu", layer_norm_eps=1e-5,
        projection_dim=HIDDEN, bos_token_id=n_vocab - 2, eos_token_id=n_vocab - 1,
        pad_token_id=0 if sd2 else n_vocab - 1)).float().eval()
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        layers_per_block=1, norm_num_groups=8, cross_attention_dim=HIDDEN,
        attention_head_dim=[2, 4] if sd2 else 4, use_linear_projection=sd2).float().eval()
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=4, sample_size=16, scaling_factor=SCALING).float().eval()
    for m in (text_encoder, unet, vae):
        randomise(m, gen)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              num_train_timesteps=1000, prediction_type="epsilon", clip_sample=False,
                              steps_offset=1, timestep_spacing="trailing")
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out_dir = os.path.join(OUT, name)
    shutil.rmtree(out_dir, ignore_errors=True)
    pipe.save_pretrained(out_dir, safe_serialization=True)
    write_tokenizer_folder(out_dir, sd2, tmp)
    shutil.rmtree(tmp)

    # Goldens.
    with torch.no_grad():
        ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        text = text_encoder(ids).last_hidden_state
        x = torch.randn((1, 4, 8, 8), generator=gen)
        t = torch.tensor([float(T_UNET)])
        eps = unet(x, t, encoder_hidden_states=text[0:1]).sample
        z = torch.randn((1, 4, 8, 8), generator=gen)
        image = vae.decode(z / SCALING).sample
        abar = scheduler.alphas_cumprod.double()[T_INIT]
        a, s = float(abar.sqrt()), float((1 - abar).sqrt())
        x_in = s * z
        gen_x = (x_in - s * unet(x_in, torch.tensor([float(T_INIT)]), encoder_hidden_states=text[0:1]).sample) / a
        gen_image = vae.decode(gen_x / SCALING).sample
    golden = {"ids": ids.to(torch.int64), "text": text, "x": x, "t": t, "eps": eps, "z": z, "image": image,
              "gen_x": gen_x, "gen_image": gen_image}
    golden = {k: v.contiguous() for k, v in golden.items()}
    # One metadata key: safetensors writes several in hash order, which would change the bytes per run.
    meta = {"info": json.dumps({"pipeline": name, "t_init": T_INIT, "t": T_UNET, "scaling_factor": SCALING,
                                "prompts": PROMPTS})}
    save_file(golden, os.path.join(OUT, name + "_golden.safetensors"), metadata=meta)

    counts = {k: sum(p.numel() for p in m.parameters()) for k, m in
              (("unet", unet), ("vae", vae), ("text_encoder", text_encoder))}
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out_dir) for f in fs)
    print(f"{name}: {size} bytes, params {counts}, tokenizer files {sorted(os.listdir(os.path.join(out_dir, 'tokenizer')))}")
    print(f"  ids[0] {ids[0, :8].tolist()}..., ids[1] {ids[1, :4].tolist()}...")
    for k, v in golden.items():
        sd = v.double().std().item() if v.numel() > 1 else 0.0
        print(f"  {k:9s} {list(v.shape)} {v.dtype} mean {v.double().mean():+.4f} std {sd:.4f}")
    return out_dir


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, seed, sd2 in (("sd15_tiny", 101, False), ("sd2_tiny", 202, True)):
        out_dir = build(name, seed, sd2)
        # Round trip: diffusers must load the folder back and reproduce the golden.
        pipe = StableDiffusionPipeline.from_pretrained(out_dir, safety_checker=None)
        from safetensors.torch import load_file
        g = load_file(os.path.join(OUT, name + "_golden.safetensors"))
        with torch.no_grad():
            ids = pipe.tokenizer(PROMPTS, padding="max_length", max_length=77, truncation=True,
                                 return_tensors="pt").input_ids
            assert torch.equal(ids, g["ids"]), (ids, g["ids"])
            text = pipe.text_encoder(ids).last_hidden_state
            eps = pipe.unet(g["x"], g["t"], encoder_hidden_states=text[0:1]).sample
            image = pipe.vae.decode(g["z"] / pipe.vae.config.scaling_factor).sample
        for k, v in (("text", text), ("eps", eps), ("image", image)):
            err = (v - g[k]).abs().max().item()
            assert err < 1e-5, (name, k, err)
        print(f"  reloaded with StableDiffusionPipeline.from_pretrained: ids, text, eps, image match")


if __name__ == "__main__":
    main()
