// Ops that move data: upsampling, channel concat, transposes.
#include <string.h>

#include "ops/ops.h"

void sid_upsample2x_fwd(float *out, const float *in, int NC, int H, int W) {
#pragma omp parallel for schedule(static) if ((size_t)NC * H * W > 16384)
    for (int p = 0; p < NC; p++)
        for (int y = 0; y < H; y++) {
            const float *src = in + ((size_t)p * H + y) * W;
            float *r0 = out + ((size_t)p * 2 * H + 2 * y) * 2 * W, *r1 = r0 + 2 * W;
            for (int x = 0; x < W; x++) r0[2 * x] = r0[2 * x + 1] = src[x];
            memcpy(r1, r0, (size_t)2 * W * sizeof(float));
        }
}

void sid_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W) {
#pragma omp parallel for schedule(static) if ((size_t)NC * H * W > 16384)
    for (int p = 0; p < NC; p++)
        for (int y = 0; y < H; y++) {
            float *dst = din + ((size_t)p * H + y) * W;
            const float *r0 = dout + ((size_t)p * 2 * H + 2 * y) * 2 * W, *r1 = r0 + 2 * W;
            for (int x = 0; x < W; x++) dst[x] += r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1];
        }
}

void sid_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW) {
    const size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
    for (int n = 0; n < N; n++) {
        memcpy(out + n * (sa + sb), a + n * sa, sa * sizeof(float));
        memcpy(out + n * (sa + sb) + sa, b + n * sb, sb * sizeof(float));
    }
}

void sid_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW) {
    const size_t sa = (size_t)Ca * HW, sb = (size_t)Cb * HW;
#pragma omp parallel for schedule(static) if ((sa + sb) * N > 65536)
    for (int n = 0; n < N; n++) {
        const float *g = dout + n * (sa + sb);
        if (da)
            for (size_t i = 0; i < sa; i++) da[n * sa + i] += g[i];
        if (db)
            for (size_t i = 0; i < sb; i++) db[n * sb + i] += g[sa + i];
    }
}

// Blocked so both the reads and the writes stay within a few cache lines.
static void transpose_add(float *out, const float *in, int N, int R, int C, int accumulate) {
    enum { T = 32 };
    const int nr = (R + T - 1) / T, nc = (C + T - 1) / T;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)N * R * C > 16384)
    for (int n = 0; n < N; n++)
        for (int tile = 0; tile < nr * nc; tile++) {
            const int r0 = (tile / nc) * T, c0 = (tile % nc) * T;
            const int r1 = r0 + T < R ? r0 + T : R, c1 = c0 + T < C ? c0 + T : C;
            const float *src = in + (size_t)n * R * C;
            float *dst = out + (size_t)n * R * C;
            for (int c = c0; c < c1; c++)
                for (int r = r0; r < r1; r++) {
                    const float x = src[(size_t)r * C + c];
                    dst[(size_t)c * R + r] = accumulate ? dst[(size_t)c * R + r] + x : x;
                }
        }
}

void sid_transpose_fwd(float *out, const float *in, int N, int R, int C) { transpose_add(out, in, N, R, C, 0); }
void sid_transpose_bwd(float *din, const float *dout, int N, int R, int C) { transpose_add(din, dout, N, C, R, 1); }
