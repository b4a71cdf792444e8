// Group norm (alone or with SiLU) and layer norm. Statistics are accumulated in double: group
// sizes reach 10^5 elements (SD at 64x64), where float sums lose digits.
// The sums are `omp simd` reductions: lanes of doubles instead of one serial
// chain, which made group norm ~11% of the tiny UNet's forward time.
#include <math.h>

#include "core/arena.h"
#include "ops/cpu/fastmath.h"
#include "ops/ops.h"

// Each sum runs over the four quarters of x side by side (and a tail): four vector accumulators
// instead of one, whose add latency bounded the loop.
static void moments(const float *x, size_t n, float *mean, float *rstd, float eps) {
    const size_t q = n / 4;
    const float *x1 = x + q, *x2 = x + 2 * q, *x3 = x + 3 * q;
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (size_t i = 0; i < q; i++) s0 += x[i], s1 += x1[i], s2 += x2[i], s3 += x3[i];
    for (size_t i = 4 * q; i < n; i++) s0 += x[i];
    const double mu = ((s0 + s1) + (s2 + s3)) / (double)n;
    double v0 = 0, v1 = 0, v2 = 0, v3 = 0;
#pragma omp simd reduction(+ : v0, v1, v2, v3)
    for (size_t i = 0; i < q; i++) {
        const double d0 = x[i] - mu, d1 = x1[i] - mu, d2 = x2[i] - mu, d3 = x3[i] - mu;
        v0 += d0 * d0, v1 += d1 * d1, v2 += d2 * d2, v3 += d3 * d3;
    }
    for (size_t i = 4 * q; i < n; i++) v0 += (x[i] - mu) * (x[i] - mu);
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(((v0 + v1) + (v2 + v3)) / (double)n + eps));
}

// Group norm, optionally followed by SiLU (groupnorm_silu_*): one body per direction, the flag a
// compile-time constant in each entry point.
static inline __attribute__((always_inline)) void groupnorm_fwd(float *out, float *mean, float *rstd, const float *in,
                                                                const float *gamma, const float *beta, int N, int C,
                                                                int HW, int G, float eps, const int silu) {
    const int cg = C / G;
    const size_t gsize = (size_t)cg * HW;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < N * G; ng++) {
        const float *x = in + (size_t)ng * gsize;
        float *y = out + (size_t)ng * gsize;
        moments(x, gsize, &mean[ng], &rstd[ng], eps);
        const float mu = mean[ng], rs = rstd[ng];
        for (int c = 0; c < cg; c++) {
            const int ch = (ng % G) * cg + c;
            const float a = rs * (gamma ? gamma[ch] : 1.0f), b = (beta ? beta[ch] : 0.0f) - mu * a;
            const float *xc = x + (size_t)c * HW;
            float *yc = y + (size_t)c * HW;
            if (silu)
                sid_silu_affine(yc, xc, (size_t)HW, a, b);
            else
                for (int i = 0; i < HW; i++) yc[i] = xc[i] * a + b;
        }
    }
}

void sid_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int N, int C, int HW, int G, float eps) {
    groupnorm_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps, 0);
}
void sid_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps) {
    groupnorm_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps, 1);
}

// Backward in two passes over each (sample, group). The first sums, per channel, dy and dy * xhat
// (dy: the gradient at the norm's output, which under SiLU is dout * silu'(y) with y recomputed,
// kept in a per-thread buffer of the group's size for the second pass); those sums give the din
// terms, dx = rs * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat)), and, added over the samples,
// dgamma and dbeta. The second pass writes dx. (A separate pass over all samples for dgamma and
// dbeta read the input and the gradient a third time.)
static _Thread_local sid_scratch gn_dy_scratch, gn_sums_scratch;

static inline __attribute__((always_inline)) void groupnorm_bwd(float *din, float *dgamma, float *dbeta,
                                                                const float *dout, const float *in, const float *gamma,
                                                                const float *beta, const float *mean, const float *rstd,
                                                                int N, int C, int HW, int G, const int silu) {
    const int cg = C / G, affine = dgamma || dbeta;
    const size_t gsize = (size_t)cg * HW;
    if (!din && !affine) return;
    // [N*C] pairs (sum dy*xhat, sum dy), as doubles in a float scratch (its storage is 64-byte aligned)
    double *sums = affine ? (double *)(void *)sid_scratch_get(&gn_sums_scratch, (size_t)4 * N * C) : NULL;
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < N * G; ng++) {
        const size_t off = (size_t)ng * gsize;
        const float *x = in + off, *go = dout + off;
        const float mu = mean[ng], rs = rstd[ng];
        const int c0 = (ng % G) * cg, n = ng / G;
        float *dyb = silu ? sid_scratch_get(&gn_dy_scratch, gsize) : NULL;
        const float *dy = silu ? dyb : go;
        double s1 = 0, s2 = 0;
        for (int c = 0; c < cg; c++) {
            const float gm = gamma ? gamma[c0 + c] : 1.0f, bt = beta ? beta[c0 + c] : 0.0f;
            const float *xc = x + (size_t)c * HW, *gc = go + (size_t)c * HW;
            double sb = 0, sg = 0;
            if (silu) {  // y as forward computed it, its sigmoid first into dy's row
                float *dc = dyb + (size_t)c * HW;
                const float a = rs * gm, b = bt - mu * a;
                sid_sigmoid_affine(dc, xc, (size_t)HW, a, b);
#pragma omp simd reduction(+ : sb, sg)
                for (int i = 0; i < HW; i++) {
                    const float xhat = (xc[i] - mu) * rs, y = xc[i] * a + b, sy = dc[i];
                    const float d = gc[i] * (sy * (1.0f + y * (1.0f - sy)));
                    dc[i] = d;
                    sb += d;
                    sg += (double)d * xhat;
                }
            } else {
#pragma omp simd reduction(+ : sb, sg)
                for (int i = 0; i < HW; i++) {
                    const float d = gc[i];
                    sb += d;
                    sg += (double)d * ((xc[i] - mu) * rs);
                }
            }
            s1 += gm * sb;
            s2 += gm * sg;
            if (affine) sums[2 * ((size_t)n * C + c0 + c)] = sg, sums[2 * ((size_t)n * C + c0 + c) + 1] = sb;
        }
        if (!din) continue;
        const float m1 = (float)(s1 / (double)gsize), m2 = (float)(s2 / (double)gsize);
        float *dx = din + off;
        for (int c = 0; c < cg; c++) {
            const float gm = gamma ? gamma[c0 + c] : 1.0f;
            const size_t o = (size_t)c * HW;
            for (int i = 0; i < HW; i++) {
                const float xhat = (x[o + i] - mu) * rs;
                dx[o + i] += rs * (gm * dy[o + i] - m1 - xhat * m2);
            }
        }
    }
    if (affine)
        for (int ch = 0; ch < C; ch++) {
            double sg = 0, sb = 0;
            for (int n = 0; n < N; n++) sg += sums[2 * ((size_t)n * C + ch)], sb += sums[2 * ((size_t)n * C + ch) + 1];
            if (dgamma) dgamma[ch] += (float)sg;
            if (dbeta) dbeta[ch] += (float)sb;
        }
}

void sid_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G) {
    groupnorm_bwd(din, dgamma, dbeta, dout, in, gamma, NULL, mean, rstd, N, C, HW, G, 0);
}
void sid_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *beta, const float *mean, const float *rstd, int N, int C,
                            int HW, int G) {
    groupnorm_bwd(din, dgamma, dbeta, dout, in, gamma, beta, mean, rstd, N, C, HW, G, 1);
}

void sid_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int M, int C, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)M * C > 16384)
    for (int m = 0; m < M; m++) {
        const float *x = in + (size_t)m * C;
        float *y = out + (size_t)m * C;
        moments(x, (size_t)C, &mean[m], &rstd[m], eps);
        const float mu = mean[m], rs = rstd[m];
        for (int c = 0; c < C; c++) y[c] = (x[c] - mu) * rs * (gamma ? gamma[c] : 1.0f) + (beta ? beta[c] : 0.0f);
    }
}

void sid_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int M, int C) {
    if (din) {
#pragma omp parallel for schedule(static) if ((size_t)M * C > 16384)
        for (int m = 0; m < M; m++) {
            const float *x = in + (size_t)m * C, *dy = dout + (size_t)m * C;
            float *dx = din + (size_t)m * C;
            const float mu = mean[m], rs = rstd[m];
            double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
            for (int c = 0; c < C; c++) {
                const double g = (double)(gamma ? gamma[c] : 1.0f) * dy[c];
                s1 += g;
                s2 += g * (x[c] - mu) * rs;
            }
            const float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
            for (int c = 0; c < C; c++) {
                const float xhat = (x[c] - mu) * rs;
                dx[c] += rs * ((gamma ? gamma[c] : 1.0f) * dy[c] - m1 - xhat * m2);
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static) if ((size_t)M * C > 16384)
        for (int c = 0; c < C; c++) {
            double sg = 0, sb = 0;
            for (int m = 0; m < M; m++) {
                const size_t j = (size_t)m * C + c;
                sg += (double)dout[j] * (in[j] - mean[m]) * rstd[m];
                sb += dout[j];
            }
            if (dgamma) dgamma[c] += (float)sg;
            if (dbeta) dbeta[c] += (float)sb;
        }
    }
}
