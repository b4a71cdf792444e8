// Deterministic DDIM sampling (eta = 0), step for step what diffusers' DDIMScheduler computes
// with thresholding=False, clip_sample True or False: the same timesteps, and bit-equal steps
// given the same four coefficients (sid_ddim_step_coeffs below says why they may differ by an
// ulp). tests/data/diffusion/golden.safetensors and clip.safetensors
// (tools/reference/ddim_reference.py) check timesteps, single steps and whole runs.
//
// diffusers' behaviour kept on purpose, because pipelines and published numbers depend on it:
//   * the step from t goes to prev = t - T/n (integer division) whatever the spacing, so with
//     "linspace", or with "trailing" when n does not divide T, the target of one step is not the
//     next timestep the model is evaluated at;
//   * below t = 0 the step lands on the "final" alpha: 1 with set_alpha_to_one, else ab[0].
// Deviations: where diffusers' "trailing" yields n + 1 timesteps ending in -1 (62 values of n for
// T = 1000, e.g. 61 and 103: numpy's arange overshoots), sid keeps the first n; configurations
// diffusers would crash on (n > T, a "leading" timestep >= T) are errors.
//
// Default for the built-in teacher (sid_ddim_default): "trailing", steps_offset 0,
// set_alpha_to_one. Trailing spacing starts every run at t = T-1, where x_T ~ N(0, I) actually is
// the model's input distribution; "leading" starts at (n-1)*(T/n) + offset, far from pure noise for
// few steps (n = 1: t = 1, i.e. the model is asked to denoise pure noise as if almost clean;
// n = 4: t = 751). And with the final alpha 1 the last step returns the model's x0 prediction,
// not x0 re-noised to ab[0] (sqrt(1 - ab[0]) = 0.029 of the noise: about 4 grey levels in pixel
// space, where a sampled image is the final x itself).
// sid_ddim_sd() is SD1.5 / SD2.1-base's shipped config: "leading", steps_offset 1, final ab[0].
#ifndef SID_DIFFUSION_DDIM_H
#define SID_DIFFUSION_DDIM_H
#include <stddef.h>

#include "diffusion/schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SID_SPACING_LEADING = 0, SID_SPACING_TRAILING = 1, SID_SPACING_LINSPACE = 2 } sid_spacing;

typedef struct {
    sid_spacing spacing;
    int steps_offset;      // added to "leading" timesteps only, as in diffusers
    int set_alpha_to_one;  // final alpha: 1, or ab[0]
    sid_pred_type prediction;
    // clip_sample: each step clamps the predicted x0 to [-clip_sample_range, clip_sample_range]
    // before forming x_prev (the eps used is the unclamped one, as diffusers' step() with
    // use_clipped_model_output False, the pipelines' setting). Off in both presets below, unlike
    // diffusers' class default (on): SD's configs and the built-in teacher's say false, and a
    // config that asks for it comes in through sid_sd_ddim_config (models/checkpoint.h).
    int clip_sample;
    float clip_sample_range;  // > 0 when clip_sample
} sid_ddim_config;

sid_ddim_config sid_ddim_default(void);  // trailing, offset 0, final alpha 1, epsilon, no clipping
sid_ddim_config sid_ddim_sd(void);       // leading, offset 1, final alpha ab[0], epsilon, no clipping

// "leading", "trailing", "linspace" (diffusers' timestep_spacing); -1 for anything else.
int sid_spacing_parse(const char *name);
const char *sid_spacing_name(sid_spacing s);

// The n timesteps of a run, descending, into t[n]. -1 with an error when n < 1, n > T, or a
// timestep falls outside [0, T) (e.g. "leading" with n = T and steps_offset 1).
int sid_ddim_timesteps(const sid_ddim_config *c, int T, int n, int *t);
// The timestep a step from t lands on, for a run of n steps (< 0: the final alpha).
static inline int sid_ddim_prev_timestep(int t, int T, int n) { return t - T / n; }

// One DDIM step from timestep t to t_prev (< 0: the final alpha) over n floats: model_out is
// the network's output at (x_t, t) in c->prediction's kind; writes x_prev and, when x0 is not
// NULL, the predicted x0 (diffusers' pred_original_sample). x_prev may alias x_t.
void sid_ddim_step(const sid_schedule *s, const sid_ddim_config *c, int t, int t_prev, const float *x_t,
                   const float *model_out, float *x_prev, float *x0, size_t n);

// The same step split in two, for kernels elsewhere (a GPU sampler) that need only the four
// scalars: sqrt(ab_t), sqrt(1 - ab_t), sqrt(ab_prev) and the eps coefficient sqrt(1 - ab_prev),
// plus the clip bound. They are correctly rounded float32 square roots, as PyTorch computes them
// on CUDA; PyTorch's CPU wheels (MKL) round 18% of SD's sqrt(ab) 1 ulp differently, so sid
// matches diffusers on the CPU to within those ulps and bit for bit given the same four scalars
// (the tests check both).
typedef struct {
    float sqrt_ab, sqrt_1m_ab, sqrt_ab_prev, dir;
    float clip_range;  // > 0: x0 is clamped to [-clip_range, clip_range] (clip_sample); 0: no clipping
} sid_ddim_coeffs;
sid_ddim_coeffs sid_ddim_step_coeffs(const sid_schedule *s, const sid_ddim_config *c, int t, int t_prev);
void sid_ddim_step_with(const sid_ddim_coeffs *k, sid_pred_type pred, const float *x_t, const float *model_out,
                        float *x_prev, float *x0, size_t n);

// The denoiser: writes the model output (eps for epsilon prediction, v for v_prediction, x0 for
// "sample") for N samples x_t at timesteps t[N] (integers, as floats). Classifier-free guidance,
// text conditioning and batching are the callback's business.
typedef void (*sid_eps_fn)(void *ctx, float *eps_out, const float *x_t, const float *t /* [N] */, int N);

// Runs n_steps DDIM steps in place on x: N samples of D floats, x_T on entry (pure noise for
// generation, scaled by init_noise_sigma = 1), the final sample on return. Every sample shares
// the timestep of the step. -1 with an error for a bad n_steps (sid_ddim_timesteps).
int sid_ddim_sample(const sid_schedule *s, const sid_ddim_config *c, int n_steps, sid_eps_fn fn, void *ctx, float *x,
                    int N, size_t D);

// Classifier-free guidance as diffusers' pipelines write it: eps = u + scale * (c - u), in
// float32. eps may alias either input. With scale 1 this is c only up to rounding: callers that
// want scale 1 should skip the unconditional pass (SiD-LSG does, docs/sid.md).
void sid_cfg_combine(float *eps, const float *eps_uncond, const float *eps_cond, float scale, size_t n);

#ifdef __cplusplus
}
#endif

#endif
