// Which variant of the CPU kernels runs (ops/cpu_isa.h), and the sid_<op> entry points of ops.h,
// each a call through the chosen variant's table. The choice is made once, before main, from the
// CPU's features or $SID_ISA; until then (other constructors) the baseline variant runs.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "ops/cpu_isa.h"

#if defined(__x86_64__)
extern const sid_cpu_kernels sid_cpu_kernels_sse2, sid_cpu_kernels_avx2, sid_cpu_kernels_avx512;
static const sid_cpu_kernels *const variants[] = {&sid_cpu_kernels_sse2, &sid_cpu_kernels_avx2,
                                                  &sid_cpu_kernels_avx512};
#define BASELINE (&sid_cpu_kernels_sse2)
// The features the variants need (the Makefile's ISA_FLAGS_<isa>); __builtin_cpu_supports also
// checks that the OS saves the YMM/ZMM state.
#define CPU_FEATURES(X) X(sse2) X(avx) X(avx2) X(fma) X(avx512f) X(avx512bw) X(avx512cd) X(avx512dq) X(avx512vl)
enum {
#define X(f) BIT_##f,
    CPU_FEATURES(X)
#undef X
};
#define HAS(f) (1u << BIT_##f)
static unsigned cpu_features(void) {
    __builtin_cpu_init();
    unsigned m = 0;
#define X(f) m |= __builtin_cpu_supports(#f) ? HAS(f) : 0;
    CPU_FEATURES(X)
#undef X
    return m;
}
static int usable_at(int i) {
    static const unsigned need[] = {0, HAS(avx2) | HAS(fma),
                                    HAS(avx2) | HAS(fma) | HAS(avx512f) | HAS(avx512bw) | HAS(avx512cd) |
                                        HAS(avx512dq) | HAS(avx512vl)};
    return (cpu_features() & need[i]) == need[i];
}
const char *sid_cpu_features(void) {
    static char buf[128];
    const unsigned m = cpu_features();
    buf[0] = 0;
#define X(f) \
    if (m & HAS(f)) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? " " : "", #f);
    CPU_FEATURES(X)
#undef X
    return buf;
}
#else
extern const sid_cpu_kernels sid_cpu_kernels_generic;
static const sid_cpu_kernels *const variants[] = {&sid_cpu_kernels_generic};
#define BASELINE (&sid_cpu_kernels_generic)
static int usable_at(int i) { return i == 0; }
const char *sid_cpu_features(void) { return "(not probed on this architecture)"; }
#endif

enum { N_VARIANTS = sizeof variants / sizeof variants[0] };
static const sid_cpu_kernels *cpu_k = BASELINE;  // a constant expression for every compiler

const char *sid_cpu_isa(void) { return cpu_k->isa; }
const char *sid_cpu_isa_at(int i) { return i >= 0 && i < N_VARIANTS ? variants[i]->isa : NULL; }

static int index_of(const char *isa) {
    for (int i = 0; i < N_VARIANTS; i++)
        if (strcmp(variants[i]->isa, isa) == 0) return i;
    return -1;
}

int sid_cpu_isa_usable(const char *isa) {
    const int i = index_of(isa);
    return i >= 0 && usable_at(i);
}

int sid_cpu_isa_set(const char *isa) {
    if (strcmp(isa, "auto") == 0) {
        int best = 0;
        for (int i = 0; i < N_VARIANTS; i++)
            if (usable_at(i)) best = i;
        cpu_k = variants[best];
        return 0;
    }
    char known[96] = "auto", usable[96] = "";
    for (int i = 0; i < N_VARIANTS; i++) {
        snprintf(known + strlen(known), sizeof known - strlen(known), ", %s", variants[i]->isa);
        if (usable_at(i)) snprintf(usable + strlen(usable), sizeof usable - strlen(usable), " %s", variants[i]->isa);
    }
    const int i = index_of(isa);
    if (i < 0) {
        sid_set_error("SID_ISA=%s: unknown instruction set (one of %s)", isa, known);
        return -1;
    }
    if (!usable_at(i)) {
        sid_set_error("SID_ISA=%s: this CPU cannot run it (it has: %s); usable here:%s", isa, sid_cpu_features(),
                      usable);
        return -1;
    }
    cpu_k = variants[i];
    return 0;
}

// ---- SID_PROFILE=1: time per op, printed at exit (thread-seconds: under the CPU's batch split
// several threads run ops side by side, so the column sums to more than the wall time).
enum {
#define X(name) OP_##name,
    SID_OPS(X)
#undef X
        N_OPS
};
static const char *const op_names[] = {
#define X(name) #name,
    SID_OPS(X)
#undef X
};
static int profiling;
static int64_t prof_ns[N_OPS], prof_calls[N_OPS];

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void profile_report(void) {
    int64_t total = 0;
    int order[N_OPS];
    for (int i = 0; i < N_OPS; i++) total += prof_ns[i], order[i] = i;
    for (int i = 1; i < N_OPS; i++)  // by time, largest first
        for (int j = i; j > 0 && prof_ns[order[j]] > prof_ns[order[j - 1]]; j--) {
            const int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    fprintf(stderr, "sid profile (cpu kernels %s): %.3f thread-seconds in ops\n", cpu_k->isa, total * 1e-9);
    for (int i = 0; i < N_OPS && prof_ns[order[i]]; i++)
        fprintf(stderr, "  %-24s %10lld calls %10.3f s %5.1f%%\n", op_names[order[i]], (long long)prof_calls[order[i]],
                prof_ns[order[i]] * 1e-9, 100.0 * prof_ns[order[i]] / (total ? total : 1));
}

#define CALL(name, args)                                                           \
    do {                                                                           \
        if (!profiling) {                                                          \
            cpu_k->name args;                                                      \
            break;                                                                 \
        }                                                                          \
        const int64_t t0_ = now_ns();                                              \
        cpu_k->name args;                                                          \
        __atomic_fetch_add(&prof_ns[OP_##name], now_ns() - t0_, __ATOMIC_RELAXED); \
        __atomic_fetch_add(&prof_calls[OP_##name], 1, __ATOMIC_RELAXED);           \
    } while (0)

__attribute__((constructor)) static void choose_at_start(void) {
    const char *p = getenv("SID_PROFILE");
    if (p && *p && strcmp(p, "0") != 0) {
        profiling = 1;
        atexit(profile_report);
    }
    const char *e = getenv("SID_ISA");
    if (sid_cpu_isa_set(e && *e ? e : "auto") != 0) {
        fprintf(stderr, "sid: %s\n", sid_error());
        exit(1);
    }
}

// ---- the op set of ops.h, through the chosen variant
void sid_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N) {
    CALL(linear_fwd, (out, in, w, b, M, K, N));
}
void sid_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int M, int K,
                    int N) {
    CALL(linear_bwd, (din, dw, db, dout, in, w, M, K, N));
}
void sid_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    CALL(conv2d_fwd, (out, in, w, b, s));
}
void sid_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                    const sid_conv2d_shape *s) {
    CALL(conv2d_bwd, (din, dw, db, dout, in, w, s));
}
void sid_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma, const float *beta,
                       int N, int C, int HW, int G, float eps) {
    CALL(groupnorm_fwd, (out, mean, rstd, in, gamma, beta, N, C, HW, G, eps));
}
void sid_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in, const float *gamma,
                       const float *mean, const float *rstd, int N, int C, int HW, int G) {
    CALL(groupnorm_bwd, (din, dgamma, dbeta, dout, in, gamma, mean, rstd, N, C, HW, G));
}
void sid_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps) {
    CALL(groupnorm_silu_fwd, (out, mean, rstd, in, gamma, beta, N, C, HW, G, eps));
}
void sid_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *beta, const float *mean, const float *rstd, int N, int C,
                            int HW, int G) {
    CALL(groupnorm_silu_bwd, (din, dgamma, dbeta, dout, in, gamma, beta, mean, rstd, N, C, HW, G));
}
void sid_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma, const float *beta,
                       int M, int C, float eps) {
    CALL(layernorm_fwd, (out, mean, rstd, in, gamma, beta, M, C, eps));
}
void sid_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in, const float *gamma,
                       const float *mean, const float *rstd, int M, int C) {
    CALL(layernorm_bwd, (din, dgamma, dbeta, dout, in, gamma, mean, rstd, M, C));
}
void sid_act_fwd(sid_act a, float *out, const float *in, size_t n) { CALL(act_fwd, (a, out, in, n)); }
void sid_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n) {
    CALL(act_bwd, (a, din, dout, in, n));
}
void sid_geglu_fwd(float *out, const float *in, int M, int H) { CALL(geglu_fwd, (out, in, M, H)); }
void sid_geglu_bwd(float *din, const float *dout, const float *in, int M, int H) {
    CALL(geglu_bwd, (din, dout, in, M, H));
}
void sid_softmax_fwd(float *out, const float *in, int M, int C) { CALL(softmax_fwd, (out, in, M, C)); }
void sid_softmax_bwd(float *din, const float *dout, const float *out, int M, int C) {
    CALL(softmax_bwd, (din, dout, out, M, C));
}
void sid_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq, int Nk,
                       int H, int dh, int causal) {
    CALL(attention_fwd, (out, lse, q, k, v, B, Nq, Nk, H, dh, causal));
}
void sid_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                       const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                       int causal) {
    CALL(attention_bwd, (dq, dk, dv, dout, q, k, v, out, lse, B, Nq, Nk, H, dh, causal));
}
void sid_upsample2x_fwd(float *out, const float *in, int NC, int H, int W) {
    CALL(upsample2x_fwd, (out, in, NC, H, W));
}
void sid_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W) {
    CALL(upsample2x_bwd, (din, dout, NC, H, W));
}
void sid_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s) { CALL(pool2d_fwd, (out, in, s)); }
void sid_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s) {
    CALL(pool2d_bwd, (din, dout, in, s));
}
void sid_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW) {
    CALL(concat_fwd, (out, a, b, N, Ca, Cb, HW));
}
void sid_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW) {
    CALL(concat_bwd, (da, db, dout, N, Ca, Cb, HW));
}
void sid_transpose_fwd(float *out, const float *in, int N, int R, int C) { CALL(transpose_fwd, (out, in, N, R, C)); }
void sid_transpose_bwd(float *din, const float *dout, int N, int R, int C) {
    CALL(transpose_bwd, (din, dout, N, R, C));
}
void sid_fill(float *x, float value, size_t n) { CALL(fill, (x, value, n)); }
void sid_add_fwd(float *out, const float *a, const float *b, size_t n) { CALL(add_fwd, (out, a, b, n)); }
void sid_add_bwd(float *da, float *db, const float *dout, size_t n) { CALL(add_bwd, (da, db, dout, n)); }
void sid_scale_fwd(float *out, const float *in, float alpha, size_t n) { CALL(scale_fwd, (out, in, alpha, n)); }
void sid_scale_bwd(float *din, const float *dout, float alpha, size_t n) { CALL(scale_bwd, (din, dout, alpha, n)); }
void sid_mul_fwd(float *out, const float *a, const float *b, size_t n) { CALL(mul_fwd, (out, a, b, n)); }
void sid_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
    CALL(mul_bwd, (da, db, dout, a, b, n));
}
void sid_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW) {
    CALL(add_channel_bias_fwd, (out, in, bias, N, C, HW));
}
void sid_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW) {
    CALL(add_channel_bias_bwd, (din, dbias, dout, N, C, HW));
}
void sid_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos, float freq_shift,
                                float max_period) {
    CALL(timestep_embedding_fwd, (out, t, N, dim, flip_sin_to_cos, freq_shift, max_period));
}
void sid_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim, int flip_sin_to_cos,
                                float freq_shift, float max_period) {
    CALL(timestep_embedding_bwd, (dt, dout, t, N, dim, flip_sin_to_cos, freq_shift, max_period));
}
void sid_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T, int C) {
    CALL(embedding_fwd, (out, ids, tok, pos, B, T, C));
}
void sid_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C) {
    CALL(embedding_bwd, (dtok, dpos, dout, ids, B, T, C));
}
void sid_mse_fwd(float *loss, const float *a, const float *b, int N, int D) { CALL(mse_fwd, (loss, a, b, N, D)); }
void sid_mse_bwd(float *da, float *db, const float *dloss, const float *a, const float *b, int N, int D) {
    CALL(mse_bwd, (da, db, dloss, a, b, N, D));
}
void sid_mean_abs_fwd(float *out, const float *a, const float *b, int N, int D) {
    CALL(mean_abs_fwd, (out, a, b, N, D));
}
void sid_mean_abs_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
    CALL(mean_abs_bwd, (da, db, dout, a, b, N, D));
}
void sid_dot_fwd(float *out, const float *a, const float *b, int N, int D) { CALL(dot_fwd, (out, a, b, N, D)); }
void sid_dot_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) {
    CALL(dot_bwd, (da, db, dout, a, b, N, D));
}
void sid_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n) {
    CALL(cfg_combine_fwd, (out, uncond, cond, kappa, n));
}
void sid_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n) {
    CALL(cfg_combine_bwd, (duncond, dcond, dout, kappa, n));
}
void sid_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N, size_t D) {
    CALL(add_noise_fwd, (xt, x0, eps, a, s, N, D));
}
void sid_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N, size_t D) {
    CALL(add_noise_bwd, (dx0, deps, dxt, a, s, N, D));
}
void sid_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N,
                         size_t D) {
    CALL(x0_from_eps_fwd, (x0, xt, eps, a, s, N, D));
}
void sid_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N, size_t D) {
    CALL(x0_from_eps_bwd, (dxt, deps, dx0, a, s, N, D));
}
void sid_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n) { CALL(clamp_fwd, (out, in, lo, hi, n)); }
void sid_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n) {
    CALL(clamp_bwd, (din, dout, in, lo, hi, n));
}
void sid_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    CALL(dsm_loss_fwd, (loss, eps_hat, eps, scale, N, D));
}
void sid_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    CALL(dsm_loss_bwd, (deps_hat, eps_hat, eps, scale, N, D));
}
void sid_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale, int N,
                      size_t D) {
    CALL(sid_loss_fwd, (loss, xg, yr, yf, alpha, scale, N, D));
}
void sid_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf,
                      float alpha, float scale, int N, size_t D) {
    CALL(sid_loss_bwd, (dxg, dyr, dyf, xg, yr, yf, alpha, scale, N, D));
}
void sid_nan_rows(float *flags, const float *x, int N, size_t D) { CALL(nan_rows, (flags, x, N, D)); }
void sid_sanitize(float *x, size_t n, float posinf, float neginf, double *count) {
    CALL(sanitize, (x, n, posinf, neginf, count));
}
void sid_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
              float weight_decay, int decoupled, int64_t step) {
    CALL(adam, (w, g, m, v, n, lr, beta1, beta2, eps, weight_decay, decoupled, step));
}
void sid_ema(float *ema, const float *w, size_t n, float beta) { CALL(ema, (ema, w, n, beta)); }
void sid_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row) {
    CALL(gather_rows, (out, table, idx, m, row));
}
