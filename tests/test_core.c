// Core: RNG known answers and thread-independence, arena, errors, optimiser and EMA.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "harness.h"
#include "ops/cpu/fastmath.h"
#include "train/optim.h"

// Random123's published Philox4x32-10 known-answer vectors.
static void test_philox_known_answers(void) {
    const uint32_t ctr[3][4] = {{0, 0, 0, 0},
                                {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                                {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}};
    const uint32_t key[3][2] = {{0, 0}, {0xffffffff, 0xffffffff}, {0xa4093822, 0x299f31d0}};
    const uint32_t want[3][4] = {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
                                 {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
                                 {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}};
    for (int t = 0; t < 3; t++) {
        uint32_t out[4];
        sid_philox_block(ctr[t], key[t], out);
        for (int i = 0; i < 4; i++) EXPECT(out[i] == want[t][i], "vector %d word %d: %08x, want %08x", t, i, out[i], want[t][i]);
    }
}

static void test_rng_same_across_thread_counts(void) {
    const size_t n = 300001;  // odd and large enough for the parallel path
    float *a = sid_malloc(n * 4), *b = sid_malloc(n * 4), *u1 = sid_malloc(n * 4), *u2 = sid_malloc(n * 4);
    const int t = sid_threads_get();
    sid_threads_set(1);
    sid_rng r1 = sid_rng_new(test_seed);
    sid_rng_normal(&r1, a, n);
    sid_rng_uniform(&r1, u1, n);
    sid_threads_set(2);
    sid_rng r2 = sid_rng_new(test_seed);
    sid_rng_normal(&r2, b, n);
    sid_rng_uniform(&r2, u2, n);
    sid_threads_set(t);
    EXPECT(memcmp(a, b, n * 4) == 0, "normal draws differ between 1 and 2 threads");
    EXPECT(memcmp(u1, u2, n * 4) == 0, "uniform draws differ between 1 and 2 threads");
    EXPECT(r1.offset == r2.offset, "stream offsets differ");
    // moments of N(0,1) and U[0,1) over 3e5 draws: errors of a few 1e-3 expected
    double m = 0, v = 0, um = 0, umin = 1, umax = 0;
    for (size_t i = 0; i < n; i++) m += a[i], um += u1[i], umin = fmin(umin, u1[i]), umax = fmax(umax, u1[i]);
    m /= n, um /= n;
    for (size_t i = 0; i < n; i++) v += (a[i] - m) * (a[i] - m);
    v /= n;
    EXPECT(fabs(m) < 0.01 && fabs(v - 1) < 0.01, "normal mean %.4f var %.4f", m, v);
    EXPECT(fabs(um - 0.5) < 0.005 && umin >= 0 && umax < 1, "uniform mean %.4f range [%g, %g]", um, umin, umax);
    free(a), free(b), free(u1), free(u2);
}

static void test_rng_stream_resumes(void) {
    float whole[2000], parts[2000];
    sid_rng r = sid_rng_new(7);
    sid_rng_normal(&r, whole, 2000);
    sid_rng s = sid_rng_new(7);
    sid_rng_normal(&s, parts, 1000);
    sid_rng resumed = {s.seed, s.offset};  // what a checkpoint stores
    sid_rng_normal(&resumed, parts + 1000, 1000);
    EXPECT(memcmp(whole, parts, sizeof whole) == 0, "a stream split at 1000 differs from the whole");
    sid_rng o = sid_rng_new(8);
    sid_rng_normal(&o, parts, 2000);
    EXPECT(memcmp(whole, parts, sizeof whole) != 0, "seeds 7 and 8 gave the same stream");
    uint32_t k[1000];
    sid_rng_below(&r, 1000, k, 1000);
    int seen_hi = 0;
    for (int i = 0; i < 1000; i++) {
        EXPECT(k[i] < 1000, "below(1000) gave %u", k[i]);
        seen_hi |= k[i] > 900;
    }
    EXPECT(seen_hi, "below(1000) never exceeded 900 in 1000 draws");
}

static void test_arena(void) {
    sid_arena a;
    sid_arena_init(&a, "test", 1000);
    char *p = sid_arena_alloc(&a, 10), *q = sid_arena_alloc(&a, 100);
    EXPECT(((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0, "allocations not 64-byte aligned");
    EXPECT(q - p == 64, "second allocation at +%td, want +64", q - p);
    size_t mark = sid_arena_mark(&a);
    float *f = sid_arena_floats(&a, 8);
    f[0] = 5;
    sid_arena_reset(&a, mark);
    float *g = sid_arena_floats(&a, 8);
    EXPECT(g == f && g[0] == 0, "reset did not reuse and zero the memory");
    EXPECT(a.peak >= 64 + 128 + 64, "peak %zu", a.peak);
    sid_arena_free(&a);
}

// Runs fn in a child and returns its exit status and first stderr line.
static int run_child(void (*fn)(void), char *line, size_t n) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t k;
    while (got < n - 1 && (k = read(fd[0], line + got, n - 1 - got)) > 0) got += (size_t)k;
    line[got] = 0;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
static void overfill_arena(void) {
    sid_arena a;
    sid_arena_init(&a, "activations", 256);
    sid_arena_alloc(&a, 4096);
}
static void test_errors_are_one_line(void) {
    char line[512];
    int st = run_child(overfill_arena, line, sizeof line);
    EXPECT(st == 1, "exit status %d, want 1", st);
    EXPECT(strncmp(line, "sid: arena 'activations' full", 29) == 0, "message: %s", line);
    // the whole message is on its first line (sanitizer builds may append their own lines)
    char *nl = strchr(line, '\n');
    EXPECT(nl && nl - line > 40 && strncmp(nl - 4, "used", 4) == 0, "message is not one whole line: %s", line);
    sid_set_error("%s: bad thing %d", "f.json", 3);
    EXPECT(strcmp(sid_error(), "f.json: bad thing 3") == 0, "sid_error: %s", sid_error());
}

// Adam against a double-precision transcription of torch.optim.Adam/AdamW.
static void adam_ref(double *p, const double *g, double *m, double *v, int n, sid_adam_cfg c, int step) {
    for (int i = 0; i < n; i++) {
        double gi = g[i];
        if (c.decoupled) p[i] *= 1 - (double)c.lr * c.weight_decay;
        else gi += c.weight_decay * p[i];
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * gi;
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * gi * gi;
        double bc1 = 1 - pow(c.beta1, step), bc2 = 1 - pow(c.beta2, step);
        p[i] -= c.lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + c.eps);
    }
}
static void test_adam_matches_reference(void) {
    const sid_adam_cfg cfgs[4] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 0, 0},
                                  {1e-5f, 0.0f, 0.999f, 1e-8f, 0, 0},
                                  {1e-2f, 0.9f, 0.99f, 1e-6f, 0.1f, 1},
                                  {1e-2f, 0.5f, 0.99f, 1e-6f, 0.05f, 0}};
    enum { N = 37 };
    sid_rng r = sid_rng_new(test_seed);
    for (int k = 0; k < 4; k++) {
        float p[N], g[N], m[N] = {0}, v[N] = {0};
        double pd[N], gd[N], md[N] = {0}, vd[N] = {0};
        sid_rng_normal(&r, p, N);
        for (int i = 0; i < N; i++) pd[i] = p[i];
        for (int step = 1; step <= 5; step++) {
            sid_rng_normal(&r, g, N);
            for (int i = 0; i < N; i++) gd[i] = g[i];
            sid_adam_step(p, g, cfgs[k].beta1 == 0 ? NULL : m, v, N, &cfgs[k], step);
            adam_ref(pd, gd, md, vd, N, cfgs[k], step);
        }
        double err = 0;
        for (int i = 0; i < N; i++) err = fmax(err, fabs(p[i] - pd[i]));
        EXPECT(err < 1e-6, "config %d: max |p - p_ref| = %.3g after 5 steps", k, err);
    }
    // SiD's first step with beta1 = 0 moves every weight by lr*g/(|g|+eps): sign-like
    sid_adam_cfg c = cfgs[1];
    float p[2] = {0, 0}, g[2] = {3.0f, -0.25f}, v[2] = {0};
    sid_adam_step(p, g, NULL, v, 2, &c, 1);
    EXPECT(fabsf(p[0] + 1e-5f) < 1e-11f && fabsf(p[1] - 1e-5f) < 1e-11f, "first step %g %g", p[0], p[1]);
}

static void test_nan_to_num_and_ema(void) {
    float x[5] = {1, NAN, INFINITY, -INFINITY, -2};
    EXPECT(sid_nan_to_num(x, 5, 1e5f, -1e5f) == 3, "count");
    EXPECT(x[0] == 1 && x[1] == 0 && x[2] == 1e5f && x[3] == -1e5f && x[4] == -2, "values %g %g %g %g %g", x[0], x[1], x[2], x[3], x[4]);
    // docs/sid.md: halflife 50k images, ramp-up 0.05, batch 512
    EXPECT(sid_ema_beta(512, 50000, 0.05, 0) == 0, "nimg 0 must copy");
    EXPECT(fabs(sid_ema_beta(512, 50000, 0.05, 100000) - 0.93148) < 5e-5, "beta at 100k %f", sid_ema_beta(512, 50000, 0.05, 100000));
    EXPECT(fabs(sid_ema_beta(512, 50000, 0.05, 2e6) - 0.992927) < 5e-6, "steady beta %f", sid_ema_beta(512, 50000, 0.05, 2e6));
    float e[2] = {1, 2}, p[2] = {3, -2};
    sid_ema_update(e, p, 2, 0.75f);
    EXPECT(e[0] == 1.5f && e[1] == 1.0f, "ema %g %g", e[0], e[1]);
}

static void test_fast_exp(void) {
    double worst = 0, at = 0;
    for (double x = -87.0; x <= 88.0; x += 0.001) {
        const float xf = (float)x;
        const double e = fabs(sid_expf(xf) - exp((double)xf)) / exp((double)xf);
        if (e > worst) worst = e, at = xf;
    }
    EXPECT(worst < 3e-7, "sid_expf relative error %.3g at x = %.4f", worst, at);
    EXPECT(sid_expf(-INFINITY) == 0 && sid_expf(-100) == 0, "exp(-inf) = %g, exp(-100) = %g", sid_expf(-INFINITY), sid_expf(-100));
    EXPECT(sid_expf(0) == 1, "exp(0) = %.9g", sid_expf(0));
    EXPECT(sid_sigmoidf(-200) < 1e-30f && sid_sigmoidf(200) == 1, "sigmoid saturation %g %g", sid_sigmoidf(-200), sid_sigmoidf(200));
    // the vector form (attention's softmax): every lane the scalar's bits, -inf and NaN included
    const float special[] = {-INFINITY, INFINITY, NAN, -100.0f, -87.5f, -87.3f, 88.5f, 0.0f};
    int differ = 0;
    for (int k = 0; k < 4000 + 8; k += SID_VLANES) {
        sid_vf v;
        for (int l = 0; l < SID_VLANES; l++) {
            const int i = k + l;
            v[l] = i < 4000 ? -90.0f + 180.0f * (float)i / 4000.0f : special[(i - 4000) % 8];
        }
        const sid_vf e = sid_vexpf(v);
        for (int l = 0; l < SID_VLANES; l++) {
            const float want = sid_expf(v[l]);
            differ += memcmp(&want, &e[l], 4) != 0;
        }
    }
    EXPECT(!differ, "%d lanes of sid_vexpf differ from sid_expf", differ);
}

// The array forms (vectors of the variant's width plus a scalar tail): within 3e-7 of the exact
// sigmoid and 4e-7 of the exact SiLU; every element the same bits whether a vector lane or the
// tail computed it; NaN passes through, and +-inf and +-200 saturate.
static void test_fast_sigmoid_arrays(void) {
    enum { n = 4099 };  // not a multiple of any vector width
    static float x[n], s[n], y[n];
    for (int i = 0; i < n; i++) x[i] = -20.0f + 40.0f * (float)i / n;
    const float a = 1.25f, b = -0.5f;
    sid_sigmoid_affine(s, x, n, a, b), sid_silu_affine(y, x, n, a, b);
    double ws = 0, wy = 0;
    int moved = 0;
    for (int i = 0; i < n; i++) {
        const double v = (double)(x[i] * a + b), es = 1 / (1 + exp(-v));
        ws = fmax(ws, fabs(s[i] - es) / es), wy = fmax(wy, fabs(y[i] - v * es) / fabs(v * es));
        float xi[16] = {x[i]}, s1[16], y1[16];  // the same element as the tail's only one
        sid_sigmoid_affine(s1, xi, 1, a, b), sid_silu_affine(y1, xi, 1, a, b);
        moved += memcmp(s1, &s[i], 4) || memcmp(y1, &y[i], 4);
    }
    EXPECT(ws < 3e-7 && wy < 4e-7, "sigmoid relative error %.3g, silu %.3g", ws, wy);
    EXPECT(!moved, "%d elements differ between vector lanes and the scalar tail", moved);
    const float odd[8] = {NAN, INFINITY, -INFINITY, 200, -200, 0, 88.5f, -88.5f};
    float so[8], yo[8];
    sid_sigmoid_affine(so, odd, 8, 1, 0), sid_silu_affine(yo, odd, 8, 1, 0);
    EXPECT(isnan(so[0]) && isnan(yo[0]), "NaN gives sigmoid %g, silu %g", so[0], yo[0]);
    EXPECT(so[1] == 1 && so[2] < 1e-37f && so[3] == 1 && so[4] < 1e-37f && so[5] == 0.5f,
           "sigmoid of inf, -inf, 200, -200, 0: %g %g %g %g %g", so[1], so[2], so[3], so[4], so[5]);
    EXPECT(yo[3] == 200 && fabsf(yo[4]) < 1e-34f && yo[5] == 0 && yo[6] == 88.5f,
           "silu of 200, -200, 0, 88.5: %g %g %g %g", yo[3], yo[4], yo[5], yo[6]);
}

static void test_fast_erf(void) {
    double worst = 0, at = 0;
    for (double x = -12.0; x <= 12.0; x += 0.0005) {
        const float xf = (float)x;
        const double e = fabs(sid_erff(xf) - erf((double)xf));
        if (e > worst) worst = e, at = xf;
    }
    EXPECT(worst < 3e-7, "sid_erff absolute error %.3g at x = %.4f", worst, at);
    EXPECT(sid_erff(0) == 0 && sid_erff(INFINITY) == 1 && sid_erff(-INFINITY) == -1, "erf(0) = %g, erf(+-inf) = %g %g",
           sid_erff(0), sid_erff(INFINITY), sid_erff(-INFINITY));
}

TEST_LIST(T(test_philox_known_answers), T(test_fast_exp), T(test_fast_sigmoid_arrays), T(test_fast_erf), T(test_rng_same_across_thread_counts), T(test_rng_stream_resumes),
          T(test_arena), T(test_errors_are_one_line), T(test_adam_matches_reference), T(test_nan_to_num_and_ema))
TEST_MAIN("core")
