// Flash-style multi-head attention on the CPU. Work items are (batch, head,
// query block); each thread keeps its own score tile and runs single-threaded
// GEMMs on strided head slices, so nothing of size Nq*Nk is ever stored.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "core/arena.h"
#include "ops/cpu/fastmath.h"
#include "ops/ops.h"

enum { BQ = 64, BK = 256 };

static _Thread_local sid_scratch attn_scratch;  // threads may run ops side by side (unet.c)

// x[j] = exp(x[j] - shift); returns the sum: in explicit vectors (sid_vexpf, whose clamps GCC's
// vectorisation of sid_expf turned into compare-and-blend chains), a scalar tail, the lanes'
// partial sums added in lane order.
static float exp_shift_sum(float *restrict x, int n, float shift) {
    sid_vf acc = {0};
    int j = 0;
    for (; j + SID_VLANES <= n; j += SID_VLANES) {
        sid_vf v;
        memcpy(&v, x + j, sizeof v);
        v = sid_vexpf(v - shift);
        memcpy(x + j, &v, sizeof v);
        acc += v;
    }
    float sum = 0;
    for (int l = 0; l < SID_VLANES; l++) sum += acc[l];
    for (; j < n; j++) sum += (x[j] = sid_expf(x[j] - shift));
    return sum;
}

// max(mx, s[0..n)), NaN scores ignored as the scalar s > mx ? s : mx does (maxps lane by lane).
static float row_max(const float *s, int n, float mx) {
    sid_vf m = mx + (sid_vf){0};
    int j = 0;
    for (; j + SID_VLANES <= n; j += SID_VLANES) {
        sid_vf v;
        memcpy(&v, s + j, sizeof v);
        m = sid_vmax(v, m);
    }
    for (int l = 0; l < SID_VLANES; l++) mx = m[l] > mx ? m[l] : mx;
    for (; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    return mx;
}

// Mask scores of keys after the query (causal) to -inf; returns the number of
// valid keys of the tile for the last query row (tiles past it can be skipped).
static void causal_mask(float *S, int q0, int nq, int k0, int nk) {
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < nk; j++)
            if (k0 + j > q0 + i) S[(size_t)i * nk + j] = -INFINITY;
}

void sid_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq,
                       int Nk, int H, int dh, int causal) {
    const int C = H * dh, nqb = (Nq + BQ - 1) / BQ, items = B * H * nqb;
    const float scale = 1.0f / sqrtf((float)dh);
    sid_ops_flops_add(4.0 * B * H * Nq * Nk * dh * (causal ? 0.5 : 1.0));  // Q K^T and P V
    const int nt = omp_get_max_threads(), par = items > 1;  // see the note in backward
    const size_t per_thread = (size_t)BQ * BK + (size_t)BQ * dh + 2 * BQ;
    float *scratch = sid_scratch_get(&attn_scratch, (size_t)(par ? nt : 1) * per_thread);
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int it = 0; it < items; it++) {
        const int b = it / (H * nqb), h = (it / nqb) % H, q0 = (it % nqb) * BQ;
        const int nq = Nq - q0 < BQ ? Nq - q0 : BQ;
        float *S = scratch + (size_t)(par ? omp_get_thread_num() : 0) * per_thread;
        float *acc = S + (size_t)BQ * BK, *m = acc + (size_t)BQ * dh, *l = m + BQ;
        const float *Q = q + ((size_t)b * Nq + q0) * C + h * dh;
        const float *K = k + (size_t)b * Nk * C + h * dh, *V = v + (size_t)b * Nk * C + h * dh;
        for (int i = 0; i < nq; i++) m[i] = -INFINITY, l[i] = 0;
        memset(acc, 0, (size_t)nq * dh * sizeof(float));
        const int kend = causal ? (q0 + nq < Nk ? q0 + nq : Nk) : Nk;
        for (int k0 = 0; k0 < kend; k0 += BK) {
            const int nk = kend - k0 < BK ? kend - k0 : BK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, dh, scale, Q, C, K + (size_t)k0 * C, C, 0.0f,
                        S, nk);
            if (causal) causal_mask(S, q0, nq, k0, nk);
            for (int i = 0; i < nq; i++) {
                float *s = S + (size_t)i * nk, mx = row_max(s, nk, m[i]);
                // A row with every key masked so far keeps mx = -inf; its tile contributes nothing.
                const float corr = mx == -INFINITY ? 1.0f : sid_expf(m[i] - mx), shift = mx == -INFINITY ? 0.0f : mx;
                l[i] = l[i] * corr + exp_shift_sum(s, nk, shift);
                m[i] = mx;
                float *a = acc + (size_t)i * dh;
                for (int d = 0; d < dh; d++) a[d] *= corr;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, nk, 1.0f, S, nk, V + (size_t)k0 * C, C, 1.0f,
                        acc, dh);
        }
        float *O = out + ((size_t)b * Nq + q0) * C + h * dh;
        float *L = lse + ((size_t)b * H + h) * Nq + q0;
        for (int i = 0; i < nq; i++) {
            const float inv = 1.0f / l[i];
            for (int d = 0; d < dh; d++) O[(size_t)i * C + d] = acc[(size_t)i * dh + d] * inv;
            L[i] = m[i] + logf(l[i]);
        }
    }
}

// Backward per (batch, head), so dK and dV rows belong to one thread:
// P = exp(S - lse), dV += P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO*O)),
// dQ += scale dS K, dK += scale dS^T Q.
void sid_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                       int causal) {
    const int C = H * dh, items = B * H;
    const float scale = 1.0f / sqrtf((float)dh);
    sid_ops_flops_add(10.0 * B * H * Nq * Nk * dh * (causal ? 0.5 : 1.0));  // S again, dV, dP, dQ, dK
    // Even with fewer (batch, head) pairs than threads, whole pairs per thread beat a threaded
    // GEMM per tile: the tiles are too small to split (measured 100x slower on 16 threads).
    const int nt = omp_get_max_threads(), par = items > 1;
    const size_t per_thread = 2 * (size_t)BQ * BK + BQ;
    float *scratch = sid_scratch_get(&attn_scratch, (size_t)(par ? nt : 1) * per_thread);
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int it = 0; it < items; it++) {
        const int b = it / H, h = it % H;
        float *P = scratch + (size_t)(par ? omp_get_thread_num() : 0) * per_thread;
        float *dP = P + (size_t)BQ * BK, *D = dP + (size_t)BQ * BK;
        const size_t qoff = (size_t)b * Nq * C + h * dh, koff = (size_t)b * Nk * C + h * dh;
        for (int q0 = 0; q0 < Nq; q0 += BQ) {
            const int nq = Nq - q0 < BQ ? Nq - q0 : BQ;
            const float *Q = q + qoff + (size_t)q0 * C, *dO = dout + qoff + (size_t)q0 * C;
            const float *O = out + qoff + (size_t)q0 * C, *L = lse + ((size_t)b * H + h) * Nq + q0;
            for (int i = 0; i < nq; i++) {
                float s = 0;
                for (int d = 0; d < dh; d++) s += dO[(size_t)i * C + d] * O[(size_t)i * C + d];
                D[i] = s;
            }
            const int kend = causal ? (q0 + nq < Nk ? q0 + nq : Nk) : Nk;
            for (int k0 = 0; k0 < kend; k0 += BK) {
                const int nk = kend - k0 < BK ? kend - k0 : BK;
                const float *K = k + koff + (size_t)k0 * C, *V = v + koff + (size_t)k0 * C;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, dh, scale, Q, C, K, C, 0.0f, P, nk);
                if (causal) causal_mask(P, q0, nq, k0, nk);
                for (int i = 0; i < nq; i++) exp_shift_sum(P + (size_t)i * nk, nk, L[i]);
                if (dv)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, nq, 1.0f, P, nk, dO, C, 1.0f,
                                dv + koff + (size_t)k0 * C, C);
                if (!dq && !dk) continue;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, dh, 1.0f, dO, C, V, C, 0.0f, dP, nk);
                for (int i = 0; i < nq; i++)
                    for (int j = 0; j < nk; j++) {
                        const size_t x = (size_t)i * nk + j;
                        dP[x] = P[x] * (dP[x] - D[i]);
                    }
                if (dq)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, nk, scale, dP, nk, K, C, 1.0f,
                                dq + qoff + (size_t)q0 * C, C);
                if (dk)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, dh, nq, scale, dP, nk, Q, C, 1.0f,
                                dk + koff + (size_t)k0 * C, C);
            }
        }
    }
}
