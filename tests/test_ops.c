// Every op of the op set, on every backend of this build: forward against a
// naive double-precision reference, backward against finite differences of
// that reference, input-only backward against the full one. Odd shapes on
// purpose. The last cases prove that the checker itself can fail.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/threads.h"
#include "harness.h"
#include "io/safetensors.h"
#include "core/rng.h"
#include "core/error.h"
#include "ops/cpu_isa.h"
#include "op_check.h"
#include "ops/guard/guard.h"
#include "train/optim.h"

#define I(k) (p->i[k])
#define F(k) (p->f[k])

// ---------------------------------------------------------------- linear
// i: M K N has_bias; in: x, W, b
static void linear_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->linear_fwd(out[0], in[0], in[1], I(3) ? in[2] : NULL, I(0), I(1), I(2));
}
static void linear_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->linear_bwd(din[0], din[1], I(3) ? din[2] : NULL, dout[0], in[0], in[1], I(0), I(1), I(2));
}
static void linear_r(const op_params *p, double **in, double **out) {
    for (int m = 0; m < I(0); m++)
        for (int n = 0; n < I(2); n++) {
            double s = I(3) ? in[2][n] : 0;
            for (int k = 0; k < I(1); k++) s += in[0][m * I(1) + k] * in[1][n * I(1) + k];
            out[0][m * I(2) + n] = s;
        }
}
#define LINEAR_CASE(nm, M, K, N, bias)                                                                 \
    {.name = nm, .n_in = 3, .n_out = 1, .in_size = {(M) * (K), (N) * (K), (N)}, .out_size = {(M) * (N)}, \
     .in_diff = {1, 1, bias}, .in_frozen = {0, 1, 1}, .out_loss = {1}, .p.i = {M, K, N, bias},          \
     .fwd = linear_f, .bwd = linear_b, .ref = linear_r}

// ---------------------------------------------------------------- conv2d
// i: n cin h w cout k stride pad [kw pad_w]; in: x, W, b
static sid_conv2d_shape conv_shape(const op_params *p) {
    return (sid_conv2d_shape){I(0), I(1), I(2), I(3), I(4), I(5), I(6), I(7), I(8), I(9)};
}
static void conv_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    sid_conv2d_shape s = conv_shape(p);
    be->conv2d_fwd(out[0], in[0], in[1], in[2], &s);
}
static void conv_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    sid_conv2d_shape s = conv_shape(p);
    be->conv2d_bwd(din[0], din[1], din[2], dout[0], in[0], in[1], &s);
}
static void conv_r(const op_params *p, double **in, double **out) {
    sid_conv2d_shape s = conv_shape(p);
    const int ho = sid_conv2d_hout(&s), wo = sid_conv2d_wout(&s), kh = s.k, kw = sid_conv2d_kw(&s);
    const int pw = sid_conv2d_padw(&s);
    for (int n = 0; n < s.n; n++)
        for (int co = 0; co < s.cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = in[2][co];
                    for (int ci = 0; ci < s.cin; ci++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++) {
                                int iy = oy * s.stride - s.pad + ky, ix = ox * s.stride - pw + kx;
                                if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) continue;
                                acc += in[0][((n * s.cin + ci) * s.h + iy) * s.w + ix] *
                                       in[1][((co * s.cin + ci) * kh + ky) * kw + kx];
                            }
                    out[0][((n * s.cout + co) * ho + oy) * wo + ox] = acc;
                }
}
#define CONV_OUT(N, H, W, CO, K, S, P) ((N) * (CO) * (((H) + 2 * (P) - (K)) / (S) + 1) * (((W) + 2 * (P) - (K)) / (S) + 1))
#define CONV_CASE(nm, N, CI, H, W, CO, K, S, P)                                                                \
    {.name = nm, .n_in = 3, .n_out = 1, .in_size = {(N) * (CI) * (H) * (W), (CO) * (CI) * (K) * (K), (CO)},     \
     .out_size = {CONV_OUT(N, H, W, CO, K, S, P)}, .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1}, \
     .p.i = {N, CI, H, W, CO, K, S, P}, .fwd = conv_f, .bwd = conv_b, .ref = conv_r}
// A KH x KW kernel with padding PH rows, PW columns (Inception's 1x7 / 7x1 / 1x3 / 3x1).
#define CONV_RECT_CASE(nm, N, CI, H, W, CO, KH, KW, S, PH, PW)                                                  \
    {.name = nm, .n_in = 3, .n_out = 1, .in_size = {(N) * (CI) * (H) * (W), (CO) * (CI) * (KH) * (KW), (CO)},   \
     .out_size = {(N) * (CO) * (((H) + 2 * (PH) - (KH)) / (S) + 1) * (((W) + 2 * (PW) - (KW)) / (S) + 1)},        \
     .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1}, .p.i = {N, CI, H, W, CO, KH, S, PH, KW, PW}, \
     .fwd = conv_f, .bwd = conv_b, .ref = conv_r}

// ---------------------------------------------------------------- group norm / layer norm
// group norm i: N C HW G, f: eps; in: x, gamma, beta; out: y, mean, rstd
static void gn_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->groupnorm_fwd(out[0], out[1], out[2], in[0], in[1], in[2], I(0), I(1), I(2), I(3), F(0));
}
static void gn_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->groupnorm_bwd(din[0], din[1], din[2], dout[0], in[0], in[1], out[1], out[2], I(0), I(1), I(2), I(3));
}
static void gn_r(const op_params *p, double **in, double **out) {
    const int N = I(0), C = I(1), HW = I(2), G = I(3), cg = C / G, gs = cg * HW;
    for (int ng = 0; ng < N * G; ng++) {
        const double *x = in[0] + ng * gs;
        double mu = 0, var = 0;
        for (int i = 0; i < gs; i++) mu += x[i];
        mu /= gs;
        for (int i = 0; i < gs; i++) var += (x[i] - mu) * (x[i] - mu);
        var /= gs;
        for (int i = 0; i < gs; i++) {
            int ch = (ng % G) * cg + i / HW;
            out[0][ng * gs + i] = (x[i] - mu) / sqrt(var + F(0)) * in[1][ch] + in[2][ch];
        }
    }
}
#define GN_CASE(nm, N, C, HW, G, eps)                                                                          \
    {.name = nm, .n_in = 3, .n_out = 3, .in_size = {(N) * (C) * (HW), C, C}, .out_size = {(N) * (C) * (HW), (N) * (G), (N) * (G)}, \
     .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1, 0, 0}, .p.i = {N, C, HW, G}, .p.f = {eps}, \
     .fwd = gn_f, .bwd = gn_b, .ref = gn_r}

// SiLU(group norm): as group norm; the reference applies SiLU to gn_r's output
static void gns_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->groupnorm_silu_fwd(out[0], out[1], out[2], in[0], in[1], in[2], I(0), I(1), I(2), I(3), F(0));
}
static void gns_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->groupnorm_silu_bwd(din[0], din[1], din[2], dout[0], in[0], in[1], in[2], out[1], out[2], I(0), I(1), I(2), I(3));
}
static void gns_r(const op_params *p, double **in, double **out) {
    gn_r(p, in, out);
    for (int i = 0; i < I(0) * I(1) * I(2); i++) out[0][i] /= 1.0 + exp(-out[0][i]);
}
#define GNS_CASE(nm, N, C, HW, G, eps)                                                                         \
    {.name = nm, .n_in = 3, .n_out = 3, .in_size = {(N) * (C) * (HW), C, C}, .out_size = {(N) * (C) * (HW), (N) * (G), (N) * (G)}, \
     .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1, 0, 0}, .p.i = {N, C, HW, G}, .p.f = {eps}, \
     .fwd = gns_f, .bwd = gns_b, .ref = gns_r}

// layer norm i: M C, f: eps
static void ln_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->layernorm_fwd(out[0], out[1], out[2], in[0], in[1], in[2], I(0), I(1), F(0));
}
static void ln_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->layernorm_bwd(din[0], din[1], din[2], dout[0], in[0], in[1], out[1], out[2], I(0), I(1));
}
static void ln_r(const op_params *p, double **in, double **out) {
    op_params q = *p;  // a layer norm is a group norm with one group per row and per-element affine
    q.i[0] = I(0), q.i[1] = I(1), q.i[2] = 1, q.i[3] = 1;
    for (int m = 0; m < I(0); m++) {
        double *x = in[0] + m * I(1), *o = out[0] + m * I(1);
        double mu = 0, var = 0;
        for (int c = 0; c < I(1); c++) mu += x[c];
        mu /= I(1);
        for (int c = 0; c < I(1); c++) var += (x[c] - mu) * (x[c] - mu);
        var /= I(1);
        for (int c = 0; c < I(1); c++) o[c] = (x[c] - mu) / sqrt(var + F(0)) * in[1][c] + in[2][c];
    }
    (void)q;
}

// ---------------------------------------------------------------- activations, GEGLU, softmax
static void act_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->act_fwd((sid_act)I(0), out[0], in[0], (size_t)I(1));
}
static void act_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->act_bwd((sid_act)I(0), din[0], dout[0], in[0], (size_t)I(1));
}
static double gelu_d(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static void act_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(1); i++) {
        double x = in[0][i];
        out[0][i] = I(0) == SID_ACT_SILU ? x / (1 + exp(-x)) : I(0) == SID_ACT_GELU ? gelu_d(x) : x / (1 + exp(-1.702 * x));
    }
}
#define ACT_CASE(nm, a, n)                                                                                   \
    {.name = nm, .n_in = 1, .n_out = 1, .in_size = {n}, .out_size = {n}, .in_diff = {1}, .out_loss = {1},   \
     .in_lo = -4, .in_hi = 4, .p.i = {a, n}, .fwd = act_f, .bwd = act_b, .ref = act_r}

static void geglu_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->geglu_fwd(out[0], in[0], I(0), I(1)); }
static void geglu_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->geglu_bwd(din[0], dout[0], in[0], I(0), I(1));
}
static void geglu_r(const op_params *p, double **in, double **out) {
    for (int m = 0; m < I(0); m++)
        for (int j = 0; j < I(1); j++)
            out[0][m * I(1) + j] = in[0][m * 2 * I(1) + j] * gelu_d(in[0][m * 2 * I(1) + I(1) + j]);
}

static void softmax_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->softmax_fwd(out[0], in[0], I(0), I(1)); }
static void softmax_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->softmax_bwd(din[0], dout[0], out[0], I(0), I(1));
}
static void softmax_r(const op_params *p, double **in, double **out) {
    for (int m = 0; m < I(0); m++) {
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < I(1); c++) mx = fmax(mx, in[0][m * I(1) + c]);
        for (int c = 0; c < I(1); c++) s += exp(in[0][m * I(1) + c] - mx);
        for (int c = 0; c < I(1); c++) out[0][m * I(1) + c] = exp(in[0][m * I(1) + c] - mx) / s;
    }
}

// ---------------------------------------------------------------- attention
// i: B Nq Nk H dh causal; in: q k v; out: o, lse
static void attn_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->attention_fwd(out[0], out[1], in[0], in[1], in[2], I(0), I(1), I(2), I(3), I(4), I(5));
}
static void attn_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->attention_bwd(din[0], din[1], din[2], dout[0], in[0], in[1], in[2], out[0], out[1], I(0), I(1), I(2), I(3),
                      I(4), I(5));
}
static void attn_r(const op_params *p, double **in, double **out) {
    const int B = I(0), Nq = I(1), Nk = I(2), H = I(3), dh = I(4), C = H * dh;
    double s[512];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Nq; i++) {
                double mx = -INFINITY, z = 0;
                for (int j = 0; j < Nk; j++) {
                    double d = 0;
                    for (int e = 0; e < dh; e++) d += in[0][(b * Nq + i) * C + h * dh + e] * in[1][(b * Nk + j) * C + h * dh + e];
                    s[j] = I(5) && j > i ? -INFINITY : d / sqrt((double)dh);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < Nk; j++) z += (s[j] = exp(s[j] - mx));
                for (int e = 0; e < dh; e++) {
                    double o = 0;
                    for (int j = 0; j < Nk; j++) o += s[j] / z * in[2][(b * Nk + j) * C + h * dh + e];
                    out[0][(b * Nq + i) * C + h * dh + e] = o;
                }
            }
}
#define ATTN_CASE(nm, B, Nq, Nk, H, dh, causal, lo)                                                               \
    {.name = nm, .n_in = 3, .n_out = 2, .in_size = {(B) * (Nq) * (H) * (dh), (B) * (Nk) * (H) * (dh), (B) * (Nk) * (H) * (dh)}, \
     .out_size = {(B) * (Nq) * (H) * (dh), (B) * (H) * (Nq)}, .in_diff = {1, 1, 1}, .out_loss = {1, 0},             \
     .in_lo = -(lo), .in_hi = lo, .p.i = {B, Nq, Nk, H, dh, causal}, .fwd = attn_f, .bwd = attn_b, .ref = attn_r}

// ---------------------------------------------------------------- pooling
// i: nc h w k stride pad kind count_pad
static sid_pool2d_shape pool_shape(const op_params *p) {
    return (sid_pool2d_shape){I(0), I(1), I(2), I(3), I(4), I(5), (sid_pool_kind)I(6), I(7)};
}
static void pool_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    sid_pool2d_shape s = pool_shape(p);
    be->pool2d_fwd(out[0], in[0], &s);
}
static void pool_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    sid_pool2d_shape s = pool_shape(p);
    be->pool2d_bwd(din[0], dout[0], in[0], &s);
}
static void pool_r(const op_params *p, double **in, double **out) {
    sid_pool2d_shape s = pool_shape(p);
    const int ho = sid_pool2d_hout(&s), wo = sid_pool2d_wout(&s);
    for (int c = 0; c < s.nc; c++)
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                double acc = 0, m = -INFINITY;
                int cells = 0;
                for (int ky = 0; ky < s.k; ky++)
                    for (int kx = 0; kx < s.k; kx++) {
                        const int y = oy * s.stride - s.pad + ky, x = ox * s.stride - s.pad + kx;
                        if (y < 0 || y >= s.h || x < 0 || x >= s.w) continue;
                        const double v = in[0][(c * s.h + y) * s.w + x];
                        acc += v, cells++;
                        if (v > m) m = v;
                    }
                out[0][(c * ho + oy) * wo + ox] =
                    s.kind == SID_POOL_MAX ? m : acc / (s.count_pad ? s.k * s.k : cells);
            }
}
#define POOL_CASE(nm, NC, H, W, K, S, P, KIND, COUNT_PAD)                                                    \
    {.name = nm, .n_in = 1, .n_out = 1, .in_size = {(NC) * (H) * (W)},                                        \
     .out_size = {(NC) * (((H) + 2 * (P) - (K)) / (S) + 1) * (((W) + 2 * (P) - (K)) / (S) + 1)}, .in_diff = {1}, \
     .out_loss = {1}, .p.i = {NC, H, W, K, S, P, KIND, COUNT_PAD}, .fwd = pool_f, .bwd = pool_b, .ref = pool_r}

// ---------------------------------------------------------------- shapes
static void up_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->upsample2x_fwd(out[0], in[0], I(0), I(1), I(2)); }
static void up_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->upsample2x_bwd(din[0], dout[0], I(0), I(1), I(2));
}
static void up_r(const op_params *p, double **in, double **out) {
    for (int c = 0; c < I(0); c++)
        for (int y = 0; y < 2 * I(1); y++)
            for (int x = 0; x < 2 * I(2); x++)
                out[0][(c * 2 * I(1) + y) * 2 * I(2) + x] = in[0][(c * I(1) + y / 2) * I(2) + x / 2];
}

static void cat_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->concat_fwd(out[0], in[0], in[1], I(0), I(1), I(2), I(3)); }
static void cat_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->concat_bwd(din[0], din[1], dout[0], I(0), I(1), I(2), I(3));
}
static void cat_r(const op_params *p, double **in, double **out) {
    const int N = I(0), Ca = I(1), Cb = I(2), HW = I(3);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < Ca + Cb; c++)
            for (int i = 0; i < HW; i++)
                out[0][(n * (Ca + Cb) + c) * HW + i] = c < Ca ? in[0][(n * Ca + c) * HW + i] : in[1][(n * Cb + c - Ca) * HW + i];
}

static void tr_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->transpose_fwd(out[0], in[0], I(0), I(1), I(2)); }
static void tr_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->transpose_bwd(din[0], dout[0], I(0), I(1), I(2));
}
static void tr_r(const op_params *p, double **in, double **out) {
    for (int n = 0; n < I(0); n++)
        for (int r = 0; r < I(1); r++)
            for (int c = 0; c < I(2); c++) out[0][(n * I(2) + c) * I(1) + r] = in[0][(n * I(1) + r) * I(2) + c];
}

// ---------------------------------------------------------------- element-wise
// i: n; f: alpha
static void add_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->add_fwd(out[0], in[0], in[1], (size_t)I(0)); }
static void add_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->add_bwd(din[0], din[1], dout[0], (size_t)I(0));
}
static void add_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++) out[0][i] = in[0][i] + in[1][i];
}
static void scale_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->scale_fwd(out[0], in[0], F(0), (size_t)I(0)); }
static void scale_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->scale_bwd(din[0], dout[0], F(0), (size_t)I(0));
}
static void scale_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++) out[0][i] = F(0) * in[0][i];
}
static void mul_f(const sid_backend *be, const op_params *p, float **in, float **out) { be->mul_fwd(out[0], in[0], in[1], (size_t)I(0)); }
static void mul_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->mul_bwd(din[0], din[1], dout[0], in[0], in[1], (size_t)I(0));
}
static void mul_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++) out[0][i] = in[0][i] * in[1][i];
}
// i: N C HW
static void cb_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->add_channel_bias_fwd(out[0], in[0], in[1], I(0), I(1), I(2));
}
static void cb_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->add_channel_bias_bwd(din[0], din[1], dout[0], I(0), I(1), I(2));
}
static void cb_r(const op_params *p, double **in, double **out) {
    for (int nc = 0; nc < I(0) * I(1); nc++)
        for (int i = 0; i < I(2); i++) out[0][nc * I(2) + i] = in[0][nc * I(2) + i] + in[1][nc];
}

// ---------------------------------------------------------------- embeddings
// timestep: i: N dim flip; f: shift max_period
static void temb_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->timestep_embedding_fwd(out[0], in[0], I(0), I(1), I(2), F(0), F(1));
}
static void temb_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->timestep_embedding_bwd(din[0], dout[0], in[0], I(0), I(1), I(2), F(0), F(1));
}
static void temb_r(const op_params *p, double **in, double **out) {
    const int half = I(1) / 2;
    for (int n = 0; n < I(0); n++) {
        for (int j = 0; j < half; j++) {
            double a = in[0][n] * exp(-log((double)F(1)) * j / (half - F(0)));
            out[0][n * I(1) + j] = I(2) ? cos(a) : sin(a);
            out[0][n * I(1) + half + j] = I(2) ? sin(a) : cos(a);
        }
        if (I(1) % 2) out[0][n * I(1) + I(1) - 1] = 0;
    }
}
// token + position: i: B T C V; in: tok, pos. Ids live in the backend's memory like every operand.
static int32_t *ids_on(const sid_backend *be, const op_params *p) {
    int32_t *d = be->alloc(sizeof p->ids);
    be->upload(d, p->ids, sizeof p->ids);
    return d;
}
static void emb_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    int32_t *ids = ids_on(be, p);
    be->embedding_fwd(out[0], ids, in[0], in[1], I(0), I(1), I(2));
    be->free(ids);
}
static void emb_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    int32_t *ids = ids_on(be, p);
    be->embedding_bwd(din[0], din[1], dout[0], ids, I(0), I(1), I(2));
    be->free(ids);
}
static void emb_r(const op_params *p, double **in, double **out) {
    for (int bt = 0; bt < I(0) * I(1); bt++)
        for (int c = 0; c < I(2); c++) out[0][bt * I(2) + c] = in[0][p->ids[bt] * I(2) + c] + in[1][(bt % I(1)) * I(2) + c];
}

// ---------------------------------------------------------------- per-sample reductions
// i: N D
#define REDUCE_OPS(op, expr, finish)                                                                                 \
    static void op##_f(const sid_backend *be, const op_params *p, float **in, float **out) {                      \
        be->op##_fwd(out[0], in[0], in[1], I(0), I(1));                                                            \
    }                                                                                                              \
    static void op##_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) { \
        be->op##_bwd(din[0], din[1], dout[0], in[0], in[1], I(0), I(1));                                           \
    }                                                                                                              \
    static void op##_r(const op_params *p, double **in, double **out) {                                            \
        for (int n = 0; n < I(0); n++) {                                                                           \
            double s = 0;                                                                                          \
            for (int i = 0; i < I(1); i++) {                                                                       \
                double a = in[0][n * I(1) + i], b = in[1][n * I(1) + i];                                           \
                s += expr;                                                                                         \
            }                                                                                                      \
            out[0][n] = finish;                                                                                    \
        }                                                                                                          \
    }
REDUCE_OPS(mse, (a - b) * (a - b), s / I(1))
REDUCE_OPS(mean_abs, fabs(a - b), s / I(1))
REDUCE_OPS(dot, a * b, s)
#define REDUCE_CASE(nm, op, N, D)                                                                                \
    {.name = nm, .n_in = 2, .n_out = 1, .in_size = {(N) * (D), (N) * (D)}, .out_size = {N}, .in_diff = {1, 1},    \
     .in_frozen = {0, 1}, .out_loss = {1}, .p.i = {N, D}, .fwd = op##_f, .bwd = op##_b, .ref = op##_r}


// ---------------------------------------------------------------- SiD-LSG arithmetic
// cfg: i: n; f: kappa; in: uncond, cond
static void cfg_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->cfg_combine_fwd(out[0], in[0], in[1], F(0), (size_t)I(0));
}
static void cfg_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->cfg_combine_bwd(din[0], din[1], dout[0], F(0), (size_t)I(0));
}
static void cfg_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++) out[0][i] = in[0][i] + F(0) * (in[1][i] - in[0][i]);
}
// add_noise / x0_from_eps: i: N D; in: x, eps, a [N], s [N] (a and s get no gradient)
static void noise_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->add_noise_fwd(out[0], in[0], in[1], in[2], in[3], I(0), (size_t)I(1));
}
static void noise_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->add_noise_bwd(din[0], din[1], dout[0], in[2], in[3], I(0), (size_t)I(1));
}
static void noise_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++)
        for (int k = 0; k < I(1); k++)
            out[0][i * I(1) + k] = in[2][i] * in[0][i * I(1) + k] + in[3][i] * in[1][i * I(1) + k];
}
static void x0e_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->x0_from_eps_fwd(out[0], in[0], in[1], in[2], in[3], I(0), (size_t)I(1));
}
static void x0e_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->x0_from_eps_bwd(din[0], din[1], dout[0], in[2], in[3], I(0), (size_t)I(1));
}
static void x0e_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++)
        for (int k = 0; k < I(1); k++)
            out[0][i * I(1) + k] = (in[0][i * I(1) + k] - in[3][i] * in[1][i * I(1) + k]) / in[2][i];
}
#define PERSAMPLE_CASE(nm, pre, N, D, lo, hi)                                                                     \
    {.name = nm, .n_in = 4, .n_out = 1, .in_size = {(N) * (D), (N) * (D), N, N}, .out_size = {(N) * (D)},        \
     .in_diff = {1, 1, 0, 0}, .out_loss = {1}, .in_lo = lo, .in_hi = hi, .p.i = {N, D}, .fwd = pre##_f,          \
     .bwd = pre##_b, .ref = pre##_r}
// clamp: i: n; f: lo hi
static void clamp_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    be->clamp_fwd(out[0], in[0], F(0), F(1), (size_t)I(0));
}
static void clamp_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->clamp_bwd(din[0], dout[0], in[0], F(0), F(1), (size_t)I(0));
}
static void clamp_r(const op_params *p, double **in, double **out) {
    for (int i = 0; i < I(0); i++) out[0][i] = fmin(fmax(in[0][i], F(0)), F(1));
}
// The two losses write one double in the backend's memory; the case's output is that double as a
// float. The op starts from a nonzero value to check that it accumulates. Their backward takes no
// upstream gradient: the case's upstream gradient g scales the loss, so the op runs with scale*g.
static void loss_to_out(const sid_backend *be, double *dl, double base, float *out0) {
    double h;
    be->download(&h, dl, sizeof h);
    const float v = (float)(h - base);
    be->upload(out0, &v, sizeof v);
    be->free(dl);
}
static double *loss_buf(const sid_backend *be, double base) {
    double *dl = be->alloc(sizeof(double));
    be->upload(dl, &base, sizeof base);
    return dl;
}
static float upstream(const sid_backend *be, const float *dout0) {
    float g;
    be->download(&g, dout0, sizeof g);
    return g;
}
// dsm: i: N D; f: scale; in: eps_hat, eps (no gradient: the target)
static void dsm_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    double *dl = loss_buf(be, 0.375);
    be->dsm_loss_fwd(dl, in[0], in[1], F(0), I(0), (size_t)I(1));
    loss_to_out(be, dl, 0.375, out[0]);
}
static void dsm_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->dsm_loss_bwd(din[0], in[0], in[1], F(0) * upstream(be, dout[0]), I(0), (size_t)I(1));
}
static void dsm_r(const op_params *p, double **in, double **out) {
    double s = 0;
    for (int i = 0; i < I(0) * I(1); i++) s += (in[0][i] - in[1][i]) * (in[0][i] - in[1][i]);
    out[0][0] = F(0) * s;
}
// sid: i: N D; f: alpha scale; in: xg, yr, yf
static void sidl_f(const sid_backend *be, const op_params *p, float **in, float **out) {
    double *dl = loss_buf(be, -1.25);
    be->sid_loss_fwd(dl, in[0], in[1], in[2], F(0), F(1), I(0), (size_t)I(1));
    loss_to_out(be, dl, -1.25, out[0]);
}
static void sidl_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->sid_loss_bwd(din[0], din[1], din[2], in[0], in[1], in[2], F(0), F(1) * upstream(be, dout[0]), I(0),
                     (size_t)I(1));
}
// w_i is a stop-gradient: the reference evaluates it at the unperturbed inputs (the first point it
// sees, kept while later calls differ from it only by finite-difference steps), so the finite
// differences see w_i as the constant it is in the backward.
enum { SIDL_MAX = 3 * 64 };
static void sidl_r(const op_params *p, double **in, double **out) {
    static double base[3][SIDL_MAX];
    static int have;
    const int N = I(0), D = I(1), n = N * D;
    int same = have;
    for (int k = 0; k < 3 && same; k++)
        for (int i = 0; i < n && same; i++) same = fabs(in[k][i] - base[k][i]) <= 1e-5 * fmax(1.0, fabs(base[k][i]));
    if (!same) {
        for (int k = 0; k < 3; k++) memcpy(base[k], in[k], (size_t)n * sizeof(double));
        have = 1;
    }
    const double alpha = F(0);
    double tot = 0;
    for (int i = 0; i < N; i++) {
        double w = 0, l = 0;
        for (int k = 0; k < D; k++) w += fabs(base[0][i * D + k] - base[1][i * D + k]);
        w = fmax(w / D, 1e-5);
        for (int k = 0; k < D; k++) {
            const double xg = in[0][i * D + k], yr = in[1][i * D + k], yf = in[2][i * D + k], dd = yr - yf;
            l += dd * ((yr - xg) - alpha * dd);
        }
        tot += l / w;
    }
    out[0][0] = F(1) * tot;
}

// ---------------------------------------------------------------- the table
static op_case cases[] = {
    LINEAR_CASE("linear 5x7->3 bias", 5, 7, 3, 1),
    LINEAR_CASE("linear 1x33->17 no bias", 1, 33, 17, 0),
    LINEAR_CASE("linear 67x19->23 bias", 67, 19, 23, 1),
    CONV_CASE("conv2d 3x3 s1 p1 n=2", 2, 3, 7, 9, 4, 3, 1, 1),
    CONV_CASE("conv2d 3x3 s1 p1 n=1", 1, 5, 6, 5, 3, 3, 1, 1),
    CONV_CASE("conv2d 3x3 s1 p1 n=3", 3, 2, 5, 4, 2, 3, 1, 1),
    CONV_CASE("conv2d 5x5 s1 p2 (shifted-plane path)", 2, 2, 6, 7, 3, 5, 1, 2),
    CONV_CASE("conv2d 3x3 s1 p1 one column", 2, 2, 5, 1, 2, 3, 1, 1),
    CONV_CASE("conv2d 3x3 s1 p0 (per-line path)", 2, 2, 6, 5, 3, 3, 1, 0),
    CONV_CASE("conv2d 3x3 s2 p1 odd", 2, 3, 7, 8, 5, 3, 2, 1),
    CONV_CASE("conv2d 3x3 s2 p0 (vae enc)", 2, 2, 9, 9, 3, 3, 2, 0),
    CONV_CASE("conv2d 3x3 direct kernel 8->16 ch, 24 wide (16- and 8-pixel tiles)", 2, 8, 4, 24, 16, 3, 1, 1),
    CONV_CASE("conv2d 3x3 direct forward, im2col input gradient (3->8 ch)", 2, 3, 3, 16, 8, 3, 1, 1),
    CONV_CASE("conv2d 5x5 p2 direct kernel 8->8 ch", 1, 8, 3, 8, 8, 5, 1, 2),
    CONV_CASE("conv2d 1x1", 3, 5, 6, 5, 2, 1, 1, 0),
    CONV_RECT_CASE("conv2d 1x7 p(0,3) same size", 2, 3, 5, 9, 4, 1, 7, 1, 0, 3),
    CONV_RECT_CASE("conv2d 7x1 p(3,0) same size", 2, 3, 9, 5, 4, 7, 1, 1, 3, 0),
    CONV_RECT_CASE("conv2d 1x3 p(0,1) 8 wide", 2, 4, 3, 8, 8, 1, 3, 1, 0, 1),
    CONV_RECT_CASE("conv2d 3x1 p(1,0) 8 wide", 2, 4, 3, 8, 8, 3, 1, 1, 1, 0),
    CONV_RECT_CASE("conv2d 2x3 s2 p(1,0) (general path)", 2, 3, 7, 8, 3, 2, 3, 2, 1, 0),
    CONV_CASE("conv2d 1x1 n=1", 1, 4, 3, 7, 6, 1, 1, 0),
    GN_CASE("groupnorm G=3 eps1e-5", 2, 6, 5, 3, 1e-5f),
    GN_CASE("groupnorm G=1 eps1e-6", 3, 4, 7, 1, 1e-6f),
    GN_CASE("groupnorm G=C", 2, 5, 9, 5, 1e-5f),
    CONV_CASE("conv2d 1x1 8->12 ch, 16 wide", 2, 8, 3, 16, 12, 1, 1, 0),
    // Winograd F(2x2, 3x3) (>= 8 channels summed): tile rows of 16 tiles (32 wide) and of 8 (16 wide;
    // 16x6 has 3 tile vectors: a block of two, then one of one; 16x2 only the one), pairs of half
    // tile rows (8 wide); output channels past the register tiles in the input gradients (the 5 of
    // 5->12, the 9 of 9->8, the 12 of 12->9 on AVX-512, the 1 of 1->16)
    CONV_CASE("conv2d 3x3 winograd 8->8 ch, 32 wide", 2, 8, 2, 32, 8, 3, 1, 1),
    CONV_CASE("conv2d 3x3 winograd 5->12 ch, 16x6", 2, 5, 6, 16, 12, 3, 1, 1),
    CONV_CASE("conv2d 3x3 winograd 12->9 ch, 8x8", 2, 12, 8, 8, 9, 3, 1, 1),
    CONV_CASE("conv2d 3x3 winograd 1->16 ch, 8x4", 2, 1, 4, 8, 16, 3, 1, 1),
    CONV_CASE("conv2d 3x3 winograd 9->8 ch, 16x2", 3, 9, 2, 16, 8, 3, 1, 1),
    // the Winograd weight gradient (input channels a multiple of 8): 16 and 24 of them (two-vector
    // blocks, then a one-vector one), output channels past the register tiles, several samples
    CONV_CASE("conv2d 3x3 winograd 16->5 ch, 8x8", 3, 16, 8, 8, 5, 3, 1, 1),
    CONV_CASE("conv2d 3x3 winograd 24->6 ch, 16x4", 2, 24, 4, 16, 6, 3, 1, 1),
    GNS_CASE("groupnorm+silu G=3", 2, 6, 5, 3, 1e-5f),
    GNS_CASE("groupnorm+silu G=1 eps1e-6", 3, 4, 7, 1, 1e-6f),
    {.name = "layernorm 4x7", .n_in = 3, .n_out = 3, .in_size = {28, 7, 7}, .out_size = {28, 4, 4},
     .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1, 0, 0}, .p.i = {4, 7}, .p.f = {1e-5f},
     .fwd = ln_f, .bwd = ln_b, .ref = ln_r},
    {.name = "layernorm 3x64", .n_in = 3, .n_out = 3, .in_size = {192, 64, 64}, .out_size = {192, 3, 3},
     .in_diff = {1, 1, 1}, .in_frozen = {0, 1, 1}, .out_loss = {1, 0, 0}, .p.i = {3, 64}, .p.f = {1e-5f},
     .fwd = ln_f, .bwd = ln_b, .ref = ln_r},
    ACT_CASE("silu", SID_ACT_SILU, 37),
    ACT_CASE("gelu (erf)", SID_ACT_GELU, 37),
    ACT_CASE("quick_gelu", SID_ACT_QUICK_GELU, 37),
    {.name = "geglu 3x5", .n_in = 1, .n_out = 1, .in_size = {30}, .out_size = {15}, .in_diff = {1}, .out_loss = {1},
     .in_lo = -3, .in_hi = 3, .p.i = {3, 5}, .fwd = geglu_f, .bwd = geglu_b, .ref = geglu_r},
    {.name = "softmax 4x9", .n_in = 1, .n_out = 1, .in_size = {36}, .out_size = {36}, .in_diff = {1},
     .out_loss = {1}, .in_lo = -3, .in_hi = 3, .p.i = {4, 9}, .fwd = softmax_f, .bwd = softmax_b, .ref = softmax_r},
    ATTN_CASE("attention self 2x13 h2 d8", 2, 13, 13, 2, 8, 0, 1.5f),
    ATTN_CASE("attention cross 2x9->11 h3 d5", 2, 9, 11, 3, 5, 0, 1.5f),
    ATTN_CASE("attention causal 1x17 h2 d4", 1, 17, 17, 2, 4, 1, 1.5f),
    ATTN_CASE("attention tiled 70x300 h1 d4", 1, 70, 300, 1, 4, 0, 1.0f),
    ATTN_CASE("attention tiled causal 1x130 h2 d3", 1, 130, 130, 2, 3, 1, 1.0f),
    POOL_CASE("max pool 3x3 s2 (Inception stem)", 3, 9, 8, 3, 2, 0, SID_POOL_MAX, 0),
    POOL_CASE("max pool 3x3 s1 p1", 2, 5, 6, 3, 1, 1, SID_POOL_MAX, 0),
    POOL_CASE("avg pool 3x3 s1 p1 without padding", 2, 5, 6, 3, 1, 1, SID_POOL_AVG, 0),
    POOL_CASE("avg pool 3x3 s1 p1 with padding", 2, 5, 4, 3, 1, 1, SID_POOL_AVG, 1),
    POOL_CASE("global avg pool 4x4", 3, 4, 4, 4, 1, 0, SID_POOL_AVG, 1),
    {.name = "upsample2x", .n_in = 1, .n_out = 1, .in_size = {60}, .out_size = {240}, .in_diff = {1},
     .out_loss = {1}, .p.i = {3, 4, 5}, .fwd = up_f, .bwd = up_b, .ref = up_r},
    {.name = "concat channels", .n_in = 2, .n_out = 1, .in_size = {30, 20}, .out_size = {50}, .in_diff = {1, 1},
     .out_loss = {1}, .p.i = {2, 3, 2, 5}, .fwd = cat_f, .bwd = cat_b, .ref = cat_r},
    {.name = "transpose NCL<->NLC", .n_in = 1, .n_out = 1, .in_size = {2 * 37 * 35}, .out_size = {2 * 37 * 35},
     .in_diff = {1}, .out_loss = {1}, .p.i = {2, 37, 35}, .fwd = tr_f, .bwd = tr_b, .ref = tr_r},
    {.name = "add", .n_in = 2, .n_out = 1, .in_size = {29, 29}, .out_size = {29}, .in_diff = {1, 1},
     .out_loss = {1}, .p.i = {29}, .fwd = add_f, .bwd = add_b, .ref = add_r},
    {.name = "scale", .n_in = 1, .n_out = 1, .in_size = {29}, .out_size = {29}, .in_diff = {1}, .out_loss = {1},
     .p.i = {29}, .p.f = {-1.75f}, .fwd = scale_f, .bwd = scale_b, .ref = scale_r},
    {.name = "mul", .n_in = 2, .n_out = 1, .in_size = {29, 29}, .out_size = {29}, .in_diff = {1, 1},
     .out_loss = {1}, .p.i = {29}, .fwd = mul_f, .bwd = mul_b, .ref = mul_r},
    {.name = "channel bias (temb)", .n_in = 2, .n_out = 1, .in_size = {42, 6}, .out_size = {42}, .in_diff = {1, 1},
     .in_frozen = {0, 1}, .out_loss = {1}, .p.i = {2, 3, 7}, .fwd = cb_f, .bwd = cb_b, .ref = cb_r},
    {.name = "timestep embedding flip odd", .n_in = 1, .n_out = 1, .in_size = {3}, .out_size = {27}, .in_diff = {1},
     .out_loss = {1}, .in_lo = 0, .in_hi = 999, .p.i = {3, 9, 1}, .p.f = {0, 10000}, .fwd = temb_f, .bwd = temb_b,
     .ref = temb_r, .fwd_tol = 1e-4, .grad_tol = 2e-3},
    {.name = "timestep embedding shift1", .n_in = 1, .n_out = 1, .in_size = {4}, .out_size = {32}, .in_diff = {1},
     .out_loss = {1}, .in_lo = 0, .in_hi = 50, .p.i = {4, 8, 0}, .p.f = {1, 10000}, .fwd = temb_f, .bwd = temb_b,
     .ref = temb_r, .fwd_tol = 1e-4, .grad_tol = 2e-3},
    {.name = "token+position embedding", .n_in = 2, .n_out = 1, .in_size = {7 * 4, 5 * 4}, .out_size = {2 * 5 * 4},
     .in_diff = {1, 1}, .out_loss = {1}, .p.i = {2, 5, 4, 7}, .p.ids = {0, 3, 6, 3, 1, 2, 2, 6, 0, 5},
     .fwd = emb_f, .bwd = emb_b, .ref = emb_r},
    REDUCE_CASE("mse per sample", mse, 3, 11),
    REDUCE_CASE("mean |a-b| per sample", mean_abs, 3, 11),
    REDUCE_CASE("dot per sample", dot, 3, 11),
    {.name = "cfg combine kappa 4.5", .n_in = 2, .n_out = 1, .in_size = {29, 29}, .out_size = {29},
     .in_diff = {1, 1}, .out_loss = {1}, .p.i = {29}, .p.f = {4.5f}, .fwd = cfg_f, .bwd = cfg_b, .ref = cfg_r},
    PERSAMPLE_CASE("add noise per sample", noise, 3, 11, -1, 1),
    PERSAMPLE_CASE("x0 from eps per sample", x0e, 3, 11, 0.4f, 1.2f),
    {.name = "clamp [-0.5, 0.6]", .n_in = 1, .n_out = 1, .in_size = {37}, .out_size = {37}, .in_diff = {1},
     .out_loss = {1}, .p.i = {37}, .p.f = {-0.5f, 0.6f}, .fwd = clamp_f, .bwd = clamp_b, .ref = clamp_r},
    {.name = "dsm loss", .n_in = 2, .n_out = 1, .in_size = {33, 33}, .out_size = {1}, .in_diff = {1, 0},
     .out_loss = {1}, .p.i = {3, 11}, .p.f = {0.25f}, .fwd = dsm_f, .bwd = dsm_b, .ref = dsm_r},
    {.name = "sid generator loss alpha 1.2", .n_in = 3, .n_out = 1, .in_size = {33, 33, 33}, .out_size = {1},
     .in_diff = {1, 1, 1}, .out_loss = {1}, .p.i = {3, 11}, .p.f = {1.2f, 0.25f}, .fwd = sidl_f, .bwd = sidl_b,
     .ref = sidl_r},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static void run_cases_on(const sid_backend *be, const char *label) {
    const double t0 = sid_now();
    for (int i = 0; i < N_CASES; i++) {
        op_report r;
        uint64_t seed = test_seed * 1000003u + (uint64_t)i;
        int bad = op_check(be, &cases[i], seed, &r);
        if (getenv("SID_TEST_VERBOSE"))
            printf("\n  %-10s %-36s fwd %.1e  grad %.1e  frozen %.1e", label, cases[i].name, r.fwd_err, r.grad_err,
                   r.frozen_err);
        if (bad)
            test_fail(__FILE__, __LINE__, "%s/%s: %s (fwd %.2g, grad %.2g, frozen %.2g)", label, cases[i].name, r.where,
                      r.fwd_err, r.grad_err, r.frozen_err);
    }
    if (getenv("SID_TEST_VERBOSE")) printf("\n  %-10s %d cases in %.3f s", label, (int)N_CASES, sid_now() - t0);
}

// Every backend; the CPU once per instruction set this machine can run (ops/cpu_isa.h), each
// against the same double references and finite differences.
static void run_all_cases(void) {
    const char *isa0 = sid_cpu_isa();
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) {
            printf("\n  SKIP backend %s: not usable on this machine", be->name);
            continue;
        }
        if (be != &sid_backend_cpu) {
            run_cases_on(be, be->name);
            continue;
        }
        int i = 0;
        for (const char *isa; (isa = test_next_cpu_isa(&i, NULL));) {
            char label[32];
            snprintf(label, sizeof label, "cpu/%s", isa);
            EXPECT(sid_cpu_isa_set(isa) == 0, "%s", sid_error());
            run_cases_on(be, label);
        }
        EXPECT(sid_cpu_isa_set(isa0) == 0, "%s", sid_error());
    }
}

static void test_ops_forward_and_gradients(void) { run_all_cases(); }

// Same checks with 1 thread: results must not depend on the thread split.
static void test_ops_single_thread(void) {
    int t = sid_threads_get();
    sid_threads_set(1);
    run_all_cases();
    sid_threads_set(t);
}

// The checker must catch a wrong gradient, a wrong forward and a backward
// that overwrites instead of accumulating; otherwise every pass above is void.
static void bad_scale_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->scale_bwd(din[0], dout[0], F(0) * 1.01f, (size_t)I(0));
}
static void bad_scale_f(const sid_backend *be, const op_params *p, float **in, float **out, float **dout) {
    be->scale_fwd(out[0], in[0], F(0) * (1 + 1e-3f), (size_t)I(0));
}
static void overwrite_scale_b(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din) {
    be->scale_fwd(din[0], dout[0], F(0), (size_t)I(0));
}
static void test_checker_can_fail(void) {
    op_case c = {.name = "scale", .n_in = 1, .n_out = 1, .in_size = {29}, .out_size = {29}, .in_diff = {1},
                 .out_loss = {1}, .p.i = {29}, .p.f = {-1.75f}, .fwd = scale_f, .bwd = bad_scale_b, .ref = scale_r};
    op_report r;
    EXPECT(op_check(&sid_backend_cpu, &c, test_seed, &r) && r.grad_bad, "a 1%% gradient error went unnoticed");
    c.bwd = scale_b;
    c.fwd = (void *)bad_scale_f;
    EXPECT(op_check(&sid_backend_cpu, &c, test_seed, &r) && r.fwd_bad, "a 1e-3 forward error went unnoticed");
    c.fwd = scale_f;
    c.bwd = overwrite_scale_b;
    EXPECT(op_check(&sid_backend_cpu, &c, test_seed, &r) && r.grad_bad, "a non-accumulating backward went unnoticed");
    c.bwd = scale_b;
    EXPECT(op_check(&sid_backend_cpu, &c, test_seed, &r) == 0, "the correct op failed: %s", r.where);
}

// diffusers' values for t = 999, dim 320, flip_sin_to_cos (sd-architecture.md 1.3)
static void test_timestep_embedding_sd_vector(void) {
    float t = 999, e[320];
    sid_timestep_embedding_fwd(e, &t, 1, 320, 1, 0, 10000);
    const float want[6] = {0.99965f, 0.802681f, -0.278114f, -0.026461f, 0.596409f, -0.960548f};
    const int at[6] = {0, 1, 2, 160, 161, 162};
    for (int i = 0; i < 6; i++) EXPECT(fabsf(e[at[i]] - want[i]) < 2e-5f, "emb[%d] = %.6f, want %.6f", at[i], e[at[i]], want[i]);
}

// ---------------------------------------------------------------- backends agree at real sizes
// Each non-CPU backend against the CPU on shapes of the real networks, where kernels take
// their tiled and multi-block paths that the small cases above never reach.
static op_case big_cases[] = {
    LINEAR_CASE("linear SD attn proj", 1024, 320, 320, 1),
    CONV_CASE("conv2d 64ch 32x32 n4", 4, 64, 32, 32, 64, 3, 1, 1),
    CONV_CASE("conv2d 320ch 16x16 s2", 2, 320, 16, 16, 320, 3, 2, 1),
    CONV_CASE("conv2d 1x1 640->320", 2, 640, 16, 16, 320, 1, 1, 0),
    GN_CASE("groupnorm SD 320ch", 2, 320, 1024, 32, 1e-5f),
    GNS_CASE("groupnorm+silu SD 320ch", 2, 320, 1024, 32, 1e-5f),
    {.name = "layernorm SD 4096x320", .n_in = 3, .n_out = 3, .in_size = {4096 * 320, 320, 320},
     .out_size = {4096 * 320, 4096, 4096}, .in_diff = {1, 1, 1}, .out_loss = {1, 0, 0}, .p.i = {4096, 320},
     .p.f = {1e-5f}, .fwd = ln_f, .bwd = ln_b, .ref = ln_r},
    ATTN_CASE("attention SD self 1024 h8 d40", 1, 1024, 1024, 8, 40, 0, 1.0f),
    ATTN_CASE("attention SD cross 1024x77 h8 d80", 2, 1024, 77, 8, 80, 0, 1.0f),
    ATTN_CASE("attention CLIP causal 77 h12 d64", 2, 77, 77, 12, 64, 1, 1.0f),
    ATTN_CASE("attention SD mid 64 h8 d160", 2, 64, 64, 8, 160, 0, 1.0f),
    {.name = "geglu SD 1024x1280", .n_in = 1, .n_out = 1, .in_size = {1024 * 2560}, .out_size = {1024 * 1280},
     .in_diff = {1}, .out_loss = {1}, .p.i = {1024, 1280}, .fwd = geglu_f, .bwd = geglu_b, .ref = geglu_r},
    ACT_CASE("silu 1M", SID_ACT_SILU, 1 << 20),
    REDUCE_CASE("mean |a-b| 16x16384", mean_abs, 16, 16384),
};

static double max_rel_diff(const float *a, const float *b, size_t n);

// exact: the outputs must be bit-identical (the guard device runs the CPU kernels). isa: the second
// side runs the CPU kernels of that instruction set (be is then the CPU), the first the current ones.
static void cross_check(const sid_backend *be, const op_case *c, uint64_t seed, int exact, const char *isa) {
    const char *isa0 = sid_cpu_isa();
    sid_rng rng = sid_rng_new(seed);
    float *h[MAX_IO] = {0}, *dout[MAX_IO] = {0};
    const sid_backend *bs[2] = {&sid_backend_cpu, be};
    float *res[2][2 * MAX_IO] = {{0}};
    for (int k = 0; k < c->n_in; k++) {
        h[k] = sid_malloc(c->in_size[k] * sizeof(float));
        sid_rng_uniform(&rng, h[k], c->in_size[k]);
        for (size_t i = 0; i < c->in_size[k]; i++) h[k][i] = (c->in_lo == c->in_hi ? -1 : c->in_lo) + h[k][i] * (c->in_lo == c->in_hi ? 2 : c->in_hi - c->in_lo);
    }
    for (int k = 0; k < c->n_out; k++) {
        dout[k] = sid_calloc(c->out_size[k] * sizeof(float));
        if (c->out_loss[k]) sid_rng_normal(&rng, dout[k], c->out_size[k]);
    }
    for (int b = 0; b < 2; b++) {
        const sid_backend *x = bs[b];
        if (isa) EXPECT(sid_cpu_isa_set(b ? isa : isa0) == 0, "%s", sid_error());
        float *in[MAX_IO] = {0}, *out[MAX_IO] = {0}, *dO[MAX_IO] = {0}, *dI[MAX_IO] = {0};
        for (int k = 0; k < c->n_in; k++) {
            in[k] = x->alloc(c->in_size[k] * sizeof(float));
            x->upload(in[k], h[k], c->in_size[k] * sizeof(float));
            if (c->in_diff[k]) dI[k] = x->alloc(c->in_size[k] * sizeof(float));
        }
        for (int k = 0; k < c->n_out; k++) {
            out[k] = x->alloc(c->out_size[k] * sizeof(float));
            dO[k] = x->alloc(c->out_size[k] * sizeof(float));
            x->upload(dO[k], dout[k], c->out_size[k] * sizeof(float));
        }
        c->fwd(x, &c->p, in, out);
        c->bwd(x, &c->p, in, out, dO, dI);
        x->sync();
        res[b][0] = sid_malloc(c->out_size[0] * sizeof(float));
        x->download(res[b][0], out[0], c->out_size[0] * sizeof(float));
        for (int k = 0; k < c->n_in; k++)
            if (dI[k]) {
                res[b][1 + k] = sid_malloc(c->in_size[k] * sizeof(float));
                x->download(res[b][1 + k], dI[k], c->in_size[k] * sizeof(float));
            }
        for (int k = 0; k < MAX_IO; k++) {
            if (in[k]) x->free(in[k]);
            if (out[k]) x->free(out[k]);
            if (dO[k]) x->free(dO[k]);
            if (dI[k]) x->free(dI[k]);
        }
    }
    if (isa) EXPECT(sid_cpu_isa_set(isa0) == 0, "%s", sid_error());
    char label[48];
    if (isa) snprintf(label, sizeof label, "cpu/%s", isa);
    else snprintf(label, sizeof label, "%s", be->name);
    const char *ref = isa ? isa0 : "the CPU";
    double e = max_rel_diff(res[1][0], res[0][0], c->out_size[0]);
    if (getenv("SID_TEST_VERBOSE")) printf("\n  %-10s %-36s vs %s: fwd %.1e", label, c->name, ref, e);
    EXPECT(e <= (exact ? 0 : 2e-5), "%s/%s: forward differs from %s by %.3g", label, c->name, ref, e);
    for (int k = 0; k < c->n_in; k++) {
        if (!res[0][1 + k]) continue;
        e = max_rel_diff(res[1][1 + k], res[0][1 + k], c->in_size[k]);
        if (getenv("SID_TEST_VERBOSE")) printf(" grad%d %.1e", k, e);
        EXPECT(e <= (exact ? 0 : 1e-4), "%s/%s: gradient of input %d differs from %s by %.3g", label, c->name, k, ref,
               e);
    }
    for (int k = 0; k < MAX_IO; k++) free(h[k]), free(dout[k]);
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 2 * MAX_IO; k++) free(res[b][k]);
}

static void test_backends_agree_at_scale(void) {
    int others = 0;
    for (int b = 1; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        others += be != &sid_backend_guard;
        for (size_t i = 0; i < sizeof big_cases / sizeof big_cases[0]; i++)
            cross_check(be, &big_cases[i], test_seed + i, be == &sid_backend_guard, NULL);
    }
    if (!others) printf("\n  SKIP no backend besides the CPU and the guard device is usable here (no GPU)");
}

// The CPU kernels of every other instruction set this machine runs against the current ones on
// the real networks' shapes (tiled paths, vector tails, the thread split), within the tolerance
// of float summation order.
static void test_isas_agree_at_scale(void) {
    int others = 0;
    int i = 0;
    for (const char *isa; (isa = test_next_cpu_isa(&i, sid_cpu_isa()));) {
        others++;
        for (size_t j = 0; j < sizeof big_cases / sizeof big_cases[0]; j++)
            cross_check(&sid_backend_cpu, &big_cases[j], test_seed + j, 0, isa);
    }
    if (!others) printf("\n  SKIP no other CPU instruction set is usable here");
}

// The guard device runs the CPU kernels: every small case bit-identical to the CPU, through real
// (counted) transfers, and every guard buffer the checks allocate is freed again.
static void test_guard_matches_cpu_bitwise(void) {
    size_t live0, bytes0, live1, bytes1, ups, downs;
    sid_guard_live(&live0, &bytes0);
    sid_guard_stats_reset();
    for (int i = 0; i < N_CASES; i++) cross_check(&sid_backend_guard, &cases[i], test_seed * 7919u + (uint64_t)i, 1, NULL);
    sid_guard_stats(&ups, NULL, &downs, NULL);
    sid_guard_live(&live1, &bytes1);
    EXPECT(ups >= N_CASES && downs >= N_CASES, "%zu uploads and %zu downloads counted for %d cases", ups, downs,
           (int)N_CASES);
    EXPECT(live1 == live0 && bytes1 == bytes0, "guard buffers leaked: %zu (%zu bytes) live before, %zu (%zu bytes) after",
           live0, bytes0, live1, bytes1);
}

// ---------------------------------------------------------------- against PyTorch
// tests/data/ops_torch.safetensors is written by tools/reference/ops_reference.py for the same
// case names and parameters: inputs, PyTorch's output, an upstream gradient and PyTorch's
// input gradients. Each backend must reproduce them within float32 rounding.
static double max_rel_diff(const float *a, const float *b, size_t n) {
    double scale = 1e-6, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err)) err = e;
    }
    return err / scale;
}

static float *load_case_tensor(const sid_safetensors *st, const char *cs, const char *what, int k, size_t want) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s%d", cs, what, k);
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) return test_fail(__FILE__, __LINE__, "%s: no tensor '%s' (regenerate with tools/reference)", st->path, name), NULL;
    size_t n = (size_t)sid_shape_numel(t->ndim, t->shape);
    if (n != want) return test_fail(__FILE__, __LINE__, "'%s' has %zu values, the C case wants %zu", name, n, want), NULL;
    float *h = sid_malloc(n * sizeof(float) + 4);
    if (sid_st_read_f32(st, t, h)) test_fail(__FILE__, __LINE__, "%s", sid_error());
    return h;
}

static void compare_with_torch(const sid_backend *be, const sid_safetensors *st, const op_case *c) {
    float *hin[MAX_IO] = {0}, *bin[MAX_IO] = {0}, *bout[MAX_IO] = {0}, *bdout[MAX_IO] = {0}, *bdin[MAX_IO] = {0};
    float *want = load_case_tensor(st, c->name, "out", 0, c->out_size[0]);
    float *dout = load_case_tensor(st, c->name, "dout", 0, c->out_size[0]);
    int ok = want && dout;
    char name[48];  // the backend, and for the CPU its instruction set
    if (be == &sid_backend_cpu) snprintf(name, sizeof name, "cpu/%s", sid_cpu_isa());
    else snprintf(name, sizeof name, "%s", be->name);
    for (int k = 0; k < c->n_in && ok; k++) ok = (hin[k] = load_case_tensor(st, c->name, "in", k, c->in_size[k])) != NULL;
    if (ok) {
        for (int k = 0; k < c->n_in; k++) {
            bin[k] = be->alloc(c->in_size[k] * sizeof(float) + 4);
            be->upload(bin[k], hin[k], c->in_size[k] * sizeof(float));
            if (c->in_diff[k]) bdin[k] = be->alloc(c->in_size[k] * sizeof(float) + 4);
        }
        for (int k = 0; k < c->n_out; k++) {
            bout[k] = be->alloc(c->out_size[k] * sizeof(float) + 4);
            bdout[k] = be->alloc(c->out_size[k] * sizeof(float) + 4);
        }
        be->upload(bdout[0], dout, c->out_size[0] * sizeof(float));
        c->fwd(be, &c->p, bin, bout);
        float *got = sid_malloc(c->out_size[0] * sizeof(float) + 4);
        be->download(got, bout[0], c->out_size[0] * sizeof(float));
        const double ftol = c->fwd_tol ? c->fwd_tol : 1e-5, gtol = c->grad_tol ? c->grad_tol : 1e-4;
        double e = max_rel_diff(got, want, c->out_size[0]);
        if (getenv("SID_TEST_VERBOSE")) printf("\n  %-10s %-36s torch fwd %.1e", name, c->name, e);
        EXPECT(e <= ftol, "%s/%s: forward differs from PyTorch by %.3g (relative)", name, c->name, e);
        free(got);
        c->bwd(be, &c->p, bin, bout, bdout, bdin);
        for (int k = 0; k < c->n_in; k++) {
            if (!c->in_diff[k]) continue;
            float *g = load_case_tensor(st, c->name, "din", k, c->in_size[k]);
            float *h = sid_malloc(c->in_size[k] * sizeof(float) + 4);
            be->download(h, bdin[k], c->in_size[k] * sizeof(float));
            if (g) {
                e = max_rel_diff(h, g, c->in_size[k]);
                if (getenv("SID_TEST_VERBOSE")) printf(" grad%d %.1e", k, e);
                EXPECT(e <= gtol, "%s/%s: gradient of input %d differs from PyTorch by %.3g", name, c->name, k, e);
            }
            free(g), free(h);
        }
    }
    for (int k = 0; k < MAX_IO; k++) {
        free(hin[k]);
        if (bin[k]) be->free(bin[k]);
        if (bout[k]) be->free(bout[k]);
        if (bdout[k]) be->free(bdout[k]);
        if (bdin[k]) be->free(bdin[k]);
    }
    free(want), free(dout);
}

static void test_ops_match_pytorch(void) {
    const char *dir = getenv("SID_TEST_DATA") ? getenv("SID_TEST_DATA") : "tests/data";
    char path[512];
    snprintf(path, sizeof path, "%s/ops_torch.safetensors", dir);
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    for (int b = 0; sid_backend_at(b); b++)
        if (sid_backend_at(b)->available())
            for (int i = 0; i < N_CASES; i++) compare_with_torch(sid_backend_at(b), &st, &cases[i]);
    // the CPU's other instruction sets against the same files
    const char *isa0 = sid_cpu_isa();
    int j = 0;
    for (const char *isa; (isa = test_next_cpu_isa(&j, isa0));) {
        EXPECT(sid_cpu_isa_set(isa) == 0, "%s", sid_error());
        for (int i = 0; i < N_CASES; i++) compare_with_torch(&sid_backend_cpu, &st, &cases[i]);
    }
    EXPECT(sid_cpu_isa_set(isa0) == 0, "%s", sid_error());
    sid_st_close(&st);
}

// fill (no gradient, so not an op case): every backend writes exactly the n values it is given.
static void test_fill(void) {
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        float *d = be->alloc(37 * sizeof(float)), h[37];
        be->fill(d, -2.5f, 36);
        be->download(h, d, sizeof h);
        int ok = h[36] == 0.0f;
        for (int i = 0; i < 36; i++) ok &= h[i] == -2.5f;
        EXPECT(ok, "backend %s: fill wrote other values", be->name);
        be->free(d);
    }
}

// The work counter behind the benchmarks' "fraction of the GEMM peak": exact products counted.
// The Winograd path keeps each thread's transformed kernels between calls (conv2d.c): an
// optimizer step changes the weights in place, at the same address, and the next call, forward
// and input gradient, must use the new ones.
static void test_conv_sees_weights_changed_in_place(void) {
    const sid_conv2d_shape s = {2, 16, 8, 8, 16, 3, 1, 1};
    const size_t nx = 2 * 16 * 64, nw = 16 * 16 * 9;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *w2 = malloc(nw * 4), *y = malloc(nx * 4), *yref = malloc(nx * 4);
    float *dx = calloc(nx, 4), *dxref = calloc(nx, 4);
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    for (size_t i = 0; i < nw; i++) w[i] = (float)((i * 13) % 11) / 11.0f - 0.5f, w2[i] = 0.25f - w[i];
    sid_conv2d_fwd(y, x, w, NULL, &s);
    sid_conv2d_bwd(dx, NULL, NULL, x, x, w, &s);
    sid_conv2d_fwd(yref, x, w2, NULL, &s);  // the new weights at another address: a fresh transform
    sid_conv2d_bwd(dxref, NULL, NULL, x, x, w2, &s);
    memcpy(w, w2, nw * 4);
    memset(dx, 0, nx * 4);
    sid_conv2d_fwd(y, x, w, NULL, &s);
    sid_conv2d_bwd(dx, NULL, NULL, x, x, w, &s);
    EXPECT(!memcmp(y, yref, nx * 4), "conv2d forward used the weights from before they changed in place");
    EXPECT(!memcmp(dx, dxref, nx * 4), "conv2d input gradient used the weights from before they changed in place");
    free(x), free(w), free(w2), free(y), free(yref), free(dx), free(dxref);
}

static void test_flop_counter(void) {
    const sid_conv2d_shape s = {2, 3, 5, 6, 4, 3, 1, 1};  // 2 samples, 3->4 channels, 5x6, 3x3 pad 1
    const size_t nin = 2 * 3 * 5 * 6, nw = 4 * 3 * 9, nout = 2 * 4 * 5 * 6;
    float *x = calloc(nin, 4), *w = calloc(nw, 4), *b = calloc(4, 4), *y = calloc(nout, 4), *dx = calloc(nin, 4);
    float *dw = calloc(nw, 4);
    const double conv = 2.0 * 2 * 4 * 30 * 27;
    double f0 = sid_ops_flops();
    sid_conv2d_fwd(y, x, w, b, &s);
    EXPECT(sid_ops_flops() - f0 == conv, "conv2d forward counted %g flops, want %g", sid_ops_flops() - f0, conv);
    f0 = sid_ops_flops();
    sid_conv2d_bwd(dx, dw, NULL, y, x, w, &s);
    EXPECT(sid_ops_flops() - f0 == 2 * conv, "conv2d backward counted %g flops, want %g", sid_ops_flops() - f0, 2 * conv);
    f0 = sid_ops_flops();
    sid_conv2d_bwd(dx, NULL, NULL, y, x, w, &s);  // input gradient only: half the work
    EXPECT(sid_ops_flops() - f0 == conv, "input-only conv2d backward counted %g flops, want %g", sid_ops_flops() - f0, conv);
    f0 = sid_ops_flops();
    sid_linear_fwd(y, x, w, NULL, 5, 6, 4);
    EXPECT(sid_ops_flops() - f0 == 2.0 * 5 * 6 * 4, "linear forward counted %g flops", sid_ops_flops() - f0);
    free(x), free(w), free(b), free(y), free(dx), free(dw);
}


// ---------------------------------------------------------------- SiD-LSG ops without a gradient
// Each on every usable backend: the CPU and the guard device exactly, others to rounding.
static int exact_backend(const sid_backend *be) { return be == &sid_backend_cpu || be == &sid_backend_guard; }
static float *on_be(const sid_backend *be, const void *h, size_t bytes) {
    float *d = be->alloc(bytes);
    be->upload(d, h, bytes);
    return d;
}

static void test_sid_nan_rows(void) {
    enum { N = 5, D = 7 };
    float x[N * D], flags[N] = {0, 0, 1, 0, 0};
    for (int i = 0; i < N * D; i++) x[i] = 0.1f * (float)i - 1;
    x[0 * D + 3] = INFINITY;   // an infinity is not a NaN
    x[1 * D + 6] = NAN;        // last element of a row
    x[3 * D + 0] = -NAN;       // first element
    const float want[N] = {0, 1, 1, 1, 0};  // row 2 was already flagged
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        float *dx = on_be(be, x, sizeof x), *df = on_be(be, flags, sizeof flags), got[N];
        be->nan_rows(df, dx, N, D);
        be->sync();
        be->download(got, df, sizeof got);
        for (int i = 0; i < N; i++) EXPECT(got[i] == want[i], "%s: nan_rows flag %d = %g, want %g", be->name, i, got[i], want[i]);
        be->free(dx), be->free(df);
    }
}

static void test_sid_sanitize(void) {
    enum { n = 70001 };  // past the CPU's parallel threshold and over several GPU blocks
    float *x = sid_malloc(n * sizeof(float)), *want = sid_malloc(n * sizeof(float)), *got = sid_malloc(n * sizeof(float));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        x[i] = want[i] = (float)(i % 101) - 50;
        if (i % 997 == 3) x[i] = NAN, want[i] = 0, bad++;
        else if (i % 1009 == 5) x[i] = INFINITY, want[i] = 1e5f, bad++;
        else if (i % 1013 == 7) x[i] = -INFINITY, want[i] = -1e5f, bad++;
    }
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        const double c0 = 2;
        float *dx = on_be(be, x, n * sizeof(float));
        double *dc = (double *)on_be(be, &c0, sizeof c0), count;
        be->sanitize(dx, n, 1e5f, -1e5f, dc);
        be->sanitize(dx, n, 1e5f, -1e5f, NULL);  // a NULL count is allowed
        be->sync();
        be->download(got, dx, n * sizeof(float));
        be->download(&count, dc, sizeof count);
        EXPECT(count == c0 + bad, "%s: sanitize counted %g, want %g", be->name, count - c0, (double)bad);
        EXPECT(memcmp(got, want, n * sizeof(float)) == 0, "%s: sanitize wrote other values", be->name);
        be->free(dx), be->free(dc);
    }
    float *y = sid_malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    EXPECT(sid_nan_to_num(y, n, 1e5f, -1e5f) == (size_t)bad && memcmp(y, want, n * sizeof(float)) == 0,
           "sid_nan_to_num no longer matches the op");
    free(x), free(want), free(got), free(y);
}

// Three steps of Adam, AdamW and beta1 = 0 (no m) against sid_adam_step on host copies.
static void test_sid_adam(void) {
    enum { n = 1000 };
    const sid_adam_cfg cfgs[3] = {{.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
                                  {.lr = 3e-4f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.05f, .decoupled = 1},
                                  {.lr = 2e-5f, .beta1 = 0, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f}};
    float *w0 = sid_malloc(n * 4), *g = sid_malloc(3 * n * 4), *w = sid_malloc(n * 4), *m = sid_malloc(n * 4);
    float *v = sid_malloc(n * 4), *got_w = sid_malloc(n * 4), *got_m = sid_malloc(n * 4), *got_v = sid_malloc(n * 4);
    sid_rng rng = sid_rng_new(test_seed ^ 0xadau);
    sid_rng_normal(&rng, w0, n);
    sid_rng_normal(&rng, g, 3 * n);
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        for (int c = 0; c < 3; c++) {
            const sid_adam_cfg *a = &cfgs[c];
            const int use_m = a->beta1 != 0;
            memcpy(w, w0, n * 4), memset(m, 0, n * 4), memset(v, 0, n * 4);
            float *dw = on_be(be, w0, n * 4), *dm = use_m ? be->alloc(n * 4) : NULL, *dv = be->alloc(n * 4);
            float *dg = be->alloc(n * 4);
            for (int step = 1; step <= 3; step++) {
                sid_adam_step(w, g + (size_t)(step - 1) * n, use_m ? m : NULL, v, n, a, step);
                be->upload(dg, g + (size_t)(step - 1) * n, n * 4);
                be->adam(dw, dg, dm, dv, n, a->lr, a->beta1, a->beta2, a->eps, a->weight_decay, a->decoupled, step);
            }
            be->sync();
            be->download(got_w, dw, n * 4), be->download(got_v, dv, n * 4);
            if (dm) be->download(got_m, dm, n * 4);
            if (exact_backend(be)) {
                EXPECT(memcmp(got_w, w, n * 4) == 0 && memcmp(got_v, v, n * 4) == 0 &&
                           (!use_m || memcmp(got_m, m, n * 4) == 0),
                       "%s: adam config %d differs from sid_adam_step", be->name, c);
            } else {
                const double e = fmax(max_rel_diff(got_w, w, n), max_rel_diff(got_v, v, n));
                EXPECT(e <= 1e-6, "%s: adam config %d differs from sid_adam_step by %.3g", be->name, c, e);
            }
            be->free(dw), be->free(dv), be->free(dg);
            if (dm) be->free(dm);
        }
    }
    free(w0), free(g), free(w), free(m), free(v), free(got_w), free(got_m), free(got_v);
}

static void test_sid_ema(void) {
    enum { n = 777 };
    float e0[n], p[n], want[n], got[n];
    sid_rng rng = sid_rng_new(test_seed ^ 0xe3au);
    sid_rng_normal(&rng, e0, n);
    sid_rng_normal(&rng, p, n);
    memcpy(want, e0, sizeof want);
    sid_ema_update(want, p, n, 0.9993f);
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        float *de = on_be(be, e0, sizeof e0), *dp = on_be(be, p, sizeof p);
        be->ema(de, dp, n, 0.9993f);
        be->sync();
        be->download(got, de, sizeof got);
        const double e = max_rel_diff(got, want, n);
        EXPECT(exact_backend(be) ? memcmp(got, want, sizeof got) == 0 : e <= 1e-6, "%s: ema differs by %.3g", be->name, e);
        be->free(de), be->free(dp);
    }
}

static void test_sid_gather_rows(void) {
    enum { rows = 5, row = 7, m = 6 };
    float table[rows * row], got[m * row + 1];
    for (int i = 0; i < rows * row; i++) table[i] = (float)i * 0.5f - 3;
    const int32_t idx[m] = {4, 0, 4, 2, 1, 3};
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available()) continue;
        float *dt = on_be(be, table, sizeof table), *dout = be->alloc(sizeof got);
        int32_t *di = (int32_t *)on_be(be, idx, sizeof idx);
        be->gather_rows(dout, dt, di, m, row);
        be->sync();
        be->download(got, dout, sizeof got);
        int ok = got[m * row] == 0;  // nothing past the m rows
        for (int i = 0; i < m; i++) ok &= memcmp(got + i * row, table + idx[i] * row, row * sizeof(float)) == 0;
        EXPECT(ok, "%s: gather_rows copied other values", be->name);
        be->free(dt), be->free(dout), be->free(di);
    }
}

TEST_LIST(T(test_fill), T(test_flop_counter), T(test_conv_sees_weights_changed_in_place), T(test_checker_can_fail), T(test_ops_match_pytorch), T(test_backends_agree_at_scale), T(test_isas_agree_at_scale), T(test_guard_matches_cpu_bitwise), T(test_timestep_embedding_sd_vector), T(test_ops_forward_and_gradients),
          T(test_ops_single_thread), T(test_sid_nan_rows), T(test_sid_sanitize), T(test_sid_adam),
          T(test_sid_ema), T(test_sid_gather_rows))
TEST_MAIN("ops")
