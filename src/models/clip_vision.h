// The CLIP image tower (transformers CLIPVisionModel, open_clip's VisionTransformer): a bias-free
// patch convolution (kernel = stride = patch_size), the class embedding in front of the patch
// tokens, learned position embeddings, pre_layrnorm (sic, transformers' name), encoder layers of
// non-causal self-attention and an fc1 -> act -> fc2 MLP (the text tower's layers, clip_text.h),
// then post_layernorm of the class token: transformers' pooler_output, which the projection
// (visual_projection, held by the caller: eval/clip_score.h) maps to the image features.
// OpenAI CLIP ViT-L/14: 1024 wide, 24 layers, 16 heads, patch 14 at 224 px, quick_gelu;
// OpenCLIP ViT-g/14: 1408 wide, 40 layers, 16 heads (88 per head), 6144 MLP, patch 14, exact gelu.
// Forward only (an evaluation network).
#ifndef SID_MODELS_CLIP_VISION_H
#define SID_MODELS_CLIP_VISION_H
#include <stddef.h>

#include "models/clip_text.h"
#include "models/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int hidden, intermediate, layers, heads, image_size, patch_size, channels;
    sid_act act;  // quick_gelu (OpenAI) or gelu (OpenCLIP)
    float eps;    // layer_norm_eps
} sid_clip_vision_config;

// Patch tokens per side, (image_size / patch_size), and tokens per image (its square + the class token).
static inline int sid_clip_vision_grid(const sid_clip_vision_config *c) { return c->image_size / c->patch_size; }
static inline int sid_clip_vision_tokens(const sid_clip_vision_config *c) {
    return sid_clip_vision_grid(c) * sid_clip_vision_grid(c) + 1;
}

// Reads a transformers CLIPVisionConfig (a CLIPConfig's "vision_config" object when present). Absent
// keys take CLIPVisionConfig's defaults (768 wide, 12 layers, 12 heads, 3072, patch 32, 224 px,
// 3 channels, quick_gelu, 1e-5), as transformers does; wrong types, non-positive or absurd sizes,
// hidden_size % num_attention_heads != 0, patch_size > image_size and a hidden_act other than
// "quick_gelu" or "gelu" are one-line errors naming path and the key.
int sid_clip_vision_config_parse(sid_clip_vision_config *c, const char *json_text, const char *path);
int sid_clip_vision_config_load(sid_clip_vision_config *c, const char *config_json_path);

typedef struct {
    sid_clip_vision_config cfg;
    int patch, cls, pos;  // parameter indices: patch conv weight, class embedding, position embedding
    sid_norm pre_ln, post_ln;
    sid_clip_layer *layers;
} sid_clip_vision;

// Declares every parameter under transformers' names: "vision_model.embeddings.patch_embedding.weight"
// [hidden, channels, patch, patch], "vision_model.embeddings.class_embedding" [hidden],
// "vision_model.embeddings.position_embedding.weight" [tokens, hidden], "vision_model.pre_layrnorm.*",
// "vision_model.encoder.layers.{i}.{self_attn.{q,k,v,out}_proj,layer_norm1,mlp.fc1,mlp.fc2,layer_norm2}.*",
// "vision_model.post_layernorm.*". Free m with sid_clip_vision_free.
void sid_clip_vision_decl(sid_clip_vision *m, sid_params *ps, const sid_clip_vision_config *c);
void sid_clip_vision_free(sid_clip_vision *m);
// Parameters of a config, counted without allocating them.
size_t sid_clip_vision_param_count(const sid_clip_vision_config *c);

// Loads a vision tower file into the declared parameters, strictly over the tower: a CLIPModel or
// CLIPVisionModelWithProjection file ("vision_model.<name>": its other tensors are not looked at)
// or a transformers 5 CLIPVisionModel ("<name>", the whole file must be the tower). The
// "position_ids" buffer of older files is ignored. A missing tensor, a shape the config does not
// give or an unexpected tensor is a one-line error naming the file and the tensor.
int sid_clip_vision_load(sid_params *ps, const char *path);

// pixels [N, channels, S, S] (S = image_size; normalised as the model was trained) on c's backend
// -> pooled [N, hidden] (c's backend): post_layernorm of the class token's last hidden state. The
// parameters are c->ps's. Temporaries come from c->act and are released before it returns:
// sid_clip_vision_act_bytes(N) at most. Two small index arrays are uploaded; nothing is downloaded.
void sid_clip_vision_forward(const sid_ctx *c, const sid_clip_vision *m, float *pooled, const float *pixels, int N);
size_t sid_clip_vision_act_bytes(const sid_clip_vision_config *c, int N);

#ifdef __cplusplus
}
#endif

#endif
