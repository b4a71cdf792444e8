#define _GNU_SOURCE
#include "dist/dist.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "ops/backend.h"
#ifdef SID_HAVE_NCCL
#include "dist/nccl.h"
#endif

void sid_dist_sum_on(const sid_backend *be, float *x, size_t n, const char *what) {
    if (sid_dist_size() == 1) return;
    be = sid_backend_or_cpu(be);
    if (be == &sid_backend_cpu) {
        sid_dist_sum_f32(x, n, what);
        return;
    }
#ifdef SID_HAVE_NCCL
    if (strcmp(be->name, "cuda") == 0) {
        if (sid_dist_nccl_init() || sid_dist_nccl_sum_f32(x, n)) sid_die("%s (%s)", sid_error(), what);
        return;
    }
#endif
    float *h = sid_malloc(n * sizeof(float));
    be->download(h, x, n * sizeof(float));
    sid_dist_sum_f32(h, n, what);
    be->upload(x, h, n * sizeof(float));
    free(h);
}

uint64_t sid_dist_hash(const void *data, size_t bytes, uint64_t h) {
    const unsigned char *p = data;
    if (!h) h = 1469598103934665603ull;
    for (size_t i = 0; i < bytes; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

#ifndef SID_HAVE_MPI
int sid_dist_init(int *argc, char ***argv) { return 0; }
void sid_dist_finalize(void) {}
int sid_dist_rank(void) { return 0; }
int sid_dist_size(void) { return 1; }
int sid_dist_local_rank(void) { return 0; }
int sid_dist_compiled(void) { return 0; }
void sid_dist_sum_f32(float *x, size_t n, const char *what) {}
void sid_dist_sum_f64(double *x, size_t n, const char *what) {}
void sid_dist_bcast(void *buf, size_t bytes, int root, const char *what) {}
int sid_dist_same_u64(uint64_t v, const char *what) { return 0; }
_Noreturn void sid_dist_abort(int code) { exit(code); }
#else
#include <mpi.h>

static int g_active, g_rank, g_size = 1, g_local;
static double g_timeout = 600;

// The watchdog: a collective sets the deadline before it starts and clears it when done; a thread
// checks it every 100 ms. exit() from it is enough: the launcher ends the other ranks.
static _Atomic double g_deadline;
static const char *_Atomic g_what;
static pthread_t g_watch;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        usleep(100 * 1000);
        const double d = atomic_load(&g_deadline);
        if (d > 0 && now_s() > d) {
            fprintf(stderr, "sid: rank %d of %d: no answer from the other ranks for %.0f s (%s); a rank died or hangs, "
                            "ending this one\n",
                    g_rank, g_size, g_timeout, atomic_load(&g_what));
            fflush(stderr);
            _exit(3);
        }
    }
    return NULL;
}

static void arm(const char *what) { atomic_store(&g_what, what), atomic_store(&g_deadline, now_s() + g_timeout); }
static void disarm(void) { atomic_store(&g_deadline, 0.0); }

static void check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    fprintf(stderr, "sid: rank %d: %s failed: %s\n", g_rank, call, msg);
    MPI_Abort(MPI_COMM_WORLD, 3);
    exit(3);
}

int sid_dist_init(int *argc, char ***argv) {
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return 0;
    const char *t = getenv("SID_DIST_TIMEOUT");
    if (t) {
        char *end;
        const double v = strtod(t, &end);
        if (*end || !(v > 0)) {
            sid_set_error("SID_DIST_TIMEOUT=%s: expected seconds (> 0)", t);
            return -1;
        }
        g_timeout = v;
    }
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        sid_set_error("MPI_Init failed");
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g_local);
    MPI_Comm_free(&local);
    g_active = 1;
    pthread_create(&g_watch, NULL, watchdog, NULL);
    pthread_detach(g_watch);
    return 0;
}

void sid_dist_finalize(void) {
    if (!g_active) return;
    arm("MPI_Finalize");
    MPI_Finalize();
    disarm();
    g_active = 0;
}

int sid_dist_rank(void) { return g_rank; }
int sid_dist_size(void) { return g_size; }
int sid_dist_local_rank(void) { return g_local; }
int sid_dist_compiled(void) { return 1; }

static void sum(void *x, size_t n, size_t elem, MPI_Datatype type, const char *what) {
    if (!g_active || g_size == 1) return;
    arm(what);
    for (size_t i = 0; i < n;) {  // counts are int in MPI
        const size_t k = n - i < (size_t)1 << 30 ? n - i : (size_t)1 << 30;
        check(MPI_Allreduce(MPI_IN_PLACE, (char *)x + i * elem, (int)k, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
        i += k;
    }
    disarm();
}

void sid_dist_sum_f32(float *x, size_t n, const char *what) { sum(x, n, sizeof(float), MPI_FLOAT, what); }
void sid_dist_sum_f64(double *x, size_t n, const char *what) { sum(x, n, sizeof(double), MPI_DOUBLE, what); }

void sid_dist_bcast(void *buf, size_t bytes, int root, const char *what) {
    if (!g_active || g_size == 1) return;
    arm(what);
    for (size_t i = 0; i < bytes;) {
        const size_t k = bytes - i < (size_t)1 << 30 ? bytes - i : (size_t)1 << 30;
        check(MPI_Bcast((char *)buf + i, (int)k, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
        i += k;
    }
    disarm();
}

int sid_dist_same_u64(uint64_t v, const char *what) {
    if (!g_active || g_size == 1) return 0;
    uint64_t *all = sid_malloc((size_t)g_size * sizeof(uint64_t));
    arm(what);
    check(MPI_Allgather(&v, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    disarm();
    int bad = -1;
    for (int r = 1; r < g_size && bad < 0; r++)
        if (all[r] != all[0]) bad = r;
    free(all);
    if (bad >= 0) {
        sid_set_error("%s differ between rank 0 and rank %d", what, bad);
        return -1;
    }
    return 0;
}

_Noreturn void sid_dist_abort(int code) {
    if (g_active) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}
#endif
