// Flash-style multi-head attention in fp32 on CUDA cores.
//
// Forward: a block takes FWD_WARPS consecutive queries of one (batch, head),
// a warp per query. Keys come in tiles of 32, one key per lane: a lane scores
// its key against the warp's query, the warp updates its online softmax
// (running max m, running sum l), and the lanes, each owning head dims
// lane, lane+32, ..., add p_j v_j with p_j broadcast by shuffles. Only the
// output and the row log-sum-exp lse = m + log l leave the kernel.
//
// Backward recomputes p = exp(s - lse) from lse, with D = rowsum(dO * O)
// precomputed: dS = P (dP - D). One kernel gives dQ (a warp per query,
// iterating key tiles), another dK and dV (a warp per key, iterating query
// tiles), so every gradient row has exactly one writer and no atomics.
//
// Tiles in shared memory use an odd row stride (dh | 1): lanes read different
// rows at the same column, which an even stride (dh = 40, 64, 160) would
// serialise on one bank. dh <= 160 keeps every kernel under the 48 KB of
// shared memory a launch may use without opting in.
#include "ops/cuda/cuda_common.cuh"

enum { BT = 32, MAX_DH = 160, DPL = MAX_DH / 32, FWD_WARPS = 8, BWD_WARPS = 4 };
#define FULL_MASK 0xffffffffu

static __device__ __forceinline__ float dot_row(const float *a, const float *b, int n) {
    float s = 0;
    for (int d = 0; d < n; d++) s += a[d] * b[d];
    return s;
}

// Copy rows r0 .. r0+nr-1 of a head slice (row stride C) into a [BT][ks] tile.
static __device__ __forceinline__ void load_tile(float *tile, int ks, const float *src, size_t C, int r0, int nr,
                                                 int dh) {
    for (int x = threadIdx.x; x < nr * dh; x += blockDim.x) {
        const int r = x / dh, d = x % dh;
        tile[r * ks + d] = src[(size_t)(r0 + r) * C + d];
    }
}

static __global__ void attn_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v, int Nq,
                                       int Nk, int H, int dh, int causal, float scale) {
    extern __shared__ float smem[];
    const int ks = dh | 1;
    float *Ks = smem, *Vs = Ks + BT * ks, *Qs = Vs + BT * ks;  // Qs: [FWD_WARPS][dh]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * FWD_WARPS, i = q0 + warp;
    const int active = i < Nq;
    const size_t C = (size_t)H * dh;
    const float *Kb = k + (size_t)b * Nk * C + (size_t)h * dh, *Vb = v + (size_t)b * Nk * C + (size_t)h * dh;
    float *qr = Qs + warp * dh;
    if (active)
        for (int d = lane; d < dh; d += 32) qr[d] = q[((size_t)b * Nq + i) * C + (size_t)h * dh + d];

    float m = -INFINITY, l = 0, acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) acc[t] = 0;
    // Causal: no query of this block sees keys past its last query.
    const int qlast = min(q0 + FWD_WARPS, Nq) - 1, kend = causal ? min(Nk, qlast + 1) : Nk;
    for (int k0 = 0; k0 < kend; k0 += BT) {
        const int nk = min(BT, kend - k0);
        __syncthreads();  // the previous tile is consumed (and, the first time, qr is written)
        load_tile(Ks, ks, Kb, C, k0, nk, dh);
        load_tile(Vs, ks, Vb, C, k0, nk, dh);
        __syncthreads();
        if (!active) continue;
        const int j = k0 + lane;
        const float s = lane < nk && !(causal && j > i) ? scale * dot_row(qr, Ks + lane * ks, dh) : -INFINITY;
        const float mnew = fmaxf(m, warp_max(s));
        if (mnew == -INFINITY) continue;  // every key so far is masked; warp-uniform
        const float corr = expf(m - mnew), p = expf(s - mnew);  // exp(-inf) = 0 covers both "no history" and masks
        l = l * corr + warp_sum(p);
        m = mnew;
#pragma unroll
        for (int t = 0; t < DPL; t++) acc[t] *= corr;
        for (int jj = 0; jj < nk; jj++) {
            const float pj = __shfl_sync(FULL_MASK, p, jj);
            const float *vr = Vs + jj * ks;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                const int d = lane + 32 * t;
                if (d < dh) acc[t] += pj * vr[d];
            }
        }
    }
    if (!active) return;
    const float inv = l > 0 ? 1.0f / l : 0.0f;
    float *o = out + ((size_t)b * Nq + i) * C + (size_t)h * dh;
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        const int d = lane + 32 * t;
        if (d < dh) o[d] = acc[t] * inv;
    }
    if (lane == 0) lse[((size_t)b * H + h) * Nq + i] = l > 0 ? m + logf(l) : -INFINITY;
}

// D[b, h, i] = sum_d dO[b, i, h, d] * O[b, i, h, d]; a warp per row.
static __global__ void attn_rowdot_kernel(float *D, const float *dout, const float *out, int B, int Nq, int H,
                                          int dh) {
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)B * H * Nq) return;
    const int i = (int)(row % Nq), h = (int)((row / Nq) % H), b = (int)(row / ((size_t)Nq * H));
    const size_t off = ((size_t)b * Nq + i) * H * dh + (size_t)h * dh;
    float s = 0;
    for (int d = lane; d < dh; d += 32) s += dout[off + d] * out[off + d];
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
}

// dQ_i += scale sum_j P_ij (dP_ij - D_i) k_j; a warp per query, key tiles in shared memory.
static __global__ void attn_bwd_dq_kernel(float *dq, const float *dout, const float *q, const float *k,
                                          const float *v, const float *lse, const float *D, int Nq, int Nk, int H,
                                          int dh, int causal, float scale) {
    extern __shared__ float smem[];
    const int ks = dh | 1;
    float *Ks = smem, *Vs = Ks + BT * ks, *Qs = Vs + BT * ks, *dOs = Qs + BWD_WARPS * dh;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BWD_WARPS, i = q0 + warp;
    const int active = i < Nq;
    const size_t C = (size_t)H * dh, qoff = ((size_t)b * Nq + i) * C + (size_t)h * dh;
    const float *Kb = k + (size_t)b * Nk * C + (size_t)h * dh, *Vb = v + (size_t)b * Nk * C + (size_t)h * dh;
    float *qr = Qs + warp * dh, *gr = dOs + warp * dh;
    float Li = 0, Di = 0;
    if (active) {
        for (int d = lane; d < dh; d += 32) qr[d] = q[qoff + d], gr[d] = dout[qoff + d];
        Li = lse[((size_t)b * H + h) * Nq + i];
        Di = D[((size_t)b * H + h) * Nq + i];
    }
    float acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) acc[t] = 0;
    const int qlast = min(q0 + BWD_WARPS, Nq) - 1, kend = causal ? min(Nk, qlast + 1) : Nk;
    for (int k0 = 0; k0 < kend; k0 += BT) {
        const int nk = min(BT, kend - k0);
        __syncthreads();
        load_tile(Ks, ks, Kb, C, k0, nk, dh);
        load_tile(Vs, ks, Vb, C, k0, nk, dh);
        __syncthreads();
        if (!active) continue;
        const int j = k0 + lane;
        float ds = 0;
        if (lane < nk && !(causal && j > i)) {
            const float p = expf(scale * dot_row(qr, Ks + lane * ks, dh) - Li);
            ds = p * (dot_row(gr, Vs + lane * ks, dh) - Di);
        }
        for (int jj = 0; jj < nk; jj++) {
            const float dsj = __shfl_sync(FULL_MASK, ds, jj);
            const float *kr = Ks + jj * ks;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                const int d = lane + 32 * t;
                if (d < dh) acc[t] += dsj * kr[d];
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        const int d = lane + 32 * t;
        if (d < dh) dq[qoff + d] += scale * acc[t];
    }
}

// dV_j += sum_i P_ij dO_i, dK_j += scale sum_i P_ij (dP_ij - D_i) q_i; a warp
// per key, query tiles (with their lse and D) in shared memory.
static __global__ void attn_bwd_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                                            const float *v, const float *lse, const float *D, int Nq, int Nk, int H,
                                            int dh, int causal, float scale) {
    extern __shared__ float smem[];
    const int ks = dh | 1;
    float *Qs = smem, *dOs = Qs + BT * ks, *Kr = dOs + BT * ks, *Vr = Kr + BWD_WARPS * dh, *Ls = Vr + BWD_WARPS * dh;
    float *Ds = Ls + BT;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int b = blockIdx.z, h = blockIdx.y, j0 = blockIdx.x * BWD_WARPS, j = j0 + warp;
    const int active = j < Nk;
    const size_t C = (size_t)H * dh, koff = ((size_t)b * Nk + j) * C + (size_t)h * dh;
    const float *Qb = q + (size_t)b * Nq * C + (size_t)h * dh, *dOb = dout + (size_t)b * Nq * C + (size_t)h * dh;
    const float *Lb = lse + ((size_t)b * H + h) * Nq, *Db = D + ((size_t)b * H + h) * Nq;
    float *kr = Kr + warp * dh, *vr = Vr + warp * dh;
    if (active)
        for (int d = lane; d < dh; d += 32) kr[d] = k[koff + d], vr[d] = v[koff + d];
    float adk[DPL], adv[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) adk[t] = 0, adv[t] = 0;
    // Causal: only queries i >= j see key j, and j >= j0 for every key of this block.
    for (int i0 = causal ? min(j0, Nq) : 0; i0 < Nq; i0 += BT) {
        const int nq = min(BT, Nq - i0);
        __syncthreads();
        load_tile(Qs, ks, Qb, C, i0, nq, dh);
        load_tile(dOs, ks, dOb, C, i0, nq, dh);
        for (int x = threadIdx.x; x < nq; x += blockDim.x) Ls[x] = Lb[i0 + x], Ds[x] = Db[i0 + x];
        __syncthreads();
        if (!active) continue;
        const int i = i0 + lane;
        float p = 0, ds = 0;
        if (lane < nq && !(causal && j > i)) {
            p = expf(scale * dot_row(Qs + lane * ks, kr, dh) - Ls[lane]);
            ds = p * (dot_row(dOs + lane * ks, vr, dh) - Ds[lane]);
        }
        for (int ii = 0; ii < nq; ii++) {
            const float pi = __shfl_sync(FULL_MASK, p, ii), dsi = __shfl_sync(FULL_MASK, ds, ii);
            const float *qrow = Qs + ii * ks, *grow = dOs + ii * ks;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                const int d = lane + 32 * t;
                if (d < dh) adv[t] += pi * grow[d], adk[t] += dsi * qrow[d];
            }
        }
    }
    if (!active) return;
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        const int d = lane + 32 * t;
        if (d < dh) {
            if (dv) dv[koff + d] += adv[t];
            if (dk) dk[koff + d] += scale * adk[t];
        }
    }
}

static size_t fwd_smem(int dh) { return (size_t)(2 * BT * (dh | 1) + FWD_WARPS * dh) * sizeof(float); }
static size_t dq_smem(int dh) { return (size_t)(2 * BT * (dh | 1) + 2 * BWD_WARPS * dh) * sizeof(float); }
static size_t dkdv_smem(int dh) { return (size_t)(2 * BT * (dh | 1) + 2 * BWD_WARPS * dh + 2 * BT) * sizeof(float); }

static void check_dh(int dh) {
    // The per-lane accumulators hold 32 * DPL dims; larger heads need a wider kernel.
    if (dh < 1 || dh > MAX_DH) sid_die("cuda attention: head dim %d unsupported (1..%d)", dh, MAX_DH);
}

void sid_cuda_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq,
                            int Nk, int H, int dh, int causal) {
    if (B <= 0 || Nq <= 0 || H <= 0) return;
    check_dh(dh);
    const dim3 grid((Nq + FWD_WARPS - 1) / FWD_WARPS, H, B);
    attn_fwd_kernel<<<grid, 32 * FWD_WARPS, fwd_smem(dh)>>>(out, lse, q, k, v, Nq, Nk, H, dh, causal,
                                                              1.0f / sqrtf((float)dh));
    KERNEL_CHECK("attn_fwd_kernel");
}

void sid_cuda_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                            int causal) {
    if (B <= 0 || Nq <= 0 || Nk <= 0 || H <= 0 || (!dq && !dk && !dv)) return;
    check_dh(dh);
    const float scale = 1.0f / sqrtf((float)dh);
    const size_t rows = (size_t)B * H * Nq;
    float *D = (float *)sid_cuda_workspace(SID_WS_ATTN, rows * sizeof(float));
    attn_rowdot_kernel<<<(unsigned)((rows + 7) / 8), 256>>>(D, dout, out, B, Nq, H, dh);
    KERNEL_CHECK("attn_rowdot_kernel");
    if (dq) {
        const dim3 grid((Nq + BWD_WARPS - 1) / BWD_WARPS, H, B);
        attn_bwd_dq_kernel<<<grid, 32 * BWD_WARPS, dq_smem(dh)>>>(dq, dout, q, k, v, lse, D, Nq, Nk, H, dh, causal,
                                                                   scale);
        KERNEL_CHECK("attn_bwd_dq_kernel");
    }
    if (dk || dv) {
        const dim3 grid((Nk + BWD_WARPS - 1) / BWD_WARPS, H, B);
        attn_bwd_dkdv_kernel<<<grid, 32 * BWD_WARPS, dkdv_smem(dh)>>>(dk, dv, dout, q, k, v, lse, D, Nq, Nk, H, dh,
                                                                       causal, scale);
        KERNEL_CHECK("attn_bwd_dkdv_kernel");
    }
}
