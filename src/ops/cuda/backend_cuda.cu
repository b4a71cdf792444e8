// The CUDA backend: the op set of ops.h over device memory.
//
// Design, first version (correctness over speed):
// - Layouts are exactly the CPU's (NCHW, [B, N, C] tokens, PyTorch weight
//   layouts), so a tensor downloaded from the GPU is bit-for-bit comparable
//   with the CPU path and checkpoints need no conversion.
// - fp32 storage and arithmetic throughout. cuBLAS runs in CUBLAS_DEFAULT_MATH,
//   never TF32: results must match the CPU to ~1e-5, and TF32 (10-bit mantissa)
//   would not. One cuBLAS handle, created on first use, on the legacy default
//   stream, so every op is ordered after the previous one without events.
// - Row-major GEMMs use the column-major transposition trick (sid_cuda_gemm).
// - conv2d is im2col + one SGEMM per sample, through a device workspace that
//   grows to the largest layer and stays; 1x1 stride-1 convolutions skip im2col.
//   col2im gathers per input pixel (no atomics), so it is deterministic.
// - Reductions (norm statistics, per-sample losses, bias gradients) accumulate
//   in double inside one block or warp: they are memory bound, so double costs
//   nothing, and it keeps the CPU's accuracy on 10^5-element groups.
// - Attention is flash-style in plain fp32 CUDA cores: a warp per query row,
//   one key per lane, K/V tiles in shared memory, an online softmax, and the
//   row log-sum-exp saved; backward recomputes probabilities in one kernel for
//   dQ (warp per query) and one for dK/dV (warp per key). No Nq x Nk buffer.
// - Only embedding bwd and nothing else uses atomics (repeated token ids), so
//   every other op is deterministic run to run.
// - upload/download/alloc are synchronous; alloc is zero-filled plain device
//   memory (never managed memory, whose page faults would hide transfer costs).
//
// What a speed pass should change: bf16 activations and weights with fp32
// master weights and fp32 accumulation; cuDNN (or implicit-GEMM) convolutions
// with fused bias/activation instead of im2col; tensor-core (mma/wgmma)
// attention kernels with larger query tiles; fused
// bias+activation epilogues; CUDA graphs or a stream per model to hide launch
// latency; a reusable caching allocator instead of cudaMalloc per tensor.
#include "ops/backend.h"
#include "ops/cuda/cuda_common.cuh"

// ---- availability: any error (no driver, no device) means "not here", silently.
static int cuda_available(void) {
    static int cached = -1;
    if (cached < 0) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            cudaGetLastError();  // clear it, so no later check trips over a stale error
            n = 0;
        }
        cached = n > 0;
    }
    return cached;
}

static void *cuda_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 1;  // a distinct, freeable pointer even for empty tensors
    CUDA_CHECK(cudaMalloc(&p, bytes));
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}
static void cuda_free(void *p) {
    if (p) CUDA_CHECK(cudaFree(p));
}
static void cuda_upload(void *dst, const void *host_src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(dst, host_src, bytes, cudaMemcpyHostToDevice));
}
static void cuda_download(void *host_dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpy(host_dst, src, bytes, cudaMemcpyDeviceToHost));
}
// Also surfaces errors of asynchronous kernels (illegal addresses and such).
static void cuda_sync(void) { CUDA_CHECK(cudaDeviceSynchronize()); }

// ---- shared state
cublasHandle_t sid_cuda_blas(void) {
    static cublasHandle_t handle = NULL;
    if (!handle) {
        CUBLAS_CHECK(cublasCreate(&handle));
        CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    }
    return handle;
}

void *sid_cuda_workspace(int slot, size_t bytes) {
    static void *buf[SID_WS_COUNT];
    static size_t cap[SID_WS_COUNT];
    if (bytes > cap[slot]) {
        // cudaFree waits for kernels still reading the old buffer.
        if (buf[slot]) CUDA_CHECK(cudaFree(buf[slot]));
        buf[slot] = NULL;
        size_t want = bytes + bytes / 4;  // some headroom, so slowly growing shapes do not reallocate each call
        CUDA_CHECK(cudaMalloc(&buf[slot], want));
        cap[slot] = want;
    }
    return buf[slot];
}

void sid_cuda_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    CUBLAS_CHECK(cublasSgemm(sid_cuda_blas(), transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

// ---- the table, filled by name so the field order of backend.h cannot be got wrong
static sid_backend make_table(void) {
    sid_backend t = {};
    t.name = "cuda";
    t.available = cuda_available;
    t.alloc = cuda_alloc;
    t.free = cuda_free;
    t.upload = cuda_upload;
    t.download = cuda_download;
    t.sync = cuda_sync;
#define X(nm) t.nm = sid_cuda_##nm;
    SID_OPS(X)
#undef X
    return t;
}

extern "C" const sid_backend sid_backend_cuda = make_table();
