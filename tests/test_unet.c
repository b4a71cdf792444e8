// UNet2DConditionModel against diffusers: forward output, input and context
// gradients and a sample of weight gradients on tiny random configs (SD1.5's
// block structure; SD2-style linear projections), plus config and loading errors
// and the parameter counts of the real SD configs.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "harness.h"
#include "ops/cpu_isa.h"
#include "io/safetensors.h"
#include "core/threads.h"
#include "models/unet.h"
#include "ops/guard/guard.h"
#include "ops/ops.h"


static float *golden(const sid_safetensors *st, const char *name, size_t *n) {
    const sid_st_tensor *t = sid_st_find(st, name);
    *n = 0;
    if (!t) sid_die("%s: no golden tensor '%s' (regenerate with tools/reference/unet_reference.py)", st->path, name);
    *n = (size_t)sid_shape_numel(t->ndim, t->shape);
    float *x = sid_malloc(*n * sizeof(float) + 4);
    if (sid_st_read_f32(st, t, x)) sid_die("%s", sid_error());
    return x;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double scale = 1e-12, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err)) err = e;
    }
    return err / scale;
}

typedef struct {
    sid_unet_config cfg;
    sid_params ps;
    sid_unet u;
} loaded_unet;

static int load_unet(loaded_unet *m, const char *dir, int with_grad) {
    char path[512];
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (sid_unet_config_load(&m->cfg, path)) return -1;
    sid_unet_decl(&m->u, &m->ps, &m->cfg);
    sid_params_alloc(&m->ps, with_grad);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    return sid_params_load(&m->ps, path, NULL, NULL, 1, NULL);
}

static void free_unet(loaded_unet *m) {
    sid_unet_free(&m->u);
    sid_params_free(&m->ps);
}

// tests/data/unet/NAME, failing the test (and returning -1) when it does not load
static int load_test_unet(loaded_unet *m, const char *name, int with_grad) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/unet/%s", test_data_dir(), name);
    if (!load_unet(m, dir, with_grad)) return 0;
    test_fail(__FILE__, __LINE__, "%s", sid_error());
    return -1;
}

// One forward and backward of a UNet, inputs and results in host memory.
typedef struct {
    const float *x, *t, *ctx, *dout;
    size_t nx, nc, no;
    int N, S, M;
    int pairs;  // a paired pass: x, t (and dx) hold N/2 samples
} unet_io;

// N samples of m's shape with M context tokens: x, ctx and dout drawn from seed (in that order), t
// the caller's N timesteps. Freed with io_free.
static unet_io random_io(const loaded_unet *m, int N, int M, const float *t, uint64_t seed) {
    const int S = m->cfg.sample_size;
    const size_t nx = (size_t)N * m->cfg.in_channels * S * S, no = (size_t)N * m->cfg.out_channels * S * S;
    const size_t nc = (size_t)N * M * m->cfg.cross_attention_dim;
    float *x = sid_malloc(nx * 4), *ctx = sid_malloc(nc * 4), *dout = sid_malloc(no * 4);
    sid_rng rng = sid_rng_new(seed);
    sid_rng_normal(&rng, x, nx), sid_rng_normal(&rng, ctx, nc), sid_rng_normal(&rng, dout, no);
    return (unet_io){x, t, ctx, dout, nx, nc, no, N, S, M};
}
static void io_free(unet_io *io) { free((float *)io->x), free((float *)io->ctx), free((float *)io->dout); }

typedef struct {
    float *out, *dx, *dctx;  // dctx NULL for a frozen set (not asked for)
    float *grad;             // a copy of the parameter gradient block; NULL for a frozen set
    size_t peak;             // activation arena peak, bytes
} unet_result;

static void result_free(unet_result *r) { free(r->out), free(r->dx), free(r->dctx), free(r->grad); }

static float *dev_copy(const sid_backend *be, const float *host, size_t n) {
    float *d = be->alloc(n * sizeof(float));
    be->upload(d, host, n * sizeof(float));
    return d;
}

static float *host_copy(const sid_backend *be, const float *dev, size_t n) {
    float *h = sid_malloc(n * sizeof(float) + 4);
    be->download(h, dev, n * sizeof(float));
    return h;
}

// Runs m (its parameters already on be: sid_params_to_backend) on be with an arena and every input
// and output in be's memory, the way a device runs it: the inputs are uploaded, the results
// downloaded. The gradient block is zeroed first; dctx is asked for only when m has gradients.
static unet_result run_unet(loaded_unet *m, const sid_backend *be, const unet_io *io) {
    const int full = m->ps.grad != NULL;
    sid_arena act, meta;
    sid_backend_arena_init(&act, be, "unet test activations", (size_t)256 << 20);
    sid_arena_init(&meta, "unet test saved state", (size_t)16 << 20);  // host memory
    sid_ctx c = {&m->ps, &act, be, be == &sid_backend_cpu ? NULL : &meta};
    if (full) be->fill(m->ps.grad, 0, m->ps.total);
    const size_t nt = (size_t)(io->pairs ? io->N / 2 : io->N);
    float *x = dev_copy(be, io->x, io->nx), *t = dev_copy(be, io->t, nt), *ctx = dev_copy(be, io->ctx, io->nc);
    float *dout = dev_copy(be, io->dout, io->no), *out = be->alloc(io->no * sizeof(float));
    float *dx = be->alloc(io->nx * sizeof(float)), *dctx = full ? be->alloc(io->nc * sizeof(float)) : NULL;
    if (dx) be->fill(dx, 0, io->nx);  // backward adds into it
    sid_unet_saved *s = (io->pairs ? sid_unet_forward_pairs : sid_unet_forward)(&c, &m->u, out, x, t, ctx, io->N,
                                                                                 io->S, io->S, io->M);
    sid_unet_backward(&c, &m->u, dx, dctx, dout, s);
    unet_result r = {host_copy(be, out, io->no), host_copy(be, dx, io->nx), full ? host_copy(be, dctx, io->nc) : NULL,
                     full ? host_copy(be, m->ps.grad, m->ps.total) : NULL, act.peak};
    be->free(x), be->free(t), be->free(ctx), be->free(dout), be->free(out), be->free(dx);
    if (dctx) be->free(dctx);
    sid_arena_free(&act);
    sid_arena_free(&meta);
    return r;
}

// The same on the guard device: a second copy of the model moved there, run, then freed; no guard
// buffer may be left live.
static unet_result run_unet_on_guard_ck(const char *dir, int with_grad, const unet_io *io, int checkpointing) {
    loaded_unet g;
    if (load_unet(&g, dir, with_grad)) sid_die("%s", sid_error());
    sid_unet_set_checkpointing(&g.u, checkpointing);
    size_t live0, up, down;
    sid_guard_live(&live0, NULL);
    sid_params_to_backend(&g.ps, &sid_backend_guard);
    sid_guard_stats_reset();
    unet_result r = run_unet(&g, &sid_backend_guard, io);
    // the network itself moves nothing between host and device: only the test's inputs (x, t,
    // ctx, dout) go up and its results (out, dx, and with gradients dctx and the gradient block) down
    sid_guard_stats(&up, NULL, &down, NULL);
    EXPECT(up == 4 && down == (with_grad ? 4u : 2u), "%s: %zu uploads and %zu downloads", dir, up, down);
    free_unet(&g);
    size_t live;
    sid_guard_live(&live, NULL);
    EXPECT(live == live0, "%s: %zu guard buffers left live (%zu before)", dir, live, live0);
    return r;
}
static unet_result run_unet_on_guard(const char *dir, int with_grad, const unet_io *io) {
    return run_unet_on_guard_ck(dir, with_grad, io, 0);
}

// Bit for bit.
static void expect_same(const char *what, const char *name, const float *a, const float *b, size_t n) {
    if (!a || !b) {
        EXPECT(a == b, "%s: %s: one of the two is missing", name, what);
        return;
    }
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) && !diff++) first = i;
    EXPECT(!diff, "%s: %s: %zu of %zu values differ between guard and cpu (first [%zu]: %.9g vs %.9g)", name, what,
           diff, n, first, diff ? a[first] : 0.0, diff ? b[first] : 0.0);
}

static void expect_same_result(const char *name, const unet_result *g, const unet_result *c, const unet_io *io,
                               size_t np) {
    expect_same("output", name, g->out, c->out, io->no);
    expect_same("input gradient", name, g->dx, c->dx, io->nx);
    expect_same("context gradient", name, g->dctx, c->dctx, io->nc);
    expect_same("parameter gradients", name, g->grad, c->grad, np);
}

// The golden comparisons of one run (dev names the backend in the messages).
static void expect_golden(const char *name, const char *dev, const sid_safetensors *st, const sid_params *ps,
                          const unet_result *r, const unet_io *io, int verbose) {
    size_t n;
    float *want = golden(st, "out", &n), *want_dx = golden(st, "dx", &n), *want_dctx = golden(st, "dctx", &n);
    double e = rel_err(r->out, want, io->no), worst_w = 0;
    EXPECT(e < 1e-4, "%s on %s: forward differs from diffusers by %.3g (relative to the largest output)", name, dev, e);
    const double e_fwd = e;
    const double e_dx = e = rel_err(r->dx, want_dx, io->nx);
    EXPECT(e < 1e-4, "%s on %s: input gradient differs from diffusers by %.3g", name, dev, e);
    const double e_dctx = e = rel_err(r->dctx, want_dctx, io->nc);
    EXPECT(e < 1e-4, "%s on %s: context gradient differs from diffusers by %.3g", name, dev, e);
    int checked = 0;
    for (int i = 0; i < st->n; i++) {
        const char *gname = st->tensors[i].name;
        if (strncmp(gname, "grad.", 5)) continue;
        int k = sid_params_find(ps, gname + 5);
        float *g = golden(st, gname, &n);
        EXPECT(k >= 0 && ps->items[k].numel == n, "%s: no parameter %s of %zu values", name, gname + 5, n);
        if (k >= 0 && ps->items[k].numel == n) {
            e = rel_err(r->grad + ps->items[k].offset, g, n);
            EXPECT(e < 1e-4, "%s on %s: gradient of %s differs from diffusers by %.3g", name, dev, gname + 5, e);
            worst_w = fmax(worst_w, e);
            checked++;
        }
        free(g);
    }
    EXPECT(checked >= 10, "%s: only %d weight gradients compared", name, checked);
    if (verbose && getenv("SID_TEST_VERBOSE"))
        printf("\n  %s vs diffusers (%s): out %.1e, dx %.1e, dctx %.1e, %d weight gradients worst %.1e; activations %.1f MB",
               name, dev, e_fwd, e_dx, e_dctx, checked, worst_w, r->peak / 1e6);
    free(want), free(want_dx), free(want_dctx);
}

static void check_against_diffusers(const char *name) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/unet/%s", test_data_dir(), name);
    loaded_unet m, frozen;
    if (load_unet(&m, dir, 1) || load_unet(&frozen, dir, 0)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    size_t nx, nt, nc, no;
    float *x = golden(&st, "x", &nx), *t = golden(&st, "t", &nt), *ctx = golden(&st, "ctx", &nc);
    float *dout = golden(&st, "dout", &no);
    const unet_io io = {x, t, ctx, dout, nx, nc, no, (int)nt, m.cfg.sample_size,
                        (int)(nc / nt / (size_t)m.cfg.cross_attention_dim)};
    const sid_backend *cpu = &sid_backend_cpu;

    // the CPU as it runs by default (all threads: the batch may be split over them)
    unet_result r = run_unet(&m, cpu, &io);
    expect_golden(name, "cpu", &st, &m.ps, &r, &io, 1);
    // a frozen copy (no gradient block) gives the same input gradient: the teacher's path in SiD
    unet_result rf = run_unet(&frozen, cpu, &io);
    double e = rel_err(rf.dx, r.dx, nx);
    EXPECT(e < 1e-6, "%s: frozen input gradient differs from the full one by %.3g", name, e);

    // The guard device runs the whole batch as one with the CPU kernels, so with one thread on both
    // (the CPU then does not split, and the kernels' weight-gradient sums depend on the thread
    // count) it must equal the CPU bit for bit; with all threads, diffusers as closely as the CPU.
    const int threads = omp_get_max_threads();
    sid_threads_set(1);
    unet_result r1 = run_unet(&m, cpu, &io), rf1 = run_unet(&frozen, cpu, &io);
    unet_result g1 = run_unet_on_guard(dir, 1, &io), gf1 = run_unet_on_guard(dir, 0, &io);
    sid_threads_set(threads);
    expect_same_result(name, &g1, &r1, &io, m.ps.total);
    expect_same_result(name, &gf1, &rf1, &io, 0);
    unet_result g = run_unet_on_guard(dir, 1, &io);
    expect_golden(name, "guard", &st, &m.ps, &g, &io, 1);
    // every other instruction set of the CPU kernels this machine runs, against the same golden file
    const char *isa0 = sid_cpu_isa();
    int i = 0;
    for (const char *isa; (isa = test_next_cpu_isa(&i, isa0));) {
        char label[32];
        snprintf(label, sizeof label, "cpu/%s", isa);
        EXPECT(sid_cpu_isa_set(isa) == 0, "%s", sid_error());
        unet_result ri = run_unet(&m, cpu, &io);
        EXPECT(sid_cpu_isa_set(isa0) == 0, "%s", sid_error());
        expect_golden(name, label, &st, &m.ps, &ri, &io, 1);
        result_free(&ri);
    }

    result_free(&r), result_free(&rf), result_free(&r1), result_free(&rf1), result_free(&g1), result_free(&gf1);
    result_free(&g);
    free(x), free(t), free(ctx), free(dout);
    sid_st_close(&st);
    free_unet(&m);
    free_unet(&frozen);
}

static void test_sd15_structure_matches_diffusers(void) { check_against_diffusers("sd15_tiny"); }
static void test_sd2_linear_projection_matches_diffusers(void) { check_against_diffusers("sd2_linear"); }

// With 2 threads the batch is split into parts of at most 4 samples, each thread taking every
// other part (unet.c; the first call for a shape also sizes their arena slices from a one-sample
// forward): 9 samples make 4 parts. Each call must give what one thread gives on the whole
// batch: outputs, input, context and weight gradients.
static void test_batch_split_matches_whole_batch(void) {
    loaded_unet m;
    if (load_test_unet(&m, "sd15_tiny", 1)) return;
    const int threads = omp_get_max_threads();
    const float t[9] = {1, 120, 250, 380, 500, 630, 750, 880, 999};
    unet_io io = random_io(&m, 9, 3, t, 7);
    const int N = io.N, S = io.S, M = io.M;
    const size_t nx = io.nx, no = io.no, nc = io.nc, np = m.ps.total;
    const float *x = io.x, *ctx = io.ctx, *dout = io.dout;
    float *out[4], *dx[4], *dctx[4], *grad[4];
    sid_arena act;
    sid_arena_init(&act, "unet split test", (size_t)256 << 20);
    sid_ctx c = {&m.ps, &act, NULL, NULL};
    for (int r = 0; r < 4; r++) {  // 1 thread, then 2 threads three times (the first sizes the slices)
        omp_set_num_threads(r == 0 ? 1 : 2);
        out[r] = sid_calloc(no * 4), dx[r] = sid_calloc(nx * 4), dctx[r] = sid_calloc(nc * 4);
        memset(m.ps.grad, 0, np * sizeof(float));
        sid_arena_reset(&act, 0);
        sid_unet_saved *s = sid_unet_forward(&c, &m.u, out[r], x, t, ctx, N, S, S, M);
        EXPECT(sid_unet_saved_parts(s) == (r == 0 ? 1 : 4), "call %d: %d parts", r, sid_unet_saved_parts(s));
        sid_unet_backward(&c, &m.u, dx[r], dctx[r], dout, s);
        grad[r] = sid_malloc(np * 4);
        memcpy(grad[r], m.ps.grad, np * sizeof(float));
    }
    omp_set_num_threads(threads);
    for (int r = 1; r < 4; r++) {
        double e;
        EXPECT((e = rel_err(out[r], out[0], no)) < 1e-5, "call %d: output differs from one thread by %.3g", r, e);
        EXPECT((e = rel_err(dx[r], dx[0], nx)) < 1e-5, "call %d: dx differs from one thread by %.3g", r, e);
        EXPECT((e = rel_err(dctx[r], dctx[0], nc)) < 1e-5, "call %d: dctx differs from one thread by %.3g", r, e);
        EXPECT((e = rel_err(grad[r], grad[0], np)) < 1e-5, "call %d: weight gradients differ by %.3g", r, e);
    }
    // the split runs are deterministic: the sizing call and the later calls agree bit for bit
    EXPECT(!memcmp(out[1], out[2], no * 4) && !memcmp(grad[1], grad[3], np * 4), "split calls differ from each other");
    // the guard device never splits (a CPU policy): on one thread it equals the one-thread run bit for bit
    char dir[512];
    snprintf(dir, sizeof dir, "%s/unet/sd15_tiny", test_data_dir());
    omp_set_num_threads(1);
    unet_result g = run_unet_on_guard(dir, 1, &io);
    omp_set_num_threads(threads);
    const unet_result one = {out[0], dx[0], dctx[0], grad[0], 0};
    expect_same_result("sd15_tiny, batch 9", &g, &one, &io, np);
    result_free(&g);
    for (int r = 0; r < 4; r++) free(out[r]), free(dx[r]), free(dctx[r]), free(grad[r]);
    io_free(&io);
    sid_arena_free(&act);
    free_unet(&m);
}

// A paired pass (guided evaluation: samples i and n + i share x and t, and differ in ctx) runs the
// layers before the first cross-attention once, on the n shared samples. It must equal the plain
// pass over [x; x] and [t; t] (outputs, context and weight gradients, and dx = the sum of the two
// halves' dx) on the CPU at one thread and at two (the batch split into parts of pairs), with and
// without checkpointing; equal the CPU bit for bit on the guard device at one thread; and count
// fewer FLOPs. The fashion teacher shares two levels (DownBlock2D, DownBlock2D): 8.1% fewer; sd15_tiny
// only conv_in and the first ResNet: 1.1%.
static void check_paired(const char *dir, int n, double min_saving) {
    loaded_unet m;
    if (load_unet(&m, dir, 1)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    const int threads = omp_get_max_threads();
    float t2[2 * 8];
    for (int i = 0; i < n; i++) t2[i] = t2[n + i] = 37.0f + 101.0f * i;
    unet_io full = random_io(&m, 2 * n, 4, t2, 11);
    float *x2 = (float *)full.x;
    memcpy(x2 + full.nx / 2, x2, full.nx / 2 * sizeof(float));  // [x; x]
    unet_io paired = full;
    paired.pairs = 1, paired.nx = full.nx / 2;
    const size_t np = m.ps.total, nx = paired.nx;
    for (int ck = 0; ck < 2; ck++)
        for (int nt = 1; nt <= 2; nt++) {
            sid_unet_set_checkpointing(&m.u, ck);
            omp_set_num_threads(nt);
            const double f0 = sid_ops_flops();
            unet_result a = run_unet(&m, &sid_backend_cpu, &full);
            const double f1 = sid_ops_flops();
            unet_result b = run_unet(&m, &sid_backend_cpu, &paired);
            const double saving = 1 - (sid_ops_flops() - f1) / (f1 - f0);
            float *dx = sid_malloc(nx * sizeof(float));
            for (size_t i = 0; i < nx; i++) dx[i] = a.dx[i] + a.dx[nx + i];
            double e;
            const char *tag = ck ? "checkpointed" : "plain";
            EXPECT((e = rel_err(b.out, a.out, full.no)) < 1e-5, "%s, %s, %d thread(s): paired output differs by %.3g",
                   dir, tag, nt, e);
            EXPECT((e = rel_err(b.dx, dx, nx)) < 1e-5, "%s, %s, %d thread(s): paired dx differs by %.3g", dir, tag, nt, e);
            EXPECT((e = rel_err(b.dctx, a.dctx, full.nc)) < 1e-5, "%s, %s, %d thread(s): paired dctx differs by %.3g",
                   dir, tag, nt, e);
            EXPECT((e = rel_err(b.grad, a.grad, np)) < 1e-5,
                   "%s, %s, %d thread(s): paired weight gradients differ by %.3g", dir, tag, nt, e);
            // (on one thread: with two, the first call of a shape adds a one-sample or one-pair sizing pass)
            EXPECT(nt > 1 || saving > min_saving, "%s: the paired pass counted %.1f%% fewer FLOPs, want more than %.1f%%",
                   dir, 100 * saving, 100 * min_saving);
            if (getenv("SID_TEST_VERBOSE") && nt == 1) printf("\n  %s, %s: %.1f%% fewer FLOPs", dir, tag, 100 * saving);
            if (nt == 1) {
                omp_set_num_threads(1);
                unet_result g = run_unet_on_guard_ck(dir, 1, &paired, ck);
                expect_same_result(dir, &g, &b, &paired, np);
                result_free(&g);
            }
            free(dx);
            result_free(&a), result_free(&b);
        }
    omp_set_num_threads(threads);
    io_free(&full);
    free_unet(&m);
}

static void test_paired_pass_shares_the_leading_layers(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sid/teacher/unet", test_data_dir());
    check_paired(dir, 5, 0.05);
    snprintf(dir, sizeof dir, "%s/unet/sd15_tiny", test_data_dir());
    check_paired(dir, 3, 0.005);
}

// Gradient checkpointing drops the blocks' saved state in forward and recomputes it in backward:
// the same bits as without it (every op is deterministic for a thread count), on the CPU with one
// thread and with the batch split over two, and on the guard device (whose saved host state goes
// to a separate arena); the activation peak must fall.
static void test_checkpointing_gives_the_same_bits(void) {
    loaded_unet m;
    if (load_test_unet(&m, "sd15_tiny", 1)) return;
    const int threads = omp_get_max_threads();
    const float t[6] = {3, 200, 410, 620, 830, 990};
    unet_io io = random_io(&m, 6, 3, t, 11);
    const size_t np = m.ps.total;
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        sid_unet_set_checkpointing(&m.u, 0);
        unet_result plain = run_unet(&m, &sid_backend_cpu, &io);
        sid_unet_set_checkpointing(&m.u, 1);
        unet_result ck = run_unet(&m, &sid_backend_cpu, &io);
        sid_unet_set_checkpointing(&m.u, 0);
        char name[64];
        snprintf(name, sizeof name, "checkpointing, %d thread(s)", nt);
        expect_same_result(name, &plain, &ck, &io, np);
        EXPECT(ck.peak < plain.peak * 3 / 4, "%s: activation peak %zu bytes, without it %zu", name, ck.peak, plain.peak);
        if (getenv("SID_TEST_VERBOSE")) printf("\n  %s: peak %zu -> %zu bytes", name, plain.peak, ck.peak);
        if (nt == 1) {  // the guard device never splits; its host state goes to a separate arena
            char dir[512];
            snprintf(dir, sizeof dir, "%s/unet/sd15_tiny", test_data_dir());
            unet_result g = run_unet_on_guard_ck(dir, 1, &io, 1);
            expect_same_result("checkpointing on the guard device", &g, &plain, &io, np);
            EXPECT(g.peak < plain.peak * 3 / 4, "guard: activation peak %zu bytes, without it %zu", g.peak, plain.peak);
            result_free(&g);
        }
        result_free(&plain), result_free(&ck);
    }
    omp_set_num_threads(threads);
    io_free(&io);
    free_unet(&m);
}

// bf16 activations, calibrated on the guard device's bf16 mode (every activation output of every op
// rounded to bf16, statistics and parameter gradients fp32): the tiny SD1.5-structured UNet's output
// and gradients against the fp32 CPU. The bounds are 2-2.5 times the largest errors measured on
// 2026-12-04 over the AVX-512, AVX2 and SSE2 kernels (relative to the largest value: output
// 1.0-1.2e-2, input gradient 1.1-2.6e-2, context gradient 2.1-3.0e-2, parameter gradients
// 0.7-0.9e-2; bf16 keeps 8 bits, a relative step of 3.9e-3); a floor shows that the rounding happened.
static void test_bf16_activations_calibrated(void) {
    loaded_unet m;
    if (load_test_unet(&m, "sd15_tiny", 1)) return;
    const int threads = omp_get_max_threads();
    const float t[2] = {90, 700};
    unet_io io = random_io(&m, 2, 3, t, 13);
    omp_set_num_threads(1);
    unet_result ref = run_unet(&m, &sid_backend_cpu, &io);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/unet/sd15_tiny", test_data_dir());
    sid_guard_set_bf16(1);
    unet_result b = run_unet_on_guard(dir, 1, &io);
    sid_guard_set_bf16(0);
    omp_set_num_threads(threads);
    const double e[4] = {rel_err(b.out, ref.out, io.no), rel_err(b.dx, ref.dx, io.nx),
                         rel_err(b.dctx, ref.dctx, io.nc), rel_err(b.grad, ref.grad, m.ps.total)};
    const double bound[4] = {3e-2, 6e-2, 6e-2, 2e-2};
    const char *what[4] = {"output", "input gradient", "context gradient", "parameter gradients"};
    for (int i = 0; i < 4; i++) {
        EXPECT(e[i] < bound[i], "bf16 activations: %s differs from fp32 by %.3g (bound %.0e)", what[i], e[i], bound[i]);
        EXPECT(e[i] > 1e-4, "bf16 activations: %s within %.3g of fp32: nothing was rounded", what[i], e[i]);
    }
    if (getenv("SID_TEST_VERBOSE"))
        printf("\n  bf16 vs fp32: out %.2e dx %.2e dctx %.2e grads %.2e", e[0], e[1], e[2], e[3]);
    result_free(&ref), result_free(&b);
    io_free(&io);
    free_unet(&m);
}

// SD1.5's unet/config.json as shipped (docs/models.md), and SD2.1-base's differences.
static const char *sd15_config =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.6.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false,"
    " \"cross_attention_dim\": 768, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
    " \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

static size_t count_params(const char *json, int *ok) {
    sid_unet_config c;
    *ok = sid_unet_config_parse(&c, json, "config.json") == 0;
    if (!*ok) return 0;
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, &c);
    size_t n = sid_params_count(&ps);
    int tensors = ps.n;
    sid_unet_free(&u);
    sid_params_free(&ps);
    return n * 1000 + (size_t)tensors;  // both in one number: count, then tensors
}

// SD2.1-base's config: SD1.5's with per-level heads, linear projections and a 1024-wide context.
static void sd21_config(char *buf, size_t cap) {
    const char *a = strstr(sd15_config, "\"attention_head_dim\": 8"), *b = strstr(sd15_config, "\"cross_attention_dim\": 768");
    snprintf(buf, cap, "%.*s\"attention_head_dim\": [5, 10, 20, 20], \"use_linear_projection\": true, %.*s"
             "\"cross_attention_dim\": 1024%s",
             (int)(a - sd15_config), sd15_config, (int)(b - a - 24), a + 24, b + 26);
}

static void test_sd_parameter_counts(void) {
    int ok;
    size_t r = count_params(sd15_config, &ok);
    EXPECT(ok && r / 1000 == 859520964u && r % 1000 == 686, "SD1.5 UNet: %zu parameters in %zu tensors, want 859520964 in 686",
           r / 1000, r % 1000);
    char buf[2048];
    sd21_config(buf, sizeof buf);
    r = count_params(buf, &ok);
    EXPECT(ok && r / 1000 == 865910724u && r % 1000 == 686, "SD2.1-base UNet: %zu parameters in %zu tensors, want 865910724 in 686 (%s)",
           r / 1000, r % 1000, ok ? "" : sid_error());
}

static void expect_config_error(const char *from, const char *to, const char *want) {
    char buf[2048];
    const char *p = strstr(sd15_config, from);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - sd15_config), sd15_config, to, p + strlen(from));
    sid_unet_config c;
    int rc = sid_unet_config_parse(&c, buf, "unet/config.json");
    EXPECT(rc == -1 && strstr(sid_error(), want) && strstr(sid_error(), "unet/config.json") && !strchr(sid_error(), '\n'),
           "replacing %s by %s: rc %d, message '%s' (want '%s')", from, to, rc, rc ? sid_error() : "", want);
}

static void test_config_errors(void) {
    expect_config_error("\"DownBlock2D\"]", "\"SimpleDownBlock2D\"]", "SimpleDownBlock2D");
    expect_config_error("\"act_fn\": \"silu\"", "\"act_fn\": \"gelu\"", "act_fn");
    expect_config_error("\"attention_head_dim\": 8", "\"attention_head_dim\": [8, 8]", "heads");
    expect_config_error("\"norm_num_groups\": 32", "\"norm_num_groups\": 48", "divisible");
    expect_config_error("\"in_channels\": 4", "\"in_channels\": \"4\"", "in_channels");
    expect_config_error("\"act_fn\": \"silu\"", "\"class_embed_type\": \"timestep\", \"act_fn\": \"silu\"", "class_embed_type");
    sid_unet_config c;
    EXPECT(sid_unet_config_parse(&c, "[1, 2]", "unet/config.json") == -1 && strstr(sid_error(), "object"), "array config accepted");
    EXPECT(sid_unet_config_load(&c, "/nonexistent/config.json") == -1 && strstr(sid_error(), "/nonexistent/config.json"),
           "missing file: %s", sid_error());
}

// A checkpoint that does not fit the config is rejected with the tensor's name.
static void test_loading_rejects_mismatches(void) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/unet/sd2_linear", test_data_dir());
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    sid_unet_config base, c;
    snprintf(dir + strlen(dir), sizeof dir - strlen(dir), "/config.json");
    if (sid_unet_config_load(&base, dir)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    for (int k = 0; k < 3; k++) {
        c = base;
        const char *want = NULL;
        if (k == 0) c.cross_attention_dim += 1, want = "attn2.to_k.weight' has shape";
        if (k == 1) c.layers_per_block = 2, want = "missing tensor 'down_blocks.0.resnets.1";
        if (k == 2) c.transformer_layers = 1, want = "unexpected tensor";
        sid_params ps = {0};
        sid_unet u;
        sid_unet_decl(&u, &ps, &c);
        sid_params_alloc(&ps, 0);
        int rc = sid_params_load(&ps, path, NULL, NULL, 1, NULL);
        EXPECT(rc == -1 && strstr(sid_error(), want) && strstr(sid_error(), "diffusion_pytorch_model.safetensors"),
               "case %d: rc %d, '%s' (want '%s')", k, rc, rc ? sid_error() : "", want);
        sid_unet_free(&u);
        sid_params_free(&ps);
    }
}

// What sid writes loads back identically (the diffusers side is checked by the reference tool).
static void test_save_round_trip(void) {
    loaded_unet m;
    if (load_test_unet(&m, "sd15_tiny", 0)) return;
    char tmp[] = "/tmp/sid-unet-XXXXXX", path[600];
    EXPECT(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/config.json", tmp);
    EXPECT(sid_unet_config_save(&m.cfg, path) == 0, "%s", sid_error());
    sid_unet_config c2;
    EXPECT(sid_unet_config_load(&c2, path) == 0, "%s", sid_error());
    EXPECT(memcmp(&c2, &m.cfg, sizeof c2) == 0, "config changed through save/load");
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", tmp);
    EXPECT(sid_params_save(&m.ps, path, SID_F32) == 0, "%s", sid_error());
    loaded_unet r;
    EXPECT(load_unet(&r, tmp, 0) == 0, "%s", sid_error());
    EXPECT(r.ps.total == m.ps.total && memcmp(r.ps.data, m.ps.data, m.ps.total * sizeof(float)) == 0, "weights changed");
    free_unet(&r);
    free_unet(&m);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", tmp);
    unlink(path);
    rmdir(tmp);
}

// Every parameter's single-file (LDM) name and shape against the key lists of the real
// checkpoints (the sd15-unet-keys.tsv and sd21base-unet-keys.tsv key tables kept in tests/data/unet).
static void check_ldm_names(const char *config_json, const char *tsv) {
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/unet/%s", test_data_dir(), tsv);
    FILE *f = fopen(path, "r");
    if (!f) {
        test_fail(__FILE__, __LINE__, "%s: cannot open", path);
        return;
    }
    sid_unet_config c;
    EXPECT(sid_unet_config_parse(&c, config_json, "config.json") == 0, "%s", sid_error());
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, &c);
    int rows = 0, matched = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        char ours[256], ldm[256], shape[128], mapped[256], want_shape[128];
        if (sscanf(line, "%255s %255s %127[^\n]", ours, ldm, shape) != 3) continue;
        rows++;
        int k = sid_params_find(&ps, ours);
        if (k < 0) {
            test_fail(__FILE__, __LINE__, "%s: no parameter %s", tsv, ours);
            continue;
        }
        sid_shape_str(ps.items[k].ndim, ps.items[k].shape, want_shape, sizeof want_shape);
        EXPECT(strcmp(shape, want_shape) == 0, "%s: %s has shape %s, the checkpoint %s", tsv, ours, want_shape, shape);
        if (sid_unet_ldm_name(&c, ours, mapped, sizeof mapped) == 0 && strncmp(ldm, "model.diffusion_model.", 22) == 0 &&
            strcmp(mapped, ldm + 22) == 0)
            matched++;
        else
            test_fail(__FILE__, __LINE__, "%s: %s maps to %s, want %s", tsv, ours, mapped, ldm);
    }
    fclose(f);
    EXPECT(rows == ps.n && matched == ps.n, "%s: %d rows, %d parameters, %d names matched", tsv, rows, ps.n, matched);
    sid_unet_free(&u);
    sid_params_free(&ps);
}

static void test_single_file_names(void) {
    char buf[2048];
    check_ldm_names(sd15_config, "sd15-unet-keys.tsv");
    sd21_config(buf, sizeof buf);
    check_ldm_names(buf, "sd21base-unet-keys.tsv");
}

// A single-file checkpoint (LDM names under model.diffusion_model., other models' tensors and
// schedule buffers beside them) loads into the same weights as the diffusers folder.
static void test_single_file_checkpoint_loads(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/unet/sd15_tiny", test_data_dir());
    loaded_unet m;
    if (load_unet(&m, dir, 0)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    sid_st_entry *e = sid_calloc((size_t)(m.ps.n + 2) * sizeof *e);
    char (*names)[256] = sid_calloc((size_t)m.ps.n * 256);
    for (int i = 0; i < m.ps.n; i++) {
        char ldm[224];
        EXPECT(sid_unet_ldm_name(&m.cfg, m.ps.items[i].name, ldm, sizeof ldm) == 0, "no LDM name for %s", m.ps.items[i].name);
        snprintf(names[i], 256, "model.diffusion_model.%s", ldm);
        e[i] = (sid_st_entry){names[i], SID_F32, m.ps.items[i].ndim, {0}, sid_p(&m.ps, i)};
        memcpy(e[i].shape, m.ps.items[i].shape, sizeof m.ps.items[i].shape);
    }
    static const float betas[3] = {1e-4f, 2e-4f, 3e-4f};
    e[m.ps.n] = (sid_st_entry){"betas", SID_F32, 1, {3}, betas};
    e[m.ps.n + 1] = (sid_st_entry){"first_stage_model.decoder.conv_in.bias", SID_F32, 1, {3}, betas};
    char tmp[] = "/tmp/sid-ldm-XXXXXX", path[600];
    EXPECT(mkdtemp(tmp) != NULL, "mkdtemp");
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    EXPECT(sid_st_write(path, e, m.ps.n + 2, NULL, 0) == 0, "%s", sid_error());
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, &m.cfg);
    sid_params_alloc(&ps, 0);
    int rc = sid_params_load_mapped(&ps, path, "model.diffusion_model.", sid_unet_ldm_name, &m.cfg, 1, NULL);
    EXPECT(rc == 0, "%s", rc ? sid_error() : "");
    EXPECT(rc == 0 && memcmp(ps.data, m.ps.data, ps.total * sizeof(float)) == 0, "weights differ after the LDM round trip");
    sid_unet_free(&u);
    sid_params_free(&ps);
    free(e), free(names);
    free_unet(&m);
    unlink(path);
    rmdir(tmp);
}

TEST_LIST(T(test_single_file_checkpoint_loads), T(test_single_file_names), T(test_sd15_structure_matches_diffusers), T(test_sd2_linear_projection_matches_diffusers), T(test_batch_split_matches_whole_batch), T(test_paired_pass_shares_the_leading_layers), T(test_checkpointing_gives_the_same_bits), T(test_bf16_activations_calibrated),
          T(test_sd_parameter_counts), T(test_config_errors), T(test_loading_rejects_mismatches), T(test_save_round_trip))
TEST_MAIN("unet")
