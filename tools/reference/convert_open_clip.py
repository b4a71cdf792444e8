"""Converts an open_clip checkpoint (OpenCLIP ViT-g-14, OpenAI ViT-L/14, any plain ViT CLIP of that
family) into a transformers CLIPModel folder that sid's CLIP scorer (src/eval/clip_score.h) reads
and transformers' CLIPModel.from_pretrained loads:

  config.json               CLIPConfig: text_config, vision_config (hidden_act "gelu" for OpenCLIP's
                            nn.GELU, "quick_gelu" for OpenAI's weights), projection_dim
  model.safetensors         float32, transformers' names (text_model.*, vision_model.*,
                            visual_projection.weight, text_projection.weight, logit_scale)
  vocab.json, merges.txt,   the OpenAI CLIP BPE vocabulary (open_clip's bpe_simple_vocab_16e6),
  tokenizer_config.json,    as transformers' CLIPTokenizer files with openai/clip-vit-large-patch14's
  special_tokens_map.json   special tokens (pad "<|endoftext|>": a pad "!", as laion's folders have,
                            would make transformers split every "!" out of a caption as id 0)
  preprocessor_config.json  CLIPImageProcessor: image size and the model's mean / std

The mapping (open_clip -> transformers):
  visual.conv1.weight -> vision_model.embeddings.patch_embedding.weight
  visual.class_embedding -> vision_model.embeddings.class_embedding
  visual.positional_embedding -> vision_model.embeddings.position_embedding.weight
  visual.ln_pre -> vision_model.pre_layrnorm, visual.ln_post -> vision_model.post_layernorm
  visual.proj [width, dim] -> visual_projection.weight [dim, width] (transposed)
  token_embedding.weight -> text_model.embeddings.token_embedding.weight
  positional_embedding -> text_model.embeddings.position_embedding.weight
  ln_final -> text_model.final_layer_norm
  text_projection [width, dim] -> text_projection.weight [dim, width] (transposed)
  per block ({visual.,}transformer.resblocks.{i}. -> {vision,text}_model.encoder.layers.{i}.):
  ln_1 / ln_2 -> layer_norm1 / layer_norm2, attn.in_proj_{weight,bias} (q, k, v stacked by rows)
  -> self_attn.{q,k,v}_proj, attn.out_proj -> self_attn.out_proj, mlp.c_fc / mlp.c_proj -> mlp.fc1 / fc2
A CustomTextCLIP checkpoint ("text." in front of the text tower's names) is read as well. Features
the target format cannot express (layer scale, attentional pooling, average pooling, projection
bias, timm or HF towers, QK norm, ...) are refused with a message.

Usage (dev-time; needs torch, open_clip_torch, safetensors; --check also transformers):
  convert_open_clip.py --model ViT-g-14 --checkpoint open_clip_pytorch_model.bin --out clip-vit-g-14
  convert_open_clip.py --model ViT-L-14 --quick-gelu --checkpoint ViT-L-14.pt --out clip-vit-l-14
  convert_open_clip.py --model-config my_clip.json --checkpoint my.pt --out my-clip --check
  convert_open_clip.py --model ViT-g-14 --random --out /tmp/vitg --check   (random init: shapes only)
--model is a name of open_clip's registry (open_clip.list_models(); "-quickgelu" names imply
--quick-gelu); --model-config a JSON file in open_clip's model-config format ({"embed_dim",
"vision_cfg", "text_cfg", optional "quick_gelu"}). OpenAI's weights (the ViT-L-14.pt TorchScript
archive, fp16) need --quick-gelu. --check builds the open_clip model with the checkpoint and the
converted folder in transformers, runs both on the same random images and tokenised captions and
prints the largest differences of the image and text features. Nothing is ever downloaded.
"""
import argparse
import json
import math
import os
import sys

import torch

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------- the open_clip model config
def load_model_config(model=None, model_config=None, quick_gelu=False, pretrained=None):
    """open_clip's model config dict, with "quick_gelu" resolved (and "mean" / "std": the
    normalisation of the pretrained tag's registry entry, OpenAI's by default)."""
    import open_clip

    if model_config:
        with open(model_config) as f:
            cfg = json.load(f)
        name = os.path.basename(model_config)
    else:
        cfg = open_clip.get_model_config(model)
        if cfg is None:
            sys.exit(f"open_clip has no model config '{model}' (see open_clip.list_models())")
        name = model
    cfg = json.loads(json.dumps(cfg))
    pcfg = {}
    if pretrained:
        pcfg = open_clip.get_pretrained_cfg(model, pretrained) if model else {}
        if not pcfg:
            sys.exit(f"open_clip has no pretrained tag '{pretrained}' for '{model}' (open_clip.list_pretrained())")
    pp = cfg.get("preprocess_cfg") or {}
    cfg["mean"] = list(pcfg.get("mean") or pp.get("mean") or OPENAI_MEAN)
    cfg["std"] = list(pcfg.get("std") or pp.get("std") or OPENAI_STD)
    cfg["quick_gelu"] = bool(quick_gelu or cfg.get("quick_gelu", False) or pcfg.get("quick_gelu", False) or
                             (model or "").endswith("-quickgelu"))
    check_supported(cfg, name)
    return cfg


def check_supported(cfg, name):
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    bad = []
    for key, ok in [("timm_model_name", None), ("ls_init_value", None), ("attentional_pool", False),
                    ("no_ln_pre", False), ("final_ln_after_pool", False), ("qk_norm", False),
                    ("scaled_cosine_attn", False), ("scale_heads", False), ("scale_attn_inner", False),
                    ("scale_attn", False), ("scale_fc", False), ("act_kwargs", None), ("norm_kwargs", None)]:
        if v.get(key) not in (ok, None):
            bad.append(f"vision_cfg.{key}={v[key]!r}")
    if v.get("pool_type", "tok") != "tok":
        bad.append(f"vision_cfg.pool_type={v['pool_type']!r} (only 'tok': the class token)")
    if v.get("pos_embed_type", "learnable") != "learnable":
        bad.append(f"vision_cfg.pos_embed_type={v['pos_embed_type']!r}")
    if isinstance(v.get("layers"), (list, tuple)):
        bad.append("vision_cfg.layers is a ResNet")
    for key, ok in [("hf_model_name", None), ("ls_init_value", None), ("embed_cls", False),
                    ("no_causal_mask", False), ("final_ln_after_pool", False), ("proj_bias", False),
                    ("qk_norm", False), ("scaled_cosine_attn", False), ("scale_heads", False),
                    ("scale_attn_inner", False), ("scale_attn", False), ("scale_fc", False),
                    ("act_kwargs", None), ("norm_kwargs", None)]:
        if t.get(key) not in (ok, None):
            bad.append(f"text_cfg.{key}={t[key]!r}")
    if t.get("pool_type", "argmax") != "argmax":
        bad.append(f"text_cfg.pool_type={t['pool_type']!r} (only 'argmax')")
    if t.get("proj_type", "linear") != "linear":
        bad.append(f"text_cfg.proj_type={t['proj_type']!r}")
    if t.get("hf_tokenizer_name") or t.get("tokenizer_kwargs") or t.get("vocab_size", 49408) != 49408:
        bad.append("a tokenizer other than OpenAI's 49408-token BPE (the one the folder gets)")
    if bad:
        sys.exit(f"{name}: not convertible to a transformers CLIPModel: " + ", ".join(bad))


def sizes(cfg):
    """The transformers sizes of an open_clip config: (vision, text, projection_dim)."""
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    vw = v.get("width", 768)
    vision = dict(hidden_size=vw, intermediate_size=int(vw * v.get("mlp_ratio", 4.0)),
                  num_hidden_layers=v.get("layers", 12), num_attention_heads=vw // v.get("head_width", 64),
                  image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 16))
    tw = t.get("width", 512)
    text = dict(hidden_size=tw, intermediate_size=int(tw * t.get("mlp_ratio", 4.0)),
                num_hidden_layers=t.get("layers", 12), num_attention_heads=t.get("heads", 8),
                vocab_size=t.get("vocab_size", 49408), max_position_embeddings=t.get("context_length", 77))
    for what, s in (("vision", vision), ("text", text)):
        if s["hidden_size"] % s["num_attention_heads"]:
            sys.exit(f"{what} width {s['hidden_size']} does not split into {s['num_attention_heads']} heads")
    if isinstance(vision["image_size"], (list, tuple)) or isinstance(vision["patch_size"], (list, tuple)):
        sys.exit("only square images and patches convert to a transformers CLIPModel")
    return vision, text, cfg["embed_dim"]


def hf_config(cfg):
    vision, text, dim = sizes(cfg)
    act = "quick_gelu" if cfg["quick_gelu"] else "gelu"
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": dim,
        "logit_scale_init_value": 2.6592,
        "initializer_factor": 1.0,
        "dtype": "float32",
        "text_config": dict(text, model_type="clip_text_model", hidden_act=act, layer_norm_eps=1e-5,
                            attention_dropout=0.0, projection_dim=dim, bos_token_id=49406, eos_token_id=49407,
                            pad_token_id=0),
        "vision_config": dict(vision, model_type="clip_vision_model", hidden_act=act, layer_norm_eps=1e-5,
                              attention_dropout=0.0, projection_dim=dim, num_channels=3),
    }


def build_open_clip(cfg):
    """The open_clip CLIP model of a config (random init), eval mode, float32."""
    from open_clip.model import CLIP

    model = CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                 quick_gelu=cfg["quick_gelu"])
    return model.float().eval()


# ---------------------------------------------------------------- the checkpoint
def read_checkpoint(path):
    """An open_clip / OpenAI state dict from .safetensors, a pickled state dict or a TorchScript archive."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        sd = None
        try:  # OpenAI's ViT-L-14.pt is a TorchScript archive
            sd = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception:
            pass
        if sd is None:
            sd = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(sd, dict) and "state_dict" in sd:
                sd = sd["state_dict"]
    sd = dict(sd)
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    for k in ("input_resolution", "context_length", "vocab_size"):  # OpenAI's archive
        sd.pop(k, None)
    if any(k.startswith("text.") for k in sd):  # CustomTextCLIP: the text tower under "text."
        sd = {(k[len("text."):] if k.startswith("text.") else k): v for k, v in sd.items()}
    return {k: v.float() for k, v in sd.items()}


def convert_state_dict(sd, cfg):
    """open_clip names -> transformers CLIPModel names; every tensor used once, shapes checked."""
    vision, text, dim = sizes(cfg)
    out, used = {}, set()

    def take(name):
        if name not in sd:
            sys.exit(f"checkpoint: missing tensor '{name}'")
        used.add(name)
        return sd[name]

    def put(name, value, shape):
        if tuple(value.shape) != tuple(shape):
            sys.exit(f"checkpoint: '{name}' would get shape {tuple(value.shape)}, the config says {tuple(shape)}")
        out[name] = value.contiguous().clone()

    def blocks(src, dst, s):
        C, I = s["hidden_size"], s["intermediate_size"]
        for i in range(s["num_hidden_layers"]):
            a, b = f"{src}transformer.resblocks.{i}.", f"{dst}encoder.layers.{i}."
            w, bias = take(a + "attn.in_proj_weight"), take(a + "attn.in_proj_bias")
            if tuple(w.shape) != (3 * C, C) or tuple(bias.shape) != (3 * C,):
                sys.exit(f"checkpoint: '{a}attn.in_proj_weight' has shape {tuple(w.shape)}, want {(3 * C, C)}")
            for k, part in enumerate(("q_proj", "k_proj", "v_proj")):
                put(f"{b}self_attn.{part}.weight", w[k * C:(k + 1) * C], (C, C))
                put(f"{b}self_attn.{part}.bias", bias[k * C:(k + 1) * C], (C,))
            for o, n, shape in (("attn.out_proj.weight", "self_attn.out_proj.weight", (C, C)),
                                ("attn.out_proj.bias", "self_attn.out_proj.bias", (C,)),
                                ("ln_1.weight", "layer_norm1.weight", (C,)), ("ln_1.bias", "layer_norm1.bias", (C,)),
                                ("ln_2.weight", "layer_norm2.weight", (C,)), ("ln_2.bias", "layer_norm2.bias", (C,)),
                                ("mlp.c_fc.weight", "mlp.fc1.weight", (I, C)), ("mlp.c_fc.bias", "mlp.fc1.bias", (I,)),
                                ("mlp.c_proj.weight", "mlp.fc2.weight", (C, I)), ("mlp.c_proj.bias", "mlp.fc2.bias", (C,))):
                put(b + n, take(a + o), shape)

    C, P, S = vision["hidden_size"], vision["patch_size"], vision["image_size"]
    grid = S // P
    put("vision_model.embeddings.patch_embedding.weight", take("visual.conv1.weight"), (C, 3, P, P))
    put("vision_model.embeddings.class_embedding", take("visual.class_embedding"), (C,))
    put("vision_model.embeddings.position_embedding.weight", take("visual.positional_embedding"), (grid * grid + 1, C))
    for o, n in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm")):
        put(n + ".weight", take(o + ".weight"), (C,))
        put(n + ".bias", take(o + ".bias"), (C,))
    blocks("visual.", "vision_model.", vision)
    put("visual_projection.weight", take("visual.proj").t(), (dim, C))

    T = text["hidden_size"]
    put("text_model.embeddings.token_embedding.weight", take("token_embedding.weight"), (text["vocab_size"], T))
    put("text_model.embeddings.position_embedding.weight", take("positional_embedding"),
        (text["max_position_embeddings"], T))
    blocks("", "text_model.", text)
    put("text_model.final_layer_norm.weight", take("ln_final.weight"), (T,))
    put("text_model.final_layer_norm.bias", take("ln_final.bias"), (T,))
    tp = take("text_projection")
    put("text_projection.weight", tp.t(), (dim, T))
    out["logit_scale"] = take("logit_scale").reshape(()).clone() if "logit_scale" in sd else torch.tensor(2.6592)
    left = sorted(set(sd) - used - {"logit_scale", "attn_mask", "logit_bias"})
    if left:
        sys.exit(f"checkpoint: {len(left)} tensors not part of a plain CLIP ViT, e.g. {left[:5]}")
    return out


# ---------------------------------------------------------------- the folder
def write_tokenizer(out):
    """The OpenAI CLIP BPE vocabulary as transformers' CLIPTokenizer files (open_clip's merges)."""
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer()
    enc = dict(tok.encoder)
    sot, eot = tok.sot_token_id, tok.eot_token_id
    inv = {i: s for s, i in enc.items()}
    for i, name in ((sot, "<|startoftext|>"), (eot, "<|endoftext|>")):  # open_clip 3 renames the two
        del enc[inv[i]]
        enc[name] = i
    vocab = dict(sorted(enc.items(), key=lambda kv: kv[1]))
    if sorted(vocab.values()) != list(range(len(vocab))):
        sys.exit("open_clip's vocabulary is not 0..n-1")
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    merges = sorted(tok.bpe_ranks.items(), key=lambda kv: kv[1])
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for (a, b), _ in merges:
            f.write(f"{a} {b}\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>"}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, tokenizer_class="CLIPTokenizer", model_max_length=77, do_lower_case=True,
                       errors="replace", add_prefix_space=False), f, indent=2)


def write_folder(out, cfg, tensors):
    from safetensors.torch import save_file

    os.makedirs(out, exist_ok=True)
    conf = hf_config(cfg)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(conf, f, indent=2)
        f.write("\n")
    S = conf["vision_config"]["image_size"]
    pre = {"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": S},
           "resample": 3, "do_center_crop": True, "crop_size": {"height": S, "width": S}, "do_rescale": True,
           "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": cfg.get("mean", list(OPENAI_MEAN)),
           "image_std": cfg.get("std", list(OPENAI_STD)),
           "do_convert_rgb": True}
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(out)


def convert(cfg, sd, out):
    tensors = convert_state_dict(sd, cfg)
    write_folder(out, cfg, tensors)
    return tensors


# ---------------------------------------------------------------- --check
def gigagan_tokens(captions, context_length=77):
    """GigaGAN's CLIP-score tokens: OpenAI tokenizer (truncate, zero padding), "A photo depicts"'s 3
    tokens after BOS, cut to 77, a non-zero last token forced to EOT 49407."""
    import open_clip

    tokens = open_clip.tokenize(captions, context_length)
    prefix = open_clip.tokenize(["A photo depicts "], context_length)[:, 1:4].expand(tokens.shape[0], -1)
    new = torch.cat([tokens[:, :1], prefix, tokens[:, 1:]], dim=1)[:, :context_length]
    last = new[:, context_length - 1:context_length].clone()
    last[last > 0] = 49407
    return torch.cat([new[:, :context_length - 1], last], dim=1)


def check(model, out, n_images=2, seed=0):
    """Max |diff| of open_clip's and the converted transformers model's image and text features."""
    from transformers import CLIPModel

    hf = CLIPModel.from_pretrained(out, dtype=torch.float32).eval()
    S = hf.config.vision_config.image_size
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(n_images, 3, S, S, generator=g)
    captions = ["A man riding a wave on top of a surfboard.", "two dogs playing in the snow"][:n_images]
    tokens = gigagan_tokens(captions)
    with torch.no_grad():
        oi, ot = model.encode_image(pixels), model.encode_text(tokens)
        hi, ht = hf.get_image_features(pixel_values=pixels), hf.get_text_features(input_ids=tokens)
        if not torch.is_tensor(hi):  # transformers 5 may return an output object
            hi = hi.pooler_output if hasattr(hi, "pooler_output") else hi[0]
        if not torch.is_tensor(ht):
            ht = ht.pooler_output if hasattr(ht, "pooler_output") else ht[0]
        cos_o = torch.nn.functional.cosine_similarity(oi, ot, dim=1)
        cos_h = torch.nn.functional.cosine_similarity(hi, ht, dim=1)
    di, dt = (oi - hi).abs().max().item(), (ot - ht).abs().max().item()
    try:  # the written tokenizer files give open_clip's ids up to EOT (transformers pads with EOT, open_clip with 0)
        import open_clip
        from transformers import CLIPTokenizer
        texts = captions + ["Wow! A cat & a dog!!", "a long caption " * 30]
        ht_ids = CLIPTokenizer.from_pretrained(out)(texts, padding="max_length", max_length=77, truncation=True,
                                                   return_tensors="pt").input_ids
        after_eot = torch.cumsum((ht_ids == 49407).int(), dim=1) - (ht_ids == 49407).int() > 0
        same = torch.equal(ht_ids.masked_fill(after_eot, 0), open_clip.tokenize(texts))
        print(f"check: tokenizer files give open_clip's ids: {'yes' if same else 'NO'}")
    except ImportError as e:
        print(f"check: tokenizer not checked ({e})")
    print(f"check: image features max |open_clip - transformers| = {di:.3e} (max |feature| {oi.abs().max().item():.3e})")
    print(f"check: text features  max |open_clip - transformers| = {dt:.3e} (max |feature| {ot.abs().max().item():.3e})")
    print(f"check: cosine         max |open_clip - transformers| = {(cos_o - cos_h).abs().max().item():.3e}")
    return di, dt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="an open_clip model name (ViT-g-14, ViT-L-14, ...)")
    src.add_argument("--model-config", help="an open_clip model-config JSON file")
    ap.add_argument("--quick-gelu", action="store_true", help="QuickGELU activations (OpenAI's weights)")
    ap.add_argument("--pretrained", help="open_clip's pretrained tag of the weights (laion2b_s12b_b42k, openai): "
                    "its registry entry gives mean / std and QuickGELU; nothing is downloaded")
    w = ap.add_mutually_exclusive_group(required=True)
    w.add_argument("--checkpoint", help="state dict: .safetensors, .bin / .pt (pickled), or OpenAI's TorchScript .pt")
    w.add_argument("--random", action="store_true", help="random init instead of a checkpoint (shape checks)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--check", action="store_true", help="compare open_clip and transformers on random inputs")
    a = ap.parse_args()

    cfg = load_model_config(a.model, a.model_config, a.quick_gelu, a.pretrained)
    torch.manual_seed(a.seed)
    model = build_open_clip(cfg)
    if a.random:
        sd = {k: v.float() for k, v in model.state_dict().items()}
    else:
        sd = read_checkpoint(a.checkpoint)
        missing, unexpected = model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if k != "attn_mask"]
        if missing or unexpected:
            sys.exit(f"{a.checkpoint}: does not fit open_clip's {a.model or a.model_config}: "
                     f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    convert(cfg, sd, a.out)
    n = sum(v.numel() for v in sd.values() if v.dtype.is_floating_point)
    print(f"wrote {a.out}: {n / 1e6:.1f}M parameters, act {'quick_gelu' if cfg['quick_gelu'] else 'gelu'}")
    del sd
    if a.check:
        check(model, a.out)


if __name__ == "__main__":
    main()
