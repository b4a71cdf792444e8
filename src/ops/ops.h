// The op set: forward and backward of every layer the Stable Diffusion family
// needs, on the CPU (OpenBLAS + OpenMP). Backends implement the same
// signatures (backend.h); the CPU versions are the reference.
//
// Conventions
// - Activations are NCHW; token sequences are [B, N, C] row-major; weights keep
//   the PyTorch/diffusers layout: linear W[out, in], conv W[Cout, Cin, kh, kw].
// - Backward functions ACCUMULATE (+=) into every gradient they are given, so
//   residual fan-out needs no extra adds; a NULL gradient is not computed, which
//   is how a frozen network skips its weight gradients.
// - Ops are called from one thread at a time and parallelise inside.
#ifndef SID_OPS_H
#define SID_OPS_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- work counter: floating-point operations of the matrix products (linear, conv2d,
// attention; 2 per multiply-add) done by the CPU ops since the start, for benchmarks that
// report a fraction of the GEMM peak. Everything else (norms, activations) is not counted.
double sid_ops_flops(void);
void sid_ops_flops_add(double flops);

// ---- linear: out[M,N] = in[M,K] W[N,K]^T + b[N] (b may be NULL)
void sid_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N);
void sid_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    int M, int K, int N);

// ---- conv2d: kernel k x k, zero padding pad, stride s; b may be NULL. A rectangular kernel
// (Inception's 1x7, 7x1, 1x3, 3x1) sets kw and pad_w: kernel k rows x kw columns, padding pad
// rows and pad_w columns. kw == 0 is the square kernel (pad_w is then ignored), so that the
// eight-field initialisers of square convs stay valid.
typedef struct {
    int n, cin, h, w, cout, k, stride, pad;
    int kw, pad_w;
} sid_conv2d_shape;
static inline int sid_conv2d_kw(const sid_conv2d_shape *s) { return s->kw ? s->kw : s->k; }
static inline int sid_conv2d_padw(const sid_conv2d_shape *s) { return s->kw ? s->pad_w : s->pad; }
static inline int sid_conv2d_hout(const sid_conv2d_shape *s) { return (s->h + 2 * s->pad - s->k) / s->stride + 1; }
static inline int sid_conv2d_wout(const sid_conv2d_shape *s) {
    return (s->w + 2 * sid_conv2d_padw(s) - sid_conv2d_kw(s)) / s->stride + 1;
}
// Taps per output channel and input channel (k * kw).
static inline int sid_conv2d_taps(const sid_conv2d_shape *s) { return s->k * sid_conv2d_kw(s); }
void sid_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s);
void sid_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    const sid_conv2d_shape *s);

// ---- group norm over [N, C, HW] in G groups; saves mean, rstd [N*G] for backward
void sid_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int N, int C, int HW, int G, float eps);
void sid_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G);
// ---- SiLU(group norm): out = silu(gn(in)), the norm-then-activation of every ResNet block in one
// pass. The normalised values are not kept: backward recomputes them from in, the statistics and
// gamma/beta, so a caller saves the input and [N*G] statistics only.
void sid_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps);
void sid_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *beta, const float *mean, const float *rstd, int N, int C,
                            int HW, int G);

// ---- layer norm over the last dim of [M, C]; saves mean, rstd [M]
void sid_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int M, int C, float eps);
void sid_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int M, int C);

// ---- point-wise activations, n elements; backward reads the forward input
typedef enum { SID_ACT_SILU, SID_ACT_GELU, SID_ACT_QUICK_GELU } sid_act;
void sid_act_fwd(sid_act a, float *out, const float *in, size_t n);
void sid_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n);

// ---- GEGLU: in [M, 2H] = [value | gate] -> out [M, H] = value * gelu(gate)
void sid_geglu_fwd(float *out, const float *in, int M, int H);
void sid_geglu_bwd(float *din, const float *dout, const float *in, int M, int H);

// ---- softmax over the last dim of [M, C]; backward reads the forward output
void sid_softmax_fwd(float *out, const float *in, int M, int C);
void sid_softmax_bwd(float *din, const float *dout, const float *out, int M, int C);

// ---- multi-head attention, heads = contiguous channel slices of width dh:
// q [B, Nq, H*dh], k and v [B, Nk, H*dh] -> out [B, Nq, H*dh], scale dh^-1/2.
// Flash-style: tiles over keys with an online softmax, saves only the row
// log-sum-exp lse [B, H, Nq], and backward recomputes the probabilities tile by
// tile, so memory grows with N, never with Nq*Nk. causal masks key j > query i.
void sid_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq,
                       int Nk, int H, int dh, int causal);
void sid_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                       int causal);

// ---- shapes
// nearest-neighbour 2x upsampling of [NC, H, W] planes -> [NC, 2H, 2W]
void sid_upsample2x_fwd(float *out, const float *in, int NC, int H, int W);
void sid_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W);
// channel concat of a [N, Ca, HW] and b [N, Cb, HW] -> [N, Ca+Cb, HW]; backward splits
// ---- 2-D pooling of [NC, H, W] planes: window k x k, stride, zero padding pad, floor output size
// (PyTorch's max_pool2d / avg_pool2d with ceil_mode off). A padded cell never wins a max; an average
// divides by k * k when count_pad, else by the cells inside the image (count_include_pad=False).
// A window of the whole plane (k = H = W, stride 1, pad 0) is global average pooling. Max backward
// sends each output's gradient to the first maximum of its window in row-major order.
typedef enum { SID_POOL_MAX, SID_POOL_AVG } sid_pool_kind;
typedef struct {
    int nc, h, w, k, stride, pad;
    sid_pool_kind kind;
    int count_pad;
} sid_pool2d_shape;
static inline int sid_pool2d_hout(const sid_pool2d_shape *s) { return (s->h + 2 * s->pad - s->k) / s->stride + 1; }
static inline int sid_pool2d_wout(const sid_pool2d_shape *s) { return (s->w + 2 * s->pad - s->k) / s->stride + 1; }
void sid_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s);
void sid_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s);

void sid_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW);
void sid_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW);
// [N, C, L] <-> [N, L, C] (NCHW <-> token sequence); each is the other's backward
void sid_transpose_fwd(float *out, const float *in, int N, int R, int C);  // [N,R,C] -> [N,C,R]
void sid_transpose_bwd(float *din, const float *dout, int N, int R, int C);

// ---- element-wise
// x[0..n) = value: zeroing gradient buffers and arenas in the backend's memory (no backward).
void sid_fill(float *x, float value, size_t n);
void sid_add_fwd(float *out, const float *a, const float *b, size_t n);
void sid_add_bwd(float *da, float *db, const float *dout, size_t n);
void sid_scale_fwd(float *out, const float *in, float alpha, size_t n);
void sid_scale_bwd(float *din, const float *dout, float alpha, size_t n);
void sid_mul_fwd(float *out, const float *a, const float *b, size_t n);
void sid_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n);
// out[N, C, HW] = in + bias[N, C] broadcast over HW (the time embedding in each resnet)
void sid_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW);
void sid_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW);

// ---- embeddings
// Sinusoidal timestep embedding as diffusers' get_timestep_embedding:
// freq_j = exp(-ln(max_period) j / (half - freq_shift)), [sin | cos] or, flipped, [cos | sin];
// an odd dim gets a zero last column. Backward gives d/dt (t is usually not differentiated).
void sid_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                                float freq_shift, float max_period);
void sid_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim,
                                int flip_sin_to_cos, float freq_shift, float max_period);
// out[B, T, C] = tok[ids[b, t]] + pos[t]; ids must be in [0, V)
void sid_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T, int C);
void sid_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C);

// ---- per-sample reductions over [N, D] (losses; SiD's weight and dot terms)
// mse: mean_d (a-b)^2; mean_abs: mean_d |a-b|; dot: sum_d a*b
void sid_mse_fwd(float *loss, const float *a, const float *b, int N, int D);
void sid_mse_bwd(float *da, float *db, const float *dloss, const float *a, const float *b, int N, int D);
void sid_mean_abs_fwd(float *out, const float *a, const float *b, int N, int D);
void sid_mean_abs_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D);
void sid_dot_fwd(float *out, const float *a, const float *b, int N, int D);
void sid_dot_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D);

// ---- SiD-LSG arithmetic. Per-sample coefficients a, s are [N] arrays in the backend's memory;
// tensors are [N, D]. Backward functions accumulate (+=) into each non-NULL gradient.
// CFG: out = u + kappa (c - u), computed as `u + kappa * (c - u)` in float (as sid_cfg_combine in
// src/diffusion/ddim.c); backward: du += (1 - kappa) dout, dc += kappa dout.
void sid_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n);
void sid_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n);
// x_t = a[i] x0 + s[i] eps; backward dx0 += a[i] dxt, deps += s[i] dxt.
void sid_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N, size_t D);
void sid_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N, size_t D);
// x0 = (x_t - s[i] eps) / a[i] (a division, as sid_x0_from_eps in src/diffusion/schedule.c);
// backward dxt += dx0 / a[i], deps += -(s[i] / a[i]) dx0.
void sid_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N, size_t D);
void sid_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N, size_t D);
// clamp to [lo, hi]; backward din += dout where lo < in < hi strictly (torch.clamp's gradient in torch 2.x
// as measured: zero at the bounds; see sid_clip_x0_backward in src/diffusion/schedule.c and match it).
void sid_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n);
void sid_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n);
// The fake net's denoising loss: *loss += scale * sum (eps_hat - eps)^2 (accumulated in double per
// sample then summed, as src/sid/distill.c does); backward deps_hat += 2 scale (eps_hat - eps).
void sid_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D);
void sid_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D);
// The SiD generator loss (see sid_distill_gen_round in src/sid/distill.c for the exact arithmetic to
// reproduce): per sample w_i = max(mean_k |xg - yr| (in double), 1e-5), a stop-gradient;
// dd = yr - yf, e = (yr - xg) - alpha dd; *loss += scale * sum_i (sum_k dd e in double) / w_i;
// backward with kw = (float)(scale / w_i): dxg += -kw dd, dyr += kw (e + (1 - alpha) dd),
// dyf += kw (alpha dd - e).
void sid_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale, int N,
                      size_t D);
void sid_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf, float alpha,
                      float scale, int N, size_t D);
// flags[i] = 1 when flags[i] != 0 or row i of x has a NaN, else 0 (so several tensors OR together).
void sid_nan_rows(float *flags, const float *x, int N, size_t D);
// NaN -> 0, +inf -> posinf, -inf -> neginf; *count += how many were replaced.
void sid_sanitize(float *x, size_t n, float posinf, float neginf, double *count);
// Adam / AdamW exactly as sid_adam_step in src/train/optim.c (step from 1; m NULL when beta1 == 0;
// weight_decay with decoupled = 1 is AdamW, = 0 is L2); sid_adam_step calls this CPU op
// (so the formula exists once).
void sid_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
              float weight_decay, int decoupled, int64_t step);
// ema += (1 - beta) (w - ema), as sid_ema_update (which calls it).
void sid_ema(float *ema, const float *w, size_t n, float beta);
// out[i] = table[idx[i]] for rows of `row` floats (idx int32 in the backend's memory, each in [0, rows)).
void sid_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row);

#ifdef __cplusplus
}
#endif

#endif
