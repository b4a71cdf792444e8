#include "diffusion/ddim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

// One rounding per PyTorch kernel, as in schedule.c: no FMA contraction (clang would contract
// by default; GCC does not in ISO C mode and does not know the pragma).
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

sid_ddim_config sid_ddim_default(void) {
    return (sid_ddim_config){.spacing = SID_SPACING_TRAILING, .steps_offset = 0, .set_alpha_to_one = 1,
                             .prediction = SID_PRED_EPSILON, .clip_sample = 0, .clip_sample_range = 1.0f};
}

sid_ddim_config sid_ddim_sd(void) {
    return (sid_ddim_config){.spacing = SID_SPACING_LEADING, .steps_offset = 1, .set_alpha_to_one = 0,
                             .prediction = SID_PRED_EPSILON, .clip_sample = 0, .clip_sample_range = 1.0f};
}

int sid_spacing_parse(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "leading") == 0) return SID_SPACING_LEADING;
    if (strcmp(name, "trailing") == 0) return SID_SPACING_TRAILING;
    if (strcmp(name, "linspace") == 0) return SID_SPACING_LINSPACE;
    return -1;
}

const char *sid_spacing_name(sid_spacing s) {
    switch (s) {
    case SID_SPACING_LEADING: return "leading";
    case SID_SPACING_TRAILING: return "trailing";
    case SID_SPACING_LINSPACE: return "linspace";
    }
    return "?";
}

// The timestep formulas are numpy's (diffusers builds them with numpy in float64), down to the
// rounding: np.round is round-half-to-even (nearbyint in the default rounding mode), which
// matters where a grid point is exactly k + 0.5 (trailing, n = 16: 937.5 -> 938, 812.5 -> 812).
int sid_ddim_timesteps(const sid_ddim_config *c, int T, int n, int *t) {
    if (n < 1 || n > T) {
        sid_set_error("ddim: the number of steps must be in [1, %d], got %d", T, n);
        return -1;
    }
    switch (c->spacing) {
    case SID_SPACING_LEADING: {
        const int ratio = T / n;
        for (int k = 0; k < n; k++) t[k] = (n - 1 - k) * ratio + c->steps_offset;
        break;
    }
    case SID_SPACING_TRAILING: {
        // np.arange(T, 0, -T/n): element 1 is start + step, later ones start + i*delta with
        // delta = element 1 - element 0 (numpy's fill), which can differ from step in the last bit.
        const double start = (double)T, step = -((double)T / n), second = start + step, delta = second - start;
        for (int k = 0; k < n; k++) {
            double v = k == 0 ? start : k == 1 ? second : start + (double)k * delta;
            t[k] = (int)nearbyint(v) - 1;
        }
        break;
    }
    case SID_SPACING_LINSPACE: {
        // np.linspace(0, T-1, n): i*step + 0 with the last point set to T-1 exactly; one point is 0.
        const double step = n > 1 ? (double)(T - 1) / (n - 1) : 0.0;
        for (int k = 0; k < n; k++) {
            int i = n - 1 - k;
            double v = n > 1 && i == n - 1 ? (double)(T - 1) : (double)i * step + 0.0;
            t[k] = (int)nearbyint(v);
        }
        break;
    }
    default: sid_set_error("ddim: unknown timestep spacing %d", (int)c->spacing); return -1;
    }
    for (int k = 0; k < n; k++) {
        if (t[k] < 0 || t[k] >= T) {
            sid_set_error("ddim: %s spacing with %d steps and steps_offset %d gives timestep %d, outside [0, %d)",
                          sid_spacing_name(c->spacing), n, c->steps_offset, t[k], T);
            return -1;
        }
    }
    return 0;
}

sid_ddim_coeffs sid_ddim_step_coeffs(const sid_schedule *s, const sid_ddim_config *c, int t, int t_prev) {
    if (t < 0 || t >= s->T || t_prev >= s->T) sid_die("ddim: step from %d to %d outside [0, %d)", t, t_prev, s->T);
    if (c->clip_sample && !(c->clip_sample_range > 0))
        sid_die("ddim: clip_sample with clip_sample_range %g (must be positive)", (double)c->clip_sample_range);
    const float ab = s->alphas_cumprod[t];
    const float ab_prev = t_prev >= 0 ? s->alphas_cumprod[t_prev] : c->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
    // eta = 0: diffusers still subtracts std_dev_t^2 = (0 * sqrt(variance))^2 = +0 from
    // 1 - ab_prev, which changes no bit.
    return (sid_ddim_coeffs){sqrtf(ab), sqrtf(1.0f - ab), sqrtf(ab_prev), sqrtf(1.0f - ab_prev),
                             c->clip_sample ? c->clip_sample_range : 0.0f};
}

void sid_ddim_step_with(const sid_ddim_coeffs *kc, sid_pred_type pred, const float *x_t, const float *model_out,
                        float *x_prev, float *x0, size_t n) {
    const float sa = kc->sqrt_ab, sb = kc->sqrt_1m_ab, sa_prev = kc->sqrt_ab_prev, dir = kc->dir;
    const float r = kc->clip_range;
    if (r < 0) sid_die("ddim: negative clip range %g", (double)r);
    for (size_t k = 0; k < n; k++) {
        const float x = x_t[k], o = model_out[k];
        float p0, e;
        switch (pred) {
        case SID_PRED_V:
            p0 = sa * x - sb * o;
            e = sa * o + sb * x;
            break;
        case SID_PRED_SAMPLE:
            p0 = o;
            e = (x - sa * p0) / sb;
            break;
        default:
            p0 = (x - sb * o) / sa;
            e = o;
            break;
        }
        // diffusers clamps pred_original_sample after eps is formed (from the unclamped x0 for
        // "sample"); comparisons as in sid_clip_x0, so a NaN stays NaN like torch.clamp's
        if (r > 0) p0 = p0 < -r ? -r : p0 > r ? r : p0;
        if (x0) x0[k] = p0;
        x_prev[k] = sa_prev * p0 + dir * e;
    }
}

void sid_ddim_step(const sid_schedule *s, const sid_ddim_config *c, int t, int t_prev, const float *x_t,
                   const float *model_out, float *x_prev, float *x0, size_t n) {
    const sid_ddim_coeffs k = sid_ddim_step_coeffs(s, c, t, t_prev);
    sid_ddim_step_with(&k, c->prediction, x_t, model_out, x_prev, x0, n);
}

int sid_ddim_sample(const sid_schedule *s, const sid_ddim_config *c, int n_steps, sid_eps_fn fn, void *ctx, float *x,
                    int N, size_t D) {
    if (n_steps < 1 || n_steps > s->T) {
        sid_set_error("ddim: the number of steps must be in [1, %d], got %d", s->T, n_steps);
        return -1;
    }
    int *ts = sid_malloc((size_t)n_steps * sizeof *ts);
    if (sid_ddim_timesteps(c, s->T, n_steps, ts) != 0) {
        free(ts);
        return -1;
    }
    const size_t total = (size_t)N * D;
    float *out = sid_aligned_alloc((total ? total : 1) * sizeof *out);
    float *tf = sid_malloc((size_t)(N > 0 ? N : 1) * sizeof *tf);
    for (int k = 0; k < n_steps; k++) {
        for (int i = 0; i < N; i++) tf[i] = (float)ts[k];
        fn(ctx, out, x, tf, N);
        sid_ddim_step(s, c, ts[k], sid_ddim_prev_timestep(ts[k], s->T, n_steps), x, out, x, NULL, total);
    }
    free(tf);
    free(out);
    free(ts);
    return 0;
}

void sid_cfg_combine(float *eps, const float *eps_uncond, const float *eps_cond, float scale, size_t n) {
    for (size_t k = 0; k < n; k++) {
        const float u = eps_uncond[k], d = eps_cond[k] - u;
        eps[k] = u + scale * d;
    }
}
