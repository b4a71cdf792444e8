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

// The geometry the im2col kernels need, by value (a rectangular kernel kh x kw, padding ph, pw).
typedef struct {
    int cin, H, W, kh, kw, st, ph, pw, ho, wo;
} conv_geom;

static conv_geom geom_of(const sid_conv2d_shape *s) {
    return {s->cin, s->h, s->w, s->k, sid_conv2d_kw(s), s->stride, s->pad, sid_conv2d_padw(s), sid_conv2d_hout(s),
            sid_conv2d_wout(s)};
}

// col[(c*kh + ki)*kw + kj][oy*wo + ox] = x[c][oy*st - ph + ki][ox*st - pw + kj], 0 outside the image.
static __global__ void im2col_kernel(float *col, const float *x, conv_geom g) {
    const size_t P = (size_t)g.ho * g.wo, total = (size_t)g.cin * g.kh * g.kw * P;
    GRID_STRIDE(i, total) {
        const int ox = (int)(i % g.wo), oy = (int)((i / g.wo) % g.ho);
        const size_t row = i / P;
        const int kj = (int)(row % g.kw), ki = (int)((row / g.kw) % g.kh), c = (int)(row / ((size_t)g.kh * g.kw));
        const int iy = oy * g.st - g.ph + ki, ix = ox * g.st - g.pw + kj;
        col[i] = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W ? x[((size_t)c * g.H + iy) * g.W + ix] : 0.0f;
    }
}

// dx[c][iy][ix] += sum of the col entries im2col copied that pixel into. One
// thread per input pixel gathers them, so there are no write conflicts.
static __global__ void col2im_add_kernel(float *dx, const float *col, conv_geom g) {
    const size_t P = (size_t)g.ho * g.wo, total = (size_t)g.cin * g.H * g.W;
    GRID_STRIDE(i, total) {
        const int ix = (int)(i % g.W), iy = (int)((i / g.W) % g.H), c = (int)(i / ((size_t)g.H * g.W));
        float s = 0;
        for (int ki = 0; ki < g.kh; ki++) {
            const int ty = iy + g.ph - ki;  // = oy * st
            if (ty < 0 || ty % g.st) continue;
            const int oy = ty / g.st;
            if (oy >= g.ho) continue;
            for (int kj = 0; kj < g.kw; kj++) {
                const int tx = ix + g.pw - kj;
                if (tx < 0 || tx % g.st) continue;
                const int ox = tx / g.st;
                if (ox >= g.wo) continue;
                s += col[((size_t)(c * g.kh + ki) * g.kw + kj) * P + (size_t)oy * g.wo + ox];
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

static int is_pointwise(const sid_conv2d_shape *s) {
    return sid_conv2d_taps(s) == 1 && s->stride == 1 && s->pad == 0 && sid_conv2d_padw(s) == 0;
}

static void im2col(float *col, const float *x, const sid_conv2d_shape *s, int ho, int wo) {
    const size_t total = (size_t)s->cin * sid_conv2d_taps(s) * ho * wo;
    im2col_kernel<<<sid_cuda_blocks(total), SID_CUDA_THREADS>>>(col, x, geom_of(s));
    KERNEL_CHECK("im2col_kernel");
}

void sid_cuda_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * sid_conv2d_taps(s);
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
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * sid_conv2d_taps(s);
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
                col2im_add_kernel<<<sid_cuda_blocks(total), SID_CUDA_THREADS>>>(dx, col, geom_of(s));
                KERNEL_CHECK("col2im_add_kernel");
            }
        }
    }
}
