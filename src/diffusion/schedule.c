#include "diffusion/schedule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/ops.h"

// Bit parity with PyTorch needs every a*b+c below rounded twice, as PyTorch's separate
// elementwise kernels do: clang contracts to FMA by default unless told not to (GCC does not in
// -std=c11 mode and ignores this pragma).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

int sid_schedule_init(sid_schedule *s, int T, double beta_start, double beta_end) {
    memset(s, 0, sizeof *s);
    if (T < 2) {
        sid_set_error("schedule: num_train_timesteps must be at least 2, got %d", T);
        return -1;
    }
    if (!(beta_start > 0 && beta_start < beta_end && beta_end < 1)) {
        sid_set_error("schedule: beta_start %g and beta_end %g must satisfy 0 < beta_start < beta_end < 1", beta_start,
                      beta_end);
        return -1;
    }
    s->T = T;
    s->beta_start = beta_start;
    s->beta_end = beta_end;
    s->betas = sid_malloc((size_t)T * sizeof(float));
    s->alphas_cumprod = sid_malloc((size_t)T * sizeof(float));
    // torch.linspace(float32): the end points rounded to float, a float step, and the first half
    // counted up from start, the second half down from end so that both ends are exact. PyTorch's
    // kernel is compiled with FMA, so start + step*i is rounded once (fmaf); with two roundings
    // 145 of SD's 1000 betas would differ in the last bit.
    const float lo = (float)sqrt(beta_start), hi = (float)sqrt(beta_end);
    const float step = (hi - lo) / (float)(T - 1);
    const int half = T / 2;
    for (int i = 0; i < T; i++) {
        float r = i < half ? fmaf(step, (float)i, lo) : fmaf(-step, (float)(T - 1 - i), hi);
        s->betas[i] = r * r;
    }
    // torch.cumprod on the CPU accumulates float in double and rounds each partial product.
    double acc = 1.0;
    for (int i = 0; i < T; i++) {
        acc *= (double)(1.0f - s->betas[i]);
        s->alphas_cumprod[i] = (float)acc;
    }
    return 0;
}

void sid_schedule_free(sid_schedule *s) {
    free(s->betas);
    free(s->alphas_cumprod);
    memset(s, 0, sizeof *s);
}

int sid_pred_type_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "epsilon") == 0) return SID_PRED_EPSILON;
    if (strcmp(name, "v_prediction") == 0) return SID_PRED_V;
    if (strcmp(name, "sample") == 0) return SID_PRED_SAMPLE;
    return -1;
}

const char *sid_pred_type_name(sid_pred_type p) {
    switch (p) {
    case SID_PRED_EPSILON: return "epsilon";
    case SID_PRED_V: return "v_prediction";
    case SID_PRED_SAMPLE: return "sample";
    }
    return "?";
}

static float ab_at(const sid_schedule *s, int t) {
    if (t < 0 || t >= s->T) sid_die("schedule: timestep %d outside [0, %d)", t, s->T);
    return s->alphas_cumprod[t];
}

float sid_schedule_sqrt_ab(const sid_schedule *s, int t) { return sqrtf(ab_at(s, t)); }
float sid_schedule_sqrt_1m_ab(const sid_schedule *s, int t) { return sqrtf(1.0f - ab_at(s, t)); }

double sid_schedule_snr(const sid_schedule *s, int t) {
    double ab = ab_at(s, t);
    return ab / (1.0 - ab);
}

double sid_schedule_sigma(const sid_schedule *s, int t) {
    double ab = ab_at(s, t);
    return sqrt((1.0 - ab) / ab);
}

// The per-sample kernels: a = sqrt(ab_t), c = sqrt(1 - ab_t); out = f(a, c, p, q) elementwise,
// each written as diffusers' tensor expression so that the roundings happen in the same order.
#define PER_SAMPLE(expr)                                                        \
    for (int i = 0; i < N; i++) {                                               \
        const float a = sid_schedule_sqrt_ab(s, t[i]);                          \
        const float c = sid_schedule_sqrt_1m_ab(s, t[i]);                       \
        const size_t o = (size_t)i * D;                                         \
        for (size_t k = 0; k < D; k++) {                                        \
            const float p = P[o + k], q = Q[o + k];                             \
            out[o + k] = (expr);                                                \
        }                                                                       \
    }

void sid_add_noise(const sid_schedule *s, float *out, const float *P /*x0*/, const float *Q /*eps*/,
                   const int32_t *t, int N, size_t D) {
    PER_SAMPLE(a * p + c * q)
}

void sid_x0_from_eps(const sid_schedule *s, float *out, const float *P /*x_t*/, const float *Q /*eps*/,
                     const int32_t *t, int N, size_t D) {
    PER_SAMPLE((p - c * q) / a)
}

void sid_eps_from_x0(const sid_schedule *s, float *out, const float *P /*x_t*/, const float *Q /*x0*/,
                     const int32_t *t, int N, size_t D) {
    PER_SAMPLE((p - a * q) / c)
}

void sid_velocity(const sid_schedule *s, float *out, const float *P /*x0*/, const float *Q /*eps*/, const int32_t *t,
                  int N, size_t D) {
    PER_SAMPLE(a * q - c * p)
}

void sid_x0_from_v(const sid_schedule *s, float *out, const float *P /*x_t*/, const float *Q /*v*/, const int32_t *t,
                   int N, size_t D) {
    PER_SAMPLE(a * p - c * q)
}

void sid_eps_from_v(const sid_schedule *s, float *out, const float *P /*x_t*/, const float *Q /*v*/, const int32_t *t,
                    int N, size_t D) {
    PER_SAMPLE(a * q + c * p)
}

void sid_clip_x0(float *x0, size_t n, float range) {
    if (!(range > 0)) sid_die("sid_clip_x0: range must be positive, got %g", (double)range);
    sid_clamp_fwd(x0, x0, -range, range, n);  // the CPU op (comparisons: a NaN stays NaN)
}

void sid_clip_x0_backward(float *dx, const float *x0_unclipped, size_t n, float range) {
    if (!(range > 0)) sid_die("sid_clip_x0_backward: range must be positive, got %g", (double)range);
    for (size_t k = 0; k < n; k++)
        if (!(x0_unclipped[k] > -range && x0_unclipped[k] < range)) dx[k] = 0.0f;
}

void sid_sample_timesteps(sid_rng *r, int32_t *t, size_t n, int t_min, int t_max) {
    if (t_min < 0 || t_max <= t_min) sid_die("schedule: timestep range [%d, %d) is empty or negative", t_min, t_max);
    uint32_t u[256];
    for (size_t i = 0; i < n;) {
        size_t m = n - i < 256 ? n - i : 256;
        sid_rng_below(r, (uint32_t)(t_max - t_min), u, m);
        for (size_t k = 0; k < m; k++) t[i + k] = t_min + (int32_t)u[k];
        i += m;
    }
}
