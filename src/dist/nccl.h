// NCCL over MPI: one communicator over all ranks, one GPU per rank (the rank on its node picks the
// device), bootstrapped by broadcasting rank 0's ncclUniqueId with MPI. For trainers whose
// gradients live in device memory; compiled when both MPI and the CUDA backend are.
#ifndef SID_DIST_NCCL_H
#define SID_DIST_NCCL_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// NCCL's version as "2.x.y" when linked, else NULL.
const char *sid_dist_nccl_version(void);
// Selects the GPU of this rank and joins the communicator. 0, or -1 with an error (no GPU, NCCL
// failure).
int sid_dist_nccl_init(void);
// In-place sum over the ranks of n floats in device memory, on the default stream; waits for it.
int sid_dist_nccl_sum_f32(float *device_ptr, size_t n);
void sid_dist_nccl_finalize(void);

#ifdef __cplusplus
}
#endif

#endif
