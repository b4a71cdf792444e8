// SiD-LSG: data-free distillation of a text-to-image diffusion teacher into a one-step
// generator (Zhou et al., ICLR 2025; docs/sid.md).
// Per iteration: one fake-score (psi) update by epsilon DSM on generator samples with
// kappa1-guided predictions, one generator (theta) update with the SiD loss through both frozen
// networks' inputs (kappa2 = kappa3 on the fake net, kappa4 on the teacher), then the EMA.
#ifndef SID_DISTILL_H
#define SID_DISTILL_H
#include <stdint.h>

#include "core/arena.h"
#include "core/rng.h"
#include "io/json.h"
#include "diffusion/schedule.h"
#include "models/checkpoint.h"
#include "ops/backend.h"
#include "sid/generator.h"

// The largest --batch (and --micro): per-round arrays are sized from it, and beyond it one
// iteration would take hours even on a GPU.
#define SID_DISTILL_MAX_BATCH 65536
// Address space reserved for one round's activations (pages are touched only as used).
#define SID_DISTILL_ARENA_BYTES ((size_t)12 << 30)
// On a device the arena is allocated for real: smaller, and --micro sized to fit it.
#define SID_DISTILL_DEVICE_ARENA_BYTES ((size_t)4 << 30)

typedef struct {
    const char *teacher_dir, *prompts_file, *out_dir;
    int resume;
    float alpha;          // SiD alpha (1 in the reference's SD script, 1.2 its sid_train.py default)
    float kappa[4];       // kappa1 (fake training), kappa2 = kappa3 (fake in the G loss), kappa4 (teacher)
    int t_init;           // generator timestep (625)
    int tmin, tmax;       // loss timesteps uniform in [tmin, tmax)
    float lr, glr;        // Adam learning rates of psi and theta
    float beta1, beta2, adam_eps;
    int batch, micro;     // images per iteration, per accumulation round
    double ema_halflife_img, ema_rampup;
    double duration_img;  // stop after this many generator images
    double tick_img;      // images between stats lines
    int snapshot_ticks;   // ticks between sample grids, generator exports, metrics and state dumps
    uint64_t seed;
    int gen_steps;        // 1: one-step generator; 2..4: the multi-step variant
    int metrics;          // FID + alignment at each snapshot (built-in teacher only)
    int metrics_n;        // images for the metrics
    const char *classifier_dir;
    const char *eval_prompts;  // held-out prompts for the grids and metrics
    int64_t stop_after_img;    // end this invocation early (0: at duration); resume continues
    const sid_backend *be;     // where it runs (NULL: the CPU); not a setting of the run's maths
    int checkpointing;         // recompute the UNet blocks' saved state in backward (same results, less memory)
} sid_distill_cfg;

sid_distill_cfg sid_distill_defaults(void);
// Checks every value before any work: one-line error naming the flag.
int sid_distill_validate(const sid_distill_cfg *c);

typedef struct sid_distill sid_distill;

// Everything one accumulation round consumes, drawn from the run's RNG or given by a test.
typedef struct {
    int m;
    const int *prompt;     // [m] index into the prompt list; -1 = the empty prompt
    const float *z, *eps;  // [m, D]; z of the generator, eps of the forward diffusion
    const float *z_extra;  // [gen_steps - 1, m, D] fresh noise of the multi-step generator, or NULL
    const int32_t *t;      // [m] loss timesteps
} sid_round_inputs;

typedef struct {
    double loss_fake, loss_gen;
    int dropped_fake, dropped_gen;     // samples with NaN, left out of the loss
    size_t nonfinite_fake, nonfinite_gen;  // gradient values sanitised
} sid_iter_stats;

sid_distill *sid_distill_open(const sid_distill_cfg *cfg);  // NULL with an error
void sid_distill_close(sid_distill *d);
int sid_distill_n_prompts(const sid_distill *d);
size_t sid_distill_sample_size(const sid_distill *d);  // D: floats per generated sample

// The two phases of one iteration, round by round (tests feed fixed inputs; the loop draws them).
void sid_distill_fake_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st);
void sid_distill_fake_update(sid_distill *d, sid_iter_stats *st);
void sid_distill_gen_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st);
void sid_distill_gen_update(sid_distill *d, sid_iter_stats *st);
void sid_distill_ema(sid_distill *d);  // and nimg += batch
// The rounds' losses and the updates' sanitised counts live on the device until read: adds them
// to st and zeroes them there (one small download; the dropped counts are in st already).
void sid_distill_read_stats(sid_distill *d, sid_iter_stats *st);
// NULL when an iteration's stats are fit to go on, else why the run must stop: a non-finite loss,
// every sample of a phase dropped as NaN, or most of a network's gradients sanitised. The run
// checks the drops after each iteration and the rest (the mean iteration) once per tick, from the
// tick's one stats block, before anything of the tick is written.
const char *sid_distill_verdict(const sid_distill *d, const sid_iter_stats *st);

// Parameter blocks (UNet layout) for tests: fake psi, generator theta, EMA, and their gradients.
const sid_params *sid_distill_fake(const sid_distill *d);
const sid_params *sid_distill_gen(const sid_distill *d);
const sid_params *sid_distill_gen_ema(const sid_distill *d);

const sid_sd_model *sid_distill_teacher(const sid_distill *d);
const sid_generator *sid_distill_generator(const sid_distill *d);
// Text embeddings [n, T, width] of arbitrary prompts with the teacher's text encoder (heap; NULL
// with an error); *truncated (when given) is increased by the prompts cut to T tokens.
// The embeddings are in the device's memory; release with sid_distill_free.
float *sid_distill_encode(sid_distill *d, const char *const *texts, int n, int *truncated);
void sid_distill_free(const sid_distill *d, void *device_buffer);

// A run's config.json: every setting, floats in their shortest form. The load fills c (its
// strings point into the returned JSON, which the caller frees with cJSON_Delete); NULL with an
// error naming the file and key.
int sid_distill_config_save(const sid_distill_cfg *c, const char *path);
cJSON *sid_distill_config_load(const char *path, sid_distill_cfg *c);

// The whole run: loop, stats.jsonl, grids, exports, state dumps, resume.
int sid_distill_run(const sid_distill_cfg *cfg);

#endif
