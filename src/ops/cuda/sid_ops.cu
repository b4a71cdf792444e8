// SiD-LSG arithmetic (ops.h, "SiD-LSG arithmetic") on the GPU. Formulas are the CPU's
// (src/ops/cpu/sid_ops.c), term for term, so results agree to rounding (nvcc may contract
// a*b + c into an FMA; the CPU build does not).
//
// Element-wise ops are grid-stride loops. The per-sample reductions (the two losses, the SiD
// weight w_i, nan_rows) run one block per sample: the block sums its row in double
// (block_sum_d), and for the losses thread 0 adds the sample's scaled term to the one double
// result with atomicAdd on double (native from sm_60; the build targets sm_80 and sm_90).
// The order in which the samples' terms arrive is not fixed, so the losses may differ from run
// to run in the last bits of a double (far below float resolution); everything else is
// deterministic. sanitize's count is summed per block in double and added the same way.
#include "ops/cuda/cuda_common.cuh"

static inline unsigned rows_grid(int N) { return N > 0 ? (unsigned)N : 1u; }

// ---- CFG combination
static __global__ void cfg_fwd_kernel(float *out, const float *uncond, const float *cond, float kappa, size_t n) {
    GRID_STRIDE(k, n) {
        const float u = uncond[k], d = cond[k] - u;
        out[k] = u + kappa * d;
    }
}
static __global__ void cfg_bwd_kernel(float *du, float *dc, const float *dout, float kappa, size_t n) {
    const float ku = 1.0f - kappa;
    GRID_STRIDE(k, n) {
        if (du) du[k] += ku * dout[k];
        if (dc) dc[k] += kappa * dout[k];
    }
}
void sid_cuda_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n) {
    if (!n) return;
    cfg_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, uncond, cond, kappa, n);
    KERNEL_CHECK("cfg_fwd_kernel");
}
void sid_cuda_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n) {
    if (!n || (!duncond && !dcond)) return;
    cfg_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(duncond, dcond, dout, kappa, n);
    KERNEL_CHECK("cfg_bwd_kernel");
}

// ---- per-sample affine maps
static __global__ void add_noise_fwd_kernel(float *xt, const float *x0, const float *eps, const float *a,
                                            const float *s, size_t n, size_t D) {
    GRID_STRIDE(k, n) {
        const size_t i = k / D;
        xt[k] = a[i] * x0[k] + s[i] * eps[k];
    }
}
static __global__ void add_noise_bwd_kernel(float *dx0, float *deps, const float *dxt, const float *a, const float *s,
                                            size_t n, size_t D) {
    GRID_STRIDE(k, n) {
        const size_t i = k / D;
        if (dx0) dx0[k] += a[i] * dxt[k];
        if (deps) deps[k] += s[i] * dxt[k];
    }
}
static __global__ void x0_fwd_kernel(float *x0, const float *xt, const float *eps, const float *a, const float *s,
                                     size_t n, size_t D) {
    GRID_STRIDE(k, n) {
        const size_t i = k / D;
        x0[k] = (xt[k] - s[i] * eps[k]) / a[i];
    }
}
static __global__ void x0_bwd_kernel(float *dxt, float *deps, const float *dx0, const float *a, const float *s,
                                     size_t n, size_t D) {
    GRID_STRIDE(k, n) {
        const size_t i = k / D;
        const float ai = a[i];
        if (dxt) dxt[k] += dx0[k] / ai;
        if (deps) deps[k] += -(s[i] / ai) * dx0[k];
    }
}
void sid_cuda_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N,
                            size_t D) {
    if (N <= 0 || !D) return;
    const size_t n = (size_t)N * D;
    add_noise_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(xt, x0, eps, a, s, n, D);
    KERNEL_CHECK("add_noise_fwd_kernel");
}
void sid_cuda_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N,
                            size_t D) {
    if (N <= 0 || !D || (!dx0 && !deps)) return;
    const size_t n = (size_t)N * D;
    add_noise_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(dx0, deps, dxt, a, s, n, D);
    KERNEL_CHECK("add_noise_bwd_kernel");
}
void sid_cuda_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N,
                              size_t D) {
    if (N <= 0 || !D) return;
    const size_t n = (size_t)N * D;
    x0_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(x0, xt, eps, a, s, n, D);
    KERNEL_CHECK("x0_fwd_kernel");
}
void sid_cuda_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N,
                              size_t D) {
    if (N <= 0 || !D || (!dxt && !deps)) return;
    const size_t n = (size_t)N * D;
    x0_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(dxt, deps, dx0, a, s, n, D);
    KERNEL_CHECK("x0_bwd_kernel");
}

// ---- clamp (comparisons, so a NaN stays a NaN)
static __global__ void clamp_fwd_kernel(float *out, const float *in, float lo, float hi, size_t n) {
    GRID_STRIDE(k, n) {
        const float x = in[k];
        out[k] = x < lo ? lo : x > hi ? hi : x;
    }
}
static __global__ void clamp_bwd_kernel(float *din, const float *dout, const float *in, float lo, float hi, size_t n) {
    GRID_STRIDE(k, n) {
        if (in[k] > lo && in[k] < hi) din[k] += dout[k];
    }
}
void sid_cuda_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n) {
    if (!n) return;
    clamp_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, in, lo, hi, n);
    KERNEL_CHECK("clamp_fwd_kernel");
}
void sid_cuda_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n) {
    if (!n || !din) return;
    clamp_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(din, dout, in, lo, hi, n);
    KERNEL_CHECK("clamp_bwd_kernel");
}

// ---- the fake net's denoising loss: one block per sample
static __global__ void dsm_fwd_kernel(double *loss, const float *eps_hat, const float *eps, float scale, size_t D) {
    const size_t o = (size_t)blockIdx.x * D;
    double l = 0;
    for (size_t k = threadIdx.x; k < D; k += blockDim.x) {
        const float r = eps_hat[o + k] - eps[o + k];
        l += (double)r * r;
    }
    l = block_sum_d(l);
    if (threadIdx.x == 0) atomicAdd(loss, l * scale);
}
static __global__ void dsm_bwd_kernel(float *deps_hat, const float *eps_hat, const float *eps, float scale, size_t n) {
    GRID_STRIDE(k, n) {
        const float r = eps_hat[k] - eps[k];
        deps_hat[k] += 2 * scale * r;
    }
}
void sid_cuda_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    if (N <= 0) return;
    dsm_fwd_kernel<<<rows_grid(N), SID_CUDA_THREADS>>>(loss, eps_hat, eps, scale, D);
    KERNEL_CHECK("dsm_fwd_kernel");
}
void sid_cuda_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    if (N <= 0 || !D || !deps_hat) return;
    const size_t n = (size_t)N * D;
    dsm_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(deps_hat, eps_hat, eps, scale, n);
    KERNEL_CHECK("dsm_bwd_kernel");
}

// ---- the SiD generator loss: one block per sample; w_i first (every thread gets it)
static __device__ double sid_weight_block(const float *xg, const float *yr, size_t D) {
    double w = 0;
    for (size_t k = threadIdx.x; k < D; k += blockDim.x) w += fabs((double)xg[k] - yr[k]);
    w = block_sum_d(w);
    return w / D > 1e-5 ? w / D : 1e-5;
}
static __global__ void sid_fwd_kernel(double *loss, const float *xg, const float *yr, const float *yf, float alpha,
                                      float scale, size_t D) {
    const size_t o = (size_t)blockIdx.x * D;
    const double w = sid_weight_block(xg + o, yr + o, D);
    double l = 0;
    for (size_t k = threadIdx.x; k < D; k += blockDim.x) {
        const float dd = yr[o + k] - yf[o + k], e = (yr[o + k] - xg[o + k]) - alpha * dd;
        l += (double)dd * e;
    }
    l = block_sum_d(l);
    if (threadIdx.x == 0) atomicAdd(loss, (l / w) * scale);
}
static __global__ void sid_bwd_kernel(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr,
                                      const float *yf, float alpha, float scale, size_t D) {
    const size_t o = (size_t)blockIdx.x * D;
    const float kw = (float)(scale / sid_weight_block(xg + o, yr + o, D));
    for (size_t k = threadIdx.x; k < D; k += blockDim.x) {
        const float dd = yr[o + k] - yf[o + k], e = (yr[o + k] - xg[o + k]) - alpha * dd;
        if (dxg) dxg[o + k] += -kw * dd;
        if (dyr) dyr[o + k] += kw * (e + (1 - alpha) * dd);
        if (dyf) dyf[o + k] += kw * (alpha * dd - e);
    }
}
void sid_cuda_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale,
                           int N, size_t D) {
    if (N <= 0) return;
    sid_fwd_kernel<<<rows_grid(N), SID_CUDA_THREADS>>>(loss, xg, yr, yf, alpha, scale, D);
    KERNEL_CHECK("sid_fwd_kernel");
}
void sid_cuda_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf,
                           float alpha, float scale, int N, size_t D) {
    if (N <= 0 || (!dxg && !dyr && !dyf)) return;
    sid_bwd_kernel<<<rows_grid(N), SID_CUDA_THREADS>>>(dxg, dyr, dyf, xg, yr, yf, alpha, scale, D);
    KERNEL_CHECK("sid_bwd_kernel");
}

// ---- NaN rows: one block per row, OR-ed across the block
static __global__ void nan_rows_kernel(float *flags, const float *x, size_t D) {
    const size_t o = (size_t)blockIdx.x * D;
    int bad = 0;
    for (size_t k = threadIdx.x; k < D && !bad; k += blockDim.x) bad = isnan(x[o + k]);
    bad = __syncthreads_or(bad);
    if (threadIdx.x == 0) flags[blockIdx.x] = bad || flags[blockIdx.x] != 0 ? 1.0f : 0.0f;
}
void sid_cuda_nan_rows(float *flags, const float *x, int N, size_t D) {
    if (N <= 0) return;
    nan_rows_kernel<<<rows_grid(N), SID_CUDA_THREADS>>>(flags, x, D);
    KERNEL_CHECK("nan_rows_kernel");
}

// ---- sanitize: per-thread counts, a double block sum, one atomicAdd per block
static __global__ void sanitize_kernel(float *x, size_t n, float posinf, float neginf, double *count) {
    double bad = 0;
    GRID_STRIDE(i, n) {
        const float v = x[i];
        if (isnan(v)) x[i] = 0, bad += 1;
        else if (isinf(v)) x[i] = v > 0 ? posinf : neginf, bad += 1;
    }
    if (!count) return;  // uniform across the block: every thread or none returns here
    bad = block_sum_d(bad);
    if (threadIdx.x == 0 && bad != 0) atomicAdd(count, bad);
}
void sid_cuda_sanitize(float *x, size_t n, float posinf, float neginf, double *count) {
    if (!n) return;
    sanitize_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(x, n, posinf, neginf, count);
    KERNEL_CHECK("sanitize_kernel");
}

// ---- Adam / AdamW: the bias corrections are computed on the host exactly as the CPU's
static __global__ void adam_kernel(float *w, const float *g, float *m, float *v, size_t n, float b1, float b2,
                                   float eps, float step_size, float sqrt_bc2, float decay, float l2) {
    GRID_STRIDE(i, n) {
        const float gi = g[i] + l2 * w[i];
        float mi = gi;
        if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] = w[i] * decay - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
    }
}
void sid_cuda_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int decoupled, int64_t step) {
    if (!n) return;
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    const float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    const float decay = decoupled ? 1.0f - lr * weight_decay : 1.0f, l2 = decoupled ? 0.0f : weight_decay;
    adam_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(w, g, m, v, n, beta1, beta2, eps, step_size, sqrt_bc2, decay,
                                                          l2);
    KERNEL_CHECK("adam_kernel");
}

// ---- EMA
static __global__ void ema_kernel(float *ema, const float *w, size_t n, float beta) {
    GRID_STRIDE(i, n) ema[i] += (1.0f - beta) * (w[i] - ema[i]);
}
void sid_cuda_ema(float *ema, const float *w, size_t n, float beta) {
    if (!n) return;
    ema_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(ema, w, n, beta);
    KERNEL_CHECK("ema_kernel");
}

// ---- row gather
static __global__ void gather_rows_kernel(float *out, const float *table, const int32_t *idx, size_t n, size_t row) {
    GRID_STRIDE(k, n) {
        const size_t i = k / row, j = k % row;
        out[k] = table[(size_t)idx[i] * row + j];
    }
}
void sid_cuda_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row) {
    if (m <= 0 || !row) return;
    const size_t n = (size_t)m * row;
    gather_rows_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, table, idx, n, row);
    KERNEL_CHECK("gather_rows_kernel");
}
