// Shared by the CUDA op files: error checks, launch helpers, block reductions,
// the cuBLAS handle, row-major GEMM and device workspaces. See backend_cuda.cu
// for the design notes.
#ifndef SID_CUDA_COMMON_CUH
#define SID_CUDA_COMMON_CUH
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "ops/ops.h"

// Every failure is a bug or a broken device, never the user's input: die with one line.
#define CUDA_CHECK(call) sid_cuda_check((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) sid_cublas_check((call), #call, __FILE__, __LINE__)
// After a launch: launch-configuration errors surface here, not at the next sync.
#define KERNEL_CHECK(name) sid_cuda_check(cudaGetLastError(), name, __FILE__, __LINE__)

static inline void sid_cuda_check(cudaError_t e, const char *call, const char *file, int line) {
    if (e != cudaSuccess) sid_die("cuda: %s failed: %s at %s:%d", call, cudaGetErrorString(e), file, line);
}
static inline void sid_cublas_check(cublasStatus_t s, const char *call, const char *file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS) sid_die("cuda: %s failed: %s at %s:%d", call, cublasGetStatusString(s), file, line);
}

enum { SID_CUDA_THREADS = 256 };

// Grid for a grid-stride loop over n items: enough blocks to fill the GPU, and
// never zero (a zero-block launch is an error; the loop body then does nothing).
static inline unsigned sid_cuda_blocks(size_t n) {
    size_t b = (n + SID_CUDA_THREADS - 1) / SID_CUDA_THREADS;
    if (b > 65536) b = 65536;
    return b ? (unsigned)b : 1u;
}

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// Butterfly sums and maxima: every lane ends with the result.
static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a 1-D block (blockDim.x a multiple of 32); every thread gets the
// result. All threads must call it. The leading barrier lets a kernel call it
// twice in a row without the second call overwriting partials still being read.
static __device__ __forceinline__ double block_sum_d(double v) {
    __shared__ double part[32];
    v = warp_sum_d(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = v;
    __syncthreads();
    double t = 0;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += part[w];
    return t;
}

// ---- shared state (backend_cuda.cu)
cublasHandle_t sid_cuda_blas(void);
// Device workspaces that grow as needed and are never shrunk. One per slot, so
// an op may hold two at once; ops run one at a time, so a slot is never shared.
enum { SID_WS_CONV, SID_WS_ATTN, SID_WS_COUNT };
void *sid_cuda_workspace(int slot, size_t bytes);

// Row-major C[M,N] = alpha op(A) op(B) + beta C, op(X) = X^T when transX; lda,
// ldb, ldc are row strides. cuBLAS is column-major, so it computes C^T = op(B)^T op(A)^T.
void sid_cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);

// ---- ops, one family per file, same semantics as ops.h
void sid_cuda_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N);
void sid_cuda_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         int M, int K, int N);
void sid_cuda_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s);
void sid_cuda_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const sid_conv2d_shape *s);

void sid_cuda_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps);
void sid_cuda_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G);
void sid_cuda_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                 const float *beta, int N, int C, int HW, int G, float eps);
void sid_cuda_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                 const float *gamma, const float *beta, const float *mean, const float *rstd, int N,
                                 int C, int HW, int G);
void sid_cuda_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int M, int C, float eps);
void sid_cuda_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int M, int C);

void sid_cuda_act_fwd(sid_act a, float *out, const float *in, size_t n);
void sid_cuda_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n);
void sid_cuda_geglu_fwd(float *out, const float *in, int M, int H);
void sid_cuda_geglu_bwd(float *din, const float *dout, const float *in, int M, int H);
void sid_cuda_softmax_fwd(float *out, const float *in, int M, int C);
void sid_cuda_softmax_bwd(float *din, const float *dout, const float *out, int M, int C);
void sid_cuda_fill(float *x, float value, size_t n);
void sid_cuda_add_fwd(float *out, const float *a, const float *b, size_t n);
void sid_cuda_add_bwd(float *da, float *db, const float *dout, size_t n);
void sid_cuda_scale_fwd(float *out, const float *in, float alpha, size_t n);
void sid_cuda_scale_bwd(float *din, const float *dout, float alpha, size_t n);
void sid_cuda_mul_fwd(float *out, const float *a, const float *b, size_t n);
void sid_cuda_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n);
void sid_cuda_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW);
void sid_cuda_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW);

void sid_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq,
                            int Nk, int H, int dh, int causal);
void sid_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                            int causal);

void sid_cuda_upsample2x_fwd(float *out, const float *in, int NC, int H, int W);
void sid_cuda_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W);
void sid_cuda_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s);
void sid_cuda_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s);
void sid_cuda_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW);
void sid_cuda_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW);
void sid_cuda_transpose_fwd(float *out, const float *in, int N, int R, int C);
void sid_cuda_transpose_bwd(float *din, const float *dout, int N, int R, int C);
void sid_cuda_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                                     float freq_shift, float max_period);
void sid_cuda_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim,
                                     int flip_sin_to_cos, float freq_shift, float max_period);
void sid_cuda_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T, int C);
void sid_cuda_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C);
void sid_cuda_mse_fwd(float *loss, const float *a, const float *b, int N, int D);
void sid_cuda_mse_bwd(float *da, float *db, const float *dloss, const float *a, const float *b, int N, int D);
void sid_cuda_mean_abs_fwd(float *out, const float *a, const float *b, int N, int D);
void sid_cuda_mean_abs_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D);
void sid_cuda_dot_fwd(float *out, const float *a, const float *b, int N, int D);
void sid_cuda_dot_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D);

// SiD-LSG arithmetic (sid_ops.cu)
void sid_cuda_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n);
void sid_cuda_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n);
void sid_cuda_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N,
                            size_t D);
void sid_cuda_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N,
                            size_t D);
void sid_cuda_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N,
                              size_t D);
void sid_cuda_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N,
                              size_t D);
void sid_cuda_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n);
void sid_cuda_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n);
void sid_cuda_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D);
void sid_cuda_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D);
void sid_cuda_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale,
                           int N, size_t D);
void sid_cuda_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf,
                           float alpha, float scale, int N, size_t D);
void sid_cuda_nan_rows(float *flags, const float *x, int N, size_t D);
void sid_cuda_sanitize(float *x, size_t n, float posinf, float neginf, double *count);
void sid_cuda_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int decoupled, int64_t step);
void sid_cuda_ema(float *ema, const float *w, size_t n, float beta);
void sid_cuda_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row);

#endif
