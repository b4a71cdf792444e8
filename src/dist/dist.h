// Data parallelism across processes. MPI launches and coordinates the ranks (mpirun, srun);
// gradients are summed with MPI_Allreduce over host memory, and with NCCL over device memory
// (src/dist/nccl.c) once a trainer keeps its gradients on a GPU. A build without MPI, or a
// process not started by an MPI launcher, is one rank of one and every call here is a no-op.
//
// Every collective runs under a watchdog: a rank that waits longer than SID_DIST_TIMEOUT seconds
// (default 600) for the others prints one line and exits, and the launcher then ends the other
// ranks, so a rank that died or hangs ends the whole run in bounded time.
#ifndef SID_DIST_H
#define SID_DIST_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MPI_Init when the environment says an MPI launcher started this process (OMPI_COMM_WORLD_SIZE,
// PMIX_RANK, PMI_RANK), else nothing. 0, or -1 with an error.
int sid_dist_init(int *argc, char ***argv);
void sid_dist_finalize(void);
int sid_dist_rank(void);
int sid_dist_size(void);
int sid_dist_local_rank(void);  // rank on this node (for the GPU to use)
int sid_dist_compiled(void);    // 1 when built with MPI

// In-place sums over all ranks (any count; sent in chunks below INT_MAX). `what` names the data
// in the watchdog's message.
void sid_dist_sum_f32(float *x, size_t n, const char *what);
void sid_dist_sum_f64(double *x, size_t n, const char *what);
// The same for n floats in be's memory: MPI on the CPU's, NCCL on a GPU's (its communicator set up
// at the first call, every rank calling at the same point), staged through the host elsewhere
// (the guard device).
struct sid_backend;
void sid_dist_sum_on(const struct sid_backend *be, float *x, size_t n, const char *what);
// Root's bytes to every rank.
void sid_dist_bcast(void *buf, size_t bytes, int root, const char *what);
// 0 when every rank passed the same value, else -1 with an error naming the ranks that differ.
int sid_dist_same_u64(uint64_t v, const char *what);
// Ends every rank (MPI_Abort), exit code code; for errors one rank meets alone.
_Noreturn void sid_dist_abort(int code);

// FNV-1a over bytes (for comparing weights across ranks).
uint64_t sid_dist_hash(const void *data, size_t bytes, uint64_t h);

#ifdef __cplusplus
}
#endif

#endif
