// The discrete VP/DDPM noise schedule of Stable Diffusion (docs/sid.md;
// docs/models.md): "scaled_linear" betas, alphas_cumprod, forward noising and the
// conversions between x0, eps and v that diffusers' DDPMScheduler / DDIMScheduler use.
//
// Everything is float32 as in diffusers, checked against tests/data/diffusion/golden.safetensors
// (tools/reference/ddim_reference.py). betas and alphas_cumprod are bit-for-bit PyTorch's:
// torch.linspace of the square roots in float32 (its FMA rounding included), squared, then
// torch.cumprod (a double accumulator, each partial product stored as float32). The per-sample
// coefficients are correctly rounded sqrtf(ab) and sqrtf(1 - ab), as PyTorch computes them on
// CUDA; PyTorch's CPU wheels take sqrt from MKL, which rounds 182 of SD's 1000 sqrt(ab) the other
// way (1 ulp). Every elementwise formula keeps diffusers' order of float32 operations, so with
// equal coefficients the results are bitwise equal, and otherwise within a few ulps.
//
// Arrays hold N samples of D contiguous floats each; t[i] is sample i's integer timestep in
// [0, T). A timestep out of range is a programming error and dies.
#ifndef SID_DIFFUSION_SCHEDULE_H
#define SID_DIFFUSION_SCHEDULE_H
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

// What the network predicts (diffusers' prediction_type).
typedef enum { SID_PRED_EPSILON = 0, SID_PRED_V = 1, SID_PRED_SAMPLE = 2 } sid_pred_type;

typedef struct {
    int T;  // num_train_timesteps
    double beta_start, beta_end;
    float *betas;           // [T]
    float *alphas_cumprod;  // [T], "ab" below
} sid_schedule;

// SD1.5 / SD2.1-base: T 1000, beta_start 0.00085, beta_end 0.012.
#define SID_SD_BETA_START 0.00085
#define SID_SD_BETA_END 0.012

// Scaled-linear betas: (linspace(sqrt(beta_start), sqrt(beta_end), T))^2. -1 with an error when
// T < 2 or not 0 < beta_start < beta_end < 1. Release with sid_schedule_free.
int sid_schedule_init(sid_schedule *s, int T, double beta_start, double beta_end);
void sid_schedule_free(sid_schedule *s);  // safe on a zeroed or freed s

// "epsilon", "v_prediction" or "sample" (diffusers' names); -1 for anything else.
int sid_pred_type_parse(const char *name);
const char *sid_pred_type_name(sid_pred_type p);

// a_t = sqrt(ab_t) and s_t = sqrt(1 - ab_t) in float32, exactly as diffusers forms them.
float sid_schedule_sqrt_ab(const sid_schedule *s, int t);
float sid_schedule_sqrt_1m_ab(const sid_schedule *s, int t);
// Signal-to-noise ratio ab_t / (1 - ab_t), and the EDM-equivalent noise level
// sigma_t = sqrt((1 - ab_t) / ab_t) = 1 / sqrt(SNR) (2.50 at t = 625, SiD's sigma_init), in double.
double sid_schedule_snr(const sid_schedule *s, int t);
double sid_schedule_sigma(const sid_schedule *s, int t);

// x_t = a_t x0 + s_t eps (DDPMScheduler.add_noise).
void sid_add_noise(const sid_schedule *s, float *x_t, const float *x0, const float *eps, const int32_t *t, int N,
                   size_t D);
// x0 = (x_t - s_t eps) / a_t: the pred_original_sample of an epsilon-prediction model.
void sid_x0_from_eps(const sid_schedule *s, float *x0, const float *x_t, const float *eps, const int32_t *t, int N,
                     size_t D);
// eps = (x_t - a_t x0) / s_t.
void sid_eps_from_x0(const sid_schedule *s, float *eps, const float *x_t, const float *x0, const int32_t *t, int N,
                     size_t D);
// v = a_t eps - s_t x0 (DDPMScheduler.get_velocity): the target of a v-prediction model.
void sid_velocity(const sid_schedule *s, float *v, const float *x0, const float *eps, const int32_t *t, int N,
                  size_t D);
// From a v prediction: x0 = a_t x_t - s_t v, eps = a_t v + s_t x_t.
void sid_x0_from_v(const sid_schedule *s, float *x0, const float *x_t, const float *v, const int32_t *t, int N,
                   size_t D);
void sid_eps_from_v(const sid_schedule *s, float *eps, const float *x_t, const float *v, const int32_t *t, int N,
                    size_t D);

// clip_sample (diffusers' DDPMScheduler / DDIMScheduler step(), when the scheduler config has
// clip_sample true, the classes' default): x0 <- clamp(x0, -range, range) in place, range > 0
// (clip_sample_range, default 1). As torch.clamp: a NaN stays NaN. SD's own configs say
// clip_sample false, and SiD-LSG relies on that (docs/sid.md); this is for models whose
// configs ask for it.
void sid_clip_x0(float *x0, size_t n, float range);
// Its backward, in place over dx (the gradient with respect to the clipped x0): dx[k] is kept
// where -range < x0_unclipped[k] < range and zeroed elsewhere, the bounds themselves and NaN
// included, as diffusers' x0.clamp(-range, range) differentiates in PyTorch 2.15
// (tests/data/diffusion/clip.safetensors; PyTorch 1.x kept the gradient at the bounds, a
// difference on a set of measure zero).
void sid_clip_x0_backward(float *dx, const float *x0_unclipped, size_t n, float range);

// Training timesteps: n integers uniform in [t_min, t_max) (SD training: [0, T); SiD-LSG's losses:
// [20, 980)). Dies unless 0 <= t_min < t_max.
void sid_sample_timesteps(sid_rng *r, int32_t *t, size_t n, int t_min, int t_max);

#ifdef __cplusplus
}
#endif

#endif
