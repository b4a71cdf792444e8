// Per-sample reductions over [N, D], accumulated in double: D reaches 16k
// (4x64x64 latents), and SiD's loss is a difference of such sums.
#include <math.h>

#include "ops/ops.h"

void sid_mse_fwd(float *loss, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < D; i++) {
            const double d = (double)a[(size_t)n * D + i] - b[(size_t)n * D + i];
            s += d * d;
        }
        loss[n] = (float)(s / D);
    }
}

void sid_mse_bwd(float *da, float *db, const float *dloss, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        const float k = 2.0f * dloss[n] / (float)D;
        for (int i = 0; i < D; i++) {
            const size_t j = (size_t)n * D + i;
            const float g = k * (a[j] - b[j]);
            if (da) da[j] += g;
            if (db) db[j] -= g;
        }
    }
}

void sid_mean_abs_fwd(float *out, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += fabs((double)a[(size_t)n * D + i] - b[(size_t)n * D + i]);
        out[n] = (float)(s / D);
    }
}

void sid_mean_abs_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        const float k = dout[n] / (float)D;
        for (int i = 0; i < D; i++) {
            const size_t j = (size_t)n * D + i;
            const float d = a[j] - b[j], g = d > 0 ? k : d < 0 ? -k : 0.0f;
            if (da) da[j] += g;
            if (db) db[j] -= g;
        }
    }
}

void sid_dot_fwd(float *out, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++) {
        double s = 0;
        for (int i = 0; i < D; i++) s += (double)a[(size_t)n * D + i] * b[(size_t)n * D + i];
        out[n] = (float)s;
    }
}

void sid_dot_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
#pragma omp parallel for schedule(static) if ((size_t)N * D > 65536)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++) {
            const size_t j = (size_t)n * D + i;
            if (da) da[j] += dout[n] * b[j];
            if (db) db[j] += dout[n] * a[j];
        }
}
