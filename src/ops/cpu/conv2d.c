// conv2d as im2col + GEMM, one sample per GEMM. With at least as many samples
// as threads, each thread takes whole samples with its own column buffer and a
// single-threaded GEMM (OpenBLAS runs serially inside an OpenMP region), which
// avoids a fork/join per GEMM; otherwise samples run in turn on a threaded GEMM.
// Weight gradients are accumulated per thread and reduced once at the end.
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "ops/cpu/conv2d_winograd.h"
#include "ops/cpu/vec8.h"
#include "ops/ops.h"

static _Thread_local sid_scratch conv_scratch, conv_wflip_scratch;  // threads may run ops side by side (unet.c)

// A stride-1 conv whose output has the input's size (3x3 pad 1): each column row is its
// input plane shifted by d = (ki-p)*W + (kj-p), so one contiguous copy per row replaces a
// copy per output line (lines are only 8-32 floats in the small UNets); the columns that
// wrapped around a line edge are then zeroed.
static int is_same_stride1(const sid_conv2d_shape *s, int ho, int wo) {
    return s->stride == 1 && ho == s->h && wo == s->w && sid_conv2d_taps(s) > 1;
}
static int is_square(const sid_conv2d_shape *s) { return sid_conv2d_kw(s) == s->k; }

typedef struct {
    int oy0, oy1;  // output lines that read inside the plane
    int a, b;      // [a, b): positions whose shifted source lies inside the plane
    int d;         // source offset
    int cx0, cx1;  // output columns [0, cx0) and [cx1, W) read outside a line
} shift_range;

static shift_range shift_of(const sid_conv2d_shape *s, int ki, int kj) {
    const int H = s->h, W = s->w, p = s->pad, pw = sid_conv2d_padw(s), HW = H * W;
    shift_range r;
    r.oy0 = p - ki > 0 ? p - ki : 0;
    if (r.oy0 > H) r.oy0 = H;  // a plane lower than the padding: no line reads inside it
    r.oy1 = H + p - ki < H ? H + p - ki : H;
    if (r.oy1 < r.oy0) r.oy1 = r.oy0;
    r.d = (ki - p) * W + (kj - pw);
    const int lo = r.oy0 * W, hi = r.oy1 * W;
    r.a = lo > -r.d ? lo : -r.d;
    r.b = hi < HW - r.d ? hi : HW - r.d;
    // A plane narrower or lower than the kernel (1 x W, H x 1) can shift every source out of
    // it: -d then exceeds the plane, and [a, b) must still lie inside the column row.
    if (r.a > HW) r.a = HW;
    if (r.b < r.a) r.b = r.a;
    r.cx0 = pw - kj > 0 ? pw - kj : 0;
    r.cx1 = W + pw - kj < W ? W + pw - kj : W;
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
    const int kh = s->k, kw = sid_conv2d_kw(s), HW = s->h * s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                float *row = col + ((size_t)(c * kh + ki) * kw + kj) * HW;
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
    const int kh = s->k, kw = sid_conv2d_kw(s), HW = s->h * s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                float *row = col + ((size_t)(c * kh + ki) * kw + kj) * HW;
                float *restrict plane = din + (size_t)c * HW;
                const shift_range r = shift_of(s, ki, kj);
                zero_wrapped_columns(row, &r, s->w);
                const float *restrict src = row + r.a;
                float *restrict dst = plane + r.a + r.d;
                for (int i = 0; i < r.b - r.a; i++) dst[i] += src[i];
            }
}

// col[(c*kh + ki)*kw + kj][oy*wo + ox] = in[c][oy*s - ph + ki][ox*s - pw + kj] (0 outside)
static void im2col(float *col, const float *in, const sid_conv2d_shape *s, int ho, int wo) {
    if (is_same_stride1(s, ho, wo)) {
        im2col_same(col, in, s);
        return;
    }
    const int kh = s->k, kw = sid_conv2d_kw(s), st = s->stride, p = s->pad, pw = sid_conv2d_padw(s);
    const int H = s->h, W = s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                float *row = col + ((size_t)(c * kh + ki) * kw + kj) * ho * wo;
                const float *plane = in + (size_t)c * H * W;
                // valid ox range: 0 <= ox*st - p + kj < W
                int ox0 = pw - kj > 0 ? (pw - kj + st - 1) / st : 0;
                int ox1 = (W - 1 + pw - kj) / st + 1;
                if (W - 1 + pw - kj < 0) ox1 = 0;
                if (ox1 > wo) ox1 = wo;
                if (ox0 > ox1) ox0 = ox1;
                for (int oy = 0; oy < ho; oy++) {
                    float *r = row + (size_t)oy * wo;
                    int iy = oy * st - p + ki;
                    if (iy < 0 || iy >= H) {
                        memset(r, 0, (size_t)wo * sizeof(float));
                        continue;
                    }
                    const float *src = plane + (size_t)iy * W - pw + kj;
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
    const int kh = s->k, kw = sid_conv2d_kw(s), st = s->stride, p = s->pad, pw = sid_conv2d_padw(s);
    const int H = s->h, W = s->w;
    for (int c = 0; c < s->cin; c++)
        for (int ki = 0; ki < kh; ki++)
            for (int kj = 0; kj < kw; kj++) {
                const float *row = col + ((size_t)(c * kh + ki) * kw + kj) * ho * wo;
                float *plane = din + (size_t)c * H * W;
                int ox0 = pw - kj > 0 ? (pw - kj + st - 1) / st : 0;
                int ox1 = (W - 1 + pw - kj) / st + 1;
                if (W - 1 + pw - kj < 0) ox1 = 0;
                if (ox1 > wo) ox1 = wo;
                for (int oy = 0; oy < ho; oy++) {
                    int iy = oy * st - p + ki;
                    if (iy < 0 || iy >= H) continue;
                    const float *r = row + (size_t)oy * wo;
                    float *dst = plane + (size_t)iy * W - pw + kj;
                    if (st == 1) add_row(dst + ox0, r + ox0, ox1 - ox0);
                    else
                        for (int ox = ox0; ox < ox1; ox++) dst[ox * st] += r[ox];
                }
            }
}

// ---------------------------------------------------------------- direct path, small channels
// With 8-64 channels (the built-in teacher's UNet) the im2col GEMMs have only 8-64 rows and
// OpenBLAS spends as long packing the column matrix as multiplying. A direct kernel instead
// keeps 8 output channels x 16 pixels in registers and streams the zero-padded input once per
// tap. It serves same-size stride-1 convs (3x3 pad 1) forward, and their input gradient, which
// is the same convolution of the padded output gradient with the kernel flipped and its
// channel axes swapped; a second kernel sums their weight gradient over the pixels.
// DW_CHUNK_FLOATS: 256 KB of padded inputs; WINO_DW_CHUNK_FLOATS: 1 MB of transformed tiles
enum { DIRECT_MAX_CH = 64, DW_CHUNK_FLOATS = 64 << 10, WINO_DW_CHUNK_FLOATS = 256 << 10 };

static int direct_ok(const sid_conv2d_shape *s, int ho, int wo, int cout) {
    return is_same_stride1(s, ho, wo) && is_square(s) && 2 * s->pad == s->k - 1 && s->w % 8 == 0 && cout >= 1 &&
           s->cin <= DIRECT_MAX_CH && s->cout <= DIRECT_MAX_CH;
}

// dst [C, H+2p, W+2p] = src [C, H, W] with a zero border of p
// (only the border is zeroed: a whole-buffer memset was 4% of a SiD iteration)
static void pad_planes(float *dst, const float *src, int C, int H, int W, int p) {
    const int Hp = H + 2 * p, Wp = W + 2 * p;
    for (int c = 0; c < C; c++) {
        float *plane = dst + (size_t)c * Hp * Wp;
        memset(plane, 0, (size_t)p * Wp * sizeof(float));
        for (int y = 0; y < H; y++) {
            float *line = plane + (size_t)(y + p) * Wp;
            for (int i = 0; i < p; i++) line[i] = line[p + W + i] = 0;
            memcpy(line + p, src + ((size_t)c * H + y) * W, (size_t)W * sizeof(float));
        }
        memset(plane + (size_t)(H + p) * Wp, 0, (size_t)p * Wp * sizeof(float));
    }
}

// Output channels per register tile: 8 where there are 32 vector registers (AVX-512), else 4,
// so that the accumulators, the input vectors and the broadcast weight fit in 16 (AVX2: an
// 8-channel tile spilled three accumulators to the stack in the inner loop).
#if defined(__AVX512F__)
enum { DIRECT_CO = 8 };
#else
enum { DIRECT_CO = 4 };
#endif

// One register tile: DIRECT_CO output channels x 8V pixels from (y, x) (V = 1 or 2; with V = 2
// each broadcast weight feeds two FMAs, which halves the loads per FMA). The second 8 pixels
// follow on the same line, or, with rows2, are the same 8 of line y + 1 (8-pixel-wide planes).
// ISO C mode keeps GCC from fusing a*b+c, hence the attribute (a separate multiply and add ran
// 20% slower).
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void direct_tile(
    float *out, const float *pad, const float *w, const float *b, int cin, int co, int y, int x, int H, int W, int k,
    int accumulate, const int V, const int rows2, const int CO) {
    const int Wp = W + k - 1, Hp = H + k - 1, kk = k * k, wstride = cin * kk;
    const int vin = rows2 ? Wp : 8, vout = rows2 ? W : 8;  // from the first 8 pixels to the second
    v8f acc[DIRECT_CO][2];
    for (int j = 0; j < CO; j++) {
        float *o = out + ((size_t)(co + j) * H + y) * W + x;
        const float bj = b ? b[co + j] : 0.0f;
        for (int v = 0; v < V; v++) acc[j][v] = accumulate ? load8(o + vout * v) : (v8f){bj, bj, bj, bj, bj, bj, bj, bj};
    }
    for (int ci = 0; ci < cin; ci++) {
        const float *src = pad + ((size_t)ci * Hp + y) * Wp + x;
        const float *wc = w + (size_t)co * wstride + (size_t)ci * kk;
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                v8f iv[2];
                for (int v = 0; v < V; v++) iv[v] = load8(src + ky * Wp + kx + vin * v);
                const float *wt = wc + ky * k + kx;
                for (int j = 0; j < CO; j++) {
                    const float wj = wt[(size_t)j * wstride];
                    for (int v = 0; v < V; v++) acc[j][v] += iv[v] * wj;
                }
            }
    }
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) store8(out + ((size_t)(co + j) * H + y) * W + x + vout * v, acc[j][v]);
}

// The output planes of CO channels: 16-pixel tiles along each line, then an 8-pixel one;
// a plane 8 pixels wide takes two lines per tile instead (one 8-pixel tile per line had 5 loads
// per 4 FMAs on AVX2, and ran at half the speed of the wider planes).
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void direct_planes(
    float *out, const float *pad, const float *w, const float *b, int cin, int co, int H, int W, int k,
    int accumulate, const int CO) {
    int y = 0;
    if (W == 8)
        for (; y + 2 <= H; y += 2) direct_tile(out, pad, w, b, cin, co, y, 0, H, W, k, accumulate, 2, 1, CO);
    for (; y < H; y++) {
        int x = 0;
        for (; x + 16 <= W; x += 16) direct_tile(out, pad, w, b, cin, co, y, x, H, W, k, accumulate, 2, 0, CO);
        if (x < W) direct_tile(out, pad, w, b, cin, co, y, x, H, W, k, accumulate, 1, 0, CO);
    }
}

// out[co][y][x] (+)= b[co] + sum_{ci,ky,kx} w[co][ci][ky][kx] pad[ci][y+ky][x+kx], W % 8 == 0. Channels
// past the last whole tile (the UNets' conv_out: 1 or 4) take one-channel tiles.
__attribute__((optimize("fp-contract=fast"))) static void conv_direct(float *out, const float *pad, const float *w,
                                                                      const float *b, int cin, int cout, int H,
                                                                      int W, int k, int accumulate) {
    int co = 0;
    // k = 3, the UNets' kernel size, as a constant: its tap loops unroll
    for (; co + DIRECT_CO <= cout; co += DIRECT_CO) {
        if (k == 3) direct_planes(out, pad, w, b, cin, co, H, W, 3, accumulate, DIRECT_CO);
        else direct_planes(out, pad, w, b, cin, co, H, W, k, accumulate, DIRECT_CO);
    }
    for (; co < cout; co++) {
        if (k == 3) direct_planes(out, pad, w, b, cin, co, H, W, 3, accumulate, 1);
        else direct_planes(out, pad, w, b, cin, co, H, W, k, accumulate, 1);
    }
}

// dw[co][ci][ky][kx0 + t] += sum_{n,y,x} g[n][co][y][x] pad[n][ci][y+ky][x+kx0+t] for CO output
// channels and NK <= 3 taps of one kernel row over ns samples: 3 CO accumulators, CO + NK loads per
// CO NK FMAs. Summing several samples in registers before the horizontal sums matters on small
// planes (8x8: 8 vector steps per sample against 12 horizontal sums).
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void dw_tile(
    float *dw, const float *g, const float *pad, int ns, int cin, int cout, int co, int ci, int ky, int kx0, int H,
    int W, int k, const int NK, const int CO) {
    const int Wp = W + k - 1, Hp = H + k - 1;
    const size_t HW = (size_t)H * W, gstride = (size_t)cout * HW, pstride = (size_t)cin * Hp * Wp;
    v8f acc[DIRECT_CO][3];
    for (int j = 0; j < CO; j++)
        for (int t = 0; t < NK; t++) acc[j][t] = (v8f){0};
    for (int n = 0; n < ns; n++)
        for (int y = 0; y < H; y++) {
            const float *src = pad + n * pstride + ((size_t)ci * Hp + y + ky) * Wp + kx0;
            const float *gy = g + n * gstride + (size_t)co * HW + (size_t)y * W;
            for (int x = 0; x < W; x += 8) {
                v8f iv[3];
                for (int t = 0; t < NK; t++) iv[t] = load8(src + x + t);
                for (int j = 0; j < CO; j++) {
                    const v8f gv = load8(gy + j * HW + x);
                    for (int t = 0; t < NK; t++) acc[j][t] += gv * iv[t];
                }
            }
        }
    for (int j = 0; j < CO; j++)
        for (int t = 0; t < NK; t++) dw[(((size_t)(co + j) * cin + ci) * k + ky) * k + kx0 + t] += hsum8(acc[j][t]);
}

static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void dw_row(
    float *dw, const float *g, const float *pad, int ns, int cin, int cout, int co, int ci, int ky, int H, int W,
    int k, const int CO) {
    if (k == 3) {
        dw_tile(dw, g, pad, ns, cin, cout, co, ci, ky, 0, H, W, 3, 3, CO);
        return;
    }
    int kx = 0;
    for (; kx + 3 <= k; kx += 3) dw_tile(dw, g, pad, ns, cin, cout, co, ci, ky, kx, H, W, k, 3, CO);
    if (k - kx == 2) dw_tile(dw, g, pad, ns, cin, cout, co, ci, ky, kx, H, W, k, 2, CO);
    if (k - kx == 1) dw_tile(dw, g, pad, ns, cin, cout, co, ci, ky, kx, H, W, k, 1, CO);
}

// The weight gradient of ns consecutive samples from their padded inputs [ns, cin, Hp, Wp] and
// their output gradients g [ns, cout, H, W].
__attribute__((optimize("fp-contract=fast"))) static void conv_direct_dw(float *dw, const float *g, const float *pad,
                                                                         int ns, int cin, int cout, int H, int W,
                                                                         int k) {
    int co = 0;
    for (; co + DIRECT_CO <= cout; co += DIRECT_CO)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++) dw_row(dw, g, pad, ns, cin, cout, co, ci, ky, H, W, k, DIRECT_CO);
    for (; co < cout; co++)
        for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++) dw_row(dw, g, pad, ns, cin, cout, co, ci, ky, H, W, k, 1);
}

// The Winograd-domain kernels depend on the weights alone, yet the batch split calls a convolution
// once per part (16 parts at batch 64), and transforming them each time took 2.4 % of a SiD-LSG
// iteration. Each thread keeps the transforms of the weights it saw, keyed by address, shape and
// orientation (flip: the input gradient's), valid while a copy of the weights still matches them
// (an optimizer step changes them in place).
typedef struct {
    const float *w;
    int cin, cout, flip;
    float *copy, *U;
} wino_entry;
enum { WINO_CACHE_ENTRIES = 256 };  // the three networks' convolutions, both orientations
static _Thread_local wino_entry wino_cache[WINO_CACHE_ENTRIES];
static _Thread_local int wino_cache_next;

static const float *wino_kernels(const float *w, int cin, int cout, int flip) {
    const size_t nw = (size_t)cin * cout * 9;
    wino_entry *e = NULL;
    for (int i = 0; i < WINO_CACHE_ENTRIES && !e; i++)
        if (wino_cache[i].w == w && wino_cache[i].cin == cin && wino_cache[i].cout == cout && wino_cache[i].flip == flip)
            e = &wino_cache[i];
    if (e && !memcmp(e->copy, w, nw * sizeof(float))) return e->U;
    if (!e) {  // a new entry, in turn over the slots
        e = &wino_cache[wino_cache_next];
        wino_cache_next = (wino_cache_next + 1) % WINO_CACHE_ENTRIES;
        free(e->copy), free(e->U);
        *e = (wino_entry){w, cin, cout, flip, sid_malloc(nw * sizeof(float)),
                          sid_malloc(sid_wino_weights_floats(cin, cout) * sizeof(float))};
    }
    memcpy(e->copy, w, nw * sizeof(float));
    sid_wino_weights(e->U, w, cin, cout, flip);
    return e->U;
}

// 3x3 kernels whose planes fill the Winograd kernel's tile vectors (conv2d_winograd.c), summing
// over at least 8 input channels (cin: those of the convolution computed, the output's for the
// input gradient): its output transform costs as much as 3 input channels' products.
static int wino_ok(const sid_conv2d_shape *s, int cin) { return s->k == 3 && cin >= 8 && sid_wino_fits(s->h, s->w); }

static int is_pointwise(const sid_conv2d_shape *s) {
    return sid_conv2d_taps(s) == 1 && s->stride == 1 && s->pad == 0 && sid_conv2d_padw(s) == 0;
}

// Threads that take whole samples (1 = samples in turn, threaded GEMM inside).
static int sample_threads(const sid_conv2d_shape *s) {
    int t = omp_get_max_threads();
    return s->n >= t ? t : 1;
}

// An input smaller than the kernel even with its padding has no output pixel (hout's integer
// division would round the negative numerator towards zero and claim one).
static int no_output(const sid_conv2d_shape *s) {
    return s->n <= 0 || s->h + 2 * s->pad < s->k || s->w + 2 * sid_conv2d_padw(s) < sid_conv2d_kw(s);
}

void sid_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    if (no_output(s)) return;
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * sid_conv2d_taps(s);
    sid_ops_flops_add(2.0 * s->n * s->cout * P * K);
    const int nt = sample_threads(s), pw = is_pointwise(s);
    const int direct = direct_ok(s, ho, wo, s->cout);
    const int wino = direct && wino_ok(s, s->cin);
    // per thread: the Winograd kernel's planes and tiles, the padded input (direct kernel) or the
    // column matrix (im2col + GEMM)
    const size_t per_thread = wino     ? sid_wino_scratch_floats(s->cin, s->cout, s->h, s->w)
                              : direct ? (size_t)s->cin * (s->h + 2 * s->pad) * (s->w + 2 * s->pad)
                              : pw     ? 0
                                       : (size_t)K * P;
    float *scratch = per_thread ? sid_scratch_get(&conv_scratch, (size_t)nt * per_thread) : NULL;
    const float *U = wino ? wino_kernels(w, s->cin, s->cout, 0) : NULL;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int n = 0; n < s->n; n++) {
        const float *x = in + (size_t)n * s->cin * s->h * s->w;
        float *y = out + (size_t)n * s->cout * P, *mine = scratch + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * per_thread;
        if (wino) {
            sid_wino_conv(y, x, U, b, s->cin, s->cout, s->h, s->w, 0, mine);
            continue;
        }
        if (direct) {
            pad_planes(mine, x, s->cin, s->h, s->w, s->pad);
            conv_direct(y, mine, w, b, s->cin, s->cout, s->h, s->w, s->k, 0);
            continue;
        }
        const float *col = x;
        if (!pw) {
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
    if (no_output(s)) return;
    const int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s), P = ho * wo, K = s->cin * sid_conv2d_taps(s);
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
    // The input gradient by the direct kernel: the padded output gradient convolved with the
    // flipped, channel-swapped kernel wf[ci][co][ky][kx] = w[co][ci][k-1-ky][k-1-kx].
    const int direct_dx = din && direct_ok(s, ho, wo, s->cin) && s->cout <= DIRECT_MAX_CH;
    const int k = s->k, kk = k * k, wino_dx = direct_dx && wino_ok(s, s->cout);
    const float *wf = NULL;
    if (wino_dx) {
        wf = wino_kernels(w, s->cout, s->cin, 1);
    } else if (direct_dx) {
        float *flipped = sid_scratch_get(&conv_wflip_scratch, wsize);
        wf = flipped;
        for (int co = 0; co < s->cout; co++)
            for (int ci = 0; ci < s->cin; ci++)
                for (int t = 0; t < kk; t++)
                    flipped[((size_t)ci * s->cout + co) * kk + (kk - 1 - t)] = w[((size_t)co * s->cin + ci) * kk + t];
    }
    // The weight gradient by the direct kernel too, from the padded input, or by Winograd tiles.
    const int direct_dw = dw && direct_ok(s, ho, wo, s->cout);
    const int wino_dw = direct_dw && wino_ok(s, s->cin) && sid_wino_dw_fits(s->cin, s->h, s->w);
    // Each thread takes a contiguous range of samples; the direct weight gradient takes them in
    // chunks of padded inputs of up to DW_CHUNK_FLOATS, summed in registers across the chunk, the
    // Winograd one in chunks whose transformed tiles take up to WINO_DW_CHUNK_FLOATS (in L2).
    // Per thread: a column buffer, a padded output gradient, the chunk's padded inputs (or
    // transformed tiles), the Winograd-domain weight gradient, and a private weight gradient when
    // threads split samples.
    const size_t planes = (size_t)(s->h + 2 * s->pad) * (s->w + 2 * s->pad), pad_one = (size_t)s->cin * planes;
    const int per_thread_n = (s->n + nt - 1) / nt;
    int chunk = wino_dw     ? (int)(WINO_DW_CHUNK_FLOATS / sid_wino_dw_scratch_floats(1, s->cin, s->cout, s->h, s->w))
                : direct_dw ? (int)(DW_CHUNK_FLOATS / pad_one)
                            : 1;
    chunk = chunk < 1 ? 1 : chunk > per_thread_n ? per_thread_n : chunk;
    const size_t col_sz = !pw && ((dw && !direct_dw) || (din && !direct_dx)) ? (size_t)K * P : 0;
    const size_t pad_sz = wino_dx     ? sid_wino_scratch_floats(s->cout, s->cin, s->h, s->w)
                          : direct_dx ? (size_t)s->cout * planes
                                      : 0;
    const size_t padx_sz = wino_dw     ? sid_wino_dw_scratch_floats(chunk, s->cin, s->cout, s->h, s->w)
                           : direct_dw ? (size_t)chunk * pad_one
                                       : 0;
    const size_t du_sz = wino_dw ? sid_wino_weights_floats(s->cin, s->cout) : 0;
    const size_t du_off = col_sz + pad_sz + padx_sz, dw_off = du_off + du_sz;
    const size_t per_thread = dw_off + (dw && nt > 1 ? wsize : 0);
    float *scratch = sid_scratch_get(&conv_scratch, (size_t)nt * per_thread + 1);
    for (int t = 0; t < nt; t++) {
        float *mine = scratch + (size_t)t * per_thread;
        if (wino_dw) memset(mine + du_off, 0, du_sz * sizeof(float));
        if (dw && nt > 1) memset(mine + dw_off, 0, wsize * sizeof(float));
    }
    const size_t in_one = (size_t)s->cin * s->h * s->w, out_one = (size_t)s->cout * P;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        const int t = nt > 1 ? omp_get_thread_num() : 0;
        const int n0 = (int)((int64_t)s->n * t / nt), n1 = (int)((int64_t)s->n * (t + 1) / nt);
        float *mine = scratch + (size_t)t * per_thread;
        float *col = mine, *padg = mine + col_sz, *padx = padg + pad_sz;
        float *dw_acc = dw && nt > 1 ? mine + dw_off : dw;
        for (int c0 = n0; c0 < n1; c0 += chunk) {
            const int c1 = c0 + chunk < n1 ? c0 + chunk : n1;
            if (wino_dw) {
                sid_wino_dw_accumulate(mine + du_off, in + c0 * in_one, dout + c0 * out_one, c1 - c0, s->cin, s->cout,
                                       s->h, s->w, padx);
            } else if (direct_dw) {
                for (int n = c0; n < c1; n++)
                    pad_planes(padx + (n - c0) * pad_one, in + n * in_one, s->cin, s->h, s->w, s->pad);
                conv_direct_dw(dw_acc, dout + c0 * out_one, padx, c1 - c0, s->cin, s->cout, s->h, s->w, k);
            }
            for (int n = c0; n < c1; n++) {
                const float *x = in + n * in_one;
                const float *g = dout + n * out_one;
                float *dx = din ? din + n * in_one : NULL;
                if (dw && !direct_dw) {
                    const float *xc = x;
                    if (!pw) {
                        im2col(col, x, s, ho, wo);
                        xc = col;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, P, 1.0f, g, P, xc, P, 1.0f,
                                dw_acc, K);
                }
                if (!dx) continue;
                if (wino_dx) {
                    sid_wino_conv(dx, g, wf, NULL, s->cout, s->cin, s->h, s->w, 1, padg);
                } else if (direct_dx) {
                    pad_planes(padg, g, s->cout, s->h, s->w, s->pad);
                    conv_direct(dx, padg, wf, NULL, s->cout, s->cin, s->h, s->w, k, 1);
                } else if (pw) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, w, K, g, P, 1.0f, dx, P);
                } else {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, P, s->cout, 1.0f, w, K, g, P, 0.0f, col,
                                P);
                    col2im_add(dx, col, s, ho, wo);
                }
            }
        }
        if (wino_dw) sid_wino_dw_finish(dw_acc, mine + du_off, s->cin, s->cout);
    }
    if (dw && nt > 1) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < wsize; i++) {
            float acc = 0;
            for (int t = 0; t < nt; t++) acc += scratch[(size_t)t * per_thread + dw_off + i];
            dw[i] += acc;
        }
    }
}
