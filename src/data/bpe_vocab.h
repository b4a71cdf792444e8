// A small CLIP-format BPE vocabulary learned from a corpus, for the built-in teacher's text
// encoder: with a few hundred tokens instead of CLIP's 49408 the token embedding stays tiny and
// every word of the prompts is one token.
//
// The output folder is what a diffusers `tokenizer/` folder holds, in the layout of openai/CLIP's
// SimpleTokenizer (docs/models.md), so that sid_tokenizer_load (src/io/tokenizer.h) and
// transformers' CLIPTokenizer.from_pretrained give the same ids:
//   vocab.json               the 256 byte symbols in bytes_to_unicode order, the same with "</w>",
//                            the merged tokens in merge order, "<|startoftext|>", "<|endoftext|>"
//                            (so bos and eos are the last two ids, as 49406 / 49407 are in CLIP);
//   merges.txt               "#version: 0.2" then one "a b" merge per line, in rank order;
//   tokenizer_config.json,   CLIPTokenizer, model_max_length 77, bos <|startoftext|>, eos, unk and
//   special_tokens_map.json  pad <|endoftext|> (SD1.5's convention).
// Since every byte has a symbol, any text encodes without an unknown token; the merges only
// decide how many tokens it takes.
#ifndef SID_DATA_BPE_VOCAB_H
#define SID_DATA_BPE_VOCAB_H

#ifdef __cplusplus
extern "C" {
#endif

// Learns byte-level BPE merges on corpus[0..n): each text is lower-cased and cut as CLIP's
// pre-tokenizer cuts it (letter runs, single digits, runs of other symbols, the contractions
// 's 't 're 've 'm 'll 'd; whitespace dropped), each piece a word whose last symbol carries
// "</w>". Each round merges the most frequent adjacent pair over all words, counted with their
// corpus frequency (ties: the pair whose symbols sort first, so the result is deterministic),
// until max_merges rounds (max_merges < 0: no limit) or until every word is a single symbol.
// Writes the four files into out_dir (created if missing) and returns the number of merges,
// or -1 with a one-line error: a corpus text that is not ASCII (the tokenizer's Unicode
// normalisation is not repeated here), or a file that cannot be written.
int sid_bpe_build(const char *const *corpus, int n, int max_merges, const char *out_dir);

#ifdef __cplusplus
}
#endif

#endif
