// 2-D max and average pooling (Inception's stem, branch pools and global pool), one plane per
// iteration of a parallel loop. The window of an output is clipped to the image once, so the
// inner loops see no padding tests.
#include <math.h>

#include "ops/ops.h"

typedef struct {
    int y0, y1, x0, x1;  // the window's cells inside the image, [y0, y1) x [x0, x1)
} window;

static window window_of(const sid_pool2d_shape *s, int oy, int ox) {
    window r = {oy * s->stride - s->pad, oy * s->stride - s->pad + s->k, ox * s->stride - s->pad,
                ox * s->stride - s->pad + s->k};
    if (r.y0 < 0) r.y0 = 0;
    if (r.x0 < 0) r.x0 = 0;
    if (r.y1 > s->h) r.y1 = s->h;
    if (r.x1 > s->w) r.x1 = s->w;
    return r;
}

static float avg_divisor(const sid_pool2d_shape *s, const window *r) {
    return s->count_pad ? (float)(s->k * s->k) : (float)((r->y1 - r->y0) * (r->x1 - r->x0));
}

// The flat index of the first maximum (NaN wins, as in PyTorch) of the window, -1 when it is empty.
static int argmax_of(const float *plane, int W, const window *r) {
    int best = -1;
    float m = -INFINITY;
    for (int y = r->y0; y < r->y1; y++)
        for (int x = r->x0; x < r->x1; x++) {
            const float v = plane[y * W + x];
            if (best < 0 || v > m || isnan(v)) {
                best = y * W + x;
                m = v;
                if (isnan(v)) return best;
            }
        }
    return best;
}

static int no_output(const sid_pool2d_shape *s) { return s->nc <= 0 || s->h + 2 * s->pad < s->k || s->w + 2 * s->pad < s->k; }

void sid_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s) {
    if (no_output(s)) return;
    const int ho = sid_pool2d_hout(s), wo = sid_pool2d_wout(s), HW = s->h * s->w;
#pragma omp parallel for schedule(static) if ((size_t)s->nc * HW > 16384)
    for (int p = 0; p < s->nc; p++) {
        const float *plane = in + (size_t)p * HW;
        float *o = out + (size_t)p * ho * wo;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                const window r = window_of(s, oy, ox);
                if (s->kind == SID_POOL_MAX) {
                    const int a = argmax_of(plane, s->w, &r);
                    o[oy * wo + ox] = a < 0 ? 0.0f : plane[a];
                    continue;
                }
                float acc = 0;
                for (int y = r.y0; y < r.y1; y++)
                    for (int x = r.x0; x < r.x1; x++) acc += plane[y * s->w + x];
                o[oy * wo + ox] = acc / avg_divisor(s, &r);
            }
    }
}

void sid_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s) {
    if (no_output(s)) return;
    const int ho = sid_pool2d_hout(s), wo = sid_pool2d_wout(s), HW = s->h * s->w;
#pragma omp parallel for schedule(static) if ((size_t)s->nc * HW > 16384)
    for (int p = 0; p < s->nc; p++) {
        const float *plane = in + (size_t)p * HW, *g = dout + (size_t)p * ho * wo;
        float *d = din + (size_t)p * HW;
        for (int oy = 0; oy < ho; oy++)
            for (int ox = 0; ox < wo; ox++) {
                const window r = window_of(s, oy, ox);
                if (s->kind == SID_POOL_MAX) {
                    const int a = argmax_of(plane, s->w, &r);
                    if (a >= 0) d[a] += g[oy * wo + ox];
                    continue;
                }
                const float share = g[oy * wo + ox] / avg_divisor(s, &r);
                for (int y = r.y0; y < r.y1; y++)
                    for (int x = r.x0; x < r.x1; x++) d[y * s->w + x] += share;
            }
    }
}
