// The state the SiD-LSG phases (distill.c) and the run loop (run.c) share. Not a public header.
#ifndef SID_DISTILL_STATE_H
#define SID_DISTILL_STATE_H
#include "data/prompts.h"
#include "io/tokenizer.h"
#include "sid/distill.h"
#include "sid/generator.h"

// Every float buffer here (parameters, Adam moments, text embeddings, the round's inputs, the
// activation arena, the stats block) is in the memory of be; the host keeps the configuration,
// the prompt list and the meta arena of saved-state structs.
struct sid_distill {
    sid_distill_cfg cfg;
    const sid_backend *be;
    sid_sd_model teacher;  // UNet, text encoder, and the VAE of a latent teacher
    sid_params fake, gen, ema;  // the teacher UNet's layout; the teacher's sid_unet indexes all three
    float *fake_m, *fake_v, *gen_m, *gen_v;
    int64_t fake_steps, gen_steps_done;
    sid_tokenizer *tok;
    int T, Wt;  // tokens per prompt, text width
    sid_prompts prompts;
    int truncated_prompts;  // training prompts cut to T tokens
    float *ctx;        // [(n + 1), T, Wt]: every prompt's embedding, then the empty prompt's
    float *ctx_round;  // [micro, T, Wt]
    float *ctx_uncond; // [micro, T, Wt]: the empty prompt's, repeated
    sid_schedule sched;
    sid_generator g;   // how the generator (and the EMA) runs
    sid_arena act, meta;
    // one round's inputs on the device: prompt rows, per-sample sqrt(abar) and sqrt(1 - abar), the
    // timesteps as floats, the noise; NaN flags per sample; [loss_fake, loss_gen, sanitised fake,
    // sanitised generator] accumulated until sid_distill_read_stats
    int32_t *r_idx;
    float *r_a, *r_s, *r_t, *r_z, *r_eps, *r_zx, *r_flags;
    double *stats;
    int C, H, W;       // one sample of the UNet (latents of a latent teacher)
    size_t D;
    int64_t nimg;
    sid_rng rng;
};

#endif
