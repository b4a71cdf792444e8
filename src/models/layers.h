// The layers the Stable Diffusion family is built from, each a declare /
// forward / backward triple over a parameter set (params.h). Forward saves
// what backward needs in the context's activation arena; backward accumulates
// parameter gradients into ps->grad (skipped when the set has no gradient
// block: a frozen network) and input gradients into din (skipped when NULL).
#ifndef SID_LAYERS_H
#define SID_LAYERS_H
#include "core/arena.h"
#include "models/params.h"
#include "ops/backend.h"
#include "ops/ops.h"

// Every op of a layer runs on the context's backend, on buffers in its memory: the parameters
// (sid_params_to_backend), the arena (sid_backend_arena_init) and the inputs. be NULL: the CPU.
typedef struct {
    sid_params *ps;
    sid_arena *act;  // saved activations and backward temporaries
    const sid_backend *be;
    sid_arena *meta;  // host memory for saved-state structs when act is device memory (else NULL)
} sid_ctx;

static inline const sid_backend *sid_be(const sid_ctx *c) { return sid_backend_or_cpu(c->be); }

// Host memory (zero-filled) for what a forward saves for its backward besides activations: structs
// of pointers and shapes, which the host reads. They live as long as the activations: from the
// meta arena (reset with the activation arena), or from the activation arena itself when that is
// host memory (the CPU).
void *sid_ctx_host(const sid_ctx *c, size_t bytes);

// Zero-filled: gradient buffers (backward accumulates into them).
static inline float *sid_ctx_floats(const sid_ctx *c, size_t n) { return sid_arena_floats(c->act, n); }
// Uninitialised: forward outputs that the op writes entirely.
static inline float *sid_ctx_out(const sid_ctx *c, size_t n) { return sid_arena_alloc_uninit(c->act, n * sizeof(float)); }

// ---- linear (diffusers nn.Linear): name.weight [out, in], name.bias [out]
typedef struct {
    int w, b, in, out;
} sid_linear;
void sid_linear_decl(sid_linear *l, sid_params *ps, int in, int out, int bias, const char *name);
void sid_linear_f(const sid_ctx *c, const sid_linear *l, float *out, const float *in, int M);
void sid_linear_b(const sid_ctx *c, const sid_linear *l, float *din, const float *dout, const float *in, int M);

// ---- conv2d: name.weight [cout, cin, k, k], name.bias; kw, pad_w as in sid_conv2d_shape (0: square)
typedef struct {
    int w, b, cin, cout, k, stride, pad, kw, pad_w;
} sid_conv;
void sid_conv_decl(sid_conv *l, sid_params *ps, int cin, int cout, int k, int stride, int pad, const char *name);
// A kh x kw kernel with padding ph rows and pw columns: name.weight [cout, cin, kh, kw].
void sid_conv_decl_rect(sid_conv *l, sid_params *ps, int cin, int cout, int kh, int kw, int stride, int ph, int pw,
                        const char *name);
void sid_conv_f(const sid_ctx *c, const sid_conv *l, float *out, const float *in, int N, int H, int W);
void sid_conv_b(const sid_ctx *c, const sid_conv *l, float *din, const float *dout, const float *in, int N, int H, int W);

// ---- group norm / layer norm with affine; forward returns the saved (mean, rstd)
typedef struct {
    int w, b, C, groups;
    float eps;
} sid_norm;
typedef struct {
    float *mean, *rstd;
} sid_norm_saved;
void sid_norm_decl(sid_norm *l, sid_params *ps, int C, int groups, float eps, const char *name);
sid_norm_saved sid_groupnorm_f(const sid_ctx *c, const sid_norm *l, float *out, const float *in, int N, int HW);
void sid_groupnorm_b(const sid_ctx *c, const sid_norm *l, float *din, const float *dout, const float *in,
                     sid_norm_saved s, int N, int HW);
sid_norm_saved sid_layernorm_f(const sid_ctx *c, const sid_norm *l, float *out, const float *in, int M);
void sid_layernorm_b(const sid_ctx *c, const sid_norm *l, float *din, const float *dout, const float *in,
                     sid_norm_saved s, int M);

// ---- multi-head attention (diffusers Attention / CLIPAttention): q, k, v, out projections.
// x [B, N, dim]; ctx [B, M, ctx_dim] for cross-attention, NULL for self-attention.
typedef struct {
    sid_linear q, k, v, out;
    int heads, dim, ctx_dim;
} sid_attn;
typedef struct {
    float *q, *k, *v, *o, *lse;
} sid_attn_saved;
// names: prefix + q_name etc. (diffusers: to_q to_k to_v to_out.0; CLIP: q_proj k_proj v_proj out_proj)
void sid_attn_decl(sid_attn *a, sid_params *ps, int dim, int ctx_dim, int heads, int qkv_bias, const char *prefix,
                   const char *const names[4]);
sid_attn_saved sid_attn_f(const sid_ctx *c, const sid_attn *a, float *out, const float *x, const float *ctx, int B,
                          int N, int M, int causal);
void sid_attn_b(const sid_ctx *c, const sid_attn *a, float *dx, float *dctx, const float *dout, const float *x,
                const float *ctx, sid_attn_saved s, int B, int N, int M, int causal);

// ---- ResnetBlock2D: GN, SiLU, conv3x3, (+ time_emb_proj(SiLU(temb))), GN, SiLU, conv3x3, + shortcut(x)
typedef struct {
    sid_norm norm1, norm2;
    sid_conv conv1, conv2, shortcut;
    sid_linear temb;
    int cin, cout, has_shortcut, has_temb;
} sid_resnet;
typedef struct {
    sid_norm_saved s1, s2;
    float *c1, *ts, *tp;  // conv1(+temb) out, SiLU(temb), temb projection (the norms' outputs are recomputed)
} sid_resnet_saved;
void sid_resnet_decl(sid_resnet *r, sid_params *ps, int cin, int cout, int temb_dim, int groups, float eps,
                     const char *prefix);
// temb [N, temb_dim] (NULL when has_temb == 0); out may not alias x.
sid_resnet_saved sid_resnet_f(const sid_ctx *c, const sid_resnet *r, float *out, const float *x, const float *temb,
                              int N, int H, int W);
void sid_resnet_b(const sid_ctx *c, const sid_resnet *r, float *dx, float *dtemb, const float *dout, const float *x,
                  const float *temb, sid_resnet_saved s, int N, int H, int W);

// ---- Transformer2DModel with BasicTransformerBlocks (self-attn, cross-attn, GEGLU feed-forward)
typedef struct {
    sid_norm norm1, norm2, norm3;
    sid_attn attn1, attn2;
    sid_linear ff_in, ff_out;
} sid_tblock;
typedef struct {
    sid_norm norm;  // GroupNorm, eps 1e-6
    sid_conv proj_in_conv, proj_out_conv;
    sid_linear proj_in_lin, proj_out_lin;
    sid_tblock *blocks;
    int n_blocks, C, heads, ctx_dim, linear_proj;
} sid_transformer;
typedef struct sid_transformer_saved sid_transformer_saved;
void sid_transformer_decl(sid_transformer *t, sid_params *ps, int C, int heads, int ctx_dim, int n_blocks,
                          int groups, int linear_proj, const char *prefix);
void sid_transformer_free(sid_transformer *t);
// x [N, C, H, W] -> out (may not alias x); ctx [N, M, ctx_dim]
sid_transformer_saved *sid_transformer_f(const sid_ctx *c, const sid_transformer *t, float *out, const float *x,
                                         const float *ctx, int N, int H, int W, int M);
void sid_transformer_b(const sid_ctx *c, const sid_transformer *t, float *dx, float *dctx, const float *dout,
                       const float *x, const float *ctx, sid_transformer_saved *s, int N, int H, int W, int M);

#endif
