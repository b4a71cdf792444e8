// The guard device (src/ops/guard): what it must catch, each checked in a forked child
// (death by SIGSEGV or SIGABRT, and the one-line message on its stderr), its transfer counters,
// its NaN-poisoned allocations, and that it computes exactly what the CPU backend computes.
#define _DEFAULT_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "harness.h"
#include "ops/guard/guard.h"

static const sid_backend *G = &sid_backend_guard;

// Runs fn in a child with its stderr in a pipe; returns the child's wait status and its stderr.
typedef void (*child_fn)(void);
static int in_child(child_fn fn, char *err, size_t cap) {
    int fd[2];
    if (pipe(fd) != 0) sid_die("pipe failed");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) sid_die("fork failed");
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);  // survived: the guard missed it
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd[0], err + n, cap - 1 - n)) > 0) n += (size_t)r;
    err[n] = 0;
    char sink[256];
    while (read(fd[0], sink, sizeof sink) > 0) {}
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static int lines_of(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

// Expects the child to die by signal sig with `want` (and, when given, `want2`) in its stderr;
// one_line: the message is exactly one line.
static void expect_death(child_fn fn, int sig, const char *want, const char *want2, int one_line, const char *what) {
    char err[4096];
    int st = in_child(fn, err, sizeof err);
    EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == sig, "%s: the child %s %d, want death by signal %d; stderr: %s", what,
           WIFSIGNALED(st) ? "died by signal" : "exited with", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), sig,
           err);
    EXPECT(strstr(err, want) != NULL, "%s: stderr lacks '%s': %s", what, want, err);
    if (want2) EXPECT(strstr(err, want2) != NULL, "%s: stderr lacks '%s': %s", what, want2, err);
    if (one_line) EXPECT(lines_of(err) == 1, "%s: %d lines on stderr, want one: %s", what, lines_of(err), err);
}

static float *dev_floats(const float *h, size_t n) {
    float *d = G->alloc(n * sizeof(float));
    if (h) G->upload(d, h, n * sizeof(float));
    return d;
}

// ---------------------------------------------------------------- (a) host access faults
static float *shared_buf;  // set by the parent before each fork
enum { BUF_N = 64 };       // 256 bytes: the buffer ends exactly at its guard page

static void child_read(void) {
    volatile float x = ((volatile float *)shared_buf)[3];
    (void)x;
}
static void child_write(void) { ((volatile float *)shared_buf)[BUF_N - 1] = 1; }
static void child_read_after_op(void) {
    G->scale_fwd(shared_buf, shared_buf, 2.0f, BUF_N);  // fine: inside an op
    volatile float x = shared_buf[0];                   // not fine: after it
    (void)x;
}
static void child_read_past_end(void) {
    volatile char x = ((volatile char *)shared_buf)[BUF_N * sizeof(float)];
    (void)x;
}

static void test_host_access_faults(void) {
    float h[BUF_N];
    for (int i = 0; i < BUF_N; i++) h[i] = (float)i;
    shared_buf = dev_floats(h, BUF_N);
    expect_death(child_read, SIGSEGV, "guard: host access to device memory at", "byte 12 of the 256-byte guard buffer",
                 0, "host read between ops");
    expect_death(child_write, SIGSEGV, "guard: host access to device memory at", "byte 252 of", 0,
                 "host write between ops");
    expect_death(child_read_after_op, SIGSEGV, "guard: host access to device memory", NULL, 0, "host read after an op");
    expect_death(child_read_past_end, SIGSEGV, "guard: access 0 bytes past the end of the 256-byte guard buffer", NULL,
                 0, "read one past the end");
    // the parent's buffer is untouched by all that and still readable through download
    float back[BUF_N];
    G->download(back, shared_buf, sizeof back);
    EXPECT(memcmp(back, h, sizeof h) == 0, "the buffer changed");
    G->free(shared_buf);
}

// ---------------------------------------------------------------- (b) host pointers in ops
static void child_host_input(void) {
    float *out = G->alloc(2 * 4 * sizeof(float)), *w = G->alloc(4 * 3 * sizeof(float));
    float *in = calloc(2 * 3, sizeof(float));  // host memory: a bug on a GPU
    G->linear_fwd(out, in, w, NULL, 2, 3, 4);
}
static void child_host_gradient(void) {
    float *x = G->alloc(16 * sizeof(float)), *dout = G->alloc(16 * sizeof(float));
    float *db = malloc(16 * sizeof(float));
    G->add_bwd(x, db, dout, 16);
}
static void child_host_upload_source(void) {
    float *a = G->alloc(64), *b = G->alloc(64);
    G->upload(a, b, 64);  // a device pointer where the host source belongs
}
static void child_use_after_free(void) {
    float *a = G->alloc(64 * sizeof(float)), *b = G->alloc(64 * sizeof(float));
    G->free(b);
    G->scale_fwd(a, b, 1.0f, 64);
}
static void child_free_interior(void) {
    float *a = G->alloc(64 * sizeof(float));
    G->free(a + 1);
}

static void test_host_pointer_in_op_aborts(void) {
    expect_death(child_host_input, SIGABRT, "guard: linear_fwd: argument 'in' = 0x", "is not device memory", 1,
                 "host input to linear_fwd");
    expect_death(child_host_gradient, SIGABRT, "guard: add_bwd: argument 'db' = 0x", "is not device memory", 1,
                 "host gradient to add_bwd");
    expect_death(child_host_upload_source, SIGABRT, "guard: upload: argument 'host_src' = 0x", "is device memory", 1,
                 "device pointer as upload source");
    expect_death(child_use_after_free, SIGABRT, "guard: scale_fwd: argument 'in' = 0x", "freed guard buffer", 1,
                 "freed buffer in scale_fwd");
    expect_death(child_free_interior, SIGABRT, "guard: free: 0x", "points inside one", 1, "free of an interior pointer");
}

// ---------------------------------------------------------------- (c) extents
enum { LM = 3, LK = 5, LN = 4 };
static void child_linear_m_too_large(void) {
    float *out = G->alloc(LM * LN * sizeof(float));  // M rows
    float *in = G->alloc((LM + 1) * LK * sizeof(float)), *w = G->alloc(LN * LK * sizeof(float));
    float *b = G->alloc(LN * sizeof(float));
    G->linear_fwd(out, in, w, b, LM + 1, LK, LN);  // M + 1 rows
}
static void child_interior_pointer_overruns(void) {
    float *x = G->alloc(100 * sizeof(float)), *y = G->alloc(100 * sizeof(float));
    G->scale_fwd(y + 50, x + 50, 1.0f, 50);  // exactly fits
    G->scale_fwd(y + 60, x + 50, 1.0f, 50);  // out runs 10 floats past its buffer
}
static void child_conv_output_too_small(void) {
    const sid_conv2d_shape s = {1, 2, 8, 8, 3, 3, 1, 1};
    float *x = G->alloc(2 * 64 * sizeof(float)), *w = G->alloc(3 * 2 * 9 * sizeof(float));
    float *y = G->alloc(3 * 64 * sizeof(float) - 4);  // one float short
    G->conv2d_fwd(y, x, w, NULL, &s);
}
static void child_groupnorm_stats_too_small(void) {
    float *x = G->alloc(2 * 8 * 16 * sizeof(float)), *y = G->alloc(2 * 8 * 16 * sizeof(float));
    float *mean = G->alloc(2 * 4 * sizeof(float)), *rstd = G->alloc(2 * 2 * sizeof(float));  // [N*G] is 8
    G->groupnorm_fwd(y, mean, rstd, x, NULL, NULL, 2, 8, 16, 4, 1e-5f);
}
static void child_attention_lse_too_small(void) {
    const int B = 1, N = 6, H = 2, dh = 4;
    float *q = G->alloc(B * N * H * dh * sizeof(float)), *o = G->alloc(B * N * H * dh * sizeof(float));
    float *lse = G->alloc(B * N * sizeof(float));  // [B, H, Nq] is twice that
    G->attention_fwd(o, lse, q, q, q, B, N, N, H, dh, 0);
}
static void child_embedding_id_past_table(void) {
    const int32_t ids[4] = {0, 2, 5, 1};  // 5 is past a 5-row table
    int32_t *d = G->alloc(sizeof ids);
    G->upload(d, ids, sizeof ids);
    float *tok = G->alloc(5 * 3 * sizeof(float)), *pos = G->alloc(2 * 3 * sizeof(float));
    float *out = G->alloc(2 * 2 * 3 * sizeof(float));
    G->embedding_fwd(out, d, tok, pos, 2, 2, 3);
}
static void child_negative_size(void) {
    float *x = G->alloc(16 * sizeof(float));
    G->softmax_fwd(x, x, -1, 4);
}

static void test_extent_overrun_caught(void) {
    expect_death(child_linear_m_too_large, SIGABRT, "guard: linear_fwd: argument 'out' = 0x",
                 "the op touches 64 bytes from it, but its 48-byte guard buffer", 1, "linear_fwd with M one too large");
    expect_death(child_interior_pointer_overruns, SIGABRT, "guard: scale_fwd: argument 'out' = 0x",
                 "the op touches 200 bytes from it, but its 400-byte guard buffer", 1, "interior pointer overrun");
    expect_death(child_conv_output_too_small, SIGABRT, "guard: conv2d_fwd: argument 'out' = 0x", "touches 768 bytes", 1,
                 "conv2d output one float short");
    expect_death(child_groupnorm_stats_too_small, SIGABRT, "guard: groupnorm_fwd: argument 'rstd' = 0x",
                 "touches 32 bytes", 1, "groupnorm rstd smaller than [N*G]");
    expect_death(child_attention_lse_too_small, SIGABRT, "guard: attention_fwd: argument 'lse' = 0x",
                 "touches 48 bytes", 1, "attention lse smaller than [B, H, Nq]");
    expect_death(child_embedding_id_past_table, SIGABRT, "guard: embedding_fwd: argument 'tok' = 0x",
                 "touches 72 bytes", 1, "token id past the table");
    expect_death(child_negative_size, SIGABRT, "guard: softmax_fwd: argument 'out' = 0x", "negative extent", 1,
                 "negative size");
}

// ---------------------------------------------------------------- (d) transfer counters
static void test_transfers_counted(void) {
    float h[300];
    for (int i = 0; i < 300; i++) h[i] = (float)i;
    float *a = G->alloc(300 * sizeof(float)), *b = G->alloc(7);
    sid_guard_stats_reset();
    size_t u, ub, d, db;
    sid_guard_stats(&u, &ub, &d, &db);
    EXPECT(u == 0 && ub == 0 && d == 0 && db == 0, "after a reset: %zu/%zu/%zu/%zu", u, ub, d, db);
    G->upload(a, h, 300 * sizeof(float));
    G->upload(a + 100, h, 10 * sizeof(float));
    G->upload(b, h, 7);
    G->scale_fwd(a, a, 2.0f, 300);  // ops are not transfers
    G->sync();
    float back[300];
    G->download(back, a, 300 * sizeof(float));
    G->download(back, a + 299, sizeof(float));
    sid_guard_stats(&u, &ub, &d, &db);
    EXPECT(u == 3 && ub == 1200 + 40 + 7, "uploads: %zu calls, %zu bytes; want 3, 1247", u, ub);
    EXPECT(d == 2 && db == 1200 + 4, "downloads: %zu calls, %zu bytes; want 2, 1204", d, db);
    EXPECT(back[0] == 2 * 299.0f, "the last download read %g", back[0]);
    sid_guard_stats(NULL, NULL, NULL, NULL);  // NULLs are fine
    G->free(a), G->free(b);
}

// ---------------------------------------------------------------- (e) poisoned and zeroed memory
static void test_poisoned_reads_nan(void) {
    const size_t n = 1000;
    float *p = sid_guard_alloc_poisoned(n * sizeof(float) + 2);
    float *h = sid_malloc(n * sizeof(float) + 2);
    G->download(h, p, n * sizeof(float) + 2);
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) nan += isnan(h[i]) != 0;
    EXPECT(nan == n, "%zu of %zu poisoned floats read back as NaN", nan, n);
    const unsigned char *tail = (const unsigned char *)(h + n);
    EXPECT(tail[0] == 0xff && tail[1] == 0xff, "the 2-byte tail reads %02x %02x", tail[0], tail[1]);
    // what an op writes replaces the poison; what it does not write stays NaN
    G->scale_fwd(p, p, 0.0f, 10);  // NaN * 0 is NaN: poison propagates through arithmetic
    G->download(h, p, 10 * sizeof(float));
    EXPECT(isnan(h[0]) && isnan(h[9]), "NaN * 0 read back as %g", h[0]);
    float *z = G->alloc(n * sizeof(float));  // alloc is the zero-filled one
    G->add_fwd(p, z, z, n / 2);
    G->download(h, p, n * sizeof(float));
    EXPECT(h[0] == 0 && h[n / 2 - 1] == 0 && isnan(h[n / 2]) && isnan(h[n - 1]),
           "after writing the first half: %g %g %g %g", h[0], h[n / 2 - 1], h[n / 2], h[n - 1]);
    EXPECT(sid_guard_owns(p) && sid_guard_owns(p + n - 1) && !sid_guard_owns(h), "sid_guard_owns is wrong");
    G->free(p), G->free(z);
    free(h);
}

// ---------------------------------------------------------------- (f) cpu and guard agree bit for bit
// x [B*T, C] -> linear -> [B, C, 4, 4] (transpose) -> conv 3x3 -> groupnorm -> [B, T, C] -> self-attention,
// then the backward of all of it from a random upstream gradient.
enum { CB = 2, CT = 16, CC = 8, CG = 2, CH = 2, CDH = 4, CX = CB * CT * CC };
typedef struct {
    float x[CX], wl[CC * CC], bl[CC], wc[CC * CC * 9], bc[CC], gamma[CC], beta[CC], dout[CX];
} chain_in;
typedef struct {
    float out[CX], dx[CX], dwl[CC * CC], dbl[CC], dwc[CC * CC * 9], dbc[CC], dgamma[CC], dbeta[CC];
} chain_out;

static void chain(const sid_backend *be, const chain_in *h, chain_out *r) {
#define UP(name, n) float *name = be->alloc((n) * sizeof(float)); be->upload(name, h->name, (n) * sizeof(float))
#define NEW(name, n) float *name = be->alloc((n) * sizeof(float))
    UP(x, CX); UP(wl, CC * CC); UP(bl, CC); UP(wc, CC * CC * 9); UP(bc, CC); UP(gamma, CC); UP(beta, CC); UP(dout, CX);
    NEW(l, CX); NEW(lt, CX); NEW(c, CX); NEW(g, CX); NEW(mean, CB * CG); NEW(rstd, CB * CG); NEW(gt, CX);
    NEW(o, CX); NEW(lse, CB * CH * CT);
    NEW(dx, CX); NEW(dwl, CC * CC); NEW(dbl, CC); NEW(dwc, CC * CC * 9); NEW(dbc, CC); NEW(dgamma, CC); NEW(dbeta, CC);
    NEW(dl, CX); NEW(dlt, CX); NEW(dc, CX); NEW(dg, CX); NEW(dgt, CX); NEW(dq, CX); NEW(dk, CX); NEW(dv, CX);
    const sid_conv2d_shape s = {CB, CC, 4, 4, CC, 3, 1, 1};
    be->linear_fwd(l, x, wl, bl, CB * CT, CC, CC);
    be->transpose_fwd(lt, l, CB, CT, CC);
    be->conv2d_fwd(c, lt, wc, bc, &s);
    be->groupnorm_fwd(g, mean, rstd, c, gamma, beta, CB, CC, CT, CG, 1e-5f);
    be->transpose_fwd(gt, g, CB, CC, CT);
    be->attention_fwd(o, lse, gt, gt, gt, CB, CT, CT, CH, CDH, 0);
    be->attention_bwd(dq, dk, dv, dout, gt, gt, gt, o, lse, CB, CT, CT, CH, CDH, 0);
    be->add_fwd(dgt, dq, dk, CX);  // q = k = v: their gradients add up
    be->add_fwd(dgt, dgt, dv, CX);
    be->transpose_bwd(dg, dgt, CB, CC, CT);
    be->groupnorm_bwd(dc, dgamma, dbeta, dg, c, gamma, mean, rstd, CB, CC, CT, CG);
    be->conv2d_bwd(dlt, dwc, dbc, dc, lt, wc, &s);
    be->transpose_bwd(dl, dlt, CB, CT, CC);
    be->linear_bwd(dx, dwl, dbl, dl, x, wl, CB * CT, CC, CC);
    be->sync();
#define DOWN(name, src, n) be->download(r->name, src, (n) * sizeof(float))
    DOWN(out, o, CX); DOWN(dx, dx, CX); DOWN(dwl, dwl, CC * CC); DOWN(dbl, dbl, CC); DOWN(dwc, dwc, CC * CC * 9);
    DOWN(dbc, dbc, CC); DOWN(dgamma, dgamma, CC); DOWN(dbeta, dbeta, CC);
    float *all[] = {x, wl, bl, wc, bc, gamma, beta, dout, l, lt, c, g, mean, rstd, gt, o, lse,
                    dx, dwl, dbl, dwc, dbc, dgamma, dbeta, dl, dlt, dc, dg, dgt, dq, dk, dv};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) be->free(all[i]);
#undef UP
#undef NEW
#undef DOWN
}

static void test_chain_matches_cpu_bitwise(void) {
    chain_in *h = sid_malloc(sizeof *h);
    sid_rng rng = sid_rng_new(test_seed);
    sid_rng_normal(&rng, (float *)h, sizeof *h / sizeof(float));
    chain_out *rc = sid_calloc(sizeof *rc), *rg = sid_calloc(sizeof *rg);
    size_t live0, live1;
    sid_guard_live(&live0, NULL);
    chain(&sid_backend_cpu, h, rc);
    chain(G, h, rg);
    sid_guard_live(&live1, NULL);
    EXPECT(memcmp(rc, rg, sizeof *rc) == 0, "guard and cpu differ on the chain");
    float sum = 0;
    for (size_t i = 0; i < sizeof *rc / sizeof(float); i++) sum += fabsf(((float *)rc)[i]);
    EXPECT(isfinite(sum) && sum > 0, "the chain's outputs are degenerate (sum |.| = %g)", sum);
    EXPECT(live1 == live0, "the chain leaked %zu guard buffers", live1 - live0);

    // The cost: the same chain (14 ops, 8 uploads, 8 downloads, 32 buffers) repeated on each.
    const int reps = 200;
    double t[2];
    const sid_backend *bs[2] = {&sid_backend_cpu, G};
    for (int b = 0; b < 2; b++) {
        double t0 = sid_now();
        for (int i = 0; i < reps; i++) chain(bs[b], h, b ? rg : rc);
        t[b] = (sid_now() - t0) / reps;
    }
    printf("\n  chain of 14 ops with its allocations and transfers: cpu %.1f us, guard %.1f us (%.1fx)", 1e6 * t[0],
           1e6 * t[1], t[1] / t[0]);
    free(h), free(rc), free(rg);
}

// The per-op overhead alone: an add of 16 floats and of 4 Mi floats (16 MiB per buffer: mprotect's
// cost grows with the pages), buffers allocated once.
static void test_op_overhead(void) {
    const sid_backend *bs[2] = {&sid_backend_cpu, G};
    const size_t sizes[2] = {16, (size_t)4 << 20};
    for (int k = 0; k < 2; k++) {
        double t[2];
        for (int b = 0; b < 2; b++) {
            float *x = bs[b]->alloc(sizes[k] * 4), *y = bs[b]->alloc(sizes[k] * 4);
            bs[b]->add_fwd(y, x, y, sizes[k]);  // first touch outside the timing
            const int reps = k ? 20 : 20000;
            double t0 = sid_now();
            for (int i = 0; i < reps; i++) bs[b]->add_fwd(y, x, y, sizes[k]);
            t[b] = (sid_now() - t0) / reps;
            bs[b]->free(x), bs[b]->free(y);
        }
        printf("\n  add of %zu floats: cpu %.1f us, guard %.1f us per op", sizes[k], 1e6 * t[0], 1e6 * t[1]);
        if (!k) EXPECT(t[1] < 1e-3, "a guarded 16-float op costs %.0f us", 1e6 * t[1]);
    }
}

// bf16 mode: an op's activation outputs come back as the CPU's fp32 results rounded to bf16 (round
// to nearest even), bit for bit; its statistics and parameter gradients come back as fp32, untouched.
static float bf16_round(float x) { return sid_bf16_to_f32(sid_f32_to_bf16(x)); }
static void test_bf16_mode_rounds_activations_only(void) {
    enum { M = 5, K = 24, N = 9, C = 6, HW = 10, NG = 3 };
    float x[M * K], w[N * K], b[N], dout[M * N], gx[2 * C * HW], gamma[C], beta[C];
    sid_rng rng = sid_rng_new(test_seed);
    sid_rng_normal(&rng, x, M * K), sid_rng_normal(&rng, w, N * K), sid_rng_normal(&rng, b, N);
    sid_rng_normal(&rng, dout, M * N), sid_rng_normal(&rng, gx, 2 * C * HW), sid_rng_normal(&rng, gamma, C);
    sid_rng_normal(&rng, beta, C);
    // the CPU in fp32
    float y[M * N], din[M * K] = {0}, dw[N * K] = {0}, db[N] = {0}, gy[2 * C * HW], mean[2 * NG], rstd[2 * NG];
    sid_backend_cpu.linear_fwd(y, x, w, b, M, K, N);
    sid_backend_cpu.linear_bwd(din, dw, db, dout, x, w, M, K, N);
    sid_backend_cpu.groupnorm_fwd(gy, mean, rstd, gx, gamma, beta, 2, C, HW, NG, 1e-5f);
    // the guard in bf16 mode
    sid_guard_set_bf16(1);
    float *dx_ = G->alloc(sizeof x), *dw_ = G->alloc(sizeof w), *db_ = G->alloc(sizeof b), *dy_ = G->alloc(sizeof y);
    float *ddout = G->alloc(sizeof dout), *ddin = G->alloc(sizeof din), *ddw = G->alloc(sizeof dw), *ddb = G->alloc(sizeof db);
    float *dgx = G->alloc(sizeof gx), *dgy = G->alloc(sizeof gy), *dg = G->alloc(sizeof gamma), *dbt = G->alloc(sizeof beta);
    float *dmean = G->alloc(sizeof mean), *drstd = G->alloc(sizeof rstd);
    G->upload(dx_, x, sizeof x), G->upload(dw_, w, sizeof w), G->upload(db_, b, sizeof b), G->upload(ddout, dout, sizeof dout);
    G->upload(dgx, gx, sizeof gx), G->upload(dg, gamma, sizeof gamma), G->upload(dbt, beta, sizeof beta);
    G->linear_fwd(dy_, dx_, dw_, db_, M, K, N);
    G->linear_bwd(ddin, ddw, ddb, ddout, dx_, dw_, M, K, N);
    G->groupnorm_fwd(dgy, dmean, drstd, dgx, dg, dbt, 2, C, HW, NG, 1e-5f);
    sid_guard_set_bf16(0);
    float hy[M * N], hdin[M * K], hdw[N * K], hgy[2 * C * HW], hmean[2 * NG], hrstd[2 * NG];
    G->download(hy, dy_, sizeof hy), G->download(hdin, ddin, sizeof hdin), G->download(hdw, ddw, sizeof hdw);
    G->download(hgy, dgy, sizeof hgy), G->download(hmean, dmean, sizeof hmean), G->download(hrstd, drstd, sizeof hrstd);
    int bad_y = 0, bad_din = 0, bad_gy = 0, rounded = 0;
    for (int i = 0; i < M * N; i++) bad_y += hy[i] != bf16_round(y[i]), rounded += hy[i] != y[i];
    for (int i = 0; i < M * K; i++) bad_din += hdin[i] != bf16_round(din[i]);
    for (int i = 0; i < 2 * C * HW; i++) bad_gy += hgy[i] != bf16_round(gy[i]);
    EXPECT(!bad_y && !bad_din && !bad_gy, "bf16 mode: %d linear outputs, %d input gradients, %d group-norm outputs are "
           "not the fp32 results rounded to bf16", bad_y, bad_din, bad_gy);
    EXPECT(rounded > M * N / 2, "bf16 mode rounded only %d of %d outputs", rounded, M * N);
    EXPECT(!memcmp(hdw, dw, sizeof dw) && !memcmp(hmean, mean, sizeof mean) && !memcmp(hrstd, rstd, sizeof rstd),
           "bf16 mode changed a weight gradient or a statistic (they stay fp32)");
    float *bufs[] = {dx_, dw_, db_, dy_, ddout, ddin, ddw, ddb, dgx, dgy, dg, dbt, dmean, drstd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) G->free(bufs[i]);
}

TEST_LIST(T(test_host_access_faults), T(test_host_pointer_in_op_aborts), T(test_extent_overrun_caught),
          T(test_transfers_counted), T(test_poisoned_reads_nan), T(test_chain_matches_cpu_bitwise),
          T(test_op_overhead), T(test_bf16_mode_rounds_activations_only))
TEST_MAIN("guard")
