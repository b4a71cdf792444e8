// The one-step (or few-step) SiD generator: a UNet of the teacher's architecture that maps noise at
// the generator timestep t_init to x0 in one evaluation (docs/sid.md):
//   x_in = s_t z (+ a_t x_prev for later steps), eps = G(x_in, t, c), x = (x_in - s_t eps) / a_t,
// with x clamped to [-clip_range, clip_range] when the teacher's scheduler says clip_sample (the
// official loop takes the scheduler's pred_original_sample, which clamps then). Used by the
// text-to-image pipeline (forward only) and by distillation (forward with saved state, backward).
#ifndef SID_GENERATOR_H
#define SID_GENERATOR_H
#include <stdint.h>

#include "core/arena.h"
#include "diffusion/schedule.h"
#include "models/unet.h"
#include "ops/backend.h"

typedef struct {
    const sid_unet *unet;  // the architecture (the teacher's)
    const sid_schedule *sched;
    int t_init, steps;     // 625 and 1; steps 2..4: the multi-step variant at t_init (1 - i/steps)
    int clip_sample;       // the scheduler's clip_sample
    float clip_range;      // and clip_sample_range
    int H, W;              // sample size (latent or pixel)
    // Where it runs: every buffer given to the functions below (ps, act, ctx, z, x, ...) is in this
    // backend's memory (NULL: the CPU); meta is the host arena for saved state when act is not
    // host memory.
    const sid_backend *be;
    sid_arena *meta;
} sid_generator;

// What the backward needs of one forward.
typedef struct {
    int K;
    int32_t t[4];
    float *x_in[4];
    float *x0[4];  // unclipped x0 of each step (only when clipping)
    sid_unet_saved *s[4];
} sid_generator_saved;

// x [N, D] from z [N, D] (and z_extra [steps - 1, N, D] for the multi-step variant) with the
// context ctx [N, M, width]. Activations come from act; with saved, they stay for the backward.
void sid_generator_forward(const sid_generator *g, const sid_params *ps, sid_arena *act, const float *ctx, int M,
                           const float *z, const float *z_extra, int N, float *x, sid_generator_saved *saved);
// dx: d(loss)/dx [N, D]; accumulates the parameter gradients of ps.
void sid_generator_backward(const sid_generator *g, sid_params *ps, sid_arena *act, const sid_generator_saved *saved,
                            const float *dx, int N);
// Forward only; the arena is left as it was.
void sid_generator_apply(const sid_generator *g, const sid_params *ps, sid_arena *act, const float *ctx, int M,
                         const float *z, const float *z_extra, int N, float *x);

#endif
