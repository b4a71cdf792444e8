// Every usable backend on the same op shapes, timed in the same run: the CPU
// reference next to each accelerator (on a machine without a GPU it prints
// the CPU column only, and says so).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "ops/backend.h"
#include "ops/cpu_isa.h"

typedef struct {
    const sid_backend *be;
    float *buf[8];
    int i[8];
} job;

static float *dev_randn(const sid_backend *be, size_t n, sid_rng *r) {
    float *h = sid_malloc(n * sizeof(float)), *d = be->alloc(n * sizeof(float));
    sid_rng_normal(r, h, n);
    for (size_t k = 0; k < n; k++) h[k] *= 0.3f;
    be->upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

static double time_job(void (*fn)(job *), job *j) {
    fn(j);
    j->be->sync();
    int reps = 0;
    double t0 = sid_now();
    do {
        fn(j);
        j->be->sync();
        reps++;
    } while (sid_now() - t0 < 0.3 && reps < 1000);
    return (sid_now() - t0) / reps;
}

// conv 3x3 fwd+bwd: i = n c hw
static void conv_job(job *j) {
    sid_conv2d_shape s = {j->i[0], j->i[1], j->i[2], j->i[2], j->i[1], 3, 1, 1};
    j->be->conv2d_fwd(j->buf[1], j->buf[0], j->buf[2], j->buf[3], &s);
    j->be->conv2d_bwd(j->buf[4], j->buf[5], j->buf[6], j->buf[1], j->buf[0], j->buf[2], &s);
}
static void conv_setup(job *j, sid_rng *r) {
    size_t x = (size_t)j->i[0] * j->i[1] * j->i[2] * j->i[2], w = (size_t)j->i[1] * j->i[1] * 9;
    j->buf[0] = dev_randn(j->be, x, r), j->buf[1] = dev_randn(j->be, x, r), j->buf[2] = dev_randn(j->be, w, r);
    j->buf[3] = dev_randn(j->be, j->i[1], r), j->buf[4] = dev_randn(j->be, x, r), j->buf[5] = dev_randn(j->be, w, r);
    j->buf[6] = dev_randn(j->be, j->i[1], r);
}
// attention fwd+bwd: i = B N H dh
static void attn_job(job *j) {
    const int B = j->i[0], N = j->i[1], H = j->i[2], dh = j->i[3];
    j->be->attention_fwd(j->buf[3], j->buf[4], j->buf[0], j->buf[1], j->buf[2], B, N, N, H, dh, 0);
    j->be->attention_bwd(j->buf[5], j->buf[6], j->buf[7], j->buf[3], j->buf[0], j->buf[1], j->buf[2], j->buf[3],
                         j->buf[4], B, N, N, H, dh, 0);
}
static void attn_setup(job *j, sid_rng *r) {
    size_t x = (size_t)j->i[0] * j->i[1] * j->i[2] * j->i[3];
    for (int k = 0; k < 8; k++) j->buf[k] = dev_randn(j->be, k == 4 ? (size_t)j->i[0] * j->i[2] * j->i[1] : x, r);
}
// linear fwd+bwd: i = M K N
static void lin_job(job *j) {
    j->be->linear_fwd(j->buf[2], j->buf[0], j->buf[1], NULL, j->i[0], j->i[1], j->i[2]);
    j->be->linear_bwd(j->buf[3], j->buf[4], NULL, j->buf[2], j->buf[0], j->buf[1], j->i[0], j->i[1], j->i[2]);
}
static void lin_setup(job *j, sid_rng *r) {
    size_t M = j->i[0], K = j->i[1], N = j->i[2];
    j->buf[0] = dev_randn(j->be, M * K, r), j->buf[1] = dev_randn(j->be, N * K, r), j->buf[2] = dev_randn(j->be, M * N, r);
    j->buf[3] = dev_randn(j->be, M * K, r), j->buf[4] = dev_randn(j->be, N * K, r);
}
// group norm fwd+bwd: i = N C HW
static void gn_job(job *j) {
    const int N = j->i[0], C = j->i[1], HW = j->i[2];
    j->be->groupnorm_fwd(j->buf[1], j->buf[2], j->buf[3], j->buf[0], j->buf[4], j->buf[5], N, C, HW, 32, 1e-5f);
    j->be->groupnorm_bwd(j->buf[6], j->buf[7], NULL, j->buf[1], j->buf[0], j->buf[4], j->buf[2], j->buf[3], N, C, HW, 32);
}
static void gn_setup(job *j, sid_rng *r) {
    size_t x = (size_t)j->i[0] * j->i[1] * j->i[2];
    j->buf[0] = dev_randn(j->be, x, r), j->buf[1] = dev_randn(j->be, x, r), j->buf[2] = dev_randn(j->be, j->i[0] * 32, r);
    j->buf[3] = dev_randn(j->be, j->i[0] * 32, r), j->buf[4] = dev_randn(j->be, j->i[1], r);
    j->buf[5] = dev_randn(j->be, j->i[1], r), j->buf[6] = dev_randn(j->be, x, r), j->buf[7] = dev_randn(j->be, j->i[1], r);
}

typedef struct {
    const char *name;
    void (*setup)(job *, sid_rng *);
    void (*run)(job *);
    int i[8];
    double gflop;
} bench;

int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    const bench benches[] = {
        {"conv3x3 fwd+bwd 64ch 32x32 n32", conv_setup, conv_job, {32, 64, 32}, 3 * 2.0 * 32 * 64 * 1024 * 64 * 9 * 1e-9},
        {"conv3x3 fwd+bwd 320ch 64x64 n2", conv_setup, conv_job, {2, 320, 64}, 3 * 2.0 * 2 * 320 * 4096 * 320 * 9 * 1e-9},
        {"attention fwd+bwd SD 4096 h8 d40", attn_setup, attn_job, {1, 4096, 8, 40}, 3.5 * 4.0 * 4096.0 * 4096 * 320 * 1e-9},
        {"attention fwd+bwd 256 h1 d64 B16", attn_setup, attn_job, {16, 256, 1, 64}, 3.5 * 4.0 * 16 * 256.0 * 256 * 64 * 1e-9},
        {"linear fwd+bwd 4096x320->2560", lin_setup, lin_job, {4096, 320, 2560}, 3 * 2.0 * 4096 * 320 * 2560 * 1e-9},
        {"groupnorm fwd+bwd 320ch 64x64 n2", gn_setup, gn_job, {2, 320, 4096}, 0},
    };
    int nb = 0;
    const sid_backend *bes[4];
    for (int b = 0; sid_backend_at(b) && nb < 4; b++)
        if (sid_backend_at(b)->available()) bes[nb++] = sid_backend_at(b);
    printf("backend comparison (%d CPU threads, cpu kernels %s)%s\n%-36s", sid_threads_get(), sid_cpu_isa(),
           nb == 1 ? " -- no GPU here, CPU only" : "", "op");
    for (int b = 0; b < nb; b++) printf(" %12s ms %9s", bes[b]->name, "GFLOP/s");
    printf(nb > 1 ? "  speed-up\n" : "\n");
    for (size_t k = 0; k < sizeof benches / sizeof benches[0]; k++) {
        printf("%-36s", benches[k].name);
        double t[4];
        for (int b = 0; b < nb; b++) {
            sid_rng r = sid_rng_new(1);
            job j = {.be = bes[b]};
            memcpy(j.i, benches[k].i, sizeof j.i);
            benches[k].setup(&j, &r);
            t[b] = time_job(benches[k].run, &j);
            printf(" %15.3f %9.1f", t[b] * 1e3, benches[k].gflop > 0 ? benches[k].gflop / t[b] : 0.0);
            fflush(stdout);
            for (int q = 0; q < 8; q++)
                if (j.buf[q]) bes[b]->free(j.buf[q]);
        }
        if (nb > 1) printf("  %8.1fx", t[0] / t[1]);
        printf("\n");
    }
    return 0;
}
