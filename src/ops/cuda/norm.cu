// Group norm (a block per (sample, group)), alone or followed by SiLU, and layer norm (a warp per
// row). Statistics are two-pass in double, as on the CPU: groups reach 10^5 elements.
#include "ops/cuda/cuda_common.cuh"

// Under SiLU the gradient at the norm's output: dout * silu'(y), y recomputed from x.
static __device__ __forceinline__ float norm_out_grad(float dout, float xhat, float gm, float bt, int silu) {
    if (!silu) return dout;
    const float y = xhat * gm + bt, s = 1.0f / (1.0f + expf(-y));
    return dout * (s * (1.0f + y * (1.0f - s)));
}

static __global__ void groupnorm_fwd_kernel(float *out, float *mean, float *rstd, const float *in,
                                            const float *gamma, const float *beta, int C, int HW, int G,
                                            float eps, int silu) {
    const int ng = blockIdx.x, cg = C / G;
    const size_t gs = (size_t)cg * HW;
    const float *x = in + (size_t)ng * gs;
    float *y = out + (size_t)ng * gs;
    double s = 0;
    for (size_t i = threadIdx.x; i < gs; i += blockDim.x) s += x[i];
    const double mu = block_sum_d(s) / (double)gs;
    double v = 0;
    for (size_t i = threadIdx.x; i < gs; i += blockDim.x) {
        const double d = x[i] - mu;
        v += d * d;
    }
    v = block_sum_d(v);
    const float mu_f = (float)mu, rs = (float)(1.0 / sqrt(v / (double)gs + eps));
    if (threadIdx.x == 0) mean[ng] = mu_f, rstd[ng] = rs;
    for (size_t i = threadIdx.x; i < gs; i += blockDim.x) {
        const int ch = (ng % G) * cg + (int)(i / HW);
        const float a = rs * (gamma ? gamma[ch] : 1.0f), b = (beta ? beta[ch] : 0.0f) - mu_f * a;
        const float v = x[i] * a + b;
        y[i] = silu ? v / (1.0f + expf(-v)) : v;
    }
}

// dx = rs * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat)) within the group.
static __global__ void groupnorm_bwd_din_kernel(float *din, const float *dout, const float *in, const float *gamma,
                                                const float *beta, const float *mean, const float *rstd, int C,
                                                int HW, int G, int silu) {
    const int ng = blockIdx.x, cg = C / G;
    const size_t gs = (size_t)cg * HW;
    const float *x = in + (size_t)ng * gs, *dy = dout + (size_t)ng * gs;
    float *dx = din + (size_t)ng * gs;
    const float mu = mean[ng], rs = rstd[ng];
    double s1 = 0, s2 = 0;
    for (size_t i = threadIdx.x; i < gs; i += blockDim.x) {
        const int ch = (ng % G) * cg + (int)(i / HW);
        const float gm = gamma ? gamma[ch] : 1.0f, xhat = (x[i] - mu) * rs;
        const double g = (double)gm * norm_out_grad(dy[i], xhat, gm, beta ? beta[ch] : 0.0f, silu);
        s1 += g;
        s2 += g * xhat;
    }
    s1 = block_sum_d(s1);
    s2 = block_sum_d(s2);
    const float m1 = (float)(s1 / (double)gs), m2 = (float)(s2 / (double)gs);
    for (size_t i = threadIdx.x; i < gs; i += blockDim.x) {
        const int ch = (ng % G) * cg + (int)(i / HW);
        const float gm = gamma ? gamma[ch] : 1.0f, xhat = (x[i] - mu) * rs;
        dx[i] += rs * (gm * norm_out_grad(dy[i], xhat, gm, beta ? beta[ch] : 0.0f, silu) - m1 - xhat * m2);
    }
}

// dgamma[c] += sum dy * xhat, dbeta[c] += sum dy, over samples and pixels; a block per channel.
static __global__ void groupnorm_bwd_affine_kernel(float *dgamma, float *dbeta, const float *dout, const float *in,
                                                   const float *gamma, const float *beta, const float *mean,
                                                   const float *rstd, int N, int C, int HW, int G, int silu) {
    const int ch = blockIdx.x, cg = C / G;
    const float gm = gamma ? gamma[ch] : 1.0f, bt = beta ? beta[ch] : 0.0f;
    double sg = 0, sb = 0;
    for (int n = 0; n < N; n++) {
        const int ng = n * G + ch / cg;
        const size_t off = ((size_t)n * C + ch) * HW;
        const float mu = mean[ng], rs = rstd[ng];
        for (int i = threadIdx.x; i < HW; i += blockDim.x) {
            const float xhat = (in[off + i] - mu) * rs, d = norm_out_grad(dout[off + i], xhat, gm, bt, silu);
            sg += (double)d * xhat;
            sb += d;
        }
    }
    sg = block_sum_d(sg);
    sb = block_sum_d(sb);
    if (threadIdx.x == 0) {
        if (dgamma) dgamma[ch] += (float)sg;
        if (dbeta) dbeta[ch] += (float)sb;
    }
}

static void groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                          const float *beta, int N, int C, int HW, int G, float eps, int silu) {
    if (N * G <= 0) return;
    groupnorm_fwd_kernel<<<N * G, SID_CUDA_THREADS>>>(out, mean, rstd, in, gamma, beta, C, HW, G, eps, silu);
    KERNEL_CHECK("groupnorm_fwd_kernel");
}

static void groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                          const float *gamma, const float *beta, const float *mean, const float *rstd, int N, int C,
                          int HW, int G, int silu) {
    if (N * G <= 0) return;
    if (din) {
        groupnorm_bwd_din_kernel<<<N * G, SID_CUDA_THREADS>>>(din, dout, in, gamma, beta, mean, rstd, C, HW, G, silu);
        KERNEL_CHECK("groupnorm_bwd_din_kernel");
    }
    if (dgamma || dbeta) {
        groupnorm_bwd_affine_kernel<<<C, SID_CUDA_THREADS>>>(dgamma, dbeta, dout, in, gamma, beta, mean, rstd, N, C,
                                                              HW, G, silu);
        KERNEL_CHECK("groupnorm_bwd_affine_kernel");
    }
}

void sid_cuda_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps) {
    groupnorm_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps, 0);
}
void sid_cuda_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G) {
    groupnorm_bwd(din, dgamma, dbeta, dout, in, gamma, NULL, mean, rstd, N, C, HW, G, 0);
}
void sid_cuda_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                 const float *beta, int N, int C, int HW, int G, float eps) {
    groupnorm_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps, 1);
}
void sid_cuda_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                 const float *gamma, const float *beta, const float *mean, const float *rstd, int N,
                                 int C, int HW, int G) {
    groupnorm_bwd(din, dgamma, dbeta, dout, in, gamma, beta, mean, rstd, N, C, HW, G, 1);
}

// ---- layer norm: rows are short (<= a few thousand), so a warp per row and no block barriers.
enum { LN_WARPS = 8 };

static __global__ void layernorm_fwd_kernel(float *out, float *mean, float *rstd, const float *in,
                                            const float *gamma, const float *beta, int M, int C, float eps) {
    const int m = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *x = in + (size_t)m * C;
    float *y = out + (size_t)m * C;
    double s = 0;
    for (int c = lane; c < C; c += 32) s += x[c];
    const double mu = warp_sum_d(s) / C;
    double v = 0;
    for (int c = lane; c < C; c += 32) {
        const double d = x[c] - mu;
        v += d * d;
    }
    v = warp_sum_d(v);
    const float mu_f = (float)mu, rs = (float)(1.0 / sqrt(v / C + eps));
    if (lane == 0) mean[m] = mu_f, rstd[m] = rs;
    for (int c = lane; c < C; c += 32)
        y[c] = (x[c] - mu_f) * rs * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
}

static __global__ void layernorm_bwd_din_kernel(float *din, const float *dout, const float *in, const float *gamma,
                                                const float *mean, const float *rstd, int M, int C) {
    const int m = blockIdx.x * LN_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *x = in + (size_t)m * C, *dy = dout + (size_t)m * C;
    float *dx = din + (size_t)m * C;
    const float mu = mean[m], rs = rstd[m];
    double s1 = 0, s2 = 0;
    for (int c = lane; c < C; c += 32) {
        const double g = (double)(gamma ? gamma[c] : 1.0f) * dy[c];
        s1 += g;
        s2 += g * (x[c] - mu) * rs;
    }
    const float m1 = (float)(warp_sum_d(s1) / C), m2 = (float)(warp_sum_d(s2) / C);
    for (int c = lane; c < C; c += 32) {
        const float xhat = (x[c] - mu) * rs;
        dx[c] += rs * ((gamma ? gamma[c] : 1.0f) * dy[c] - m1 - xhat * m2);
    }
}

// Column sums over rows: a 32x32 block owns 32 columns, x walks columns
// (coalesced), y walks rows; partials are combined in a fixed order.
static __global__ void layernorm_bwd_affine_kernel(float *dgamma, float *dbeta, const float *dout, const float *in,
                                                   const float *mean, const float *rstd, int M, int C) {
    __shared__ double pg[32][33], pb[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    double sg = 0, sb = 0;
    if (c < C)
        for (int m = threadIdx.y; m < M; m += 32) {
            const size_t j = (size_t)m * C + c;
            sg += (double)dout[j] * (in[j] - mean[m]) * rstd[m];
            sb += dout[j];
        }
    pg[threadIdx.y][threadIdx.x] = sg;
    pb[threadIdx.y][threadIdx.x] = sb;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        double tg = 0, tb = 0;
        for (int r = 0; r < 32; r++) tg += pg[r][threadIdx.x], tb += pb[r][threadIdx.x];
        if (dgamma) dgamma[c] += (float)tg;
        if (dbeta) dbeta[c] += (float)tb;
    }
}

void sid_cuda_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int M, int C, float eps) {
    if (M <= 0) return;
    layernorm_fwd_kernel<<<(M + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS>>>(out, mean, rstd, in, gamma, beta, M, C,
                                                                           eps);
    KERNEL_CHECK("layernorm_fwd_kernel");
}

void sid_cuda_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int M, int C) {
    if (M <= 0 || C <= 0) return;
    if (din) {
        layernorm_bwd_din_kernel<<<(M + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS>>>(din, dout, in, gamma, mean, rstd,
                                                                                   M, C);
        KERNEL_CHECK("layernorm_bwd_din_kernel");
    }
    if (dgamma || dbeta) {
        layernorm_bwd_affine_kernel<<<(C + 31) / 32, dim3(32, 32)>>>(dgamma, dbeta, dout, in, mean, rstd, M, C);
        KERNEL_CHECK("layernorm_bwd_affine_kernel");
    }
}
