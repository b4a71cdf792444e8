// Pillow 13's separable resampling (src/libImaging/Resample.c) re-derived. Every floating-point
// expression keeps Pillow's operand order, because the results are compared bit for bit: the
// kernels are evaluated in double, normalised by their sum, and either rounded to 22-bit fixed
// point (uint8: integer sums, +0.5 rounding, clipped) or used in double sums stored as float ("F").
// This file must not be compiled with floating-point contraction (FMA) or -ffast-math: Pillow's
// x86-64 wheels are built without either.
#include "eval/pil_resample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

#define FIXED_BITS 22          // Pillow's PRECISION_BITS: 8 bits of result, 2 for overshoot, sign
#define MAX_SIDE (1 << 20)     // far above any evaluation image; keeps every size product in range
#define PI 3.14159265358979323846  // M_PI, which strict C11 headers do not declare

typedef struct {
    double (*fn)(double x);
    double support;  // half-width at scale 1
} kernel;

// Keys' cubic with a = -0.5, in Pillow's Horner form.
static double bicubic_fn(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * PI;
    return sin(x) / x;
}

static double lanczos_fn(double x) {
    if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
    return 0.0;
}

static const kernel *kernel_of(sid_pil_filter f) {
    static const kernel bicubic = {bicubic_fn, 2.0}, lanczos = {lanczos_fn, 3.0};
    switch (f) {
    case SID_PIL_BICUBIC: return &bicubic;
    case SID_PIL_LANCZOS: return &lanczos;
    }
    return NULL;
}

// One axis' weights: output sample i reads `bounds[2i + 1]` inputs from `bounds[2i]` on.
typedef struct {
    int n, ksize;
    int *bounds;
    double *k;     // [n][ksize], zero past each window
    int32_t *fk;   // the same in fixed point, for uint8
} window;

static void window_init(window *win, int in_size, int out_size, const kernel *kern) {
    const double scale = (double)in_size / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;  // widen the kernel only when shrinking
    const double support = kern->support * filterscale;
    const double inv_filterscale = 1.0 / filterscale;
    win->n = out_size;
    win->ksize = (int)ceil(support) * 2 + 1;
    const size_t nk = (size_t)out_size * win->ksize;
    win->bounds = sid_malloc((size_t)out_size * 2 * sizeof(int));
    win->k = sid_malloc(nk * sizeof(double));
    win->fk = sid_malloc(nk * sizeof(int32_t));
    for (int i = 0; i < out_size; i++) {
        const double center = (i + 0.5) * scale;
        int lo = (int)(center - support + 0.5);
        int hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        const int cnt = hi - lo;
        double *k = win->k + (size_t)i * win->ksize, sum = 0.0;
        int x = 0;
        for (; x < cnt; x++) {
            k[x] = kern->fn((x + lo - center + 0.5) * inv_filterscale);
            sum += k[x];
        }
        if (sum != 0.0)
            for (x = 0; x < cnt; x++) k[x] /= sum;
        for (; x < win->ksize; x++) k[x] = 0;
        win->bounds[2 * i] = lo;
        win->bounds[2 * i + 1] = cnt;
    }
    for (size_t j = 0; j < nk; j++) {
        const double v = win->k[j] * (1 << FIXED_BITS);
        win->fk[j] = win->k[j] < 0 ? (int32_t)(-0.5 + v) : (int32_t)(0.5 + v);
    }
}

static void window_free(window *win) {
    free(win->bounds);
    free(win->k);
    free(win->fk);
}

static inline uint8_t clip8(int32_t ss) {
    if (ss < 0) return 0;
    ss >>= FIXED_BITS;
    return ss > 255 ? 255 : (uint8_t)ss;
}

// A pass maps `lines` input lines to win->n samples each (horizontal) or win->n output rows of
// `lines` pixels (vertical). Strides are in bytes.
typedef void (*pass_fn)(const uint8_t *in, size_t in_stride, int lines, const window *win, int channels,
                        uint8_t *out, size_t out_stride);

static void horizontal_u8(const uint8_t *in, size_t in_stride, int lines, const window *win, int channels,
                          uint8_t *out, size_t out_stride) {
    for (int y = 0; y < lines; y++) {
        const uint8_t *src = in + (size_t)y * in_stride;
        uint8_t *dst = out + (size_t)y * out_stride;
        for (int i = 0; i < win->n; i++) {
            const int lo = win->bounds[2 * i], cnt = win->bounds[2 * i + 1];
            const int32_t *k = win->fk + (size_t)i * win->ksize;
            const uint8_t *s = src + (size_t)lo * channels;
            for (int c = 0; c < channels; c++) {
                int32_t ss = 1 << (FIXED_BITS - 1);
                for (int x = 0; x < cnt; x++) ss += s[x * channels + c] * k[x];
                dst[i * channels + c] = clip8(ss);
            }
        }
    }
}

static void vertical_u8(const uint8_t *in, size_t in_stride, int lines, const window *win, int channels,
                        uint8_t *out, size_t out_stride) {
    const int n = lines * channels;
    for (int i = 0; i < win->n; i++) {
        const int lo = win->bounds[2 * i], cnt = win->bounds[2 * i + 1];
        const int32_t *k = win->fk + (size_t)i * win->ksize;
        const uint8_t *src = in + (size_t)lo * in_stride;
        uint8_t *dst = out + (size_t)i * out_stride;
        for (int j = 0; j < n; j++) {
            int32_t ss = 1 << (FIXED_BITS - 1);
            for (int y = 0; y < cnt; y++) ss += src[(size_t)y * in_stride + j] * k[y];
            dst[j] = clip8(ss);
        }
    }
}

static void horizontal_f32(const uint8_t *in, size_t in_stride, int lines, const window *win, int channels,
                           uint8_t *out, size_t out_stride) {
    for (int y = 0; y < lines; y++) {
        const float *src = (const float *)(in + (size_t)y * in_stride);
        float *dst = (float *)(out + (size_t)y * out_stride);
        for (int i = 0; i < win->n; i++) {
            const int lo = win->bounds[2 * i], cnt = win->bounds[2 * i + 1];
            const double *k = win->k + (size_t)i * win->ksize;
            double ss = 0.0;
            for (int x = 0; x < cnt; x++) ss += src[lo + x] * k[x];
            dst[i] = (float)ss;
        }
    }
}

static void vertical_f32(const uint8_t *in, size_t in_stride, int lines, const window *win, int channels,
                         uint8_t *out, size_t out_stride) {
    for (int i = 0; i < win->n; i++) {
        const int lo = win->bounds[2 * i], cnt = win->bounds[2 * i + 1];
        const double *k = win->k + (size_t)i * win->ksize;
        float *dst = (float *)(out + (size_t)i * out_stride);
        for (int j = 0; j < lines; j++) {
            double ss = 0.0;
            for (int y = 0; y < cnt; y++) ss += ((const float *)(in + (size_t)(lo + y) * in_stride))[j] * k[y];
            dst[j] = (float)ss;
        }
    }
}

static int check_args(const void *in, int w, int h, size_t stride, size_t pixel, int out_w, int out_h,
                      sid_pil_filter filter, const void *out) {
    if (!in || !out) {
        sid_set_error("resize: no image buffer");
        return -1;
    }
    if (w <= 0 || h <= 0 || out_w <= 0 || out_h <= 0) {
        sid_set_error("resize: sizes must be positive (%dx%d to %dx%d)", w, h, out_w, out_h);
        return -1;
    }
    if (w > MAX_SIDE || h > MAX_SIDE || out_w > MAX_SIDE || out_h > MAX_SIDE) {
        sid_set_error("resize: %dx%d to %dx%d exceeds the largest side, %d", w, h, out_w, out_h, MAX_SIDE);
        return -1;
    }
    if (stride < (size_t)w * pixel) {
        sid_set_error("resize: row stride %zu is shorter than a %d-pixel row", stride, w);
        return -1;
    }
    if (!kernel_of(filter)) {
        sid_set_error("resize: unknown filter %d", (int)filter);
        return -1;
    }
    return 0;
}

static void resample(const uint8_t *in, int w, int h, size_t stride, size_t pixel, int channels, int out_w,
                     int out_h, const kernel *kern, pass_fn horizontal, pass_fn vertical, uint8_t *out) {
    const size_t out_stride = (size_t)out_w * pixel;
    const int need_h = out_w != w, need_v = out_h != h;
    if (!need_h && !need_v) {
        for (int y = 0; y < h; y++) memcpy(out + (size_t)y * out_stride, in + (size_t)y * stride, out_stride);
        return;
    }
    window hw = {0}, vw = {0};
    if (need_h) window_init(&hw, w, out_w, kern);
    if (need_v) window_init(&vw, h, out_h, kern);
    // Pillow 13 picks the order by the pixels each axis loses; with uint8 the order changes results.
    const int horizontal_first = !(h - out_h > 0 && h - out_h > (w - out_w) * 2);
    if (!need_v) {
        horizontal(in, stride, h, &hw, channels, out, out_stride);
    } else if (!need_h) {
        vertical(in, stride, w, &vw, channels, out, out_stride);
    } else if (horizontal_first) {
        // Only the rows the vertical windows reach go through the horizontal pass.
        const int first = vw.bounds[0], last = vw.bounds[2 * out_h - 2] + vw.bounds[2 * out_h - 1];
        for (int i = 0; i < out_h; i++) vw.bounds[2 * i] -= first;
        uint8_t *tmp = sid_malloc((size_t)(last - first) * out_stride);
        horizontal(in + (size_t)first * stride, stride, last - first, &hw, channels, tmp, out_stride);
        vertical(tmp, out_stride, out_w, &vw, channels, out, out_stride);
        free(tmp);
    } else {
        const size_t tmp_stride = (size_t)w * pixel;
        uint8_t *tmp = sid_malloc((size_t)out_h * tmp_stride);
        vertical(in, stride, w, &vw, channels, tmp, tmp_stride);
        horizontal(tmp, tmp_stride, out_h, &hw, channels, out, out_stride);
        free(tmp);
    }
    if (need_h) window_free(&hw);
    if (need_v) window_free(&vw);
}

int sid_pil_resize_u8(const uint8_t *in, int w, int h, int channels, size_t stride, int out_w, int out_h,
                      sid_pil_filter filter, uint8_t *out) {
    if (channels < 1 || channels > 4) {
        sid_set_error("resize: %d channels (Pillow's uint8 modes have 1 to 4)", channels);
        return -1;
    }
    if (check_args(in, w, h, stride, (size_t)channels, out_w, out_h, filter, out)) return -1;
    resample(in, w, h, stride, (size_t)channels, channels, out_w, out_h, kernel_of(filter), horizontal_u8,
             vertical_u8, out);
    return 0;
}

int sid_pil_resize_f32(const float *in, int w, int h, size_t stride, int out_w, int out_h, sid_pil_filter filter,
                       float *out) {
    if (check_args(in, w, h, stride, 1, out_w, out_h, filter, out)) return -1;
    resample((const uint8_t *)in, w, h, stride * sizeof(float), sizeof(float), 1, out_w, out_h, kernel_of(filter),
             horizontal_f32, vertical_f32, (uint8_t *)out);
    return 0;
}
