// CLIP byte-level BPE tokenizer, loaded from a diffusers `tokenizer/` folder (vocab.json and
// merges.txt, or instead tokenizer.json as transformers 5 saves it, whose model.vocab,
// model.merges and added_tokens are used; plus the optional tokenizer_config.json /
// special_tokens_map.json / added_tokens.json), giving the ids of transformers' CLIPTokenizer (5.x, the `tokenizers`
// backend; the same pipeline as 4.x's CLIPTokenizerFast) called as
// tokenizer(text, padding="max_length", max_length=max_len, truncation=True):
//   1. added tokens whose config says normalized=false (SD1.5: "<|endoftext|>", SD2: "!") are
//      split out of the raw text; every other stretch is normalised: NFC, runs of whitespace
//      -> one space, Unicode lowercase (per character, no final-sigma rule);
//   2. added tokens with normalized=true (SD1.5: "<|startoftext|>") are split out of that;
//   3. the rest is cut by CLIP's regex `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|
//      [\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+` (whitespace dropped), each piece mapped to byte
//      symbols (bytes_to_unicode), "</w>" added to its last symbol, and merged greedily by
//      lowest merge rank (leftmost first among equal ranks); symbols not in the vocabulary
//      become the unk token;
//   4. bos + tokens + eos, truncated to max_len keeping eos last, padded with pad_id.
// Unicode data (letter/number/space classes, lowercase, NFC) are those of the tokenizers
// library (src/io/unicode_tables.h). Golden ids: tests/data/tokenizer, written by
// tools/reference/tokenizer_reference.py.
#ifndef SID_IO_TOKENIZER_H
#define SID_IO_TOKENIZER_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sid_tokenizer sid_tokenizer;

// NULL with a one-line error naming the file ("dir/vocab.json: ...") on any failure: missing
// or malformed vocab.json / merges.txt / tokenizer.json, a token id outside 0..2^24-1, a merges line that is not "a b" or names tokens
// missing from vocab.json, a malformed config, bos/eos/pad not resolvable to an id.
sid_tokenizer *sid_tokenizer_load(const char *dir);
// The BPE alone, as OpenAI's CLIP tokenizer (SimpleTokenizer) has it: vocab.json + merges.txt (or
// tokenizer.json's model), with tokenizer_config.json, special_tokens_map.json, added_tokens.json and
// tokenizer.json's added_tokens NOT read, so that only CLIPTokenizer's defaults are special
// (bos "<|startoftext|>", eos = unk = pad "<|endoftext|>"): a folder whose config makes "!" its pad
// token (OpenCLIP's, SD2's) still encodes "!" as the word "!</w>". For the CLIP score's captions.
sid_tokenizer *sid_tokenizer_load_bpe(const char *dir);
void sid_tokenizer_free(sid_tokenizer *t);

// Writes exactly max_len ids (bos, tokens, eos, pad...; too long a prompt is cut so that eos
// stays last) and returns the number of non-pad tokens, bos and eos included. -1 (ids all
// pad) with an error when max_len < 2 or text is not valid UTF-8. Thread-safe.
int sid_tokenizer_encode(const sid_tokenizer *t, const char *text, int32_t *ids, int max_len);
// The same, and *truncated (when non-NULL) = 1 if tokens were cut to fit max_len, else 0.
int sid_tokenizer_encode_ex(const sid_tokenizer *t, const char *text, int32_t *ids, int max_len, int *truncated);

// One more than the largest id, added tokens included (49408 for CLIP).
int sid_tokenizer_vocab_size(const sid_tokenizer *t);
int sid_tokenizer_pad_id(const sid_tokenizer *t);  // SD1.5: 49407, SD2.x: 0
int sid_tokenizer_bos_id(const sid_tokenizer *t);  // 49406
int sid_tokenizer_eos_id(const sid_tokenizer *t);  // 49407
// model_max_length of tokenizer_config.json (77 for SD), or 0 when absent or not a sane int.
int sid_tokenizer_max_length(const sid_tokenizer *t);

#ifdef __cplusplus
}
#endif

#endif
