// The noise schedule and the DDIM sampler held bit-for-bit equal to diffusers' DDPMScheduler /
// DDIMScheduler (tests/data/diffusion/golden.safetensors, and clip.safetensors for clip_sample,
// both written by tools/reference/ddim_reference.py), plus properties that need no reference: an oracle
// denoiser makes DDIM return x0, sampling is deterministic for a seed, CFG combines as written.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "diffusion/ddim.h"
#include "diffusion/schedule.h"
#include "harness.h"
#include "io/safetensors.h"

// ---------------------------------------------------------------- helpers


// The reference files: golden.safetensors (REF_GOLDEN) and clip.safetensors (REF_CLIP).
enum { REF_GOLDEN, REF_CLIP, N_REF };
static sid_safetensors gold[N_REF];
static int gold_open[N_REF];

static const sid_safetensors *golden_file(int which) {
    static const char *const names[N_REF] = {"golden", "clip"};
    if (!gold_open[which]) {
        char path[1024];
        snprintf(path, sizeof path, "%s/diffusion/%s.safetensors", test_data_dir(), names[which]);
        if (sid_st_open(&gold[which], path)) sid_die("%s (set SID_TEST_DATA to the tests/data folder)", sid_error());
        gold_open[which] = 1;
    }
    return &gold[which];
}

// A reference tensor as fresh floats; NULL (and a failure) when missing.
static float *golden_in(int which, const char *name, size_t *n) {
    const sid_safetensors *st = golden_file(which);
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) {
        test_fail(__FILE__, __LINE__, "golden tensor %s missing", name);
        return NULL;
    }
    size_t m = 1;
    for (int d = 0; d < t->ndim; d++) m *= (size_t)t->shape[d];
    float *v = sid_malloc((m ? m : 1) * sizeof *v);
    if (sid_st_read_f32(st, t, v)) sid_die("%s", sid_error());
    if (n) *n = m;
    return v;
}

static float *golden(const char *name, size_t *n) { return golden_in(REF_GOLDEN, name, n); }

// Number of elements that differ in any bit (NaNs compare by payload too); *maxd the largest |a - b|.
static size_t bit_diffs(const float *a, const float *b, size_t n, double *maxd) {
    size_t bad = 0;
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0) bad++;
        double d = fabs((double)a[i] - b[i]);
        if (d > m) m = d;
    }
    if (maxd) *maxd = m;
    return bad;
}

// max |a - b| / max |b|: the error relative to the reference's largest magnitude
static double rel_err(const float *a, const float *b, size_t n) {
    double scale = 1e-30, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)a[i] - b[i]));
    return err / scale;
}

// Distance in units in the last place between two finite floats of the same sign.
static int64_t ulps(float a, float b) {
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

static sid_schedule sd_schedule(void) {
    sid_schedule s;
    if (sid_schedule_init(&s, 1000, SID_SD_BETA_START, SID_SD_BETA_END)) sid_die("%s", sid_error());
    return s;
}

// ---------------------------------------------------------------- schedule

static void test_schedule_sd_values(void) {
    sid_schedule s = sd_schedule();
    // alphas_cumprod[0], [499], [999] of diffusers.DDPMScheduler(beta_start=0.00085,
    // beta_end=0.012, beta_schedule="scaled_linear") (diffusers 0.42.1, torch 2.15.0, as printed by
    // tools/reference/ddim_reference.py).
    static const struct {
        int t;
        double ab;
    } known[] = {{0, 0.9991499781608582}, {499, 0.27766942977905273}, {999, 0.00466009508818388}};
    for (int i = 0; i < 3; i++)
        EXPECT(fabs(s.alphas_cumprod[known[i].t] - known[i].ab) <= 1e-6, "alphas_cumprod[%d] = %.9g, want %.9g",
               known[i].t, s.alphas_cumprod[known[i].t], known[i].ab);
    // float32 end points of the betas (linspace's ends are exact, then squared in float32)
    EXPECT(fabs(s.betas[0] - 0.00085) < 1e-9 && fabs(s.betas[999] - 0.012) < 1e-9, "betas ends %.9g %.9g",
           s.betas[0], s.betas[999]);
    // docs/sid.md: t_init = 625 is where the EDM-equivalent sigma is 2.5
    EXPECT(fabs(sid_schedule_sigma(&s, 625) - 2.50171) < 1e-4, "sigma(625) = %.6f", sid_schedule_sigma(&s, 625));
    EXPECT(fabs(sid_schedule_sqrt_ab(&s, 625) - 0.3711724) < 1e-6, "a_625 = %.8f", sid_schedule_sqrt_ab(&s, 625));
    EXPECT(fabs(sid_schedule_sqrt_1m_ab(&s, 625) - 0.9285640) < 1e-6, "s_625 = %.8f",
           sid_schedule_sqrt_1m_ab(&s, 625));
    for (int t = 1; t < 1000; t++) {
        if (!(sid_schedule_snr(&s, t) < sid_schedule_snr(&s, t - 1))) {
            test_fail(__FILE__, __LINE__, "SNR not decreasing at t = %d", t);
            break;
        }
    }
    EXPECT(fabs(sid_schedule_snr(&s, 999) * sid_schedule_sigma(&s, 999) * sid_schedule_sigma(&s, 999) - 1) < 1e-12,
           "snr * sigma^2 != 1");
    sid_schedule_free(&s);
}

static void test_schedule_bitwise(void) {
    sid_schedule s = sd_schedule();
    size_t n;
    double md;
    float *b = golden("betas", &n), *ab = golden("alphas_cumprod", NULL);
    if (b && ab) {
        EXPECT(n == 1000, "golden betas has %zu entries", n);
        size_t bad = bit_diffs(s.betas, b, 1000, &md);
        EXPECT(bad == 0, "%zu of 1000 betas differ from diffusers' (max |diff| %.3g)", bad, md);
        bad = bit_diffs(s.alphas_cumprod, ab, 1000, &md);
        EXPECT(bad == 0, "%zu of 1000 alphas_cumprod differ from diffusers' (max |diff| %.3g)", bad, md);
    }
    // The coefficients: sid's correctly rounded sqrtf against PyTorch's CPU sqrt (MKL), which
    // is 1 ulp off in places; never more.
    float *ra = golden("sqrt_ab", NULL), *rc = golden("sqrt_1m_ab", NULL);
    if (ra && rc) {
        int diff = 0;
        int64_t worst = 0;
        for (int t = 0; t < 1000; t++) {
            int64_t u = ulps(sid_schedule_sqrt_ab(&s, t), ra[t]), v = ulps(sid_schedule_sqrt_1m_ab(&s, t), rc[t]);
            diff += (u != 0) + (v != 0);
            worst = u > worst ? u : v > worst ? v : worst;
            double exact = sqrt((double)s.alphas_cumprod[t]);
            if ((float)exact != sid_schedule_sqrt_ab(&s, t)) {
                test_fail(__FILE__, __LINE__, "sqrt_ab(%d) is not correctly rounded", t);
                break;
            }
        }
        EXPECT(worst <= 1, "coefficients up to %lld ulps from PyTorch's (%d of 2000 differ)", (long long)worst, diff);
    }
    free(ra);
    free(rc);
    free(b);
    free(ab);
    sid_schedule_free(&s);
}

static void test_schedule_errors(void) {
    sid_schedule s;
    EXPECT(sid_schedule_init(&s, 1, 0.1, 0.2) == -1 && strstr(sid_error(), "at least 2"), "T = 1: %s", sid_error());
    EXPECT(sid_schedule_init(&s, 10, 0.2, 0.1) == -1 && strstr(sid_error(), "beta_start"), "reversed betas: %s",
           sid_error());
    EXPECT(sid_schedule_init(&s, 10, 0.1, 1.0) == -1, "beta_end 1 accepted");
    sid_schedule_free(&s);  // zeroed by the failed init: must be safe
    EXPECT(sid_pred_type_parse("epsilon") == SID_PRED_EPSILON && sid_pred_type_parse("v_prediction") == SID_PRED_V &&
               sid_pred_type_parse("sample") == SID_PRED_SAMPLE && sid_pred_type_parse("eps") == -1,
           "prediction type names");
    EXPECT(sid_spacing_parse("trailing") == SID_SPACING_TRAILING && sid_spacing_parse("Leading") == -1,
           "spacing names");
}

// add_noise and get_velocity against DDPMScheduler, then the inverse conversions.
static void test_add_noise_velocity(void) {
    sid_schedule s = sd_schedule();
    size_t n;
    double md;
    float *x0 = golden("noise/x0", &n), *eps = golden("noise/eps", NULL), *tf = golden("noise/t", NULL);
    float *xt_ref = golden("noise/xt", NULL), *v_ref = golden("noise/v", NULL);
    if (!x0 || !eps || !tf || !xt_ref || !v_ref) goto done;
    {
        const int N = 4;
        const size_t D = n / N;
        int32_t t[4];
        for (int i = 0; i < N; i++) t[i] = (int32_t)tf[i];
        float *xt = sid_malloc(n * sizeof *xt), *v = sid_malloc(n * sizeof *v), *r = sid_malloc(n * sizeof *r);
        // within the coefficients' ulp (see test_schedule_bitwise); a wrong formula is off by O(1)
        sid_add_noise(&s, xt, x0, eps, t, N, D);
        EXPECT(rel_err(xt, xt_ref, n) < 1e-6, "add_noise off diffusers' by %.3g", rel_err(xt, xt_ref, n));
        sid_velocity(&s, v, x0, eps, t, N, D);
        EXPECT(rel_err(v, v_ref, n) < 1e-6, "get_velocity off diffusers' by %.3g", rel_err(v, v_ref, n));
        // Round trips: exact math, float rounding only. At t = 0 recovering eps divides by
        // s_0 = 0.029, and at t = 999 recovering x0 by a_999 = 0.068, so allow for that.
        const double tol = 2e-4;
        md = 0;
        sid_x0_from_eps(&s, r, xt, eps, t, N, D);
        for (size_t k = 0; k < n; k++) md = fmax(md, fabs(r[k] - x0[k]));
        EXPECT(md < tol, "x0_from_eps(add_noise) off by %.3g", md);
        md = 0;
        sid_eps_from_x0(&s, r, xt, x0, t, N, D);
        for (size_t k = 0; k < n; k++) md = fmax(md, fabs(r[k] - eps[k]));
        EXPECT(md < tol, "eps_from_x0(add_noise) off by %.3g", md);
        md = 0;
        sid_x0_from_v(&s, r, xt, v, t, N, D);
        for (size_t k = 0; k < n; k++) md = fmax(md, fabs(r[k] - x0[k]));
        EXPECT(md < 1e-5, "x0_from_v off by %.3g", md);
        md = 0;
        sid_eps_from_v(&s, r, xt, v, t, N, D);
        for (size_t k = 0; k < n; k++) md = fmax(md, fabs(r[k] - eps[k]));
        EXPECT(md < 1e-5, "eps_from_v off by %.3g", md);
        // per-sample t really is per sample: sample 3 alone at t = 999 gives the same values
        sid_add_noise(&s, r, x0 + 3 * D, eps + 3 * D, t + 3, 1, D);
        EXPECT(memcmp(r, xt + 3 * D, D * sizeof *r) == 0, "add_noise of one sample differs from the batch");
        free(xt);
        free(v);
        free(r);
    }
done:
    free(x0);
    free(eps);
    free(tf);
    free(xt_ref);
    free(v_ref);
    sid_schedule_free(&s);
}

static void test_sample_timesteps(void) {
    sid_rng r = sid_rng_new(test_seed), r2 = sid_rng_new(test_seed);
    enum { M = 96000 };
    int32_t *t = sid_malloc(M * sizeof *t), *t2 = sid_malloc(M * sizeof *t2);
    sid_sample_timesteps(&r, t, M, 20, 980);
    sid_sample_timesteps(&r2, t2, M, 20, 980);
    EXPECT(memcmp(t, t2, M * sizeof *t) == 0, "same seed, different timesteps");
    int count[1000] = {0}, out = 0;
    for (int i = 0; i < M; i++) {
        if (t[i] < 20 || t[i] >= 980) out++;
        else count[t[i]]++;
    }
    EXPECT(out == 0, "%d timesteps outside [20, 980)", out);
    // 100 expected per value; a value missing or 2x over means a broken range, not bad luck
    int lo = M, hi = 0;
    for (int v = 20; v < 980; v++) lo = count[v] < lo ? count[v] : lo, hi = count[v] > hi ? count[v] : hi;
    EXPECT(lo > 50 && hi < 160, "uniformity: counts in [%d, %d], expected about 100", lo, hi);
    sid_sample_timesteps(&r, t, 4000, 0, 1000);
    int seen_hi = 0, seen_lo = 0;
    for (int i = 0; i < 4000; i++) seen_hi |= t[i] >= 990, seen_lo |= t[i] < 10;
    EXPECT(seen_hi && seen_lo, "[0, 1000) draws never reach both ends");
    free(t);
    free(t2);
}

// ---------------------------------------------------------------- DDIM timesteps

static void test_ddim_timesteps(void) {
    static const int counts[] = {1, 2, 3, 4, 7, 10, 16, 25, 50, 61, 103, 333, 999};
    static const struct {
        const char *key;
        sid_spacing sp;
        int offset;
    } cfgs[] = {{"leading_o1", SID_SPACING_LEADING, 1},
                {"leading_o0", SID_SPACING_LEADING, 0},
                {"trailing_o0", SID_SPACING_TRAILING, 0},
                {"linspace_o0", SID_SPACING_LINSPACE, 0}};
    int ts[1000], overshoots = 0;
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        sid_ddim_config cfg = sid_ddim_default();
        cfg.spacing = cfgs[c].sp;
        cfg.steps_offset = cfgs[c].offset;
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            const int n = counts[i];
            char key[64];
            snprintf(key, sizeof key, "ts/%s/n%d", cfgs[c].key, n);
            size_t m;
            float *ref = golden(key, &m);
            if (!ref) continue;
            if (sid_ddim_timesteps(&cfg, 1000, n, ts)) {
                test_fail(__FILE__, __LINE__, "%s: %s", key, sid_error());
                free(ref);
                continue;
            }
            // diffusers' "trailing" overshoots by one -1 for some n; sid keeps the first n
            if (m == (size_t)n + 1 && cfgs[c].sp == SID_SPACING_TRAILING && ref[n] == -1.0f) overshoots++;
            else EXPECT(m == (size_t)n, "%s: diffusers gave %zu timesteps", key, m);
            int bad = -1;
            for (int k = 0; k < n && bad < 0; k++)
                if ((float)ts[k] != ref[k]) bad = k;
            EXPECT(bad < 0, "%s: timestep %d is %d, diffusers %g", key, bad, bad < 0 ? 0 : ts[bad],
                   bad < 0 ? 0.0 : ref[bad]);
            free(ref);
        }
    }
    EXPECT(overshoots == 2, "expected diffusers' trailing overshoot at n = 61 and 103, saw %d", overshoots);
    // the default spacing starts at T-1 for every n, the SD one does not
    sid_ddim_config def = sid_ddim_default(), sd = sid_ddim_sd();
    for (int n = 1; n <= 1000; n++) {
        if (sid_ddim_timesteps(&def, 1000, n, ts) || ts[0] != 999) {
            test_fail(__FILE__, __LINE__, "trailing n = %d starts at %d", n, ts[0]);
            break;
        }
        int ok = 1;
        for (int k = 1; k < n; k++) ok &= ts[k] < ts[k - 1] && ts[k] >= 0;
        if (!ok) {
            test_fail(__FILE__, __LINE__, "trailing n = %d not strictly descending within [0, 1000)", n);
            break;
        }
    }
    EXPECT(sid_ddim_timesteps(&sd, 1000, 1, ts) == 0 && ts[0] == 1, "leading n = 1 gives %d, diffusers 1", ts[0]);
    EXPECT(sid_ddim_timesteps(&sd, 1000, 1000, ts) == -1 && strstr(sid_error(), "1000"),
           "leading 1000 steps + offset 1 reaches t = 1000: %s", sid_error());
    EXPECT(sid_ddim_timesteps(&def, 1000, 0, ts) == -1, "0 steps accepted");
    EXPECT(sid_ddim_timesteps(&def, 1000, 1001, ts) == -1, "1001 steps accepted");
    EXPECT(sid_ddim_prev_timestep(999, 1000, 3) == 666 && sid_ddim_prev_timestep(332, 1000, 3) == -1,
           "prev timestep rule");
}

// ---------------------------------------------------------------- DDIM steps and runs

static const struct {
    const char *name;
    sid_spacing sp;
    int offset, one;
    sid_pred_type pred;
    int n;
    float clip;  // clip_sample_range, 0: clip_sample off; the clipped runs are in clip.safetensors
} RUNS[] = {
    {"sd_leading_10", SID_SPACING_LEADING, 1, 0, SID_PRED_EPSILON, 10, 0},
    {"sd_leading_25", SID_SPACING_LEADING, 1, 0, SID_PRED_EPSILON, 25, 0},
    {"sd_leading_50", SID_SPACING_LEADING, 1, 0, SID_PRED_EPSILON, 50, 0},
    {"trailing_10", SID_SPACING_TRAILING, 0, 1, SID_PRED_EPSILON, 10, 0},
    {"trailing_25", SID_SPACING_TRAILING, 0, 1, SID_PRED_EPSILON, 25, 0},
    {"trailing_50", SID_SPACING_TRAILING, 0, 1, SID_PRED_EPSILON, 50, 0},
    {"trailing_3", SID_SPACING_TRAILING, 0, 1, SID_PRED_EPSILON, 3, 0},
    {"linspace_7", SID_SPACING_LINSPACE, 0, 0, SID_PRED_EPSILON, 7, 0},
    {"v_trailing_10", SID_SPACING_TRAILING, 0, 0, SID_PRED_V, 10, 0},
    {"clip_trailing_10", SID_SPACING_TRAILING, 0, 1, SID_PRED_EPSILON, 10, 1.0f},
    {"clip_sd_leading_25", SID_SPACING_LEADING, 1, 0, SID_PRED_EPSILON, 25, 1.0f},
    {"clip_v_trailing_10", SID_SPACING_TRAILING, 0, 1, SID_PRED_V, 10, 1.0f},
};
enum { N_RUNS = sizeof RUNS / sizeof RUNS[0], RUN_N = 2 };

typedef struct {
    const float *x, *out;  // [n+1][N*D], [n][N*D]
    const float *ts;
    size_t per;  // N*D
    int step, n, bad_input, bad_t;
    double worst;  // largest rel_err of an input against the recorded one
} replay;

// The "model" of a golden run: returns the recorded output of the current step and checks that
// the sampler hands it the recorded input.
static void replay_fn(void *ctx, float *out, const float *x_t, const float *t, int N) {
    replay *r = ctx;
    if (r->step >= r->n) {
        r->bad_input++;
        return;
    }
    double e = rel_err(x_t, r->x + (size_t)r->step * r->per, r->per);
    if (e > r->worst) r->worst = e;
    for (int i = 0; i < N; i++) r->bad_t += t[i] != r->ts[r->step];
    memcpy(out, r->out + (size_t)r->step * r->per, r->per * sizeof *out);
    r->step++;
}

static void test_ddim_matches_diffusers(void) {
    sid_schedule s = sd_schedule();
    for (int i = 0; i < N_RUNS; i++) {
        char key[96];
        const int n = RUNS[i].n;
        float *x, *out, *x0, *ts, *coef;
        size_t nx;
        const int file = RUNS[i].clip > 0 ? REF_CLIP : REF_GOLDEN;
        snprintf(key, sizeof key, "run/%s/x", RUNS[i].name);
        x = golden_in(file, key, &nx);
        snprintf(key, sizeof key, "run/%s/out", RUNS[i].name);
        out = golden_in(file, key, NULL);
        snprintf(key, sizeof key, "run/%s/x0", RUNS[i].name);
        x0 = golden_in(file, key, NULL);
        snprintf(key, sizeof key, "run/%s/ts", RUNS[i].name);
        ts = golden_in(file, key, NULL);
        snprintf(key, sizeof key, "run/%s/coef", RUNS[i].name);
        coef = golden_in(file, key, NULL);
        if (x && out && x0 && ts && coef) {
            const size_t per = nx / (size_t)(n + 1);
            sid_ddim_config c = {RUNS[i].sp, RUNS[i].offset, RUNS[i].one, RUNS[i].pred, RUNS[i].clip > 0,
                                 RUNS[i].clip > 0 ? RUNS[i].clip : 1.0f};
            float *xp = sid_malloc(per * sizeof *xp), *p0 = sid_malloc(per * sizeof *p0);
            size_t bad_prev = 0, bad_x0 = 0;
            double md = 0, m1, e_prev = 0, e_x0 = 0;
            int64_t worst_ulp = 0;
            for (int k = 0; k < n; k++) {
                const int t = (int)ts[k], tp = sid_ddim_prev_timestep(t, 1000, n);
                // diffusers' own four scalars: the arithmetic must then agree bit for bit
                const sid_ddim_coeffs ref = {coef[4 * k], coef[4 * k + 1], coef[4 * k + 2], coef[4 * k + 3], RUNS[i].clip};
                sid_ddim_step_with(&ref, c.prediction, x + k * per, out + k * per, xp, p0, per);
                bad_prev += bit_diffs(xp, x + (k + 1) * per, per, &m1);
                md = fmax(md, m1);
                bad_x0 += bit_diffs(p0, x0 + k * per, per, &m1);
                md = fmax(md, m1);
                // sid's own scalars: the same up to PyTorch's CPU sqrt rounding
                const sid_ddim_coeffs own = sid_ddim_step_coeffs(&s, &c, t, tp);
                const float *o = &own.sqrt_ab, *r = &ref.sqrt_ab;
                for (int q = 0; q < 4; q++) worst_ulp = ulps(o[q], r[q]) > worst_ulp ? ulps(o[q], r[q]) : worst_ulp;
                sid_ddim_step(&s, &c, t, tp, x + k * per, out + k * per, xp, p0, per);
                e_prev = fmax(e_prev, rel_err(xp, x + (k + 1) * per, per));
                e_x0 = fmax(e_x0, rel_err(p0, x0 + k * per, per));
            }
            EXPECT(bad_prev == 0 && bad_x0 == 0,
                   "%s: with diffusers' coefficients %zu prev_sample and %zu x0 values differ (max %.3g)", RUNS[i].name,
                   bad_prev, bad_x0, md);
            EXPECT(worst_ulp <= 1 && e_prev < 1e-6 && e_x0 < 1e-6,
                   "%s: coefficients %lld ulps apart; steps off diffusers' by %.3g (prev), %.3g (x0)", RUNS[i].name,
                   (long long)worst_ulp, e_prev, e_x0);
            // the whole run through the sampler
            float *run = sid_malloc(per * sizeof *run);
            memcpy(run, x, per * sizeof *run);
            replay r = {x, out, ts, per, 0, n, 0, 0, 0};
            int rc = sid_ddim_sample(&s, &c, n, replay_fn, &r, run, RUN_N, per / RUN_N);
            EXPECT(rc == 0, "%s: %s", RUNS[i].name, sid_error());
            EXPECT(r.step == n && r.bad_input == 0 && r.bad_t == 0 && r.worst < 1e-5,
                   "%s: %d model calls (want %d), %d extra, %d wrong t, inputs off diffusers' by up to %.3g",
                   RUNS[i].name, r.step, n, r.bad_input, r.bad_t, r.worst);
            EXPECT(rel_err(run, x + n * per, per) < 1e-5, "%s: final sample off diffusers' by %.3g", RUNS[i].name,
                   rel_err(run, x + n * per, per));
            free(run);
            free(xp);
            free(p0);
        }
        free(x);
        free(out);
        free(x0);
        free(ts);
        free(coef);
    }
    sid_schedule_free(&s);
}

// clip_sample: single steps of DDIMScheduler(clip_sample=True) whose x0 predictions are mostly
// clamped, for each prediction type, both final alphas, and a range other than 1.
static void test_ddim_clip_steps_match_diffusers(void) {
    static const char *const names[] = {"eps_t999", "eps_mid",  "eps_last",  "eps_last_one",
                                        "eps_range_half", "v_mid", "sample_mid"};
    sid_schedule s = sd_schedule();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char key[96];
        float *v[6];
        size_t n = 0;
        static const char *const parts[6] = {"x", "out", "x0", "prev", "meta", "coef"};
        for (int q = 0; q < 6; q++) {
            snprintf(key, sizeof key, "step/%s/%s", names[i], parts[q]);
            v[q] = golden_in(REF_CLIP, key, q == 0 ? &n : NULL);
        }
        if (v[0] && v[1] && v[2] && v[3] && v[4] && v[5]) {
            const float *meta = v[4], *coef = v[5];
            const int t = (int)meta[0], tp = (int)meta[1];
            sid_ddim_config c = sid_ddim_default();
            c.set_alpha_to_one = meta[3] != 0;
            c.prediction = (sid_pred_type)(int)meta[4];
            c.clip_sample = 1;
            c.clip_sample_range = meta[2];
            float *xp = sid_malloc(n * sizeof *xp), *p0 = sid_malloc(n * sizeof *p0);
            double m1, m2;
            const sid_ddim_coeffs ref = {coef[0], coef[1], coef[2], coef[3], c.clip_sample_range};
            sid_ddim_step_with(&ref, c.prediction, v[0], v[1], xp, p0, n);
            const size_t bad_x0 = bit_diffs(p0, v[2], n, &m1), bad_prev = bit_diffs(xp, v[3], n, &m2);
            EXPECT(bad_x0 == 0 && bad_prev == 0, "%s: with diffusers' coefficients %zu x0 and %zu prev values differ (%.3g, %.3g)",
                   names[i], bad_x0, bad_prev, m1, m2);
            sid_ddim_step(&s, &c, t, tp, v[0], v[1], xp, p0, n);
            EXPECT(rel_err(p0, v[2], n) < 1e-6 && rel_err(xp, v[3], n) < 1e-6, "%s: off diffusers' by %.3g (x0), %.3g (prev)",
                   names[i], rel_err(p0, v[2], n), rel_err(xp, v[3], n));
            size_t at_bound = 0;
            for (size_t k = 0; k < n; k++) at_bound += fabsf(p0[k]) == c.clip_sample_range;
            EXPECT(at_bound >= n / 2, "%s: only %zu of %zu x0 values clamped: the case does not test clipping", names[i],
                   at_bound, n);
            // without clip_sample the same step gives other values wherever diffusers clamped
            c.clip_sample = 0;
            sid_ddim_step(&s, &c, t, tp, v[0], v[1], xp, p0, n);
            EXPECT(bit_diffs(p0, v[2], n, NULL) >= at_bound, "%s: clip_sample off still clamps", names[i]);
            free(xp);
            free(p0);
        }
        for (int q = 0; q < 6; q++) free(v[q]);
    }
    sid_schedule_free(&s);
}

// sid_clip_x0 and its backward against torch's x.clamp(-0.75, 0.75) and its gradient at the
// bounds, beyond them, at +-inf and NaN.
static void test_clip_x0_matches_torch(void) {
    size_t n;
    float *x = golden_in(REF_CLIP, "clamp/x", &n), *w = golden_in(REF_CLIP, "clamp/w", NULL);
    float *y = golden_in(REF_CLIP, "clamp/y", NULL), *grad = golden_in(REF_CLIP, "clamp/grad", NULL);
    if (x && w && y && grad) {
        float *got = sid_malloc(n * sizeof *got), *dx = sid_malloc(n * sizeof *dx);
        memcpy(got, x, n * sizeof *got);
        sid_clip_x0(got, n, 0.75f);
        size_t bad = 0;
        for (size_t k = 0; k < n; k++) bad += isnan(y[k]) ? !isnan(got[k]) : got[k] != y[k];
        EXPECT(bad == 0, "clip forward: %zu of %zu values differ from torch.clamp", bad, n);
        memcpy(dx, w, n * sizeof *dx);
        sid_clip_x0_backward(dx, x, n, 0.75f);
        bad = 0;
        for (size_t k = 0; k < n; k++) bad += dx[k] != grad[k];
        EXPECT(bad == 0, "clip backward: %zu of %zu gradients differ from torch's", bad, n);
        // and through a DDIM step: a NaN x0 stays NaN, as torch.clamp leaves it
        const sid_ddim_coeffs k = {0.5f, 0.8660254f, 0.9f, 0.43588989f, 1.0f};
        const float xt[2] = {NAN, 4.0f}, eps[2] = {0.0f, 0.0f};
        float xp[2], p0[2];
        sid_ddim_step_with(&k, SID_PRED_EPSILON, xt, eps, xp, p0, 2);
        EXPECT(isnan(p0[0]) && isnan(xp[0]) && p0[1] == 1.0f && xp[1] == 0.9f, "NaN or clamp through a step: %g %g %g %g",
               p0[0], xp[0], p0[1], xp[1]);
        free(got);
        free(dx);
    }
    free(x), free(w), free(y), free(grad);
}

// x_prev may alias x_t (the sampler steps in place) and give the same bits.
static void test_ddim_step_in_place(void) {
    sid_schedule s = sd_schedule();
    sid_ddim_config c = sid_ddim_default();
    enum { n = 64 };
    float x[n], e[n], a[n], b[n];
    sid_rng r = sid_rng_new(test_seed ^ 7);
    sid_rng_normal(&r, x, n);
    sid_rng_normal(&r, e, n);
    sid_ddim_step(&s, &c, 999, 899, x, e, a, NULL, n);
    memcpy(b, x, sizeof b);
    sid_ddim_step(&s, &c, 999, 899, b, e, b, NULL, n);
    EXPECT(memcmp(a, b, sizeof a) == 0, "in-place step differs");
    sid_schedule_free(&s);
}

// Oracle denoiser: the exact eps (or v) of a known x0, given x_t.
typedef struct {
    const sid_schedule *s;
    const float *x0;
    size_t D;
    sid_pred_type pred;
    int calls;
} oracle;

static void oracle_fn(void *ctx, float *out, const float *x_t, const float *t, int N) {
    oracle *o = ctx;
    int32_t ti[8];
    for (int i = 0; i < N; i++) ti[i] = (int32_t)t[i];
    if (o->pred == SID_PRED_EPSILON) {
        sid_eps_from_x0(o->s, out, x_t, o->x0, ti, N, o->D);
    } else {
        float *eps = sid_malloc((size_t)N * o->D * sizeof *eps);
        sid_eps_from_x0(o->s, eps, x_t, o->x0, ti, N, o->D);
        sid_velocity(o->s, out, o->x0, eps, ti, N, o->D);
        free(eps);
    }
    o->calls++;
}

static void test_ddim_oracle_recovers_x0(void) {
    sid_schedule s = sd_schedule();
    enum { N = 3, D = 32 * 32 };
    float *x0 = sid_malloc(N * D * sizeof *x0), *x = sid_malloc(N * D * sizeof *x);
    float *z = sid_malloc(N * D * sizeof *z), *want = sid_malloc(N * D * sizeof *want);
    sid_rng r = sid_rng_new(test_seed);
    sid_rng_normal(&r, x0, N * D);
    sid_rng_normal(&r, z, N * D);
    static const int steps[] = {1, 2, 4, 10, 50, 1000};
    for (int p = 0; p < 2; p++) {
        for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
            sid_ddim_config c = sid_ddim_default();
            c.prediction = p ? SID_PRED_V : SID_PRED_EPSILON;
            oracle o = {&s, x0, D, c.prediction, 0};
            memcpy(x, z, sizeof(float) * N * D);
            if (sid_ddim_sample(&s, &c, steps[i], oracle_fn, &o, x, N, D)) {
                test_fail(__FILE__, __LINE__, "%s", sid_error());
                continue;
            }
            double md = 0;
            for (int k = 0; k < N * D; k++) md = fmax(md, fabs(x[k] - x0[k]));
            // 1000 steps compound rounding of eps through 1000 divisions; still far below any
            // visible error (pixels are quantised in steps of 2/255 = 0.008)
            EXPECT(o.calls == steps[i] && md < (steps[i] >= 50 ? 2e-4 : 2e-5),
                   "%s, %d steps: %d calls, |x - x0| up to %.3g", p ? "v" : "eps", steps[i], o.calls, md);
        }
    }
    // final alpha ab[0] (SD's config): the result is x0 noised to t = 0 with the noise implied by x_T,
    // which the oracle keeps unchanged along the whole deterministic trajectory
    sid_ddim_config c = sid_ddim_default();
    c.set_alpha_to_one = 0;
    oracle o = {&s, x0, D, SID_PRED_EPSILON, 0};
    memcpy(x, z, sizeof(float) * N * D);
    EXPECT(sid_ddim_sample(&s, &c, 10, oracle_fn, &o, x, N, D) == 0, "%s", sid_error());
    int32_t t999[N] = {999, 999, 999}, t0[N] = {0, 0, 0};
    float *eps = sid_malloc(N * D * sizeof *eps);
    sid_eps_from_x0(&s, eps, z, x0, t999, N, D);
    sid_add_noise(&s, want, x0, eps, t0, N, D);
    double md = 0, shift = 0;
    for (int k = 0; k < N * D; k++) md = fmax(md, fabs(x[k] - want[k])), shift = fmax(shift, fabs(x[k] - x0[k]));
    EXPECT(md < 2e-5, "set_alpha_to_one=0: off from add_noise(x0, eps, 0) by %.3g", md);
    EXPECT(shift > 1e-2, "set_alpha_to_one=0 made no difference (max shift %.3g)", shift);
    free(eps);
    free(x0);
    free(x);
    free(z);
    free(want);
    sid_schedule_free(&s);
}

// A smooth nonlinear stand-in for a network, so the trajectory depends on every step.
static void toy_fn(void *ctx, float *out, const float *x_t, const float *t, int N) {
    const size_t D = *(const size_t *)ctx;
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < D; k++) out[i * D + k] = tanhf(x_t[i * D + k]) * 0.9f + 1e-4f * t[i];
}

static void test_ddim_deterministic(void) {
    sid_schedule s = sd_schedule();
    sid_ddim_config c = sid_ddim_default();
    enum { N = 2, n = N * 64 };
    size_t D = 64;
    float a[n], b[n], d[n];
    sid_rng r1 = sid_rng_new(42), r2 = sid_rng_new(42), r3 = sid_rng_new(43);
    sid_rng_normal(&r1, a, n);
    sid_rng_normal(&r2, b, n);
    sid_rng_normal(&r3, d, n);
    EXPECT(sid_ddim_sample(&s, &c, 8, toy_fn, &D, a, N, D) == 0 && sid_ddim_sample(&s, &c, 8, toy_fn, &D, b, N, D) == 0 &&
               sid_ddim_sample(&s, &c, 8, toy_fn, &D, d, N, D) == 0,
           "%s", sid_error());
    EXPECT(memcmp(a, b, sizeof a) == 0, "same seed, different samples");
    EXPECT(memcmp(a, d, sizeof a) != 0, "different seeds, same samples");
    for (int k = 0; k < n; k++)
        if (!isfinite(a[k])) {
            test_fail(__FILE__, __LINE__, "non-finite sample %d", k);
            break;
        }
    EXPECT(sid_ddim_sample(&s, &c, 0, toy_fn, &D, a, N, D) == -1, "0 steps accepted");
    sid_schedule_free(&s);
}

static void test_cfg_combine(void) {
    enum { n = 33 };
    float u[n], c[n], e[n], w[n];
    sid_rng r = sid_rng_new(test_seed ^ 11);
    sid_rng_normal(&r, u, n);
    sid_rng_normal(&r, c, n);
    sid_cfg_combine(e, u, c, 0.0f, n);
    EXPECT(memcmp(e, u, sizeof e) == 0, "scale 0 is not the unconditional output");
    sid_cfg_combine(e, u, c, 7.5f, n);
    double md = 0;
    for (int k = 0; k < n; k++) md = fmax(md, fabs(e[k] - (u[k] + 7.5 * ((double)c[k] - u[k]))));
    EXPECT(md < 1e-5, "scale 7.5 off the formula by %.3g", md);
    // order matters: swapping cond and uncond must change the result
    sid_cfg_combine(w, c, u, 7.5f, n);
    EXPECT(memcmp(w, e, sizeof w) != 0, "cond/uncond order ignored");
    memcpy(w, c, sizeof w);
    sid_cfg_combine(w, u, w, 7.5f, n);  // output aliasing the conditional input
    EXPECT(memcmp(w, e, sizeof w) == 0, "aliased output differs");
}

TEST_LIST(T(test_schedule_sd_values), T(test_schedule_bitwise), T(test_schedule_errors), T(test_add_noise_velocity),
          T(test_sample_timesteps), T(test_ddim_timesteps), T(test_ddim_matches_diffusers),
          T(test_ddim_clip_steps_match_diffusers), T(test_clip_x0_matches_torch), T(test_ddim_step_in_place),
          T(test_ddim_oracle_recovers_x0), T(test_ddim_deterministic), T(test_cfg_combine))

int main(int argc, char **argv) {
    int rc = harness_run("diffusion", all_tests, (int)(sizeof all_tests / sizeof all_tests[0]), argc, argv);
    for (int i = 0; i < N_REF; i++)
        if (gold_open[i]) sid_st_close(&gold[i]);
    return rc;
}
