// conv2d as im2col + GEMM, one sample per GEMM. With at least as many samples
// as threads, each thread takes whole samples with its own column buffer and a
// single-threaded GEMM (OpenBLAS runs serially inside an OpenMP region), which
// avoids a fork/join per GEMM; otherwise samples run in turn on a threaded GEMM.
// Weight gradients are accumulated per thread and reduced once at the end.
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "core/arena.h"
#include "ops/ops.h"

static sid_scratch conv_scratch;

// A stride-1 conv whose output has the input's size (3x3 pad 1): each column row is its
// input plane shifted by d = (ki-p)*W + (kj-p), so one contiguous copy per row replaces a
// copy per output line (lines are only 8-32 floats in the small UNets); the columns that
// wrapped around a line edge are then zeroed.
static int is_same_stride1(const sid_conv2d_shape *s, int ho, int wo) {
    return s->stride == 1 && ho == s->h && wo == s->w && s->k > 1;
}

typedef struct {
    int oy0, oy1;  // output lines that read inside the plane
    int a, b;      // [a, b): positions whose shifted source lies inside the plane
    int d;         // source offset
    int cx0, cx1;  // output columns [0, cx0) and [cx1, W) read outside a line
} shift_range;

static shift_range shift_of(const sid_conv2d_shape *s, int ki, int kj) {
    const int H = s->h, W = s->w, p = s->pad, HW = H * W;
    shift_range r;
    r.oy0 = p - ki > 0 ? p - ki : 0;
    r.oy1 = H + p - ki < H ? H + p - ki : H;
    if (r.oy1 < r.oy0) r.oy1 = r.oy0;
    r.d = (ki - p) * W + (kj - p);
    const int lo = r.oy0 * W, hi = r.oy1 * W;
    r.a = lo > -r.d ? lo : -r.d;
    r.b = hi < HW - r.d ? hi : HW - r.d;
    if (r.b < r.a) r.b = r.a;
    r.cx0 = p - kj > 0 ? p - kj : 0;
    r.cx1 = W + p - kj < W ? W + p - kj : W;
    if (r.cx0 > W) r.cx0 = W;
    if (r.cx1 < r.cx0) r.cx1 = r.cx0;
    return r;
}

static void zero_wrapped_columns(float *row, const shift_range *r, int W) {
    for (int oy = r->oy0; oy < r->oy1; oy++) {
        float *line = row + (size_t)oy * W;
        for (int x = 0; x < r->cx0; x++) line[x] = 0;
        for (int x = r->cx1; x < W; x++) line[x] = 0;
    }
}

static void im2col_same(float *col, const float *in, const sid_conv2d_shape *s) {
    const int k = s->k, HW = s->h * s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * HW;
                const float *plane = in + (size_t)c * HW;
                const shift_range r = shift_of(s, ki, kj);
                memset(row, 0, (size_t)r.a * sizeof(float));
                memcpy(row + r.a, plane + r.a + r.d, (size_t)(r.b - r.a) * sizeof(float));
                memset(row + r.b, 0, (size_t)(HW - r.b) * sizeof(float));
                zero_wrapped_columns(row, &r, s->w);
            }
}

// Its adjoint; dcol is overwritten (the wrapped columns are zeroed before the shifted add).
static void col2im_same_add(float *din, float *col, const sid_conv2d_shape *s) {
    const int k = s->k, HW = s->h * s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * HW;
                float *restrict plane = din + (size_t)c * HW;
                const shift_range r = shift_of(s, ki, kj);
                zero_wrapped_columns(row, &r, s->w);
                const float *restrict src = row + r.a;
                float *restrict dst = plane + r.a + r.d;
                for (int i = 0; i < r.b - r.a; i++) dst[i] += src[i];
            }
}

// col[(c*k + ki)*k + kj][oy*wo + ox] = in[c][oy*s - p + ki][ox*s - p + kj] (0 outside)
static void im2col(float *col, const float *in, const sid_conv2d_shape *s, int ho, int wo) {
    if (is_same_stride1(s, ho, wo)) {
        im2col_same(col, in, s);
        return;
    }
    const int k = s->k, st = s->stride, p = s->pad, H = s->h, W = s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(c * k + ki) * k + kj) * ho * wo;
                const float *plane = in + (size_t)c * H * W;
                // valid ox range: 0 <= ox*st - p + kj < W
                int ox0 = p - kj > 0 ? (p - kj + st - 1) / st : 0;
                int ox1 = (W - 1 + p - kj) / st + 1;
                if (W - 1 + p - kj < 0) ox1 = 0;
                if (ox1 > wo) ox1 = wo;
                if (ox0 > ox1) ox0 = ox1;
                for (int oy = 0; oy < ho; oy++) {
                    float *r = row + (size_t)oy * wo;
                    int iy = oy * st - p + ki;
                    if (iy < 0 || iy >= H) {
                        memset(r, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W - p + kj;
                    for (int ox = 0; ox < ox0; ox++) r[ox] = 0;
                    if (st == 1) memcpy(r + ox0, src + ox0, (size_t)(ox1 - ox0) * sizeof(float));
                    else
                        for (int ox = ox0; ox < ox1; ox++) r[ox] = src[ox * st];
                    for (int ox = ox1; ox < wo; ox++) r[ox] = 0;
                }
            }
}

// Separate so the compiler can vectorise it (no aliasing between the two rows).
static inline void add_row(float *restrict dst, const float *restrict src, int n) {
    for (int i = 0; i < n; i++) dst[i] += src[i];
}

// The adjoint of im2col: din += scatter of dcol.
static void col2im_add(float *din, float *col, const sid_conv2d_shape *s, int ho, int wo) {
    if (is_same_stride1(s, ho, wo)) {
        col2im_same_add(din, col, s);
        return;
    }
    const int k = s->k, st = s->stride, p = s->pad, H = s->h, W = s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + ((size_t)(c * k + ki) * k + kj) * ho * wo;
                float *plane = din + (size_t)c * H * W;
                int ox0 = p - kj > 0 ? (p - kj + st - 1) / st : 0;
                int ox1 = (W - 1 + p - kj) / st + 1;
                if (W - 1 + p - kj < 0) ox1 = 0;
                if (ox1 > wo) ox1 = wo;
                for (int oy = 0; oy < ho; oy++) {
                    int iy = oy * st - p + ki;
                    if (iy < 0 || iy >= H) continue;
                    const float *r = row + (size_t)oy * wo;
                    float *dst = plane + (size_t)iy * W - p + kj;
                    if (st == 1) add_row(dst + ox0, r + ox0, ox1 - ox0);
                    else
                        for (int ox = ox0; ox < ox1; ox++) dst[ox * st] += r[ox];
                }
            }
}

static int is_pointwise(const sid_conv2d_shape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

// Threads that take whole samples (1 = samples in turn, threaded GEMM inside).
static int sample_threads(const sid_conv2d_shape *s) {
    int t = omp_get_max_threads();
    return s->n >= t ? t : 1;
}

void sid_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * s->k * s->k;
    sid_ops_flops_add(2.0 * s->n * s->cout * P * K);
    const int nt = sample_threads(s), pw = is_pointwise(s);
    float *cols = pw ? NULL : sid_scratch_get(&conv_scratch, (size_t)nt * K * P);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int n = 0; n < s->n; n++) {
        const float *x = in + (size_t)n * s->cin * s->h * s->w;
        float *y = out + (size_t)n * s->cout * P;
        const float *col = x;
        if (!pw) {
            float *mine = cols + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * K * P;
            im2col(mine, x, s, ho, wo);
            col = mine;
        }
        if (b)
            for (int c = 0; c < s->cout; c++)
                for (int i = 0; i < P; i++) y[(size_t)c * P + i] = b[c];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, P, K, 1.0f, w, K, col, P, b ? 1.0f : 0.0f,
                    y, P);
    }
}

void sid_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    const sid_conv2d_shape *s) {
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * s->k * s->k;
    const int nt = sample_threads(s), pw = is_pointwise(s);
    const size_t wsize = (size_t)s->cout * K;
    if (db) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < s->cout; c++) {
            float acc = 0;
            for (int n = 0; n < s->n; n++) {
                const float *g = dout + ((size_t)n * s->cout + c) * P;
#pragma omp simd reduction(+ : acc)
                for (int i = 0; i < P; i++) acc += g[i];
            }
            db[c] += acc;
        }
    }
    if (!din && !dw) return;
    sid_ops_flops_add(2.0 * s->n * s->cout * P * K * ((din != NULL) + (dw != NULL)));
    // Per thread: a column buffer, and a private weight gradient when threads split samples.
    const size_t per_thread = (pw ? 0 : (size_t)K * P) + (dw && nt > 1 ? wsize : 0);
    float *scratch = sid_scratch_get(&conv_scratch, (size_t)nt * per_thread + 1);
    if (dw && nt > 1) memset(scratch, 0, (size_t)nt * per_thread * sizeof(float));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int n = 0; n < s->n; n++) {
        float *mine = scratch + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * per_thread;
        float *col = pw ? NULL : mine;
        float *dw_acc = dw && nt > 1 ? mine + (pw ? 0 : (size_t)K * P) : dw;
        const float *x = in + (size_t)n * s->cin * s->h * s->w;
        const float *g = dout + (size_t)n * s->cout * P;
        float *dx = din ? din + (size_t)n * s->cin * s->h * s->w : NULL;
        if (dw) {
            const float *xc = x;
            if (!pw) {
                im2col(col, x, s, ho, wo);
                xc = col;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, P, 1.0f, g, P, xc, P, 1.0f, dw_acc, K);
        }
        if (dx) {
            if (pw) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, w, K, g, P, 1.0f, dx, P);
            } else {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, w, K, g, P, 0.0f, col, P);
                col2im_add(dx, col, s, ho, wo);
            }
        }
    }
    if (dw && nt > 1) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < wsize; i++) {
            float acc = 0;
            for (int t = 0; t < nt; t++) acc += scratch[(size_t)t * per_thread + (pw ? 0 : (size_t)K * P) + i];
            dw[i] += acc;
        }
    }
}
