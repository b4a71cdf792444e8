#define _GNU_SOURCE
#include "threads.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

#include <cblas.h>

void sid_threads_init(int argc, char **argv) {
    (void)argc;
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        execv("/proc/self/exe", argv);  // returns only on failure: run on with the default
    }
    const char *t = getenv("SID_THREADS");
    if (t) sid_threads_set(atoi(t));
}

void sid_threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sid_threads_get(void) { return omp_get_max_threads(); }
