// The CLIP text encoder (transformers CLIPTextModel) that conditions Stable Diffusion:
// token + position embeddings, pre-LN transformer layers with causal self-attention
// (biased q/k/v/out projections) and an fc1 -> act -> fc2 MLP, then final_layer_norm.
// SD1.x uses OpenAI CLIP ViT-L/14 (12 layers, quick_gelu); SD2.x a 23-layer OpenCLIP ViT-H
// (exact gelu), i.e. its penultimate layer. Forward and backward sit side by side; backward
// accumulates the gradients of every parameter, embeddings included.
#ifndef SID_MODELS_CLIP_TEXT_H
#define SID_MODELS_CLIP_TEXT_H
#include <stddef.h>
#include <stdint.h>

#include "models/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int vocab_size, hidden, layers, heads, intermediate, max_positions;
    sid_act act;  // quick_gelu (OpenAI CLIP) or gelu (OpenCLIP, exact erf)
    float eps;    // layer_norm_eps
} sid_clip_config;

// The values of openai/clip-vit-large-patch14's text tower (SD1.x).
sid_clip_config sid_clip_config_sd15(void);
// SD2.x's text_encoder/config.json: OpenCLIP ViT-H/14's text tower cut to its first 23 of 24 layers
// (the penultimate layer SD2 conditions on), exact gelu, 1024 wide, 16 heads.
sid_clip_config sid_clip_config_sd2(void);
// Reads a transformers CLIPTextConfig (text_encoder/config.json; a CLIPConfig's "text_config"
// object is used when present). Absent keys take CLIPTextConfig's defaults, as transformers does;
// wrong types, non-positive sizes, hidden % heads != 0 and a hidden_act other than "quick_gelu" or
// "gelu" are one-line errors naming the file and key.
int sid_clip_config_load(sid_clip_config *c, const char *config_json_path);
// The same from the JSON text (path only names it in messages).
int sid_clip_config_parse(sid_clip_config *c, const char *json_text, const char *path);
// Writes a text_encoder/config.json that transformers' CLIPTextModel.from_pretrained accepts.
// bos/eos/pad ids are the tokenizer's (they only matter for the unused pooled output).
int sid_clip_config_save(const sid_clip_config *c, int bos_id, int eos_id, int pad_id, const char *path);

typedef struct {
    sid_norm ln1, ln2;
    sid_attn attn;
    sid_linear fc1, fc2;
} sid_clip_layer;

typedef struct {
    sid_clip_config cfg;
    int tok, pos;  // parameter indices of the token and position embeddings
    sid_clip_layer *layers;
    sid_norm final_ln;
} sid_clip;

// Declares every parameter under transformers' names ("text_model.embeddings.token_embedding.weight",
// "text_model.encoder.layers.{i}.self_attn.q_proj.weight", ...); free m with sid_clip_free.
void sid_clip_decl(sid_clip *m, sid_params *ps, const sid_clip_config *c);
void sid_clip_free(sid_clip *m);
// Parameters of a config, counted without allocating them (CLIP-L: 123,060,480).
size_t sid_clip_param_count(const sid_clip_config *c);

// Loads a text encoder file into the declared parameters, strictly. Accepts both namings in use:
// "text_model.<name>" (SD checkpoints, transformers < 5) and "<name>" (transformers 5 saves
// CLIPTextModel without the prefix); `prefix` goes in front of either (e.g.
// "cond_stage_model.transformer." for an SD1 single-file checkpoint, "" or NULL for
// text_encoder/model.safetensors). The "position_ids" buffer old files carry is ignored.
// A file in open_clip's naming (recognised by "<prefix>token_embedding.weight") goes to
// sid_clip_load_open_clip.
int sid_clip_load(sid_params *ps, const char *path, const char *prefix);

// Loads an SD2.x single-file text encoder in open_clip's naming (prefix "cond_stage_model.model."),
// strictly: token_embedding.weight, positional_embedding, transformer.resblocks.{i}.{ln_1,
// attn.in_proj_weight / in_proj_bias (q, k, v stacked by rows: split into q_proj, k_proj, v_proj),
// attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, ln_final (docs/models.md). Only the declared
// layers are read; the one block after them (OpenCLIP-H's 24th, which SD2's penultimate-layer
// conditioning skips), text_projection, logit_scale and attn_mask are ignored. Anything else under
// the prefix, a missing tensor or a shape that does not fit is a one-line error naming the tensor.
int sid_clip_load_open_clip(sid_params *ps, const char *path, const char *prefix);

typedef struct sid_clip_saved sid_clip_saved;

// ids [B, T] (T <= max_positions, each in [0, vocab_size)) -> out [B, T, hidden]: the hidden states of
// the first n_layers layers passed through final_layer_norm (n_layers = cfg.layers is
// last_hidden_state; layers - k is diffusers' clip_skip = k). Runs on c's backend: ids (int32), out
// and the parameters are in its memory (the ids are downloaded once for the range check). Saves
// what backward needs in c->act and returns the record of it, host memory from sid_ctx_host (c->meta
// when c->act is device memory); NULL with a one-line error when an id is out of range.
sid_clip_saved *sid_clip_forward(const sid_ctx *c, const sid_clip *m, float *out, const int32_t *ids, int B, int T,
                                 int n_layers);
// Forward only, nothing saved for a backward (evaluation: the CLIP score's text tower): out [B, T,
// hidden] as sid_clip_forward gives it, bit for bit, with only two hidden-state buffers and one
// layer's temporaries taken from c->act (released before it returns; sid_clip_encode_act_bytes
// bytes at most). 0, or -1 with a one-line error when an id is out of range.
int sid_clip_encode(const sid_ctx *c, const sid_clip *m, float *out, const int32_t *ids, int B, int T, int n_layers);
size_t sid_clip_encode_act_bytes(const sid_clip_config *cfg, int B, int T);

// One encoder layer, shared by the text and the vision tower (clip_vision.h): the parameters under
// prefix ("<prefix>.self_attn.{q,k,v,out}_proj", ".layer_norm1", ".mlp.fc1", ".mlp.fc2", ".layer_norm2").
void sid_clip_layer_decl(sid_clip_layer *l, sid_params *ps, int hidden, int intermediate, int heads, float eps,
                         const char *prefix);
// x [B*T, hidden] -> out [B*T, hidden] (not aliasing x): pre-LN self-attention (causal or not) and the
// act MLP, each with its residual; the temporaries from c->act are released before it returns.
void sid_clip_layer_infer(const sid_ctx *c, const sid_clip_layer *l, sid_act act, float *out, const float *x, int B,
                          int T, int causal);
// The most bytes of c->act that one sid_clip_layer_infer takes.
size_t sid_clip_layer_infer_bytes(int hidden, int intermediate, int heads, int B, int T);

// Accumulates every parameter gradient (into c->ps->grad; nothing when it has none) of
// sum(out * dout) (dout, dembed and ids in c's backend memory). dembed [B, T, hidden], when not NULL,
// accumulates the gradient with respect to the summed token + position embeddings (what textual
// inversion needs).
void sid_clip_backward(const sid_ctx *c, const sid_clip *m, float *dembed, const float *dout, const int32_t *ids,
                       sid_clip_saved *s, int B, int T);

#ifdef __cplusplus
}
#endif

#endif
