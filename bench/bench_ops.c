// make bench: throughput of the CPU ops next to the sgemm peak measured in the
// same run (these machines are noisy: compare ratios, not absolute numbers),
// how conv cost grows with batch and resolution, and forward+backward time of
// a ResNet block and a transformer block as the UNet uses them.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "ops/cpu_isa.h"
#include "ops/ops.h"

static double peak_gflops;
static sid_rng rng;

static float *randn(size_t n) {
    float *p = sid_aligned_alloc(n * sizeof(float));
    sid_rng_normal(&rng, p, n);
    for (size_t i = 0; i < n; i++) p[i] *= 0.1f;
    return p;
}
static float *zeros(size_t n) {
    float *p = sid_aligned_alloc(n * sizeof(float));
    memset(p, 0, n * sizeof(float));
    return p;
}

typedef void (*bench_fn)(void *);
// Fastest of repeated runs (noise on a shared machine only adds time), after one warm-up, for at
// least 0.4 s.
static double time_it(bench_fn fn, void *ctx) {
    fn(ctx);
    double t[64];
    int n = 0;
    double start = sid_now();
    do {
        double t0 = sid_now();
        fn(ctx);
        t[n++] = sid_now() - t0;
    } while (n < 64 && (n < 3 || sid_now() - start < 0.4));
    double best = t[0];
    for (int i = 1; i < n; i++) best = t[i] < best ? t[i] : best;
    return best;
}

static void row(const char *op, const char *shape, double sec, double flops, double bytes) {
    printf("%-26s %-34s %9.3f ms", op, shape, sec * 1e3);
    if (flops > 0) printf(" %8.1f GFLOP/s %5.0f%% of peak", flops / sec * 1e-9, 100 * flops / sec * 1e-9 / peak_gflops);
    if (bytes > 0) printf(" %8.2f GB/s", bytes / sec * 1e-9);
    printf("\n");
}

// ---- sgemm peak
typedef struct { int n; float *a, *b, *c; } gemm_ctx;
static void gemm_run(void *p) {
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1, g->a, g->n, g->b, g->n, 0, g->c, g->n);
}
static void bench_peak(void) {
    gemm_ctx g = {1536, randn(1536 * 1536), randn(1536 * 1536), zeros(1536 * 1536)};
    double t = time_it(gemm_run, &g), f = 2.0 * g.n * g.n * g.n;
    peak_gflops = f / t * 1e-9;
    printf("sgemm peak (OpenBLAS %dx%dx%d, %d threads): %.1f GFLOP/s\n\n", g.n, g.n, g.n, sid_threads_get(), peak_gflops);
    free(g.a), free(g.b), free(g.c);
}

// ---- linear
typedef struct { int M, K, N; float *x, *w, *b, *y, *dx, *dw, *db, *dy; } lin_ctx;
static void lin_fwd(void *p) { lin_ctx *c = p; sid_linear_fwd(c->y, c->x, c->w, c->b, c->M, c->K, c->N); }
static void lin_bwd(void *p) { lin_ctx *c = p; sid_linear_bwd(c->dx, c->dw, c->db, c->dy, c->x, c->w, c->M, c->K, c->N); }
static void bench_linear(int M, int K, int N, const char *what) {
    lin_ctx c = {M, K, N, randn((size_t)M * K), randn((size_t)N * K), randn(N), zeros((size_t)M * N),
                 zeros((size_t)M * K), zeros((size_t)N * K), zeros(N), randn((size_t)M * N)};
    char shape[64];
    snprintf(shape, sizeof shape, "%s [%d,%d]x[%d,%d]^T", what, M, K, N, K);
    double f = 2.0 * M * K * N;
    row("linear fwd", shape, time_it(lin_fwd, &c), f, 0);
    row("linear bwd (data+weight)", shape, time_it(lin_bwd, &c), 2 * f, 0);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.dx), free(c.dw), free(c.db), free(c.dy);
}

// ---- conv2d
typedef struct { sid_conv2d_shape s; float *x, *w, *b, *y, *dx, *dw, *db, *dy; } conv_ctx;
static void conv_fwd(void *p) { conv_ctx *c = p; sid_conv2d_fwd(c->y, c->x, c->w, c->b, &c->s); }
static void conv_bwd(void *p) { conv_ctx *c = p; sid_conv2d_bwd(c->dx, c->dw, c->db, c->dy, c->x, c->w, &c->s); }
static void conv_bwd_data(void *p) { conv_ctx *c = p; sid_conv2d_bwd(c->dx, NULL, NULL, c->dy, c->x, c->w, &c->s); }
static void conv_both(void *p) { conv_fwd(p), conv_bwd(p); }
static double bench_conv(int n, int cin, int hw, int cout, int k, int stride, const char *what, int full) {
    conv_ctx c = {.s = {n, cin, hw, hw, cout, k, stride, k / 2}};
    const int ho = sid_conv2d_hout(&c.s);
    size_t xs = (size_t)n * cin * hw * hw, ws = (size_t)cout * cin * k * k, ys = (size_t)n * cout * ho * ho;
    c.x = randn(xs), c.w = randn(ws), c.b = randn(cout), c.y = zeros(ys), c.dx = zeros(xs), c.dw = zeros(ws);
    c.db = zeros(cout), c.dy = randn(ys);
    char shape[80];
    snprintf(shape, sizeof shape, "%s n%d %d->%d %dx%d k%d s%d", what, n, cin, cout, hw, hw, k, stride);
    double f = 2.0 * n * cout * ho * ho * cin * k * k, ratio = 0;
    if (full) {
        row("conv2d fwd", shape, time_it(conv_fwd, &c), f, 0);
        row("conv2d bwd (data+weight)", shape, time_it(conv_bwd, &c), 2 * f, 0);
        row("conv2d bwd (data only)", shape, time_it(conv_bwd_data, &c), f, 0);
    }
    double t = time_it(conv_both, &c);
    row("conv2d fwd+bwd", shape, t, 3 * f, 0);
    ratio = 3 * f / t * 1e-9 / peak_gflops;
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.dx), free(c.dw), free(c.db), free(c.dy);
    return ratio;
}

// ---- attention
typedef struct { int B, N, M, H, dh; float *q, *k, *v, *o, *lse, *dq, *dk, *dv, *dout; } attn_ctx;
static void attn_fwd(void *p) { attn_ctx *a = p; sid_attention_fwd(a->o, a->lse, a->q, a->k, a->v, a->B, a->N, a->M, a->H, a->dh, 0); }
static void attn_bwd(void *p) {
    attn_ctx *a = p;
    sid_attention_bwd(a->dq, a->dk, a->dv, a->dout, a->q, a->k, a->v, a->o, a->lse, a->B, a->N, a->M, a->H, a->dh, 0);
}
static void bench_attention(int B, int N, int M, int H, int dh, const char *what) {
    const size_t C = (size_t)H * dh;
    attn_ctx a = {B, N, M, H, dh, randn(B * N * C), randn(B * M * C), randn(B * M * C), zeros(B * N * C),
                  zeros((size_t)B * H * N), zeros(B * N * C), zeros(B * M * C), zeros(B * M * C), randn(B * N * C)};
    for (size_t i = 0; i < B * N * C; i++) a.q[i] *= 10;  // realistic, non-uniform softmax
    char shape[80];
    snprintf(shape, sizeof shape, "%s B%d N%d M%d H%d d%d", what, B, N, M, H, dh);
    double f = 4.0 * B * H * N * M * dh;
    attn_fwd(&a);
    row("attention fwd", shape, time_it(attn_fwd, &a), f, 0);
    row("attention bwd", shape, time_it(attn_bwd, &a), 2.5 * f, 0);  // S recomputed, dV, dP, dQ, dK
    free(a.q), free(a.k), free(a.v), free(a.o), free(a.lse), free(a.dq), free(a.dk), free(a.dv), free(a.dout);
}

// ---- group norm
typedef struct { int N, C, HW, G; float *x, *y, *g, *b, *mean, *rstd, *dx, *dg, *db, *dy; } gn_ctx;
static void gn_fwd(void *p) { gn_ctx *c = p; sid_groupnorm_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->N, c->C, c->HW, c->G, 1e-5f); }
static void gn_bwd(void *p) { gn_ctx *c = p; sid_groupnorm_bwd(c->dx, c->dg, c->db, c->dy, c->x, c->g, c->mean, c->rstd, c->N, c->C, c->HW, c->G); }
static void gns_fwd(void *p) { gn_ctx *c = p; sid_groupnorm_silu_fwd(c->y, c->mean, c->rstd, c->x, c->g, c->b, c->N, c->C, c->HW, c->G, 1e-5f); }
static void gns_bwd(void *p) { gn_ctx *c = p; sid_groupnorm_silu_bwd(c->dx, c->dg, c->db, c->dy, c->x, c->g, c->b, c->mean, c->rstd, c->N, c->C, c->HW, c->G); }
static void bench_groupnorm(int N, int C, int HW, int G, const char *what) {
    size_t n = (size_t)N * C * HW;
    gn_ctx c = {N, C, HW, G, randn(n), zeros(n), randn(C), randn(C), zeros(N * G), zeros(N * G), zeros(n), zeros(C), zeros(C), randn(n)};
    char shape[80];
    snprintf(shape, sizeof shape, "%s [%d,%d,%d] G%d", what, N, C, HW, G);
    row("groupnorm fwd", shape, time_it(gn_fwd, &c), 0, 2.0 * n * 4 + n * 4);
    row("groupnorm bwd", shape, time_it(gn_bwd, &c), 0, 6.0 * n * 4);
    row("groupnorm+silu fwd", shape, time_it(gns_fwd, &c), 0, 2.0 * n * 4 + n * 4);
    row("groupnorm+silu bwd", shape, time_it(gns_bwd, &c), 0, 6.0 * n * 4);
    free(c.x), free(c.y), free(c.g), free(c.b), free(c.mean), free(c.rstd), free(c.dx), free(c.dg), free(c.db), free(c.dy);
}

#include "blocks.h"

static int want(int argc, char **argv, const char *section) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(section, argv[i])) return 1;
    return 0;
}

// bench_ops [section...]: linear conv attention groupnorm blocks (default: all)
int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    rng = sid_rng_new(1);
    printf("sid op benchmark (CPU backend, kernels %s, OpenBLAS %s; fastest of repeated runs)\n", sid_cpu_isa(),
           openblas_get_corename());
    bench_peak();
    if (want(argc, argv, "linear")) {
    bench_linear(1024, 64, 64, "small UNet 16x16 tok");
    // the built-in teacher's transformer at 8x8, as a batch-split part of 4 samples runs it
    bench_linear(256, 32, 32, "teacher part attn proj");
    bench_linear(256, 32, 256, "teacher part GEGLU in");
    bench_linear(256, 128, 32, "teacher part ff out");
    bench_linear(308, 64, 32, "teacher part context k/v");
    bench_linear(4096, 320, 320, "SD1.5 64x64 attn proj");
    bench_linear(4096, 320, 2560, "SD1.5 64x64 GEGLU in");
    printf("\n");
    }
    double target = 0;
    if (want(argc, argv, "conv")) {
    bench_conv(16, 32, 32, 32, 3, 1, "small UNet", 1);
    bench_conv(32, 32, 8, 32, 3, 1, "small UNet 8x8", 1);
    bench_conv(32, 16, 32, 1, 3, 1, "small UNet conv_out", 1);
    // the built-in teacher's convolutions as a part of the batch split runs them (4 samples)
    bench_conv(4, 16, 32, 16, 3, 1, "teacher part", 1);
    bench_conv(4, 48, 32, 16, 3, 1, "teacher part", 1);
    bench_conv(4, 64, 16, 32, 3, 1, "teacher part", 1);
    bench_conv(4, 32, 8, 32, 3, 1, "teacher part", 1);
    target = bench_conv(32, 64, 32, 64, 3, 1, "target", 1);
    bench_conv(16, 64, 32, 64, 1, 1, "1x1 shortcut", 1);
    bench_conv(16, 32, 32, 32, 3, 2, "downsample", 1);
    bench_conv(1, 320, 64, 320, 3, 1, "SD1.5 64x64", 1);
    bench_conv(2, 640, 32, 640, 3, 1, "SD1.5 32x32", 1);
    printf("\nconv2d 3x3 64->64 fwd+bwd, growth with batch and resolution:\n");
    for (int n = 8; n <= 32; n *= 2) bench_conv(n, 64, 32, 64, 3, 1, "batch", 0);
    for (int r = 16; r <= 64; r *= 2) bench_conv(16, 64, r, 64, 3, 1, "resolution", 0);
    printf("\n");
    }
    if (want(argc, argv, "attention")) {
    bench_attention(16, 256, 256, 1, 64, "small UNet self 16x16");
    bench_attention(16, 64, 8, 1, 64, "small UNet cross 8x8");
    bench_attention(4, 64, 64, 2, 16, "teacher part self 8x8");
    bench_attention(4, 64, 16, 2, 16, "teacher part cross 8x8");
    bench_attention(1, 4096, 4096, 8, 40, "SD1.5 self 64x64");
    bench_attention(2, 4096, 77, 8, 40, "SD1.5 cross 64x64");
    printf("\n");
    }
    if (want(argc, argv, "groupnorm")) {
    bench_groupnorm(16, 64, 1024, 32, "small UNet");
    bench_groupnorm(4, 16, 1024, 8, "teacher part");
    bench_groupnorm(1, 320, 4096, 32, "SD1.5 64x64");
    printf("\n");
    }
    if (want(argc, argv, "blocks")) bench_blocks();
    if (target > 0) printf("\nconv2d 3x3 64ch 32x32 batch 32 fwd+bwd: %.0f%% of the sgemm peak (target >= 50%%)\n", 100 * target);
    return 0;
}
