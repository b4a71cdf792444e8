#include "dist/nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>

#include "core/error.h"
#include "dist/dist.h"

static ncclComm_t g_comm;
static int g_ready;

const char *sid_dist_nccl_version(void) {
    static char v[32];
    int code = 0;
    if (ncclGetVersion(&code) != ncclSuccess) return NULL;
    snprintf(v, sizeof v, "%d.%d.%d", code / 10000, code / 100 % 100, code % 100);
    return v;
}

int sid_dist_nccl_init(void) {
    if (g_ready) return 0;
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        sid_set_error("NCCL: no CUDA device on this node (rank %d)", sid_dist_rank());
        return -1;
    }
    const int dev = sid_dist_local_rank() % n;
    if (cudaSetDevice(dev) != cudaSuccess) {
        sid_set_error("NCCL: rank %d cannot use GPU %d", sid_dist_rank(), dev);
        return -1;
    }
    ncclUniqueId id;
    if (sid_dist_rank() == 0 && ncclGetUniqueId(&id) != ncclSuccess) {
        sid_set_error("NCCL: ncclGetUniqueId failed");
        return -1;
    }
    sid_dist_bcast(&id, sizeof id, 0, "the NCCL id");
    const ncclResult_t r = ncclCommInitRank(&g_comm, sid_dist_size(), id, sid_dist_rank());
    if (r != ncclSuccess) {
        sid_set_error("NCCL: ncclCommInitRank on rank %d: %s", sid_dist_rank(), ncclGetErrorString(r));
        return -1;
    }
    g_ready = 1;
    return 0;
}

int sid_dist_nccl_sum_f32(float *x, size_t n) {
    if (!g_ready) {
        sid_set_error("NCCL: sid_dist_nccl_init was not called");
        return -1;
    }
    const ncclResult_t r = ncclAllReduce(x, x, n, ncclFloat, ncclSum, g_comm, 0);
    if (r != ncclSuccess || cudaStreamSynchronize(0) != cudaSuccess) {
        sid_set_error("NCCL: all-reduce of %zu floats on rank %d: %s", n, sid_dist_rank(), ncclGetErrorString(r));
        return -1;
    }
    return 0;
}

void sid_dist_nccl_finalize(void) {
    if (g_ready) ncclCommDestroy(g_comm);
    g_ready = 0;
}
