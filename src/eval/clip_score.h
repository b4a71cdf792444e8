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
// The folder: config.json (a CLIPConfig: "text_config", "vision_config", "projection_dim") and
// model.safetensors in transformers' names (text_model.*, vision_model.*, visual_projection.weight,
// text_projection.weight; logit_scale and position_ids are ignored; CLIPModel is saved under the
// same names by transformers 4 and 5), the CLIP BPE tokenizer files (vocab.json + merges.txt, or
// tokenizer.json) in the folder or in its tokenizer/ subfolder, and optionally
// preprocessor_config.json, whose image_mean / image_std are reported (else OpenAI's).
// tools/reference/convert_open_clip.py writes such a folder from an open_clip checkpoint; the
// Hugging Face folders openai/clip-vit-large-patch14 and laion/CLIP-ViT-g-14-laion2B-s12B-b42K are
// such folders already.
//
// Caption cleaning: the tokenizer is sid's (io/tokenizer.h: NFC, whitespace runs to one space,
// lowercase), which is the OpenAI tokenizer's result on text that ftfy and html.unescape leave
// alone; on top of that the scorer unescapes HTML character references (&amp; &lt; &gt; &quot;
// &#39; &apos; &nbsp; and numeric &#NN; &#xHH;, twice, as basic_clean does) and straightens the
// curly quotes ftfy's uncurl_quotes rewrites (U+02BC, U+2018..U+201B -> ', U+201C..U+201F -> ").
// Other ftfy repairs (mojibake, ligatures, full-width forms) are not reproduced.
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
// The caption cleaning above (HTML references, curly quotes) into a new string (free it), before
// the tokenizer's own normalisation. NULL with an error for text that is not UTF-8.
char *sid_clip_clean_caption(const char *caption);

#ifdef __cplusplus
}
#endif

#endif
