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

// ---- conv2d, square kernel k, zero padding pad, stride s; b may be NULL
typedef struct {
    int n, cin, h, w, cout, k, stride, pad;
} sid_conv2d_shape;
static inline int sid_conv2d_hout(const sid_conv2d_shape *s) { return (s->h + 2 * s->pad - s->k) / s->stride + 1; }
static inline int sid_conv2d_wout(const sid_conv2d_shape *s) { return (s->w + 2 * s->pad - s->k) / s->stride + 1; }
void sid_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s);
void sid_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    const sid_conv2d_shape *s);

// ---- group norm over [N, C, HW] in G groups; saves mean, rstd [N*G] for backward
void sid_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int N, int C, int HW, int G, float eps);
void sid_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G);

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

#ifdef __cplusplus
}
#endif

#endif
