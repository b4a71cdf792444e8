#!/usr/bin/env python3
"""Writes the seed corpora tests/data/fuzz/<harness>/: small valid inputs of each format
(valid-*), malformed ones the parsers already refused (bad-*), sizes that are now refused as
absurd (absurd-*), and every input that once crashed sid (crash-*), so the replay test keeps
them fixed. Files the fuzzer finds later can be added next to them."""
import gzip, json, os, struct, sys

import shutil
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "fuzz")
SEP = b"\n--8<--\n"
for h in ("safetensors", "config", "tokenizer", "idx", "png"):
    shutil.rmtree(os.path.join(root, h), ignore_errors=True)


def put(harness, name, data):
    d = os.path.join(root, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def st_image(tensors, meta=None):
    header, blobs, off = {}, b"", 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs += data
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blobs


# safetensors
put("safetensors", "valid-f32", st_image([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))], {"format": "pt"}))
put("safetensors", "valid-mixed", st_image([("a", "F16", [3], b"\x00\x3c" * 3), ("b", "BF16", [1, 2], b"\x80\x3f" * 2),
                                            ("c", "I64", [1], struct.pack("<q", 7)), ("z", "F32", [0], b"")]))
put("safetensors", "valid-empty", struct.pack("<Q", 8) + b"{}      ")
put("safetensors", "bad-header-past-end", struct.pack("<Q", 1 << 40) + b"{}")
put("safetensors", "bad-header-len-9", struct.pack("<Q", 9) + b"{}      ")
put("safetensors", "bad-overlap", struct.pack("<Q", 96) + json.dumps(
    {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
     "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode().ljust(96) + b"\0" * 4)
put("safetensors", "bad-shape-overflow", st_image([("w", "F32", [2 ** 52, 2 ** 52], b"")]))

# configs: first byte 0 UNet, 1 VAE, 2 CLIP
unet = {"_class_name": "UNet2DConditionModel", "in_channels": 4, "out_channels": 4, "sample_size": 16,
        "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 64, "norm_num_groups": 8,
        "attention_head_dim": 8, "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}
vae = {"_class_name": "AutoencoderKL", "block_out_channels": [32, 64], "layers_per_block": 1, "norm_num_groups": 8,
       "latent_channels": 4, "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2}
clip = {"architectures": ["CLIPTextModel"], "vocab_size": 1000, "hidden_size": 64, "intermediate_size": 256,
        "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 77}


def cfg(kind, base, **over):
    d = dict(base)
    d.update(over)
    return bytes([kind]) + json.dumps(d).encode()


put("config", "unet-valid", cfg(0, unet))
put("config", "vae-valid", cfg(1, vae))
put("config", "clip-valid", cfg(2, clip))
put("config", "crash-unet-heads-0", cfg(0, unet, attention_head_dim=0))
put("config", "crash-unet-groups-0", cfg(0, unet, norm_num_groups=0))
put("config", "crash-unet-heads-not-dividing", cfg(0, unet, attention_head_dim=7))
put("config", "crash-unet-mid-heads", cfg(0, unet, attention_head_dim=[8, 12]))
put("config", "crash-unet-sample-size-2p30", cfg(0, unet, sample_size=1 << 30))
put("config", "absurd-unet-huge-channels", cfg(0, unet, block_out_channels=[32, 1 << 20]))
put("config", "absurd-unet-huge-layers", cfg(0, unet, layers_per_block=1000000))
put("config", "absurd-vae-huge-layers", cfg(1, vae, layers_per_block=10 ** 9))
put("config", "bad-vae-groups-0", cfg(1, vae, norm_num_groups=0))
put("config", "bad-clip-heads-0", cfg(2, clip, num_attention_heads=0))
put("config", "absurd-clip-huge-vocab", cfg(2, clip, vocab_size=2 ** 31 - 1))
put("config", "absurd-clip-huge-positions", cfg(2, clip, max_position_embeddings=10 ** 9))
put("config", "bad-not-object", b"\x00[1, 2]")

# tokenizer: vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
# added_tokens.json, prompt
tiny_vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "b": 3, "c</w>": 4, "ab": 5, "abc</w>": 6,
              "t": 7, "o</w>": 8, "!": 9, "b</w>": 10, "ab</w>": 11, "!</w>": 12, "to</w>": 13}
tiny_merges = ["a b", "ab c</w>", "a b</w>", "t o</w>"]


def tok(parts):
    return SEP.join(p.encode() if isinstance(p, str) else p for p in parts)


merges_txt = "#version: 0.2\n" + "\n".join(tiny_merges) + "\n"
put("tokenizer", "classic-valid", tok([json.dumps(tiny_vocab), merges_txt, "", "", "", "", "abc to ab! b"]))
tj = {"model": {"type": "BPE", "vocab": tiny_vocab, "merges": [m.split(" ") for m in tiny_merges]},
      "added_tokens": [{"id": 0, "content": "<|startoftext|>", "normalized": True, "special": True},
                       {"id": 1, "content": "<|endoftext|>", "normalized": False, "special": True}]}
put("tokenizer", "json-valid-pairs", tok(["", "", json.dumps(tj), json.dumps({"model_max_length": 77}), "", "",
                                          "<|startoftext|>abc<|endoftext|> to"]))
tj_str = dict(tj, model=dict(tj["model"], merges=tiny_merges))
put("tokenizer", "json-valid-strings", tok(["", "", json.dumps(tj_str), "", "", "", "ab ab ab ab ab ab abc"]))
put("tokenizer", "classic-configs", tok([json.dumps(tiny_vocab), merges_txt, "",
                                         json.dumps({"pad_token": "!", "added_tokens_decoder": {
                                             "14": {"content": "<x>", "special": True}}}),
                                         json.dumps({"eos_token": {"content": "<|endoftext|>", "normalized": False}}),
                                         "", "<x>abc"]))
put("tokenizer", "crash-vocab-id-int32-max",
    tok([json.dumps(dict(tiny_vocab, **{"<|endoftext|>": 2147483647})), merges_txt, "", "", "", "", "abc"]))
put("tokenizer", "crash-added-id-int32-max",
    tok([json.dumps(tiny_vocab), merges_txt, "", "", "", json.dumps({"<x>": 2147483647}), "abc"]))
put("tokenizer", "crash-decoder-id-int32-max",
    tok([json.dumps(tiny_vocab), merges_txt, "", json.dumps({"added_tokens_decoder": {
        "2147483647": {"content": "<x>", "special": True}}}), "", "", "abc"]))
put("tokenizer", "crash-json-id-int32-max",
    tok(["", "", json.dumps(dict(tj, model=dict(tj["model"], vocab=dict(tiny_vocab, b=2147483647)))), "", "", "", "ab"]))
put("tokenizer", "bad-empty-folder", b"")

# idx
def idx(dims, data):
    return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


put("idx", "valid-2x3", idx([2, 3], bytes(range(6))))
put("idx", "valid-gz", gzip.compress(idx([4], b"abcd"), mtime=0))
put("idx", "valid-empty", idx([0, 28], b""))
put("idx", "bad-huge-dims", idx([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""))
put("idx", "bad-truncated", idx([10, 10], b"\1" * 7))
put("idx", "bad-trailing", idx([2], b"\1\2\3"))


# png: n, c, h, w, cols, pad as int16, then float values
def png(n, c, h, w, cols, pad, values=()):
    return struct.pack("<6h", n, c, h, w, cols, pad) + b"".join(struct.pack("<f", v) for v in values)


put("png", "valid-gray", png(3, 1, 4, 5, 2, 1, [-1, 0, 0.5, 1, 2, float("nan"), float("inf")]))
put("png", "valid-rgb", png(2, 3, 2, 2, 4, 0, [0.25, -0.75]))
put("png", "bad-zero-n", png(0, 1, 4, 4, 1, 0))
put("png", "bad-channels-2", png(1, 2, 4, 4, 1, 0))
put("png", "bad-negative-pad", png(2, 1, 4, 4, 1, -3))
put("png", "bad-huge-grid", png(16, 1, 8, 8, 16, 32767))
print("seeds written to", os.path.normpath(root), file=sys.stderr)
