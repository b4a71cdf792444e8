// Point-wise activations, GEGLU and softmax.
#include <math.h>

#include "ops/cpu/fastmath.h"
#include "ops/ops.h"

#define PAR_IF(n) if ((n) > 32768)

// SiLU runs over chunks (sid_silu_affine's vectors, a sigmoid buffer on the stack in backward)
enum { ACT_CHUNK = 1024 };
static inline size_t chunk_len(size_t k, size_t n) { return n - k < ACT_CHUNK ? n - k : ACT_CHUNK; }

// exact (erf) GELU as torch.nn.functional.gelu's default
static inline float gelu(float x) { return 0.5f * x * (1.0f + sid_erff(x * 0.70710678118654752f)); }
static inline float gelu_grad(float x) {
    const float cdf = 0.5f * (1.0f + sid_erff(x * 0.70710678118654752f));
    const float pdf = 0.3989422804014327f * sid_expf(-0.5f * x * x);
    return cdf + x * pdf;
}

void sid_act_fwd(sid_act a, float *out, const float *in, size_t n) {
    switch (a) {
    case SID_ACT_SILU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t k = 0; k < n; k += ACT_CHUNK) sid_silu_affine(out + k, in + k, chunk_len(k, n), 1.0f, 0.0f);
        break;
    case SID_ACT_GELU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t i = 0; i < n; i++) out[i] = gelu(in[i]);
        break;
    case SID_ACT_QUICK_GELU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t i = 0; i < n; i++) out[i] = in[i] * sid_sigmoidf(1.702f * in[i]);
        break;
    }
}

void sid_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n) {
    switch (a) {
    case SID_ACT_SILU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t k = 0; k < n; k += ACT_CHUNK) {
            static _Thread_local float s[ACT_CHUNK];  // (static: GCC cannot see sid_sigmoid_affine fill it)
            const size_t len = chunk_len(k, n);
            sid_sigmoid_affine(s, in + k, len, 1.0f, 0.0f);
            for (size_t i = 0; i < len; i++) din[k + i] += dout[k + i] * s[i] * (1.0f + in[k + i] * (1.0f - s[i]));
        }
        break;
    case SID_ACT_GELU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t i = 0; i < n; i++) din[i] += dout[i] * gelu_grad(in[i]);
        break;
    case SID_ACT_QUICK_GELU:
#pragma omp parallel for schedule(static) PAR_IF(n)
        for (size_t i = 0; i < n; i++) {
            const float s = sid_sigmoidf(1.702f * in[i]);
            din[i] += dout[i] * s * (1.0f + 1.702f * in[i] * (1.0f - s));
        }
        break;
    }
}

void sid_geglu_fwd(float *out, const float *in, int M, int H) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)M * H)
    for (int m = 0; m < M; m++) {
        const float *v = in + (size_t)m * 2 * H, *g = v + H;
        float *y = out + (size_t)m * H;
        for (int j = 0; j < H; j++) y[j] = v[j] * gelu(g[j]);
    }
}

void sid_geglu_bwd(float *din, const float *dout, const float *in, int M, int H) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)M * H)
    for (int m = 0; m < M; m++) {
        const float *v = in + (size_t)m * 2 * H, *g = v + H, *dy = dout + (size_t)m * H;
        float *dv = din + (size_t)m * 2 * H, *dg = dv + H;
        for (int j = 0; j < H; j++) {  // gelu(g) = g cdf(g) and its derivative cdf + g pdf share one erf
            const float x = g[j], cdf = 0.5f * (1.0f + sid_erff(x * 0.70710678118654752f));
            const float pdf = 0.3989422804014327f * sid_expf(-0.5f * x * x);
            dv[j] += dy[j] * (x * cdf);
            dg[j] += dy[j] * v[j] * (cdf + x * pdf);
        }
    }
}

void sid_softmax_fwd(float *out, const float *in, int M, int C) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)M * C)
    for (int m = 0; m < M; m++) {
        const float *x = in + (size_t)m * C;
        float *y = out + (size_t)m * C;
        float mx = -INFINITY;
        for (int c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        float s = 0;
        for (int c = 0; c < C; c++) s += (y[c] = sid_expf(x[c] - mx));
        const float inv = 1.0f / s;
        for (int c = 0; c < C; c++) y[c] *= inv;
    }
}

void sid_softmax_bwd(float *din, const float *dout, const float *out, int M, int C) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)M * C)
    for (int m = 0; m < M; m++) {
        const float *y = out + (size_t)m * C, *dy = dout + (size_t)m * C;
        float *dx = din + (size_t)m * C;
        float dot = 0;
        for (int c = 0; c < C; c++) dot += dy[c] * y[c];
        for (int c = 0; c < C; c++) dx[c] += y[c] * (dy[c] - dot);
    }
}
