// linear and conv2d on cuBLAS SGEMM; conv2d through im2col/col2im, one sample at a time.
#include "ops/cuda/cuda_common.cuh"

// out[m, n] = b[n]: seeding the output lets the GEMM add the bias with beta = 1.
static __global__ void fill_rows_kernel(float *out, const float *b, size_t rows, int n) {
    GRID_STRIDE(i, rows * n) out[i] = b[i % n];
}

// out[n, c, p] = b[c] for the conv bias.
static __global__ void fill_channels_kernel(float *out, const float *b, size_t total, int C, int P) {
    GRID_STRIDE(i, total) out[i] = b[(i / P) % C];
}

// db[j] += sum_i g[i, j] over a [M, N] matrix. A 32x32 block owns 32 columns:
// x walks columns (coalesced rows), y walks rows; the 32 row-partials of each
// column are then summed in a fixed order, so the result is deterministic.
static __global__ void col_sum_kernel(float *db, const float *g, int M, int N) {
    __shared__ double part[32][33];
    const int j = blockIdx.x * 32 + threadIdx.x;
    double s = 0;
    if (j < N)
        for (int i = threadIdx.y; i < M; i += 32) s += g[(size_t)i * N + j];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < N) {
        double t = 0;
        for (int r = 0; r < 32; r++) t += part[r][threadIdx.x];
        db[j] += (float)t;
    }
}

void sid_cuda_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    if (b) {
        fill_rows_kernel<<<sid_cuda_blocks((size_t)M * N), SID_CUDA_THREADS>>>(out, b, (size_t)M, N);
        KERNEL_CHECK("fill_rows_kernel");
    }
    // out[M,N] = in[M,K] W[N,K]^T
    sid_cuda_gemm(0, 1, M, N, K, 1.0f, in, K, w, K, b ? 1.0f : 0.0f, out, N);
}

void sid_cuda_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    if (din) sid_cuda_gemm(0, 0, M, K, N, 1.0f, dout, N, w, K, 1.0f, din, K);  // din[M,K] += dout[M,N] W[N,K]
    if (dw) sid_cuda_gemm(1, 0, N, K, M, 1.0f, dout, N, in, K, 1.0f, dw, K);   // dW[N,K] += dout^T in
    if (db) {
        col_sum_kernel<<<(N + 31) / 32, dim3(32, 32)>>>(db, dout, M, N);
        KERNEL_CHECK("col_sum_kernel");
    }
}

// ---- conv2d

// col[(c*k + ki)*k + kj][oy*wo + ox] = x[c][oy*s - p + ki][ox*s - p + kj], 0 outside the image.
static __global__ void im2col_kernel(float *col, const float *x, int cin, int H, int W, int k, int st, int pad,
                                     int ho, int wo) {
    const size_t P = (size_t)ho * wo, total = (size_t)cin * k * k * P;
    GRID_STRIDE(i, total) {
        const int ox = (int)(i % wo), oy = (int)((i / wo) % ho);
        const size_t row = i / P;
        const int kj = (int)(row % k), ki = (int)((row / k) % k), c = (int)(row / ((size_t)k * k));
        const int iy = oy * st - pad + ki, ix = ox * st - pad + kj;
        col[i] = iy >= 0 && iy < H && ix >= 0 && ix < W ? x[((size_t)c * H + iy) * W + ix] : 0.0f;
    }
}

// dx[c][iy][ix] += sum of the col entries im2col copied that pixel into. One
// thread per input pixel gathers them, so there are no write conflicts.
static __global__ void col2im_add_kernel(float *dx, const float *col, int cin, int H, int W, int k, int st, int pad,
                                         int ho, int wo) {
    const size_t P = (size_t)ho * wo, total = (size_t)cin * H * W;
    GRID_STRIDE(i, total) {
        const int ix = (int)(i % W), iy = (int)((i / W) % H), c = (int)(i / ((size_t)H * W));
        float s = 0;
        for (int ki = 0; ki < k; ki++) {
            const int ty = iy + pad - ki;  // = oy * st
            if (ty < 0 || ty % st) continue;
            const int oy = ty / st;
            if (oy >= ho) continue;
            for (int kj = 0; kj < k; kj++) {
                const int tx = ix + pad - kj;
                if (tx < 0 || tx % st) continue;
                const int ox = tx / st;
                if (ox >= wo) continue;
                s += col[((size_t)(c * k + ki) * k + kj) * P + (size_t)oy * wo + ox];
            }
        }
        dx[i] += s;
    }
}

// db[c] += sum over samples and pixels of g[n, c, :].
static __global__ void channel_sum_kernel(float *db, const float *g, int N, int C, int P) {
    const int c = blockIdx.x;
    double s = 0;
    for (int n = 0; n < N; n++) {
        const float *row = g + ((size_t)n * C + c) * P;
        for (int i = threadIdx.x; i < P; i += blockDim.x) s += row[i];
    }
    s = block_sum_d(s);
    if (threadIdx.x == 0) db[c] += (float)s;
}

static int is_pointwise(const sid_conv2d_shape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

static void im2col(float *col, const float *x, const sid_conv2d_shape *s, int ho, int wo) {
    const size_t total = (size_t)s->cin * s->k * s->k * ho * wo;
    im2col_kernel<<<sid_cuda_blocks(total), SID_CUDA_THREADS>>>(col, x, s->cin, s->h, s->w, s->k, s->stride, s->pad,
                                                                ho, wo);
    KERNEL_CHECK("im2col_kernel");
}

void sid_cuda_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * s->k * s->k;
    if (s->n <= 0 || s->cout <= 0 || P <= 0) return;
    const int pw = is_pointwise(s);
    float *col = pw ? NULL : (float *)sid_cuda_workspace(SID_WS_CONV, (size_t)K * P * sizeof(float));
    if (b) {
        const size_t total = (size_t)s->n * s->cout * P;
        fill_channels_kernel<<<sid_cuda_blocks(total), SID_CUDA_THREADS>>>(out, b, total, s->cout, P);
        KERNEL_CHECK("fill_channels_kernel");
    }
    for (int n = 0; n < s->n; n++) {
        const float *x = in + (size_t)n * s->cin * s->h * s->w;
        float *y = out + (size_t)n * s->cout * P;
        if (!pw) im2col(col, x, s, ho, wo);
        // y[Cout, P] = W[Cout, K] col[K, P]
        sid_cuda_gemm(0, 0, s->cout, P, K, 1.0f, w, K, pw ? x : col, P, b ? 1.0f : 0.0f, y, P);
    }
}

void sid_cuda_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const sid_conv2d_shape *s) {
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * s->k * s->k;
    if (s->n <= 0 || s->cout <= 0 || P <= 0) return;
    if (db) {
        channel_sum_kernel<<<s->cout, SID_CUDA_THREADS>>>(db, dout, s->n, s->cout, P);
        KERNEL_CHECK("channel_sum_kernel");
    }
    if (!din && !dw) return;
    const int pw = is_pointwise(s);
    float *col = pw ? NULL : (float *)sid_cuda_workspace(SID_WS_CONV, (size_t)K * P * sizeof(float));
    for (int n = 0; n < s->n; n++) {
        const float *x = in + (size_t)n * s->cin * s->h * s->w;
        const float *g = dout + (size_t)n * s->cout * P;
        if (dw) {
            if (!pw) im2col(col, x, s, ho, wo);
            // dW[Cout, K] += g[Cout, P] col[K, P]^T, accumulated over the batch by beta = 1
            sid_cuda_gemm(0, 1, s->cout, K, P, 1.0f, g, P, pw ? x : col, P, 1.0f, dw, K);
        }
        if (din) {
            float *dx = din + (size_t)n * s->cin * s->h * s->w;
            if (pw) {
                sid_cuda_gemm(1, 0, K, P, s->cout, 1.0f, w, K, g, P, 1.0f, dx, P);  // dx[Cin, P] += W^T g
            } else {
                // Same stream, so this GEMM runs after the dW GEMM has finished reading col.
                sid_cuda_gemm(1, 0, K, P, s->cout, 1.0f, w, K, g, P, 0.0f, col, P);
                const size_t total = (size_t)s->cin * s->h * s->w;
                col2im_add_kernel<<<sid_cuda_blocks(total), SID_CUDA_THREADS>>>(dx, col, s->cin, s->h, s->w, s->k,
                                                                                s->stride, s->pad, ho, wo);
                KERNEL_CHECK("col2im_add_kernel");
            }
        }
    }
}
