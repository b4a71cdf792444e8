#include "ops/ops.h"

#define PAR_IF(n) if ((n) > 65536)

void sid_fill(float *x, float value, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) x[i] = value;
}

void sid_add_fwd(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void sid_add_bwd(float *da, float *db, const float *dout, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i];
        if (db) db[i] += dout[i];
    }
}

void sid_scale_fwd(float *out, const float *in, float alpha, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) out[i] = alpha * in[i];
}

void sid_scale_bwd(float *din, const float *dout, float alpha, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) din[i] += alpha * dout[i];
}

void sid_mul_fwd(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

void sid_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        if (da) da[i] += dout[i] * b[i];
        if (db) db[i] += dout[i] * a[i];
    }
}

void sid_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)N * C * HW)
    for (int nc = 0; nc < N * C; nc++) {
        const float bv = bias[nc];
        for (int i = 0; i < HW; i++) out[(size_t)nc * HW + i] = in[(size_t)nc * HW + i] + bv;
    }
}

void sid_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)N * C * HW)
    for (int nc = 0; nc < N * C; nc++) {
        const float *g = dout + (size_t)nc * HW;
        float s = 0;
        for (int i = 0; i < HW; i++) {
            s += g[i];
            if (din) din[(size_t)nc * HW + i] += g[i];
        }
        if (dbias) dbias[nc] += s;
    }
}
