#include <math.h>

#include "ops/ops.h"

// Frequency of column j (< half), computed in double then rounded like torch.exp on float32.
static inline double freq(int j, int half, float freq_shift, float max_period) {
    return exp(-log((double)max_period) * j / ((double)half - freq_shift));
}

void sid_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos,
                                float freq_shift, float max_period) {
    const int half = dim / 2;
    for (int n = 0; n < N; n++) {
        float *e = out + (size_t)n * dim;
        for (int j = 0; j < half; j++) {
            // diffusers computes t * freq in float32; so do we, to match it bit for bit at t = 999.
            const float arg = t[n] * (float)freq(j, half, freq_shift, max_period);
            const float s = sinf(arg), c = cosf(arg);
            e[j] = flip_sin_to_cos ? c : s;
            e[half + j] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) e[dim - 1] = 0;
    }
}

void sid_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim,
                                int flip_sin_to_cos, float freq_shift, float max_period) {
    const int half = dim / 2;
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * dim;
        double acc = 0;
        for (int j = 0; j < half; j++) {
            const float f = (float)freq(j, half, freq_shift, max_period), arg = t[n] * f;
            const float ds = f * cosf(arg), dc = -f * sinf(arg);  // d sin / dt, d cos / dt
            acc += flip_sin_to_cos ? g[j] * dc + g[half + j] * ds : g[j] * ds + g[half + j] * dc;
        }
        dt[n] += (float)acc;
    }
}

void sid_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T, int C) {
#pragma omp parallel for schedule(static) if ((size_t)B * T * C > 65536)
    for (int bt = 0; bt < B * T; bt++) {
        const float *te = tok + (size_t)ids[bt] * C, *pe = pos ? pos + (size_t)(bt % T) * C : NULL;
        float *o = out + (size_t)bt * C;
        for (int c = 0; c < C; c++) o[c] = te[c] + (pe ? pe[c] : 0.0f);
    }
}

void sid_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C) {
    // Serial over tokens: repeated ids scatter into the same row.
    if (dtok)
        for (int bt = 0; bt < B * T; bt++) {
            float *d = dtok + (size_t)ids[bt] * C;
            const float *g = dout + (size_t)bt * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
    if (dpos)
        for (int bt = 0; bt < B * T; bt++) {
            float *d = dpos + (size_t)(bt % T) * C;
            const float *g = dout + (size_t)bt * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
}
