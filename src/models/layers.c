#include "models/layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

void *sid_ctx_host(const sid_ctx *c, size_t bytes) {
    sid_arena *h = c->meta ? c->meta : c->act->owner == NULL ? c->act : NULL;
    if (!h) sid_die("%s: a device arena needs a host meta arena for saved state (sid_ctx.meta)", c->act->name);
    return sid_arena_alloc(h, bytes);
}

// Whether a backward pass must produce anything that flows back through this layer's input.
static inline int frozen(const sid_ctx *c) { return c->ps->grad == NULL; }

// ---------------------------------------------------------------- linear
void sid_linear_decl(sid_linear *l, sid_params *ps, int in, int out, int bias, const char *name) {
    l->in = in, l->out = out;
    l->w = sid_params_add(ps, 2, (int64_t[]){out, in}, "%s.weight", name);
    l->b = bias ? sid_params_add(ps, 1, (int64_t[]){out}, "%s.bias", name) : -1;
}

void sid_linear_f(const sid_ctx *c, const sid_linear *l, float *out, const float *in, int M) {
    sid_be(c)->linear_fwd(out, in, sid_p(c->ps, l->w), l->b >= 0 ? sid_p(c->ps, l->b) : NULL, M, l->in, l->out);
}

void sid_linear_b(const sid_ctx *c, const sid_linear *l, float *din, const float *dout, const float *in, int M) {
    float *dw = sid_g(c->ps, l->w), *db = l->b >= 0 ? sid_g(c->ps, l->b) : NULL;
    if (!din && !dw) return;
    sid_be(c)->linear_bwd(din, dw, db, dout, in, sid_p(c->ps, l->w), M, l->in, l->out);
}

// ---------------------------------------------------------------- conv
void sid_conv_decl(sid_conv *l, sid_params *ps, int cin, int cout, int k, int stride, int pad, const char *name) {
    *l = (sid_conv){.cin = cin, .cout = cout, .k = k, .stride = stride, .pad = pad};
    l->w = sid_params_add(ps, 4, (int64_t[]){cout, cin, k, k}, "%s.weight", name);
    l->b = sid_params_add(ps, 1, (int64_t[]){cout}, "%s.bias", name);
}

void sid_conv_decl_rect(sid_conv *l, sid_params *ps, int cin, int cout, int kh, int kw, int stride, int ph, int pw,
                        const char *name) {
    *l = (sid_conv){.cin = cin, .cout = cout, .k = kh, .stride = stride, .pad = ph, .kw = kw, .pad_w = pw};
    l->w = sid_params_add(ps, 4, (int64_t[]){cout, cin, kh, kw}, "%s.weight", name);
    l->b = sid_params_add(ps, 1, (int64_t[]){cout}, "%s.bias", name);
}

static sid_conv2d_shape conv_shape(const sid_conv *l, int N, int H, int W) {
    return (sid_conv2d_shape){N, l->cin, H, W, l->cout, l->k, l->stride, l->pad, l->kw, l->pad_w};
}

void sid_conv_f(const sid_ctx *c, const sid_conv *l, float *out, const float *in, int N, int H, int W) {
    sid_conv2d_shape s = conv_shape(l, N, H, W);
    sid_be(c)->conv2d_fwd(out, in, sid_p(c->ps, l->w), sid_p(c->ps, l->b), &s);
}

void sid_conv_b(const sid_ctx *c, const sid_conv *l, float *din, const float *dout, const float *in, int N, int H,
                int W) {
    if (!din && frozen(c)) return;
    sid_conv2d_shape s = conv_shape(l, N, H, W);
    sid_be(c)->conv2d_bwd(din, sid_g(c->ps, l->w), sid_g(c->ps, l->b), dout, in, sid_p(c->ps, l->w), &s);
}

// ---------------------------------------------------------------- norms
void sid_norm_decl(sid_norm *l, sid_params *ps, int C, int groups, float eps, const char *name) {
    *l = (sid_norm){.C = C, .groups = groups, .eps = eps};
    l->w = sid_params_add(ps, 1, (int64_t[]){C}, "%s.weight", name);
    l->b = sid_params_add(ps, 1, (int64_t[]){C}, "%s.bias", name);
}

static sid_norm_saved norm_saved_alloc(const sid_ctx *c, size_t rows) {
    return (sid_norm_saved){sid_ctx_out(c, rows), sid_ctx_out(c, rows)};
}

static void groupnorm_into(const sid_ctx *c, const sid_norm *l, sid_norm_saved s, float *out, const float *in, int N,
                           int HW) {
    sid_be(c)->groupnorm_fwd(out, s.mean, s.rstd, in, sid_p(c->ps, l->w), sid_p(c->ps, l->b), N, l->C, HW, l->groups, l->eps);
}

sid_norm_saved sid_groupnorm_f(const sid_ctx *c, const sid_norm *l, float *out, const float *in, int N, int HW) {
    sid_norm_saved s = norm_saved_alloc(c, (size_t)N * l->groups);
    groupnorm_into(c, l, s, out, in, N, HW);
    return s;
}

void sid_groupnorm_b(const sid_ctx *c, const sid_norm *l, float *din, const float *dout, const float *in,
                     sid_norm_saved s, int N, int HW) {
    if (!din && frozen(c)) return;
    sid_be(c)->groupnorm_bwd(din, sid_g(c->ps, l->w), sid_g(c->ps, l->b), dout, in, sid_p(c->ps, l->w), s.mean, s.rstd, N,
                      l->C, HW, l->groups);
}

// SiLU(group norm) in one op; backward recomputes the norm's output from in and the statistics.
static void groupnorm_silu_into(const sid_ctx *c, const sid_norm *l, sid_norm_saved s, float *out, const float *in,
                                int N, int HW) {
    sid_be(c)->groupnorm_silu_fwd(out, s.mean, s.rstd, in, sid_p(c->ps, l->w), sid_p(c->ps, l->b), N, l->C, HW,
                                  l->groups, l->eps);
}
static void groupnorm_silu_b(const sid_ctx *c, const sid_norm *l, float *din, const float *dout, const float *in,
                             sid_norm_saved s, int N, int HW) {
    if (!din && frozen(c)) return;
    sid_be(c)->groupnorm_silu_bwd(din, sid_g(c->ps, l->w), sid_g(c->ps, l->b), dout, in, sid_p(c->ps, l->w),
                                  sid_p(c->ps, l->b), s.mean, s.rstd, N, l->C, HW, l->groups);
}

sid_norm_saved sid_layernorm_f(const sid_ctx *c, const sid_norm *l, float *out, const float *in, int M) {
    sid_norm_saved s = {sid_ctx_out(c, (size_t)M), sid_ctx_out(c, (size_t)M)};
    sid_be(c)->layernorm_fwd(out, s.mean, s.rstd, in, sid_p(c->ps, l->w), sid_p(c->ps, l->b), M, l->C, l->eps);
    return s;
}

void sid_layernorm_b(const sid_ctx *c, const sid_norm *l, float *din, const float *dout, const float *in,
                     sid_norm_saved s, int M) {
    if (!din && frozen(c)) return;
    sid_be(c)->layernorm_bwd(din, sid_g(c->ps, l->w), sid_g(c->ps, l->b), dout, in, sid_p(c->ps, l->w), s.mean, s.rstd, M,
                      l->C);
}

// ---------------------------------------------------------------- attention
void sid_attn_decl(sid_attn *a, sid_params *ps, int dim, int ctx_dim, int heads, int qkv_bias, const char *prefix,
                   const char *const names[4]) {
    char buf[256];
    a->heads = heads, a->dim = dim, a->ctx_dim = ctx_dim;
    if (dim % heads) sid_die("%s: %d channels do not split into %d heads", prefix, dim, heads);
    sid_linear_decl(&a->q, ps, dim, dim, qkv_bias, NAME(buf, "%s.%s", prefix, names[0]));
    sid_linear_decl(&a->k, ps, ctx_dim, dim, qkv_bias, NAME(buf, "%s.%s", prefix, names[1]));
    sid_linear_decl(&a->v, ps, ctx_dim, dim, qkv_bias, NAME(buf, "%s.%s", prefix, names[2]));
    sid_linear_decl(&a->out, ps, dim, dim, 1, NAME(buf, "%s.%s", prefix, names[3]));
}

sid_attn_saved sid_attn_f(const sid_ctx *c, const sid_attn *a, float *out, const float *x, const float *ctx, int B,
                          int N, int M, int causal) {
    const float *kv = ctx ? ctx : x;
    const int Mk = ctx ? M : N;
    sid_attn_saved s;
    s.q = sid_ctx_out(c, (size_t)B * N * a->dim);
    s.k = sid_ctx_out(c, (size_t)B * Mk * a->dim);
    s.v = sid_ctx_out(c, (size_t)B * Mk * a->dim);
    s.o = sid_ctx_out(c, (size_t)B * N * a->dim);
    s.lse = sid_ctx_out(c, (size_t)B * a->heads * N);
    sid_linear_f(c, &a->q, s.q, x, B * N);
    sid_linear_f(c, &a->k, s.k, kv, B * Mk);
    sid_linear_f(c, &a->v, s.v, kv, B * Mk);
    sid_be(c)->attention_fwd(s.o, s.lse, s.q, s.k, s.v, B, N, Mk, a->heads, a->dim / a->heads, causal);
    sid_linear_f(c, &a->out, out, s.o, B * N);
    return s;
}

void sid_attn_b(const sid_ctx *c, const sid_attn *a, float *dx, float *dctx, const float *dout, const float *x,
                const float *ctx, sid_attn_saved s, int B, int N, int M, int causal) {
    const float *kv = ctx ? ctx : x;
    const int Mk = ctx ? M : N;
    float *dkv = ctx ? dctx : dx;
    if (!dx && !dkv && frozen(c)) return;
    const size_t mark = sid_arena_mark(c->act);
    float *dO = sid_ctx_floats(c, (size_t)B * N * a->dim), *dq = sid_ctx_floats(c, (size_t)B * N * a->dim);
    float *dk = sid_ctx_floats(c, (size_t)B * Mk * a->dim), *dv = sid_ctx_floats(c, (size_t)B * Mk * a->dim);
    sid_linear_b(c, &a->out, dO, dout, s.o, B * N);
    sid_be(c)->attention_bwd(dq, dk, dv, dO, s.q, s.k, s.v, s.o, s.lse, B, N, Mk, a->heads, a->dim / a->heads, causal);
    sid_linear_b(c, &a->q, dx, dq, x, B * N);
    sid_linear_b(c, &a->k, dkv, dk, kv, B * Mk);
    sid_linear_b(c, &a->v, dkv, dv, kv, B * Mk);
    sid_arena_reset(c->act, mark);
}

// ---------------------------------------------------------------- ResnetBlock2D
void sid_resnet_decl(sid_resnet *r, sid_params *ps, int cin, int cout, int temb_dim, int groups, float eps,
                     const char *prefix) {
    char buf[256];
    memset(r, 0, sizeof *r);
    r->cin = cin, r->cout = cout, r->has_temb = temb_dim > 0, r->has_shortcut = cin != cout;
    sid_norm_decl(&r->norm1, ps, cin, groups, eps, NAME(buf, "%s.norm1", prefix));
    sid_conv_decl(&r->conv1, ps, cin, cout, 3, 1, 1, NAME(buf, "%s.conv1", prefix));
    if (r->has_temb) sid_linear_decl(&r->temb, ps, temb_dim, cout, 1, NAME(buf, "%s.time_emb_proj", prefix));
    sid_norm_decl(&r->norm2, ps, cout, groups, eps, NAME(buf, "%s.norm2", prefix));
    sid_conv_decl(&r->conv2, ps, cout, cout, 3, 1, 1, NAME(buf, "%s.conv2", prefix));
    if (r->has_shortcut) sid_conv_decl(&r->shortcut, ps, cin, cout, 1, 1, 0, NAME(buf, "%s.conv_shortcut", prefix));
}

sid_resnet_saved sid_resnet_f(const sid_ctx *c, const sid_resnet *r, float *out, const float *x, const float *temb,
                              int N, int H, int W) {
    const int HW = H * W;
    const size_t nin = (size_t)N * r->cin * HW, nout = (size_t)N * r->cout * HW;
    sid_resnet_saved s = {0};
    s.c1 = sid_ctx_out(c, nout);
    if (r->has_temb) {
        s.ts = sid_ctx_out(c, (size_t)N * r->temb.in);
        s.tp = sid_ctx_out(c, (size_t)N * r->cout);
    }
    s.s1 = norm_saved_alloc(c, (size_t)N * r->norm1.groups);
    s.s2 = norm_saved_alloc(c, (size_t)N * r->norm2.groups);
    // everything saved is allocated before the mark; the temporaries after it are released on return
    const size_t mark = sid_arena_mark(c->act);
    float *a = sid_ctx_out(c, nin > nout ? nin : nout);
    groupnorm_silu_into(c, &r->norm1, s.s1, a, x, N, HW);
    sid_conv_f(c, &r->conv1, s.c1, a, N, H, W);
    if (r->has_temb) {
        sid_be(c)->act_fwd(SID_ACT_SILU, s.ts, temb, (size_t)N * r->temb.in);
        sid_linear_f(c, &r->temb, s.tp, s.ts, N);
        sid_be(c)->add_channel_bias_fwd(s.c1, s.c1, s.tp, N, r->cout, HW);
    }
    groupnorm_silu_into(c, &r->norm2, s.s2, a, s.c1, N, HW);
    sid_conv_f(c, &r->conv2, out, a, N, H, W);
    if (r->has_shortcut) {
        float *sc = sid_ctx_out(c, nout);
        sid_conv_f(c, &r->shortcut, sc, x, N, H, W);
        sid_be(c)->add_fwd(out, out, sc, nout);
    } else {
        sid_be(c)->add_fwd(out, out, x, nout);
    }
    sid_arena_reset(c->act, mark);
    return s;
}

void sid_resnet_b(const sid_ctx *c, const sid_resnet *r, float *dx, float *dtemb, const float *dout, const float *x,
                  const float *temb, sid_resnet_saved s, int N, int H, int W) {
    if (!dx && !dtemb && frozen(c)) return;
    const int HW = H * W;
    const size_t nin = (size_t)N * r->cin * HW, nout = (size_t)N * r->cout * HW;
    const size_t mark = sid_arena_mark(c->act);
    if (r->has_shortcut) sid_conv_b(c, &r->shortcut, dx, dout, x, N, H, W);
    else if (dx) sid_be(c)->add_bwd(dx, NULL, dout, nout);
    // The convs' inputs are recomputed (cheaper than saving them), their statistics into a scratch
    // pair: equal to the saved ones, which stay untouched. Only the convs' weight gradients read
    // them: a frozen set (the teacher's and the fake net's input gradients in SiD) skips them.
    const int need_inputs = !frozen(c);
    float *a = sid_ctx_out(c, nin > nout ? nin : nout);  // written whole by the recomputations
    float *da = sid_ctx_floats(c, nin > nout ? nin : nout);
    float *dc1 = sid_ctx_floats(c, nout);
    const sid_norm_saved tmp = norm_saved_alloc(c, (size_t)N * (r->norm1.groups > r->norm2.groups ? r->norm1.groups : r->norm2.groups));
    if (need_inputs) groupnorm_silu_into(c, &r->norm2, tmp, a, s.c1, N, HW);
    sid_conv_b(c, &r->conv2, da, dout, a, N, H, W);
    groupnorm_silu_b(c, &r->norm2, dc1, da, s.c1, s.s2, N, HW);
    if (r->has_temb) {
        float *dtp = sid_ctx_floats(c, (size_t)N * r->cout), *dts = sid_ctx_floats(c, (size_t)N * r->temb.in);
        sid_be(c)->add_channel_bias_bwd(NULL, dtp, dc1, N, r->cout, HW);
        sid_linear_b(c, &r->temb, dtemb ? dts : NULL, dtp, s.ts, N);
        if (dtemb) sid_be(c)->act_bwd(SID_ACT_SILU, dtemb, dts, temb, (size_t)N * r->temb.in);
    }
    sid_be(c)->fill(da, 0, nin);
    if (need_inputs) groupnorm_silu_into(c, &r->norm1, tmp, a, x, N, HW);
    sid_conv_b(c, &r->conv1, da, dc1, a, N, H, W);
    groupnorm_silu_b(c, &r->norm1, dx, da, x, s.s1, N, HW);
    sid_arena_reset(c->act, mark);
}

// ---------------------------------------------------------------- Transformer2DModel
static const char *const diffusers_attn_names[4] = {"to_q", "to_k", "to_v", "to_out.0"};

void sid_transformer_decl(sid_transformer *t, sid_params *ps, int C, int heads, int ctx_dim, int n_blocks,
                          int groups, int linear_proj, const char *prefix) {
    char buf[256];
    memset(t, 0, sizeof *t);
    t->C = C, t->heads = heads, t->ctx_dim = ctx_dim, t->n_blocks = n_blocks, t->linear_proj = linear_proj;
    sid_norm_decl(&t->norm, ps, C, groups, 1e-6f, NAME(buf, "%s.norm", prefix));
    if (linear_proj) sid_linear_decl(&t->proj_in_lin, ps, C, C, 1, NAME(buf, "%s.proj_in", prefix));
    else sid_conv_decl(&t->proj_in_conv, ps, C, C, 1, 1, 0, NAME(buf, "%s.proj_in", prefix));
    t->blocks = sid_calloc((size_t)n_blocks * sizeof *t->blocks);
    for (int i = 0; i < n_blocks; i++) {
        sid_tblock *b = &t->blocks[i];
        char p[200];
        snprintf(p, sizeof p, "%s.transformer_blocks.%d", prefix, i);
        sid_norm_decl(&b->norm1, ps, C, 1, 1e-5f, NAME(buf, "%s.norm1", p));
        sid_attn_decl(&b->attn1, ps, C, C, heads, 0, NAME(buf, "%s.attn1", p), diffusers_attn_names);
        sid_norm_decl(&b->norm2, ps, C, 1, 1e-5f, NAME(buf, "%s.norm2", p));
        sid_attn_decl(&b->attn2, ps, C, ctx_dim, heads, 0, NAME(buf, "%s.attn2", p), diffusers_attn_names);
        sid_norm_decl(&b->norm3, ps, C, 1, 1e-5f, NAME(buf, "%s.norm3", p));
        sid_linear_decl(&b->ff_in, ps, C, 8 * C, 1, NAME(buf, "%s.ff.net.0.proj", p));
        sid_linear_decl(&b->ff_out, ps, 4 * C, C, 1, NAME(buf, "%s.ff.net.2", p));
    }
    if (linear_proj) sid_linear_decl(&t->proj_out_lin, ps, C, C, 1, NAME(buf, "%s.proj_out", prefix));
    else sid_conv_decl(&t->proj_out_conv, ps, C, C, 1, 1, 0, NAME(buf, "%s.proj_out", prefix));
}

void sid_transformer_free(sid_transformer *t) {
    free(t->blocks);
    t->blocks = NULL;
}

typedef struct {
    float *in, *t1, *t2;     // block input, after self-attention, after cross-attention
    float *n1, *n2, *n3, *f1, *g;
    sid_norm_saved s1, s2, s3;
    sid_attn_saved a1, a2;
} tblock_saved;

struct sid_transformer_saved {
    sid_norm_saved gs;
    float *gn, *pin, *tok, *tend;  // GN out, proj_in out (NCHW, conv form) or GN tokens, tokens in, tokens out
    tblock_saved *blocks;
};

// x [T, C] tokens -> out [T, C]
static void tblock_f(const sid_ctx *c, const sid_tblock *b, tblock_saved *s, float *out, const float *x,
                     const float *ctx, int N, int L, int M) {
    const int T = N * L, C = b->norm1.C;
    const size_t tc = (size_t)T * C;
    s->in = (float *)x;
    s->t1 = sid_ctx_out(c, tc), s->t2 = sid_ctx_out(c, tc);
    s->n1 = sid_ctx_out(c, tc), s->n2 = sid_ctx_out(c, tc), s->n3 = sid_ctx_out(c, tc);
    s->f1 = sid_ctx_out(c, tc * 8), s->g = sid_ctx_out(c, tc * 4);
    s->s1 = sid_layernorm_f(c, &b->norm1, s->n1, x, T);
    s->a1 = sid_attn_f(c, &b->attn1, s->t1, s->n1, NULL, N, L, L, 0);
    sid_be(c)->add_fwd(s->t1, s->t1, x, tc);
    s->s2 = sid_layernorm_f(c, &b->norm2, s->n2, s->t1, T);
    s->a2 = sid_attn_f(c, &b->attn2, s->t2, s->n2, ctx, N, L, M, 0);
    sid_be(c)->add_fwd(s->t2, s->t2, s->t1, tc);
    s->s3 = sid_layernorm_f(c, &b->norm3, s->n3, s->t2, T);
    sid_linear_f(c, &b->ff_in, s->f1, s->n3, T);
    sid_be(c)->geglu_fwd(s->g, s->f1, T, 4 * C);
    sid_linear_f(c, &b->ff_out, out, s->g, T);
    sid_be(c)->add_fwd(out, out, s->t2, tc);
}

static void tblock_b(const sid_ctx *c, const sid_tblock *b, const tblock_saved *s, float *dx, float *dctx,
                     const float *dout, const float *ctx, int N, int L, int M) {
    const int T = N * L, C = b->norm1.C;
    const size_t tc = (size_t)T * C;
    const size_t mark = sid_arena_mark(c->act);
    float *dt2 = sid_ctx_floats(c, tc), *dt1 = sid_ctx_floats(c, tc), *dn = sid_ctx_floats(c, tc);
    float *dg = sid_ctx_floats(c, tc * 4), *df1 = sid_ctx_floats(c, tc * 8);
    sid_be(c)->add_bwd(dt2, NULL, dout, tc);
    sid_linear_b(c, &b->ff_out, dg, dout, s->g, T);
    sid_be(c)->geglu_bwd(df1, dg, s->f1, T, 4 * C);
    sid_linear_b(c, &b->ff_in, dn, df1, s->n3, T);
    sid_layernorm_b(c, &b->norm3, dt2, dn, s->t2, s->s3, T);
    sid_be(c)->add_bwd(dt1, NULL, dt2, tc);
    sid_be(c)->fill(dn, 0, tc);
    sid_attn_b(c, &b->attn2, dn, dctx, dt2, s->n2, ctx, s->a2, N, L, M, 0);
    sid_layernorm_b(c, &b->norm2, dt1, dn, s->t1, s->s2, T);
    sid_be(c)->add_bwd(dx, NULL, dt1, tc);
    sid_be(c)->fill(dn, 0, tc);
    sid_attn_b(c, &b->attn1, dn, NULL, dt1, s->n1, NULL, s->a1, N, L, L, 0);
    sid_layernorm_b(c, &b->norm1, dx, dn, s->in, s->s1, T);
    sid_arena_reset(c->act, mark);
}

sid_transformer_saved *sid_transformer_f(const sid_ctx *c, const sid_transformer *t, float *out, const float *x,
                                         const float *ctx, int N, int H, int W, int M) {
    const int L = H * W, C = t->C, T = N * L;
    const size_t n = (size_t)N * C * L;
    sid_transformer_saved *s = sid_ctx_host(c, sizeof *s);
    s->blocks = sid_ctx_host(c, (size_t)t->n_blocks * sizeof *s->blocks);
    s->gn = sid_ctx_out(c, n);
    s->gs = sid_groupnorm_f(c, &t->norm, s->gn, x, N, L);
    s->tok = sid_ctx_out(c, n);
    if (t->linear_proj) {
        s->pin = sid_ctx_out(c, n);  // GN output as tokens: the input of proj_in
        sid_be(c)->transpose_fwd(s->pin, s->gn, N, C, L);
        sid_linear_f(c, &t->proj_in_lin, s->tok, s->pin, T);
    } else {
        s->pin = sid_ctx_out(c, n);  // proj_in output, NCHW
        sid_conv_f(c, &t->proj_in_conv, s->pin, s->gn, N, H, W);
        sid_be(c)->transpose_fwd(s->tok, s->pin, N, C, L);
    }
    const float *h = s->tok;
    for (int i = 0; i < t->n_blocks; i++) {
        float *o = sid_ctx_out(c, n);
        tblock_f(c, &t->blocks[i], &s->blocks[i], o, h, ctx, N, L, M);
        h = o;
    }
    s->tend = (float *)h;
    if (t->linear_proj) {
        float *p = sid_ctx_out(c, n);
        sid_linear_f(c, &t->proj_out_lin, p, h, T);
        sid_be(c)->transpose_fwd(out, p, N, L, C);
    } else {
        float *p = sid_ctx_out(c, n);
        sid_be(c)->transpose_fwd(p, h, N, L, C);
        sid_conv_f(c, &t->proj_out_conv, out, p, N, H, W);
    }
    sid_be(c)->add_fwd(out, out, x, n);
    return s;
}

void sid_transformer_b(const sid_ctx *c, const sid_transformer *t, float *dx, float *dctx, const float *dout,
                       const float *x, const float *ctx, sid_transformer_saved *s, int N, int H, int W, int M) {
    if (!dx && !dctx && frozen(c)) return;
    const int L = H * W, C = t->C, T = N * L;
    const size_t n = (size_t)N * C * L;
    const size_t mark = sid_arena_mark(c->act);
    if (dx) sid_be(c)->add_bwd(dx, NULL, dout, n);  // residual
    float *dh = sid_ctx_floats(c, n), *tmp = sid_ctx_floats(c, n);
    if (t->linear_proj) {
        sid_be(c)->transpose_bwd(tmp, dout, N, L, C);  // d(proj_out output) as tokens
        sid_linear_b(c, &t->proj_out_lin, dh, tmp, s->tend, T);
    } else {
        float *p = sid_ctx_floats(c, n);
        sid_be(c)->transpose_fwd(p, s->tend, N, L, C);
        sid_conv_b(c, &t->proj_out_conv, tmp, dout, p, N, H, W);
        sid_be(c)->transpose_bwd(dh, tmp, N, L, C);
    }
    for (int i = t->n_blocks - 1; i >= 0; i--) {
        float *din = sid_ctx_floats(c, n);
        tblock_b(c, &t->blocks[i], &s->blocks[i], din, dctx, dh, ctx, N, L, M);
        dh = din;
    }
    float *dgn = sid_ctx_floats(c, n);
    if (t->linear_proj) {
        float *dp = sid_ctx_floats(c, n);
        sid_linear_b(c, &t->proj_in_lin, dp, dh, s->pin, T);
        sid_be(c)->transpose_bwd(dgn, dp, N, C, L);
    } else {
        float *dp = sid_ctx_floats(c, n);
        sid_be(c)->transpose_bwd(dp, dh, N, C, L);
        sid_conv_b(c, &t->proj_in_conv, dgn, dp, s->gn, N, H, W);
    }
    sid_groupnorm_b(c, &t->norm, dx, dgn, x, s->gs, N, L);
    sid_arena_reset(c->act, mark);
}
