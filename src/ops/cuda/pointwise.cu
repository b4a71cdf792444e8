// Point-wise ops: activations, GEGLU, softmax, add/scale/mul, channel bias.
// Formulas are the CPU's, term for term, so results agree to rounding.
#include "ops/cuda/cuda_common.cuh"

static __device__ __forceinline__ float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }
// exact (erf) GELU as torch.nn.functional.gelu's default
static __device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static __device__ __forceinline__ float gelu_grad_f(float x) {
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    const float pdf = 0.3989422804014327f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

static __global__ void act_fwd_kernel(int a, float *out, const float *in, size_t n) {
    GRID_STRIDE(i, n) {
        const float x = in[i];
        out[i] = a == SID_ACT_SILU ? x * sigmoid_f(x) : a == SID_ACT_GELU ? gelu_f(x) : x * sigmoid_f(1.702f * x);
    }
}

static __global__ void act_bwd_kernel(int a, float *din, const float *dout, const float *in, size_t n) {
    GRID_STRIDE(i, n) {
        const float x = in[i];
        float d;
        if (a == SID_ACT_SILU) {
            const float s = sigmoid_f(x);
            d = s * (1.0f + x * (1.0f - s));
        } else if (a == SID_ACT_GELU) {
            d = gelu_grad_f(x);
        } else {
            const float s = sigmoid_f(1.702f * x);
            d = s * (1.0f + 1.702f * x * (1.0f - s));
        }
        din[i] += dout[i] * d;
    }
}

void sid_cuda_act_fwd(sid_act a, float *out, const float *in, size_t n) {
    if (!n) return;
    act_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>((int)a, out, in, n);
    KERNEL_CHECK("act_fwd_kernel");
}

void sid_cuda_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n) {
    if (!n || !din) return;
    act_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>((int)a, din, dout, in, n);
    KERNEL_CHECK("act_bwd_kernel");
}

// ---- GEGLU: in [M, 2H] = [value | gate]
static __global__ void geglu_fwd_kernel(float *out, const float *in, size_t M, int H) {
    GRID_STRIDE(i, M * H) {
        const size_t m = i / H, j = i % H;
        const float *v = in + m * 2 * H;
        out[i] = v[j] * gelu_f(v[H + j]);
    }
}

static __global__ void geglu_bwd_kernel(float *din, const float *dout, const float *in, size_t M, int H) {
    GRID_STRIDE(i, M * H) {
        const size_t m = i / H, j = i % H;
        const float *v = in + m * 2 * H;
        float *dv = din + m * 2 * H;
        const float g = v[H + j];
        dv[j] += dout[i] * gelu_f(g);
        dv[H + j] += dout[i] * v[j] * gelu_grad_f(g);
    }
}

void sid_cuda_geglu_fwd(float *out, const float *in, int M, int H) {
    if (M <= 0 || H <= 0) return;
    geglu_fwd_kernel<<<sid_cuda_blocks((size_t)M * H), SID_CUDA_THREADS>>>(out, in, (size_t)M, H);
    KERNEL_CHECK("geglu_fwd_kernel");
}

void sid_cuda_geglu_bwd(float *din, const float *dout, const float *in, int M, int H) {
    if (M <= 0 || H <= 0 || !din) return;
    geglu_bwd_kernel<<<sid_cuda_blocks((size_t)M * H), SID_CUDA_THREADS>>>(din, dout, in, (size_t)M, H);
    KERNEL_CHECK("geglu_bwd_kernel");
}

// ---- softmax: a warp per row
enum { SM_WARPS = 8 };

static __global__ void softmax_fwd_kernel(float *out, const float *in, int M, int C) {
    const int m = blockIdx.x * SM_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *x = in + (size_t)m * C;
    float *y = out + (size_t)m * C;
    float mx = -INFINITY;
    for (int c = lane; c < C; c += 32) mx = fmaxf(mx, x[c]);
    mx = warp_max(mx);
    float s = 0;
    for (int c = lane; c < C; c += 32) s += (y[c] = expf(x[c] - mx));
    const float inv = 1.0f / warp_sum(s);
    for (int c = lane; c < C; c += 32) y[c] *= inv;
}

static __global__ void softmax_bwd_kernel(float *din, const float *dout, const float *out, int M, int C) {
    const int m = blockIdx.x * SM_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (m >= M) return;
    const float *y = out + (size_t)m * C, *dy = dout + (size_t)m * C;
    float *dx = din + (size_t)m * C;
    float dot = 0;
    for (int c = lane; c < C; c += 32) dot += dy[c] * y[c];
    dot = warp_sum(dot);
    for (int c = lane; c < C; c += 32) dx[c] += y[c] * (dy[c] - dot);
}

void sid_cuda_softmax_fwd(float *out, const float *in, int M, int C) {
    if (M <= 0 || C <= 0) return;
    softmax_fwd_kernel<<<(M + SM_WARPS - 1) / SM_WARPS, 32 * SM_WARPS>>>(out, in, M, C);
    KERNEL_CHECK("softmax_fwd_kernel");
}

void sid_cuda_softmax_bwd(float *din, const float *dout, const float *out, int M, int C) {
    if (M <= 0 || C <= 0 || !din) return;
    softmax_bwd_kernel<<<(M + SM_WARPS - 1) / SM_WARPS, 32 * SM_WARPS>>>(din, dout, out, M, C);
    KERNEL_CHECK("softmax_bwd_kernel");
}

// ---- element-wise arithmetic
static __global__ void fill_kernel(float *x, float value, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) x[i] = value;
}
static __global__ void add_fwd_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
static __global__ void add_bwd_kernel(float *da, float *db, const float *dout, size_t n) {
    GRID_STRIDE(i, n) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}
static __global__ void scale_fwd_kernel(float *out, const float *in, float alpha, size_t n) {
    GRID_STRIDE(i, n) out[i] = alpha * in[i];
}
static __global__ void scale_bwd_kernel(float *din, const float *dout, float alpha, size_t n) {
    GRID_STRIDE(i, n) din[i] += alpha * dout[i];
}
static __global__ void mul_fwd_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) out[i] = a[i] * b[i];
}
static __global__ void mul_bwd_kernel(float *da, float *db, const float *dout, const float *a, const float *b,
                                      size_t n) {
    GRID_STRIDE(i, n) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
}

void sid_cuda_fill(float *x, float value, size_t n) {
    if (!n) return;
    fill_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(x, value, n);
    KERNEL_CHECK("fill_kernel");
}
void sid_cuda_add_fwd(float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    add_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, a, b, n);
    KERNEL_CHECK("add_fwd_kernel");
}
void sid_cuda_add_bwd(float *da, float *db, const float *dout, size_t n) {
    if (!n || (!da && !db)) return;
    add_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(da, db, dout, n);
    KERNEL_CHECK("add_bwd_kernel");
}
void sid_cuda_scale_fwd(float *out, const float *in, float alpha, size_t n) {
    if (!n) return;
    scale_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, in, alpha, n);
    KERNEL_CHECK("scale_fwd_kernel");
}
void sid_cuda_scale_bwd(float *din, const float *dout, float alpha, size_t n) {
    if (!n || !din) return;
    scale_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(din, dout, alpha, n);
    KERNEL_CHECK("scale_bwd_kernel");
}
void sid_cuda_mul_fwd(float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    mul_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, a, b, n);
    KERNEL_CHECK("mul_fwd_kernel");
}
void sid_cuda_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
    if (!n || (!da && !db)) return;
    mul_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(da, db, dout, a, b, n);
    KERNEL_CHECK("mul_bwd_kernel");
}

// ---- per-(sample, channel) bias broadcast over the plane
static __global__ void channel_bias_fwd_kernel(float *out, const float *in, const float *bias, size_t n, int HW) {
    GRID_STRIDE(i, n) out[i] = in[i] + bias[i / HW];
}
static __global__ void channel_bias_din_kernel(float *din, const float *dout, size_t n) {
    GRID_STRIDE(i, n) din[i] += dout[i];
}
// dbias[nc] += sum of the plane; a block per plane.
static __global__ void plane_sum_kernel(float *dbias, const float *dout, int HW) {
    const float *g = dout + (size_t)blockIdx.x * HW;
    double s = 0;
    for (int i = threadIdx.x; i < HW; i += blockDim.x) s += g[i];
    s = block_sum_d(s);
    if (threadIdx.x == 0) dbias[blockIdx.x] += (float)s;
}

void sid_cuda_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW) {
    const size_t n = (size_t)N * C * HW;
    if (!n) return;
    channel_bias_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, in, bias, n, HW);
    KERNEL_CHECK("channel_bias_fwd_kernel");
}

void sid_cuda_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW) {
    const size_t n = (size_t)N * C * HW;
    if (!n) return;
    if (din) {
        channel_bias_din_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(din, dout, n);
        KERNEL_CHECK("channel_bias_din_kernel");
    }
    if (dbias) {
        plane_sum_kernel<<<N * C, 128>>>(dbias, dout, HW);
        KERNEL_CHECK("plane_sum_kernel");
    }
}
