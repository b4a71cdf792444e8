"""Writes the CLIP-score reference data that tests/test_clip_score.c reads, under tests/data/clip_score/:

  <model>/config.json, <model>/preprocessor_config.json
                      convert_open_clip.py's output for a tiny random open_clip CLIP (model "gelu":
                      OpenCLIP-style exact gelu, mlp_ratio 4.3637 as ViT-g-14, patch 14 at 56 px;
                      model "quickgelu": OpenAI-style QuickGELU, patch 16 at 48 px, other widths)
  <model>/tokenizer_config.json, <model>/special_tokens_map.json
                      laion's special tokens (pad "!", which the scorer must not treat as special in captions)
  <model>/tensors.txt  every tensor name and shape of the converter's model.safetensors ("name [d0, d1]")
  <model>/golden.safetensors
                      open_clip's outputs for hashed normalised images and the captions of the
                      metadata ("captions", a JSON list): image_features [NI, dim] (encode_image),
                      raw_tokens [NC, 77] (open_clip.tokenize: the OpenAI BPE, truncation, zero
                      padding), tokens [NC, 77] (GigaGAN's: "A photo depicts"'s 3 tokens after BOS,
                      cut to 77, a non-zero last token forced to EOT 49407), text_features [NC, dim]
                      (encode_text of those tokens), cosines [NC] (F.cosine_similarity of image k % NI
                      and caption k, as GigaGAN's compute_clip_score); token ids stored as float32 (exact)

The weights are not stored (the 49408-token embedding alone would be megabytes): every tensor of the
transformers-named folder is filled from a hash of its name and the element index (fnv1a64 of the
name, splitmix64 of seed + (i + 1) * golden ratio, top 24 bits / 2^24 = u in [0, 1); then layer-norm
weights 0.8 + 0.4u, biases 0.2u - 0.1, embeddings (class, token, position) (2u - 1) / 2, every other
weight (2u - 1) sqrt(3 / fan_in), fan_in the product of the dimensions after the first; computed in
double, rounded to float32; logit_scale 2.6592), which the C test reproduces bit for bit. The script
turns them into open_clip's state dict (q, k, v stacked into in_proj, projections transposed), loads
that into open_clip's CLIP strictly, saves it as a checkpoint and converts it with
convert_open_clip.py, checking that the converted tensors are the hashed ones bit for bit (so the C
test's regenerated file is the converter's output), and that transformers' CLIPModel on the folder
gives open_clip's features. The images: name "pixels", shape [NI, 3, S, S], 4u - 2.

Run: /root/sid-ref-venv/bin/python tools/reference/clip_score_reference.py   (dev-time only;
needs torch, numpy, safetensors, transformers, open_clip_torch with ftfy and regex)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_open_clip as conv  # noqa: E402
from hashed import hashed_uniform  # noqa: E402

OUT = os.path.join(HERE, "..", "..", "tests", "data", "clip_score")
N_IMAGES = 3

MODELS = {
    "gelu": {"embed_dim": 32, "quick_gelu": False,
             "vision_cfg": {"image_size": 56, "layers": 2, "width": 64, "head_width": 16, "mlp_ratio": 4.3637,
                            "patch_size": 14},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2}},
    "quickgelu": {"embed_dim": 24, "quick_gelu": True,
                  "vision_cfg": {"image_size": 48, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 4.0,
                                 "patch_size": 16},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 48, "heads": 4, "layers": 3,
                               "mlp_ratio": 3.0}},
}




def hashed_tensor(name, shape):
    if name == "logit_scale":
        return torch.tensor(2.6592, dtype=torch.float32)
    n = int(np.prod(shape))
    u = hashed_uniform(name, n)
    if "norm" in name and name.endswith(".weight"):
        v = 0.8 + 0.4 * u
    elif name.endswith(".bias"):
        v = 0.2 * u - 0.1
    elif name.endswith("class_embedding") or name.endswith("_embedding.weight") and "patch" not in name:
        v = (2.0 * u - 1.0) / 2.0
    else:
        fan_in = int(np.prod(shape[1:]))
        v = (2.0 * u - 1.0) * np.sqrt(3.0 / fan_in)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def to_open_clip(hf, cfg):
    """The inverse of convert_open_clip's mapping: transformers names -> open_clip's state dict."""
    vision, text, _ = conv.sizes(cfg)
    sd = {}

    def blocks(dst, src, s):
        for i in range(s["num_hidden_layers"]):
            a, b = f"{dst}transformer.resblocks.{i}.", f"{src}encoder.layers.{i}."
            sd[a + "attn.in_proj_weight"] = torch.cat([hf[f"{b}self_attn.{p}_proj.weight"] for p in "qkv"])
            sd[a + "attn.in_proj_bias"] = torch.cat([hf[f"{b}self_attn.{p}_proj.bias"] for p in "qkv"])
            for o, n in (("attn.out_proj", "self_attn.out_proj"), ("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"),
                         ("mlp.c_fc", "mlp.fc1"), ("mlp.c_proj", "mlp.fc2")):
                for w in ("weight", "bias"):
                    sd[f"{a}{o}.{w}"] = hf[f"{b}{n}.{w}"]

    sd["visual.conv1.weight"] = hf["vision_model.embeddings.patch_embedding.weight"]
    sd["visual.class_embedding"] = hf["vision_model.embeddings.class_embedding"]
    sd["visual.positional_embedding"] = hf["vision_model.embeddings.position_embedding.weight"]
    for o, n in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                 ("ln_final", "text_model.final_layer_norm")):
        for w in ("weight", "bias"):
            sd[f"{o}.{w}"] = hf[f"{n}.{w}"]
    blocks("visual.", "vision_model.", vision)
    sd["visual.proj"] = hf["visual_projection.weight"].t().contiguous()
    sd["token_embedding.weight"] = hf["text_model.embeddings.token_embedding.weight"]
    sd["positional_embedding"] = hf["text_model.embeddings.position_embedding.weight"]
    blocks("", "text_model.", text)
    sd["text_projection"] = hf["text_projection.weight"].t().contiguous()
    sd["logit_scale"] = hf["logit_scale"]
    return sd


def captions():
    import open_clip

    def n_tokens(text):  # the caption's BPE tokens, untruncated
        return len(open_clip.tokenizer._tokenizer.encode(text))

    words = ["red", "dog", "on", "a", "green", "field", "with", "two", "cats"]

    def of_length(k):
        text = " ".join(words[i % len(words)] for i in range(k))
        assert n_tokens(text) == k, (k, n_tokens(text))
        return text

    long = ("A very long caption about a busy street scene in a big city at night, with many people walking "
            "past brightly lit shops, taxis and buses waiting at the traffic lights, a street musician playing "
            "a saxophone on the corner, steam rising from a manhole cover, pigeons on the wires above, and "
            "a dog that looks at the camera while its owner talks on the phone next to a red fire hydrant.")
    assert n_tokens(long) > 80
    return [
        "A man riding a wave on top of a surfboard.",
        "Two dogs playing in the snow",
        long,
        of_length(72),  # BOS + 3 + 72 + EOT = 77: nothing cut, EOT last already
        of_length(73),  # 78 after the insertion: the last caption token becomes EOT
        of_length(76),  # truncated by the tokenizer (EOT at 76), then by the insertion
        "",
        "It's 3 o'clock: the CAT's toy!! #42, naïve café crème ! wow !",
        "fish &amp; chips &lt;3 &#39;yum&#39; &#x41; &#65 AT&T &amp;amp; &ampx &nbsp;end &copy; caf&eacute; &notit;",
        "ΟΔΟΣ ΣΑΣ Σ ΑΣ. ΟΔΟΣ's &#150; &#0; &#x110000; &#128;",
        "x < y &amp;amp; z",
        "\u201cCurly\u201d \u2018quotes\u2019 and \ufb01ne \uff21\uff22\uff23",
        "  lots\tof \n whitespace  ",
        "bell\x07 \x85 &EACUTE;T&Eacute; \u01c5emal \uff8a\uff9d \ufeffbom \x1b[31mred\x1b[0m \u0132",
        "&amp;amp; one\r\nline < two\n&amp;amp; three",
    ]


def hashed_pixels(S):
    u = hashed_uniform("pixels", N_IMAGES * 3 * S * S)
    return torch.from_numpy((4.0 * u - 2.0).astype(np.float32).reshape(N_IMAGES, 3, S, S))


def one_model(name, cfg, caps, work):
    from safetensors.torch import load_file, save_file
    import open_clip

    cfg = json.loads(json.dumps(cfg))
    cfg["mean"], cfg["std"] = list(conv.OPENAI_MEAN), list(conv.OPENAI_STD)
    conv.check_supported(cfg, name)
    # the transformers-named tensors, hashed, with the converter's names and shapes
    shapes = conv.convert_state_dict({k: v.float() for k, v in conv.build_open_clip(cfg).state_dict().items()}, cfg)
    hf = {k: hashed_tensor(k, tuple(v.shape)) for k, v in shapes.items()}
    model = conv.build_open_clip(cfg)
    model.load_state_dict(to_open_clip(hf, cfg), strict=True)
    ckpt = os.path.join(work, f"{name}.pt")
    torch.save(model.state_dict(), ckpt)
    with open(os.path.join(work, f"{name}.json"), "w") as f:
        json.dump({k: cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")}, f)

    # the converter's command line, with its check against transformers
    folder = os.path.join(work, name)
    cmd = [sys.executable, os.path.join(HERE, "convert_open_clip.py"), "--model-config",
           os.path.join(work, f"{name}.json"), "--checkpoint", ckpt, "--out", folder, "--check"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(res.stdout + res.stderr)
    for line in res.stdout.splitlines():
        print(f"  {name}: {line}")
    got = load_file(os.path.join(folder, "model.safetensors"))
    assert set(got) == set(hf), sorted(set(got) ^ set(hf))
    for k in hf:
        assert torch.equal(got[k], hf[k]), f"converted '{k}' differs from the hashed tensor"

    dst = os.path.join(OUT, name)
    os.makedirs(dst, exist_ok=True)
    for f in ("config.json", "preprocessor_config.json"):
        shutil.copy(os.path.join(folder, f), os.path.join(dst, f))
    # laion's Hugging Face folders pad with "!": the scorer must tokenise a caption's "!" all the same
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "!"}
    with open(os.path.join(dst, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, tokenizer_class="CLIPTokenizer", model_max_length=77, do_lower_case=True), f, indent=2)
    with open(os.path.join(dst, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(dst, "tensors.txt"), "w") as f:
        for k in sorted(got):
            f.write(f"{k} [{', '.join(str(d) for d in got[k].shape)}]\n")

    S = cfg["vision_cfg"]["image_size"]
    pixels = hashed_pixels(S)
    raw = open_clip.tokenize(caps)
    tokens = conv.gigagan_tokens(caps)
    with torch.no_grad():
        img = model.encode_image(pixels)
        txt = model.encode_text(tokens)
        pair = img[torch.arange(len(caps)) % N_IMAGES]
        cos = torch.nn.functional.cosine_similarity(pair, txt, dim=1)
    golden = {"image_features": img.contiguous(), "text_features": txt.contiguous(),
              "raw_tokens": raw.float().contiguous(), "tokens": tokens.float().contiguous(), "cosines": cos}
    save_file(golden, os.path.join(dst, "golden.safetensors"),
              metadata={"captions": json.dumps(caps), "n_images": str(N_IMAGES), "image_size": str(S)})
    print(f"  {name}: {len(caps)} captions, {N_IMAGES} images of {S} px, dim {img.shape[1]}, "
          f"|image features| max {img.abs().max():.3f}, cosines {cos.min():.3f}..{cos.max():.3f}")


def main():
    torch.manual_seed(0)
    caps = captions()
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="clip_score_ref_")
    try:
        for name, cfg in MODELS.items():
            one_model(name, cfg, caps, work)
    finally:
        shutil.rmtree(work)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {os.path.normpath(OUT)} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
