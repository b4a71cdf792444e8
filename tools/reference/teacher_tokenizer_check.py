"""Cross-checks the vocabulary sid_bpe_build writes (src/data/bpe_vocab.c) with transformers'
CLIPTokenizer. Dev-time only; the C tests never need it.

    SID_BPE_KEEP=/tmp/teacher_tok build/tests/test_prompts bpe_teacher
    /root/sid-ref-venv/bin/python tools/reference/teacher_tokenizer_check.py /tmp/teacher_tok

The test builds the built-in teacher's vocabulary from data/prompts/fmnist_train.txt into the
folder and writes c_ids.tsv there: every training and evaluation prompt (and "") with the 77 ids
sid's C tokenizer gives it. This script loads the folder with CLIPTokenizer.from_pretrained (the
call diffusers makes for a pipeline's tokenizer/ folder), encodes each prompt as SD pipelines do
(padding="max_length", max_length=77, truncation=True), and reports every difference. It also
checks the CLIP layout: bos/eos are the last two ids and pad is eos. Exit status 1 on any
difference.
"""
import json
import os
import sys

from transformers import CLIPTokenizer


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    tok = CLIPTokenizer.from_pretrained(folder)
    vocab = json.load(open(os.path.join(folder, "vocab.json"), encoding="utf-8"))
    n_vocab = len(vocab)
    problems = []
    if (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) != (n_vocab - 2, n_vocab - 1, n_vocab - 1):
        problems.append(f"bos/eos/pad {tok.bos_token_id}/{tok.eos_token_id}/{tok.pad_token_id}, vocab {n_vocab}")
    if tok.model_max_length != 77:
        problems.append(f"model_max_length {tok.model_max_length}")
    n = 0
    with open(os.path.join(folder, "c_ids.tsv"), encoding="utf-8") as f:
        for line in f:
            text, ids = line.rstrip("\n").rsplit("\t", 1)
            c_ids = [int(x) for x in ids.split()]
            hf = tok(text, padding="max_length", max_length=77, truncation=True).input_ids
            if hf != c_ids:
                problems.append(f"{text!r}: C {c_ids[:12]}..., transformers {hf[:12]}...")
            n += 1
    for p in problems[:20]:
        print("DIFF", p)
    print(f"{n} prompts, vocabulary of {n_vocab} tokens ({type(tok).__name__}): "
          f"{'all ids identical' if not problems else f'{len(problems)} differences'}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
