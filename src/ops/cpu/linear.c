#include <cblas.h>
#include <string.h>

#include "ops/ops.h"

void sid_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N) {
    // Seeding out with the bias lets the GEMM add it for free (beta = 1).
    if (b) {
#pragma omp parallel for schedule(static) if ((size_t)M * N > 65536)
        for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, b, (size_t)N * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, in, K, w, K, b ? 1.0f : 0.0f, out, N);
    sid_ops_flops_add(2.0 * M * N * K);
}

void sid_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    int M, int K, int N) {
    if (din) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, w, K, 1.0f, din, K);
    if (dw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, in, K, 1.0f, dw, K);
    sid_ops_flops_add(2.0 * M * N * K * ((din != NULL) + (dw != NULL)));
    if (db) {
#pragma omp parallel for schedule(static) if ((size_t)M * N > 65536)
        for (int j = 0; j < N; j++) {
            float s = 0;
            for (int i = 0; i < M; i++) s += dout[(size_t)i * N + j];
            db[j] += s;
        }
    }
}
