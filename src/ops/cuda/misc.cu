// Data movement (upsample, concat, transpose), embeddings, per-sample reductions.
#include "ops/cuda/cuda_common.cuh"

// ---- nearest 2x upsampling of [NC, H, W] planes
static __global__ void upsample2x_fwd_kernel(float *out, const float *in, size_t NC, int H, int W) {
    const int W2 = 2 * W, H2 = 2 * H;
    GRID_STRIDE(i, NC * H2 * W2) {
        const int x = (int)(i % W2), y = (int)((i / W2) % H2);
        const size_t p = i / ((size_t)H2 * W2);
        out[i] = in[(p * H + y / 2) * W + x / 2];
    }
}

// Each input pixel gathers its four copies, so no two threads write one address.
static __global__ void upsample2x_bwd_kernel(float *din, const float *dout, size_t NC, int H, int W) {
    GRID_STRIDE(i, NC * H * W) {
        const int x = (int)(i % W), y = (int)((i / W) % H);
        const size_t p = i / ((size_t)H * W);
        const float *r0 = dout + (p * 2 * H + 2 * y) * 2 * W, *r1 = r0 + 2 * W;
        din[i] += r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1];
    }
}

void sid_cuda_upsample2x_fwd(float *out, const float *in, int NC, int H, int W) {
    const size_t n = (size_t)NC * 4 * H * W;
    if (!n) return;
    upsample2x_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, in, (size_t)NC, H, W);
    KERNEL_CHECK("upsample2x_fwd_kernel");
}

void sid_cuda_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W) {
    const size_t n = (size_t)NC * H * W;
    if (!n || !din) return;
    upsample2x_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(din, dout, (size_t)NC, H, W);
    KERNEL_CHECK("upsample2x_bwd_kernel");
}

// ---- 2-D max / average pooling of [NC, H, W] planes (ops.h), geometry by value
typedef struct {
    int h, w, k, st, pad, ho, wo, is_max, count_pad;
} pool_geom;

static pool_geom pool_geom_of(const sid_pool2d_shape *s) {
    return {s->h, s->w, s->k, s->stride, s->pad, sid_pool2d_hout(s), sid_pool2d_wout(s), s->kind == SID_POOL_MAX,
            s->count_pad};
}

// The window of output (oy, ox) clipped to the image: [y0, y1) x [x0, x1).
static __device__ void pool_window(const pool_geom &g, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    *y0 = max(oy * g.st - g.pad, 0), *x0 = max(ox * g.st - g.pad, 0);
    *y1 = min(oy * g.st - g.pad + g.k, g.h), *x1 = min(ox * g.st - g.pad + g.k, g.w);
}

// The first maximum in row-major order (a NaN wins), -1 for an empty window.
static __device__ int pool_argmax(const float *plane, const pool_geom &g, int y0, int y1, int x0, int x1) {
    int best = -1;
    float m = -INFINITY;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            const float v = plane[y * g.w + x];
            if (best < 0 || v > m || isnan(v)) {
                best = y * g.w + x;
                m = v;
                if (isnan(v)) return best;
            }
        }
    return best;
}

static __device__ float pool_divisor(const pool_geom &g, int y0, int y1, int x0, int x1) {
    return g.count_pad ? (float)(g.k * g.k) : (float)((y1 - y0) * (x1 - x0));
}

static __global__ void pool2d_fwd_kernel(float *out, const float *in, size_t NC, pool_geom g) {
    GRID_STRIDE(i, NC * g.ho * g.wo) {
        const int ox = (int)(i % g.wo), oy = (int)((i / g.wo) % g.ho);
        const float *plane = in + (i / ((size_t)g.ho * g.wo)) * g.h * g.w;
        int y0, y1, x0, x1;
        pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
        if (g.is_max) {
            const int a = pool_argmax(plane, g, y0, y1, x0, x1);
            out[i] = a < 0 ? 0.0f : plane[a];
            continue;
        }
        float acc = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) acc += plane[y * g.w + x];
        out[i] = acc / pool_divisor(g, y0, y1, x0, x1);
    }
}

// One thread per plane walks its outputs in order, so overlapping windows never race.
static __global__ void pool2d_bwd_kernel(float *din, const float *dout, const float *in, size_t NC, pool_geom g) {
    GRID_STRIDE(p, NC) {
        const float *plane = in + p * g.h * g.w, *gp = dout + p * g.ho * g.wo;
        float *d = din + p * g.h * g.w;
        for (int oy = 0; oy < g.ho; oy++)
            for (int ox = 0; ox < g.wo; ox++) {
                int y0, y1, x0, x1;
                pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
                const float go = gp[oy * g.wo + ox];
                if (g.is_max) {
                    const int a = pool_argmax(plane, g, y0, y1, x0, x1);
                    if (a >= 0) d[a] += go;
                    continue;
                }
                const float share = go / pool_divisor(g, y0, y1, x0, x1);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) d[y * g.w + x] += share;
            }
    }
}

static int pool_empty(const sid_pool2d_shape *s) {
    return s->nc <= 0 || s->h + 2 * s->pad < s->k || s->w + 2 * s->pad < s->k;
}

void sid_cuda_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s) {
    if (pool_empty(s)) return;
    const pool_geom g = pool_geom_of(s);
    const size_t n = (size_t)s->nc * g.ho * g.wo;
    pool2d_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, in, (size_t)s->nc, g);
    KERNEL_CHECK("pool2d_fwd_kernel");
}

void sid_cuda_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s) {
    if (pool_empty(s) || !din) return;
    pool2d_bwd_kernel<<<sid_cuda_blocks((size_t)s->nc), SID_CUDA_THREADS>>>(din, dout, in, (size_t)s->nc,
                                                                           pool_geom_of(s));
    KERNEL_CHECK("pool2d_bwd_kernel");
}

// ---- channel concat [N, Ca, HW] ++ [N, Cb, HW] -> [N, Ca+Cb, HW]
static __global__ void concat_fwd_kernel(float *out, const float *a, const float *b, size_t N, size_t sa,
                                         size_t sb) {
    const size_t so = sa + sb;
    GRID_STRIDE(i, N * so) {
        const size_t n = i / so, r = i % so;
        out[i] = r < sa ? a[n * sa + r] : b[n * sb + (r - sa)];
    }
}

static __global__ void concat_bwd_kernel(float *da, float *db, const float *dout, size_t N, size_t sa, size_t sb) {
    const size_t so = sa + sb;
    GRID_STRIDE(i, N * so) {
        const size_t n = i / so, r = i % so;
        if (r < sa) {
            if (da) da[n * sa + r] += dout[i];
        } else if (db) {
            db[n * sb + (r - sa)] += dout[i];
        }
    }
}

void sid_cuda_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW) {
    const size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
    if (N <= 0 || sa + sb == 0) return;
    concat_fwd_kernel<<<sid_cuda_blocks((size_t)N * (sa + sb)), SID_CUDA_THREADS>>>(out, a, b, (size_t)N, sa, sb);
    KERNEL_CHECK("concat_fwd_kernel");
}

void sid_cuda_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW) {
    const size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
    if (N <= 0 || sa + sb == 0 || (!da && !db)) return;
    concat_bwd_kernel<<<sid_cuda_blocks((size_t)N * (sa + sb)), SID_CUDA_THREADS>>>(da, db, dout, (size_t)N, sa, sb);
    KERNEL_CHECK("concat_bwd_kernel");
}

// ---- [N, R, C] -> [N, C, R] through a 32x32 shared tile, so both the reads
// and the writes are coalesced; the +1 column avoids bank conflicts.
enum { TT = 32, TROWS = 8 };

static __global__ void transpose_kernel(float *out, const float *in, int R, int C, int accumulate) {
    __shared__ float tile[TT][TT + 1];
    const size_t base = (size_t)blockIdx.z * R * C;
    const int c0 = blockIdx.x * TT, r0 = blockIdx.y * TT;
    for (int dy = threadIdx.y; dy < TT; dy += TROWS) {
        const int r = r0 + dy, c = c0 + threadIdx.x;
        if (r < R && c < C) tile[dy][threadIdx.x] = in[base + (size_t)r * C + c];
    }
    __syncthreads();
    for (int dy = threadIdx.y; dy < TT; dy += TROWS) {
        const int c = c0 + dy, r = r0 + threadIdx.x;
        if (r < R && c < C) {
            float *o = out + base + (size_t)c * R + r;
            *o = accumulate ? *o + tile[threadIdx.x][dy] : tile[threadIdx.x][dy];
        }
    }
}

static void transpose(float *out, const float *in, int N, int R, int C, int accumulate) {
    if (N <= 0 || R <= 0 || C <= 0) return;
    // grid.z is limited to 65535 samples, far above any batch here.
    dim3 grid((C + TT - 1) / TT, (R + TT - 1) / TT, N);
    transpose_kernel<<<grid, dim3(TT, TROWS)>>>(out, in, R, C, accumulate);
    KERNEL_CHECK("transpose_kernel");
}

void sid_cuda_transpose_fwd(float *out, const float *in, int N, int R, int C) { transpose(out, in, N, R, C, 0); }
void sid_cuda_transpose_bwd(float *din, const float *dout, int N, int R, int C) {
    if (din) transpose(din, dout, N, C, R, 1);
}

// ---- sinusoidal timestep embedding (see ops.h); freq in double, rounded to
// float, and t * freq in float, exactly like the CPU and diffusers.
static __device__ __forceinline__ float temb_freq(int j, int half, float freq_shift, float max_period) {
    return (float)exp(-log((double)max_period) * j / ((double)half - freq_shift));
}

static __global__ void temb_fwd_kernel(float *out, const float *t, int N, int dim, int flip, float freq_shift,
                                       float max_period) {
    const int half = dim / 2;
    GRID_STRIDE(i, (size_t)N * dim) {
        const int n = (int)(i / dim), c = (int)(i % dim);
        if (c >= 2 * half) {
            out[i] = 0;  // odd dim: zero last column
            continue;
        }
        const int j = c < half ? c : c - half;
        const float arg = t[n] * temb_freq(j, half, freq_shift, max_period);
        const int want_sin = (c < half) != (flip != 0);  // first half is sin unless flipped
        out[i] = want_sin ? sinf(arg) : cosf(arg);
    }
}

// dt[n] += sum_j dout . d(embedding)/dt; a block per sample.
static __global__ void temb_bwd_kernel(float *dt, const float *dout, const float *t, int dim, int flip,
                                       float freq_shift, float max_period) {
    const int n = blockIdx.x, half = dim / 2;
    const float *g = dout + (size_t)n * dim;
    double acc = 0;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        const float f = temb_freq(j, half, freq_shift, max_period), arg = t[n] * f;
        const float ds = f * cosf(arg), dc = -f * sinf(arg);
        acc += flip ? g[j] * dc + g[half + j] * ds : g[j] * ds + g[half + j] * dc;
    }
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) dt[n] += (float)acc;
}

void sid_cuda_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                                     float freq_shift, float max_period) {
    if (N <= 0 || dim <= 0) return;
    temb_fwd_kernel<<<sid_cuda_blocks((size_t)N * dim), SID_CUDA_THREADS>>>(out, t, N, dim, flip_sin_to_cos,
                                                                            freq_shift, max_period);
    KERNEL_CHECK("temb_fwd_kernel");
}

void sid_cuda_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim,
                                     int flip_sin_to_cos, float freq_shift, float max_period) {
    if (N <= 0 || dim <= 0 || !dt) return;
    temb_bwd_kernel<<<N, 128>>>(dt, dout, t, dim, flip_sin_to_cos, freq_shift, max_period);
    KERNEL_CHECK("temb_bwd_kernel");
}

static __global__ void embedding_fwd_kernel(float *out, const int32_t *ids, const float *tok, const float *pos,
                                            int T, int C, size_t n) {
    GRID_STRIDE(i, n) {
        const size_t bt = i / C;
        const int c = (int)(i % C);
        out[i] = tok[(size_t)ids[bt] * C + c] + (pos ? pos[(bt % T) * C + c] : 0.0f);
    }
}

// Repeated ids (and every sample for the positions) hit the same rows, hence atomics.
static __global__ void embedding_bwd_kernel(float *dtok, float *dpos, const float *dout, const int32_t *ids, int T,
                                            int C, size_t n) {
    GRID_STRIDE(i, n) {
        const size_t bt = i / C;
        const int c = (int)(i % C);
        if (dtok) atomicAdd(&dtok[(size_t)ids[bt] * C + c], dout[i]);
        if (dpos) atomicAdd(&dpos[(bt % T) * C + c], dout[i]);
    }
}

void sid_cuda_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T,
                            int C) {
    const size_t n = (size_t)B * T * C;
    if (!n) return;
    const int32_t *d_ids = ids;
    embedding_fwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(out, d_ids, tok, pos, T, C, n);
    KERNEL_CHECK("embedding_fwd_kernel");
}

void sid_cuda_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C) {
    const size_t n = (size_t)B * T * C;
    if (!n || (!dtok && !dpos)) return;
    const int32_t *d_ids = ids;
    embedding_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(dtok, dpos, dout, d_ids, T, C, n);
    KERNEL_CHECK("embedding_bwd_kernel");
}

// ---- per-sample reductions over [N, D]: a block per sample, sums in double
enum { RED_MSE, RED_ABS, RED_DOT };

static __global__ void reduce_fwd_kernel(int kind, float *out, const float *a, const float *b, int D) {
    const size_t off = (size_t)blockIdx.x * D;
    double s = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const double x = a[off + i], y = b[off + i];
        s += kind == RED_MSE ? (x - y) * (x - y) : kind == RED_ABS ? fabs(x - y) : x * y;
    }
    s = block_sum_d(s);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)(kind == RED_DOT ? s : s / D);
}

static __global__ void reduce_bwd_kernel(int kind, float *da, float *db, const float *dout, const float *a,
                                         const float *b, int D, size_t n) {
    GRID_STRIDE(j, n) {
        const size_t s = j / D;
        if (kind == RED_DOT) {
            if (da) da[j] += dout[s] * b[j];
            if (db) db[j] += dout[s] * a[j];
            continue;
        }
        const float d = a[j] - b[j];
        float g;
        if (kind == RED_MSE) {
            g = 2.0f * dout[s] / (float)D * d;
        } else {
            const float k = dout[s] / (float)D;
            g = d > 0 ? k : d < 0 ? -k : 0.0f;
        }
        if (da) da[j] += g;
        if (db) db[j] -= g;
    }
}

static void reduce_fwd(int kind, float *out, const float *a, const float *b, int N, int D) {
    if (N <= 0) return;
    reduce_fwd_kernel<<<N, SID_CUDA_THREADS>>>(kind, out, a, b, D);
    KERNEL_CHECK("reduce_fwd_kernel");
}

static void reduce_bwd(int kind, float *da, float *db, const float *dout, const float *a, const float *b, int N,
                       int D) {
    const size_t n = (size_t)N * D;
    if (!n || (!da && !db)) return;
    reduce_bwd_kernel<<<sid_cuda_blocks(n), SID_CUDA_THREADS>>>(kind, da, db, dout, a, b, D, n);
    KERNEL_CHECK("reduce_bwd_kernel");
}

void sid_cuda_mse_fwd(float *loss, const float *a, const float *b, int N, int D) { reduce_fwd(RED_MSE, loss, a, b, N, D); }
void sid_cuda_mse_bwd(float *da, float *db, const float *dloss, const float *a, const float *b, int N, int D) {
    reduce_bwd(RED_MSE, da, db, dloss, a, b, N, D);
}
void sid_cuda_mean_abs_fwd(float *out, const float *a, const float *b, int N, int D) {
    reduce_fwd(RED_ABS, out, a, b, N, D);
}
void sid_cuda_mean_abs_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
    reduce_bwd(RED_ABS, da, db, dout, a, b, N, D);
}
void sid_cuda_dot_fwd(float *out, const float *a, const float *b, int N, int D) { reduce_fwd(RED_DOT, out, a, b, N, D); }
void sid_cuda_dot_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
    reduce_bwd(RED_DOT, da, db, dout, a, b, N, D);
}
