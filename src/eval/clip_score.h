// The CLIP score of the zero-shot COCO protocol (SiD-LSG, after GigaGAN's evaluation): per image,
// the cosine between the CLIP image features and the text features of its caption, with the
// OpenCLIP ViT-g/14 (laion2b_s12b_b42k) of the paper in fp32, or the OpenAI ViT-L/14, or any CLIP
// ViT of the family, read from a transformers CLIPModel folder.
//
// Text, exactly as GigaGAN's compute_clip_score: the caption through the OpenAI CLIP tokenizer
// (77 tokens, truncated with EOT kept last, ZERO padding), the 3 tokens of "A photo depicts "
// (positions 1..3 of its own tokenisation) inserted right after BOS, the sequence cut back to 77 and
// a non-zero last token replaced by EOT (49407). Text features: the final_layer_norm hidden state
// at the first position of the largest token id (open_clip's argmax pooling: EOT) times
// text_projection. Image features: the vision tower's pooled class token (models/clip_vision.h)
// times visual_projection. Score: the cosine of the two (computed in double from the float
// features), per image.
//
// The folder: config.json (a CLIPConfig: "text_config", "vision_config" with the "*_config_dict"
// of older files laid over them as transformers does, "projection_dim") and
// model.safetensors in transformers' names (text_model.*, vision_model.*, visual_projection.weight,
// text_projection.weight; logit_scale and position_ids are ignored; CLIPModel is saved under the
// same names by transformers 4 and 5), the CLIP BPE tokenizer files (vocab.json + merges.txt, or
// tokenizer.json) in the folder or in its tokenizer/ subfolder, and optionally
// preprocessor_config.json, whose image_mean / image_std are reported (else OpenAI's).
// tools/reference/convert_open_clip.py writes such a folder from an open_clip checkpoint; a
// transformers CLIPModel folder from the Hugging Face hub (openai/clip-vit-large-patch14) is one
// as it is, when it holds model.safetensors (not only pytorch_model.bin).
//
// Caption cleaning, OpenAI's basic_clean (ftfy.fix_text, html.unescape twice) and lower(): the
// tokenizer is sid's BPE alone (io/tokenizer.h sid_tokenizer_load_bpe: the folder's special-token
// configs are not read, so an OpenCLIP folder's pad "!" does not turn a caption's "!" into id 0),
// which does NFC, whitespace runs and a per-character lowercase; before it the scorer repeats
// ftfy's fixes line by line until they change nothing (HTML references unless a '<' was seen,
// C1 controls as Windows-1252, Latin ligatures, full- and half-width forms, curly quotes, line
// breaks, terminal escapes, control characters), unescapes twice as html.unescape, and gives a
// final capital sigma Python's final-sigma lowercase. Character entities are the HTML 4 set
// (plus ftfy's upper-case spellings), not all of HTML5's 2231; ftfy's mojibake repair
// (fix_encoding: "cafÃ©" -> "café") is not done. A literal "<|endoftext|>" in a caption is the
// special token, as in OpenAI's tokenizer (open_clip 3 spells its specials otherwise).
// tools/reference/clip_score_reference.py's captions exercise each of these.
#ifndef SID_EVAL_CLIP_SCORE_H
#define SID_EVAL_CLIP_SCORE_H
#include <stdint.h>

#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sid_clip_scorer sid_clip_scorer;

// dir: a transformers CLIPModel folder (above). be: a backend (NULL = CPU): the weights, the
// activations and the batch buffers live there. batch: images per forward (>= 1). NULL with a
// one-line error naming the file and the problem (missing file, bad config key, wrong shape,
// missing or unexpected tensor, no tokenizer) on failure.
sid_clip_scorer *sid_clip_scorer_open(const char *dir, const sid_backend *be, int batch);
int sid_clip_scorer_image_size(const sid_clip_scorer *s);     // vision_config.image_size (224)
const float *sid_clip_scorer_mean(const sid_clip_scorer *s);  // the normalisation mean[3] (OpenAI CLIP's)
const float *sid_clip_scorer_std(const sid_clip_scorer *s);   // std[3]
// pixels: host [n, 3, S, S] normalised ((x / 255 - mean) / std); captions[n] (NULL counts as "");
// cos[n] out: the cosine per pair. 0, or -1 with a one-line error (a caption that is not UTF-8).
int sid_clip_scorer_cosines(sid_clip_scorer *s, const float *pixels, const char *const *captions, int n, float *cos);
void sid_clip_scorer_close(sid_clip_scorer *s);

// ---- the parts, for tests and tools
int sid_clip_scorer_dim(const sid_clip_scorer *s);      // projection_dim: the length of a feature vector
int sid_clip_scorer_context(const sid_clip_scorer *s);  // the text tower's positions (77)
// The protocol's token sequence of a caption (above): ids[context]. 0, or -1 with an error.
int sid_clip_scorer_tokens(const sid_clip_scorer *s, const char *caption, int32_t *ids);
// Projected, not normalised features, host out[n, dim]: of normalised pixels [n, 3, S, S], of captions.
int sid_clip_scorer_image_features(sid_clip_scorer *s, const float *pixels, int n, float *out);
int sid_clip_scorer_text_features(sid_clip_scorer *s, const char *const *captions, int n, float *out);
// The caption cleaning above (ftfy's fixes, html.unescape, the final sigma) into a new string (free
// it), before the tokenizer's own normalisation. NULL with an error for text that is not UTF-8.
char *sid_clip_clean_caption(const char *caption);

#ifdef __cplusplus
}
#endif

#endif
