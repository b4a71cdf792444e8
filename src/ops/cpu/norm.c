// Group norm and layer norm. Statistics are accumulated in double: group
// sizes reach 10^5 elements (SD at 64x64), where float sums lose digits.
// The sums are `omp simd` reductions: lanes of doubles instead of one serial
// chain, which made group norm ~11% of the tiny UNet's forward time.
#include <math.h>

#include "ops/ops.h"

static void moments(const float *x, size_t n, float *mean, float *rstd, float eps) {
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += x[i];
    double mu = s / (double)n, v = 0;
#pragma omp simd reduction(+ : v)
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mu;
        v += d * d;
    }
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(v / (double)n + eps));
}

void sid_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                       const float *beta, int N, int C, int HW, int G, float eps) {
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
            for (int i = 0; i < HW; i++) y[(size_t)c * HW + i] = x[(size_t)c * HW + i] * a + b;
        }
    }
}

void sid_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                       const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G) {
    const int cg = C / G;
    const size_t gsize = (size_t)cg * HW;
    if (din) {
#pragma omp parallel for schedule(static)
        for (int ng = 0; ng < N * G; ng++) {
            const float *x = in + (size_t)ng * gsize, *dy = dout + (size_t)ng * gsize;
            float *dx = din + (size_t)ng * gsize;
            const float mu = mean[ng], rs = rstd[ng];
            // dx = rs * (g*dy - mean(g*dy) - xhat * mean(g*dy*xhat))
            double s1 = 0, s2 = 0;
            for (int c = 0; c < cg; c++) {
                const float gm = gamma ? gamma[(ng % G) * cg + c] : 1.0f;
#pragma omp simd reduction(+ : s1, s2)
                for (int i = 0; i < HW; i++) {
                    const size_t j = (size_t)c * HW + i;
                    const double g = (double)gm * dy[j];
                    s1 += g;
                    s2 += g * (x[j] - mu) * rs;
                }
            }
            const float m1 = (float)(s1 / (double)gsize), m2 = (float)(s2 / (double)gsize);
            for (int c = 0; c < cg; c++) {
                const float gm = gamma ? gamma[(ng % G) * cg + c] : 1.0f;
                for (int i = 0; i < HW; i++) {
                    const size_t j = (size_t)c * HW + i;
                    const float xhat = (x[j] - mu) * rs;
                    dx[j] += rs * (gm * dy[j] - m1 - xhat * m2);
                }
            }
        }
    }
    if (dgamma || dbeta) {
#pragma omp parallel for schedule(static)
        for (int ch = 0; ch < C; ch++) {
            double sg = 0, sb = 0;
            for (int n = 0; n < N; n++) {
                const int ng = n * G + ch / cg;
                const size_t off = ((size_t)n * C + ch) * HW;
                const double mu = mean[ng], rs = rstd[ng];
#pragma omp simd reduction(+ : sg, sb)
                for (int i = 0; i < HW; i++) {
                    sg += (double)dout[off + i] * (in[off + i] - mu) * rs;
                    sb += dout[off + i];
                }
            }
            if (dgamma) dgamma[ch] += (float)sg;
            if (dbeta) dbeta[ch] += (float)sb;
        }
    }
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
