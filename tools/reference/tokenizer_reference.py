"""Reference data for sid's CLIP tokenizer (src/io/tokenizer.c). Dev-time only.

    python3 tools/reference/tokenizer_reference.py            # -> tests/data/tokenizer/
    python3 tools/reference/tokenizer_reference.py --tables   # -> src/io/unicode_tables.h

Needs transformers, tokenizers and open_clip_torch (only its data file is read, so
`pip install --no-deps open_clip_torch` is enough; tested with open_clip_torch 3.3.0,
transformers 5.24.0, tokenizers 0.23.3).

Default mode writes tests/data/tokenizer/:
  vocab.json.gz, merges.txt.gz  CLIP's vocabulary, built exactly as openai/CLIP's SimpleTokenizer
                                (and sd.cpp) define it from open_clip's bpe_simple_vocab_16e6.txt.gz:
                                256 byte symbols, the same with "</w>", the first 48894 merges
                                joined, <|startoftext|>, <|endoftext|> = 49408 ids; merges.txt has a
                                "#version: 0.2" header and those 48894 merges, as the Hub files do.
  <config>/*.json               tokenizer configs: sd15 (pad "<|endoftext|>"), sd2 (pad "!", as
                                stabilityai/stable-diffusion-2*), bare (no config: class defaults),
                                added (a post-4.34 tokenizer_config.json with added_tokens_decoder
                                and a textual-inversion token), tiny (its own 14-token vocabulary:
                                exercises the unk token).
  golden.json                   for every prompt and config, the ids of
                                CLIPTokenizer.from_pretrained(dir)(text, padding="max_length",
                                max_length=L, truncation=True): "ids" holds the non-pad prefix (its
                                length is the attention-mask sum), the rest is pad_id (checked here).
The gzip files are written with mtime 0, so rerunning gives identical bytes.

--tables writes src/io/unicode_tables.h: the character classes \\p{L}, \\p{N}, \\s of the regex
engine (Oniguruma) inside `tokenizers`, its Lowercase normalizer's mapping (Rust
char::to_lowercase) and its NFC data, all probed from the installed `tokenizers` itself so that
the C code agrees with the library that produced the goldens, not with some other Unicode version.
Canonical combining classes and one-step decompositions come from Python's unicodedata and are
kept only where `tokenizers` agrees (checked below).
"""
import argparse
import gzip
import importlib.util
import io
import json
import os
import random
import shutil
import sys
import unicodedata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")

# ---------------------------------------------------------------------------- vocabulary


def bytes_to_unicode():
    """openai/CLIP simple_tokenizer.bytes_to_unicode: byte -> printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab():
    spec = importlib.util.find_spec("open_clip")  # locate without importing (it needs torchvision)
    if spec is None:
        sys.exit("open_clip_torch is not installed: pip install --no-deps open_clip_torch")
    path = os.path.join(spec.submodule_search_locations[0], "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]  # SimpleTokenizer.__init__
    assert len(merges) == 48894 and all(len(m) == 2 for m in merges)
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408, len(vocab)
    return {v: i for i, v in enumerate(vocab)}, merges


def write_gz(path, text):
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(text.encode("utf-8"))


# ---------------------------------------------------------------------------- configs

SD_TOKEN = lambda content, normalized=True: {  # noqa: E731
    "content": content, "lstrip": False, "normalized": normalized, "rstrip": False, "single_word": False}


def sd_tokenizer_config(name_or_path):
    """tokenizer/tokenizer_config.json of runwayml/stable-diffusion-v1-5 (and, with another
    name_or_path, of stabilityai/stable-diffusion-2*: both say pad "<|endoftext|>" here)."""
    def typed(c):
        return {"__type": "AddedToken", **SD_TOKEN(c)}
    return {
        "add_prefix_space": False, "bos_token": typed("<|startoftext|>"), "do_lower_case": True,
        "eos_token": typed("<|endoftext|>"), "errors": "replace", "model_max_length": 77,
        "name_or_path": name_or_path, "pad_token": "<|endoftext|>",
        "special_tokens_map_file": "./special_tokens_map.json", "tokenizer_class": "CLIPTokenizer",
        "unk_token": typed("<|endoftext|>"),
    }


def sd_special_tokens_map(pad):
    """tokenizer/special_tokens_map.json: SD1.5 pads with "<|endoftext|>", SD2.x with "!"."""
    return {"bos_token": SD_TOKEN("<|startoftext|>"), "eos_token": SD_TOKEN("<|endoftext|>"),
            "pad_token": pad, "unk_token": SD_TOKEN("<|endoftext|>")}


def added_tokenizer_config():
    """The shape transformers >= 4.34 saves: added_tokens_decoder (flags per id) and plain
    strings for the named tokens; special_tokens_map.json is then ignored. Holds a
    textual-inversion style token beyond the vocabulary and pads with "!"."""
    def dec(content, normalized, special):
        return {"content": content, "lstrip": False, "normalized": normalized, "rstrip": False,
                "single_word": False, "special": special}
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            "0": dec("!", False, True),
            "49406": dec("<|startoftext|>", True, True),
            "49407": dec("<|endoftext|>", False, True),
            "49408": dec("<Cat-Toy>", True, False),
        },
        "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": True, "do_lower_case": True,
        "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": 77, "pad_token": "!",
        "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>",
    }


# A vocabulary without most byte symbols: characters missing from it become the unk token.
TINY_VOCAB = {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 2, "b": 3, "c</w>": 4, "ab": 5, "abc</w>": 6,
              "t": 7, "o</w>": 8, "!": 9, "b</w>": 10, "ab</w>": 11, "!</w>": 12, "to</w>": 13}
TINY_MERGES = "#version: 0.2\na b\nab c</w>\na b</w>\nt o</w>\n"

CONFIGS = {
    "sd15": {"tokenizer_config.json": sd_tokenizer_config("openai/clip-vit-large-patch14"),
             "special_tokens_map.json": sd_special_tokens_map("<|endoftext|>")},
    "sd2": {"tokenizer_config.json": sd_tokenizer_config("stabilityai/stable-diffusion-2"),
            "special_tokens_map.json": sd_special_tokens_map("!")},
    "bare": {},
    "added": {"tokenizer_config.json": added_tokenizer_config()},
    "tiny": {"vocab.json": TINY_VOCAB, "merges.txt": TINY_MERGES,
             "special_tokens_map.json": sd_special_tokens_map("<|endoftext|>")},
}

# ---------------------------------------------------------------------------- prompts

PROMPTS = [
    "a photo of a cat",
    "Hello, world!",
    "A PHOTO of  a Cat!",
    "A Portrait Of An ASTRONAUT Riding A Horse, Trending On ArtStation, 8K, HDR",
    "masterpiece, best quality, (detailed:1.2), [[background]], {red|blue} -- ok; a/b\\c @#$%^&* ~`+=_",
    "wow!!! really?!... (yes) ...!!! ??? ,,, \"quoted\" <angle> | pipe",
    "don't it's we're they've I'm you'll he'd DON'T IT'S",
    "rock 'n' roll, the cat's toy, ''double'' 'single' o'clock y'all 'tis",
    "don\u2019t \u201ccurly\u201d \u2018quotes\u2019",
    "2024",
    "in 1999 there were 3.14 apples, 1,000,000 x 2^10 = 1024; 007",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber stra\u00dfe \u00c5ngstr\u00f6m",
    "cafe\u0301 nai\u0308ve A\u030angstro\u0308m",  # decomposed: NFC recomposes
    "e\u0301\u0323 a\u0323\u0302 q\u0307\u0323",  # combining marks in non-canonical order
    "\u03a9\u03bc\u03ad\u03b3\u03b1 \u03a3\u0391\u03a3 \u0394\u0399\u0391\u03a3 \u1f08\u03c0",
    "\u041c\u043e\u0441\u043a\u0432\u0430 \u041f\u0440\u0438\u0432\u0435\u0442 \u0401\u041b\u041a\u0410",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e1c\u4eac \u6771\u4eac",
    "\uc548\ub155\ud558\uc138\uc694 \u1100\u1161\u11a8 \u1112\u1161\u11ab",  # Hangul, and jamo NFC composes
    "\U0001f431 cat \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "\ufb01 \ufb02 ligatures, \uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \uff21\uff22",
    "\u0130stanbul \u0131 I i \u01c5 \u01c8 \u1e9e \u00df SS \u212a \u212b \u2126",
    "\u216b \u2460 \u00bd \u00b2 x\u00b2y\u00b3 \u0663 \u0661\u0662\u0663 \u2167",
    "\u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "  a\tb\n\nc  \r\n d \u00a0e\u3000f\u2003g  \u2028h\u2029 \u0085i\x0bj\x0ck  ",
    "a\u200bb c\u00adz \ufeffbom a\x01b\x7fc",
    "",
    "   ",
    "!",
    "!!!",
    "wow! amazing!! ! end!",
    "<|startoftext|>",
    "<|endoftext|>",
    "a <|startoftext|> b <|endoftext|> c",
    "<|STARTOFTEXT|> <|EndOfText|>",
    "x<|endoftext|>y !!<|endoftext|>!! <<|endoftext|>>",
    "<|startoftext| <|endoftext |> |endoftext|> <|end",
    "a <Cat-Toy> on a table, <cat-toy>, <CAT-TOY>s",
    "a photo of a cat, " * 20,
    "supercalifragilisticexpialidocious" * 10,
    "1234567890" * 10,
    "!" * 100,
    " ".join(["word"] * 74),
    " ".join(["word"] * 75),
    " ".join(["word"] * 76),
]

SHORT = [  # (prompt, max_length) pairs for other truncation lengths
    ("a photo of a cat on a mat with a hat", 8),
    ("a photo of a cat", 8),
    ("a photo of a cat", 2),
    ("hello world", 3),
    ("", 5),
    ("masterpiece, best quality", 100),
]

FUZZ_POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" \t\n  ,.;:!?'\"()[]{}<>|/\\-_+=*&^%$#@~`")
    + ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "<|endoftext|>", "<|startoftext|>",
       "<|", "|>", "<|ENDOFTEXT|>", "<Cat-Toy>", "!!", " photo ", " cat ", "ing ", "tion"]
    + list("\u00e9\u00c9\u00fc\u00dc\u00df\u00f1\u00e7\u00c5\u00e6\u00f8\u00bd\u00b2\u00a0\u00ad")
    + list("\u0301\u0308\u0323\u0302\u0327\u030a\u0345\u0334\u05b0\u0951")
    + list("\u03a3\u03c3\u03c2\u0391\u03b1\u0416\u0436\u0401\u0130\u0131\u212a\u212b\u2126\u1e9e\u01c5")
    + list("\u65e5\u672c\u8a9e\u306e\uac00\u1100\u1161\u11a8\u0e01\u0e31\u0928\u094d")
    + list("\U0001f431\U0001f600\U0001f3fd\u200d\u200b\ufe0f\u2028\u3000\u2003\ufb01\uff21\uff41\u2160\u2460\u0663")
    + list("\x01\x7f\x0b\x85\ufeff\ufffd\U00010400\U0001d400\U00020000")
)


def fuzz_prompts(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(0, 40)
        out.append("".join(rng.choice(FUZZ_POOL) for _ in range(k)))
    return out


# ---------------------------------------------------------------------------- goldens


def write_data():
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    write_gz(os.path.join(OUT, "vocab.json.gz"), json.dumps(vocab, ensure_ascii=False))
    write_gz(os.path.join(OUT, "merges.txt.gz"), "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))

    tmp = os.path.join(OUT, ".tmp")
    toks = {}
    for name, files in CONFIGS.items():
        d = os.path.join(OUT, name)
        os.makedirs(d)
        for fname, content in files.items():
            with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
                if isinstance(content, str):
                    f.write(content)
                else:
                    json.dump(content, f, indent=2)
                    f.write("\n")
        # Load exactly as diffusers does: from a folder holding vocab.json + merges.txt + configs.
        os.makedirs(tmp, exist_ok=True)
        for fname in os.listdir(tmp):
            os.remove(os.path.join(tmp, fname))
        if "vocab.json" not in files:  # the shared CLIP vocabulary (the C test gunzips it likewise)
            with open(os.path.join(tmp, "vocab.json"), "w", encoding="utf-8") as f:
                json.dump(vocab, f, ensure_ascii=False)
            with open(os.path.join(tmp, "merges.txt"), "w", encoding="utf-8") as f:
                f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        for fname in os.listdir(d):
            shutil.copy(os.path.join(d, fname), tmp)
        if not files:
            os.rmdir(d)  # "bare": vocabulary only
        toks[name] = CLIPTokenizer.from_pretrained(tmp)
    shutil.rmtree(tmp)

    # The documented test vectors (docs/models.md) and pad conventions.
    t15, t2 = toks["sd15"], toks["sd2"]
    assert t15.pad_token_id == 49407 and t2.pad_token_id == 0 and t15.model_max_length == 77
    assert t15("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert t15("Hello, world!").input_ids == [49406, 3306, 267, 1002, 256, 49407]
    assert t15("A PHOTO of  a Cat!").input_ids == [49406, 320, 1125, 539, 320, 2368, 256, 49407]
    # Cross-check: the plain constructor with file paths gives the same ids as from_pretrained
    # for the bare config (both are the class defaults).
    bare_ctor = None
    try:
        d = os.path.join(OUT, ".ctor")
        os.makedirs(d, exist_ok=True)
        vf, mf = os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt")
        with open(vf, "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False)
        with open(mf, "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        bare_ctor = CLIPTokenizer(vocab=vf, merges=mf, pad_token="<|endoftext|>")
    finally:
        shutil.rmtree(os.path.join(OUT, ".ctor"), ignore_errors=True)

    cases = [(p, 77) for p in PROMPTS] + SHORT + [(p, 77) for p in fuzz_prompts(400, 20261126)]
    golden = {"configs": {}, "cases": []}
    for name, t in toks.items():
        golden["configs"][name] = {"pad_id": t.pad_token_id, "vocab_size": len(t),
                                   "model_max_length": t.model_max_length}
    long_seen = False
    for text, L in cases:
        entry = {"text": text, "max_length": L}
        for name, t in toks.items():
            enc = t(text, padding="max_length", max_length=L, truncation=True)
            ids, mask = enc.input_ids, enc.attention_mask
            n = sum(mask)
            assert len(ids) == L and mask == [1] * n + [0] * (L - n), (name, text)
            assert all(i == t.pad_token_id for i in ids[n:]), (name, text)
            if L >= 2:
                assert ids[0] == t.bos_token_id and ids[n - 1] == t.eos_token_id, (name, text, ids)
            entry[name] = ids[:n]
            long_seen |= n == L and L == 77
        if bare_ctor is not None:
            assert bare_ctor(text, padding="max_length", max_length=L, truncation=True).input_ids[: len(entry["bare"])] == entry["bare"], text
        golden["cases"].append(entry)
    assert long_seen
    with open(os.path.join(OUT, "golden.json"), "w", encoding="ascii") as f:
        f.write('{"configs": ' + json.dumps(golden["configs"]) + ',\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(e, ensure_ascii=True) for e in golden["cases"]))
        f.write("\n]}\n")
    total = 0
    for dirpath, _, files in os.walk(OUT):
        for fname in files:
            total += os.path.getsize(os.path.join(dirpath, fname))
    print(f"wrote {OUT}: {len(golden['cases'])} cases x {len(toks)} configs, {total} bytes")


# ---------------------------------------------------------------------------- unicode tables


def probe_tables():
    from tokenizers import Regex, normalizers

    cps = [c for c in range(2, 0x110000) if not 0xD800 <= c <= 0xDFFF]  # 0 is the separator
    SEP = "\x00"

    def per_char(norm):
        out = norm.normalize_str(SEP.join(chr(c) for c in cps)).split(SEP)
        assert len(out) == len(cps)
        return dict(zip(cps, out))

    def cls(rx):
        out = per_char(normalizers.Replace(Regex(rx), "\x01"))
        return {c for c in cps if out[c] == "\x01"}

    letters, numbers, spaces = cls(r"\p{L}"), cls(r"\p{N}"), cls(r"\s")
    for c in (0, 1):  # both are control characters in every Unicode version
        assert unicodedata.category(chr(c)) == "Cc"
    low = per_char(normalizers.Lowercase())
    multi = {c: s for c, s in low.items() if len(s) != 1}
    assert multi == {0x130: "i\u0307"}, multi  # handled in code
    lower = {c: ord(s) for c, s in low.items() if len(s) == 1 and ord(s) != c}

    nfd = per_char(normalizers.NFD())
    nfc_one = per_char(normalizers.NFC())
    nfc = normalizers.NFC()
    NFD = normalizers.NFD()
    hangul = lambda c: 0xAC00 <= c <= 0xD7A3  # noqa: E731  (algorithmic, done in code)
    decomp = {}
    for c in cps:
        if hangul(c) or nfd[c] == chr(c):
            continue
        d = unicodedata.decomposition(chr(c))
        assert d and not d.startswith("<"), hex(c)
        parts = [int(x, 16) for x in d.split()]
        assert len(parts) in (1, 2)
        decomp[c] = parts
    # one-step mappings must reproduce tokenizers' full NFD of every character
    def full(c):
        if c in decomp:
            return "".join(full(p) for p in decomp[c])
        return chr(c) if not hangul(c) else unicodedata.normalize("NFD", chr(c))
    for c in cps:
        assert full(c) == nfd[c], hex(c)
    ccc = {c: unicodedata.combining(chr(c)) for c in cps if unicodedata.combining(chr(c))}
    # tokenizers must order every mark like unicodedata does: test each against marks of
    # several classes on both sides; drop (to 0) the marks its older tables do not know.
    refs = [0x0334, 0x0F71, 0x0F72, 0x05B0, 0x0321, 0x0316, 0x0301, 0x0315, 0x035C, 0x035D, 0x0345, 0x093C]
    for c in sorted(ccc):
        for r in refs:
            for s in (f"a{chr(c)}{chr(r)}", f"a{chr(r)}{chr(c)}"):
                if NFD.normalize_str(s) != unicodedata.normalize("NFD", s):
                    ccc[c] = 0
    dropped = sorted(c for c, v in ccc.items() if v == 0)
    ccc = {c: v for c, v in ccc.items() if v}
    # primary composites: pairs that tokenizers' NFC composes back
    comp = sorted(c for c, p in decomp.items() if len(p) == 2 and nfc.normalize_str(chr(p[0]) + chr(p[1])) == chr(c))
    for c in cps:  # NFC of each single character follows from the tables
        if nfc_one[c] != chr(c):
            assert c in decomp and c not in comp, hex(c)
    return letters, numbers, spaces, lower, decomp, ccc, comp, dropped


def ranges(codes):
    r = []
    for c in sorted(codes):
        if r and r[-1][1] == c - 1:
            r[-1][1] = c
        else:
            r.append([c, c])
    return r


def case_runs(lower):
    """(lo, hi, delta, stride): every stride-th code point in lo..hi maps to itself + delta."""
    runs = []
    for c in sorted(lower):
        d = lower[c] - c
        if runs:
            lo, hi, dd, st = runs[-1]
            if dd == d and ((st == 0 and c - hi in (1, 2)) or (st and c - hi == st)):
                runs[-1] = [lo, c, d, c - hi if st == 0 else st]
                continue
        runs.append([c, c, d, 0])
    return [[lo, hi, d, st or 1] for lo, hi, d, st in runs]


def fmt_rows(items, per_line, indent="    "):
    lines = []
    for i in range(0, len(items), per_line):
        lines.append(indent + " ".join(items[i : i + per_line]))
    return "\n".join(lines)


def write_tables():
    import tokenizers
    letters, numbers, spaces, lower, decomp, ccc, comp, dropped = probe_tables()
    runs = case_runs(lower)
    for lo, hi, d, st in runs:  # the runs reproduce the mapping exactly
        for c in range(lo, hi + 1, st):
            assert lower[c] == c + d
    assert sum(len(range(lo, hi + 1, st)) for lo, hi, d, st in runs) == len(lower)
    cc_runs = []
    for c in sorted(ccc):
        if cc_runs and cc_runs[-1][1] == c - 1 and cc_runs[-1][2] == ccc[c]:
            cc_runs[-1][1] = c
        else:
            cc_runs.append([c, c, ccc[c]])
    dec = sorted(decomp)
    index = {c: i for i, c in enumerate(dec)}
    comp_idx = sorted((decomp[c][0], decomp[c][1], index[c]) for c in comp)
    assert len(dec) < 65536

    def rng_rows(rs):
        return fmt_rows([f"{{0x{a:X}, 0x{b:X}}}," for a, b in rs], 6)

    out = io.StringIO()
    w = out.write
    w("// Generated by tools/reference/tokenizer_reference.py --tables; do not edit.\n")
    w(f"// Probed from tokenizers {tokenizers.__version__} (the library behind transformers' CLIPTokenizer),\n")
    w(f"// with combining classes and one-step decompositions from Python's unicodedata\n")
    w(f"// {unicodedata.unidata_version}, kept only where tokenizers agrees ({len(dropped)} marks it orders as class 0).\n")
    w("// Included by src/io/tokenizer.c only.\n")
    w("#ifndef SID_IO_UNICODE_TABLES_H\n#define SID_IO_UNICODE_TABLES_H\n#include <stdint.h>\n\n")
    w("typedef struct {\n    uint32_t lo, hi;\n} uc_range;\n\n")
    w(f"// \\p{{L}}: {len(letters)} code points\nstatic const uc_range uc_letter[{len(ranges(letters))}] = {{\n{rng_rows(ranges(letters))}\n}};\n\n")
    w(f"// \\p{{N}}: {len(numbers)} code points\nstatic const uc_range uc_number[{len(ranges(numbers))}] = {{\n{rng_rows(ranges(numbers))}\n}};\n\n")
    w(f"// \\s\nstatic const uc_range uc_space[{len(ranges(spaces))}] = {{\n{rng_rows(ranges(spaces))}\n}};\n\n")
    w("// Lowercase: code points lo, lo+stride, ... <= hi map to themselves + delta. U+0130 -> \"i\\u0307\"\n")
    w("// (the only mapping to two characters) is handled in code.\n")
    w("typedef struct {\n    uint32_t lo, hi;\n    int32_t delta;\n    uint32_t stride;\n} uc_case;\n")
    w(f"static const uc_case uc_lower[{len(runs)}] = {{\n")
    w(fmt_rows([f"{{0x{lo:X}, 0x{hi:X}, {d}, {st}}}," for lo, hi, d, st in runs], 4) + "\n};\n\n")
    w("// Canonical combining class (non-zero only).\n")
    w("typedef struct {\n    uint32_t lo, hi, ccc;\n} uc_ccc;\n")
    w(f"static const uc_ccc uc_ccc_table[{len(cc_runs)}] = {{\n")
    w(fmt_rows([f"{{0x{a:X}, 0x{b:X}, {v}}}," for a, b, v in cc_runs], 5) + "\n};\n\n")
    w("// One-step canonical decompositions, sorted by cp; b = 0 for singletons. Hangul is algorithmic.\n")
    w("typedef struct {\n    uint32_t cp, a, b;\n} uc_decomp;\n")
    w(f"static const uc_decomp uc_decomp_table[{len(dec)}] = {{\n")
    w(fmt_rows([f"{{0x{c:X}, 0x{decomp[c][0]:X}, 0x{decomp[c][1] if len(decomp[c]) > 1 else 0:X}}}," for c in dec], 4) + "\n};\n\n")
    w("// Primary composites: indices into uc_decomp_table sorted by (a, b).\n")
    w(f"static const uint16_t uc_compose[{len(comp_idx)}] = {{\n")
    w(fmt_rows([f"{i}," for _, _, i in comp_idx], 14) + "\n};\n\n#endif\n")
    path = os.path.join(ROOT, "src", "io", "unicode_tables.h")
    with open(path, "w", encoding="ascii") as f:
        f.write(out.getvalue())
    print(f"wrote {path}: {len(ranges(letters))} letter / {len(ranges(numbers))} number / "
          f"{len(ranges(spaces))} space ranges, {len(runs)} case runs, {len(cc_runs)} ccc runs, "
          f"{len(dec)} decompositions, {len(comp_idx)} composites; dropped ccc: {[hex(c) for c in dropped]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", action="store_true", help="write src/io/unicode_tables.h instead")
    args = ap.parse_args()
    write_tables() if args.tables else write_data()
