// SiD-LSG's two phases and the EMA (docs/sid.md): the fake-score round and update, the
// generator round and update. The run loop around them is run.c.
#define _GNU_SOURCE
#include "sid/distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"
#include "ops/ops.h"
#include "sid/distill_state.h"
#include "train/optim.h"

sid_distill_cfg sid_distill_defaults(void) {
    return (sid_distill_cfg){.teacher_dir = "models/teacher",
                             .prompts_file = "data/prompts/fmnist_train.txt",
                             .out_dir = "out/distill",
                             .alpha = 1.0f,
                             .kappa = {1.5f, 1.5f, 1.5f, 1.5f},
                             .t_init = 625,
                             .tmin = 20,
                             .tmax = 980,
                             .lr = 2e-4f,
                             .glr = 5e-5f,
                             .beta1 = 0.0f,
                             .beta2 = 0.999f,
                             .adam_eps = 1e-8f,
                             .batch = 16,
                             .micro = 16,
                             .ema_halflife_img = 2000,
                             .ema_rampup = 0.05,
                             .duration_img = 3200,
                             .tick_img = 160,
                             .snapshot_ticks = 5,
                             .seed = 1,
                             .gen_steps = 1,
                             .metrics = 0,
                             .metrics_n = 2000,
                             .classifier_dir = "models/classifier",
                             .eval_prompts = "data/prompts/fmnist_eval.txt"};
}

int sid_distill_validate(const sid_distill_cfg *c) {
#define BAD(...) return sid_set_error(__VA_ARGS__), -1
    for (int k = 0; k < 4; k++)
        if (!(c->kappa[k] >= 0) || c->kappa[k] > 100) BAD("distill: kappa%d = %g must be in [0, 100]", k + 1, c->kappa[k]);
    if (c->kappa[1] != c->kappa[2]) BAD("distill: kappa2 and kappa3 must be equal (one fake-net pass evaluates both)");
    if (!(c->alpha >= 0) || c->alpha > 10) BAD("distill: --alpha %g must be in [0, 10]", c->alpha);
    if (c->tmin < 0 || c->tmax > 1000 || c->tmin >= c->tmax)
        BAD("distill: need 0 <= tmin < tmax <= 1000 (got tmin %d, tmax %d)", c->tmin, c->tmax);
    if (c->t_init < 1 || c->t_init > 999) BAD("distill: --init-timestep %d must be in [1, 999]", c->t_init);
    if (!(c->lr > 0) || !(c->glr > 0)) BAD("distill: --lr and --glr must be positive");
    if (c->beta1 < 0 || c->beta1 >= 1 || c->beta2 <= 0 || c->beta2 >= 1 || !(c->adam_eps > 0))
        BAD("distill: Adam betas must be in [0, 1) and eps positive");
    if (c->batch < 1 || c->micro < 1 || c->batch % c->micro)
        BAD("distill: --batch %d must be a positive multiple of --micro %d", c->batch, c->micro);
    if (c->batch > SID_DISTILL_MAX_BATCH) BAD("distill: --batch %d is above %d", c->batch, SID_DISTILL_MAX_BATCH);
    if (c->gen_steps < 1 || c->gen_steps > 4) BAD("distill: --gen-steps %d must be 1..4", c->gen_steps);
    if (!(c->duration_img > 0) || !(c->tick_img > 0) || c->snapshot_ticks < 1)
        BAD("distill: duration, tick and snapshot interval must be positive");
    if (!(c->ema_halflife_img >= 0)) BAD("distill: --ema must be >= 0");
    if (c->metrics && c->metrics_n < 10) BAD("distill: --metrics-n must be >= 10");
    return 0;
#undef BAD
}

const sid_params *sid_distill_fake(const sid_distill *d) { return &d->fake; }
const sid_params *sid_distill_gen(const sid_distill *d) { return &d->gen; }
const sid_params *sid_distill_gen_ema(const sid_distill *d) { return &d->ema; }
int sid_distill_n_prompts(const sid_distill *d) { return d->prompts.n; }
size_t sid_distill_sample_size(const sid_distill *d) { return d->D; }
const sid_sd_model *sid_distill_teacher(const sid_distill *d) { return &d->teacher; }
const sid_generator *sid_distill_generator(const sid_distill *d) { return &d->g; }

// A device buffer (the host's for the CPU backend), zero-filled, and its release.
static void *dev_alloc(const sid_distill *d, size_t bytes) {
    void *p = d->be->alloc(bytes ? bytes : 4);
    if (!p) sid_die("distill: cannot allocate %zu bytes on the %s device", bytes, d->be->name);
    return p;
}

void sid_distill_free(const sid_distill *d, void *p) {
    if (p) d->be->free(p);
}

static void copy_layout(const sid_distill *d, sid_params *dst, const sid_params *src, int with_grad) {
    *dst = *src;
    dst->items = NULL, dst->n = dst->cap = 0;  // declared again below so it owns its names
    dst->data = dst->grad = NULL, dst->be = NULL;
    dst->total = 0;
    for (int i = 0; i < src->n; i++)
        sid_params_add(dst, src->items[i].ndim, src->items[i].shape, "%s", src->items[i].name);
    sid_params_alloc(dst, with_grad);
    memcpy(dst->data, src->data, src->total * sizeof(float));
    sid_params_to_backend(dst, d->be);
}

float *sid_distill_encode(sid_distill *d, const char *const *texts, int n, int *truncated) {
    const int T = d->T, Wt = d->Wt;
    int32_t *ids = sid_malloc((size_t)n * T * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int cut = 0;
        if (sid_tokenizer_encode_ex(d->tok, texts[i], ids + (size_t)i * T, T, &cut) < 0) {
            free(ids);
            return NULL;
        }
        if (truncated) *truncated += cut;
    }
    float *out = dev_alloc(d, (size_t)n * T * Wt * sizeof(float));
    int32_t *d_ids = dev_alloc(d, (size_t)64 * T * sizeof(int32_t));
    // in chunks: the text embeddings are constants, computed once (docs/sid.md)
    for (int i0 = 0; i0 < n; i0 += 64) {
        const int b = n - i0 < 64 ? n - i0 : 64;
        d->be->upload(d_ids, ids + (size_t)i0 * T, (size_t)b * T * sizeof(int32_t));
        sid_arena_reset(&d->act, 0), sid_arena_reset(&d->meta, 0);
        sid_ctx c = {&d->teacher.clip_ps, &d->act, d->be, &d->meta};
        if (!sid_clip_forward(&c, &d->teacher.clip, out + (size_t)i0 * T * Wt, d_ids, b, T, d->teacher.clip_skip_layers)) {
            free(ids), sid_distill_free(d, d_ids), sid_distill_free(d, out);
            return NULL;
        }
    }
    free(ids), sid_distill_free(d, d_ids);
    return out;
}

static int encode_all(sid_distill *d) {
    const int n = d->prompts.n;
    const char **texts = sid_malloc((size_t)(n + 1) * sizeof *texts);
    for (int i = 0; i < n; i++) texts[i] = d->prompts.text[i];
    texts[n] = "";
    d->ctx = sid_distill_encode(d, texts, n + 1, &d->truncated_prompts);
    free(texts);
    if (!d->ctx) sid_set_error("%s: %s", d->cfg.prompts_file, sid_error());
    return d->ctx ? 0 : -1;
}

sid_distill *sid_distill_open(const sid_distill_cfg *cfg) {
    if (sid_distill_validate(cfg)) return NULL;
    sid_distill *d = sid_calloc(sizeof *d);
    d->cfg = *cfg;
    d->be = sid_backend_or_cpu(cfg->be);
    char vae_cfg[1200];
    snprintf(vae_cfg, sizeof vae_cfg, "%s/vae/config.json", cfg->teacher_dir);
    const unsigned parts = SID_SD_UNET | SID_SD_TEXT | (sid_file_exists(vae_cfg) ? SID_SD_VAE : 0);
    if (sid_sd_load(&d->teacher, cfg->teacher_dir, parts, 0)) goto fail;
    if (strcmp(d->teacher.prediction_type, "epsilon") != 0) {
        sid_set_error("%s: prediction_type '%s': sid distils epsilon-prediction teachers only", cfg->teacher_dir,
                      d->teacher.prediction_type);
        goto fail;
    }
    if (!d->teacher.tokenizer_dir[0] || !(d->tok = sid_tokenizer_load(d->teacher.tokenizer_dir))) {
        if (!d->teacher.tokenizer_dir[0]) sid_set_error("%s: no tokenizer/ folder", cfg->teacher_dir);
        goto fail;
    }
    if (sid_prompts_load(cfg->prompts_file, &d->prompts)) goto fail;
    d->T = sid_tokenizer_max_length(d->tok);
    if (d->T <= 0 || d->T > d->teacher.clip_cfg.max_positions) d->T = d->teacher.clip_cfg.max_positions;
    d->Wt = d->teacher.clip_cfg.hidden;
    const sid_unet_config *u = &d->teacher.unet_cfg;
    d->C = u->in_channels, d->H = d->W = u->sample_size, d->D = (size_t)d->C * d->H * d->W;
    if (sid_schedule_init(&d->sched, d->teacher.train_timesteps, d->teacher.beta_start, d->teacher.beta_end)) goto fail;
    // the teacher's networks in the device's memory; the fake net, the generator and the EMA start as its UNet
    sid_unet_set_checkpointing(&d->teacher.unet, cfg->checkpointing);  // the three networks share its layout
    copy_layout(d, &d->fake, &d->teacher.unet_ps, 1);
    copy_layout(d, &d->gen, &d->teacher.unet_ps, 1);
    copy_layout(d, &d->ema, &d->teacher.unet_ps, 0);
    sid_params_to_backend(&d->teacher.unet_ps, d->be), sid_params_to_backend(&d->teacher.clip_ps, d->be);
    if (d->teacher.components & SID_SD_VAE) sid_params_to_backend(&d->teacher.vae_ps, d->be);
    sid_arena_init(&d->meta, "distillation saved state", (size_t)64 << 20);
    d->g = (sid_generator){&d->teacher.unet, &d->sched, cfg->t_init, cfg->gen_steps, d->teacher.clip_sample,
                           d->teacher.clip_sample_range, d->H, d->W, d->be, &d->meta};
    sid_backend_arena_init(&d->act, d->be, "distillation activations",
                           d->be == &sid_backend_cpu ? SID_DISTILL_ARENA_BYTES
                                                     : sid_device_arena_bytes(SID_DISTILL_DEVICE_ARENA_BYTES));
    if (encode_all(d)) goto fail;
    const size_t nf = d->fake.total, m = (size_t)cfg->micro;
    d->fake_v = dev_alloc(d, nf * sizeof(float)), d->gen_v = dev_alloc(d, nf * sizeof(float));
    if (cfg->beta1 > 0) d->fake_m = dev_alloc(d, nf * sizeof(float)), d->gen_m = dev_alloc(d, nf * sizeof(float));
    const size_t row = (size_t)d->T * d->Wt;
    d->ctx_round = dev_alloc(d, m * row * sizeof(float)), d->ctx_uncond = dev_alloc(d, m * row * sizeof(float));
    d->r_idx = dev_alloc(d, m * sizeof(int32_t)), d->r_a = dev_alloc(d, m * sizeof(float));
    d->r_s = dev_alloc(d, m * sizeof(float)), d->r_t = dev_alloc(d, m * sizeof(float));
    d->r_z = dev_alloc(d, m * d->D * sizeof(float)), d->r_eps = dev_alloc(d, m * d->D * sizeof(float));
    d->r_zx = cfg->gen_steps > 1 ? dev_alloc(d, (size_t)(cfg->gen_steps - 1) * m * d->D * sizeof(float)) : NULL;
    d->r_flags = dev_alloc(d, m * sizeof(float)), d->stats = dev_alloc(d, 4 * sizeof(double));
    int32_t *empty = sid_malloc(m * sizeof(int32_t));  // the empty prompt's embedding, once per slot
    for (size_t i = 0; i < m; i++) empty[i] = d->prompts.n;
    d->be->upload(d->r_idx, empty, m * sizeof(int32_t));
    d->be->gather_rows(d->ctx_uncond, d->ctx, d->r_idx, (int)m, row);
    free(empty);
    d->rng = sid_rng_new(cfg->seed);
    return d;
fail:
    sid_distill_close(d);
    return NULL;
}

void sid_distill_close(sid_distill *d) {
    if (!d) return;
    if (d->teacher.components) sid_sd_free(&d->teacher);
    sid_params_free(&d->fake), sid_params_free(&d->gen), sid_params_free(&d->ema);
    if (d->be) {
        void *bufs[] = {d->fake_m, d->fake_v, d->gen_m, d->gen_v, d->ctx, d->ctx_round, d->ctx_uncond, d->r_idx, d->r_a,
                        d->r_s, d->r_t, d->r_z, d->r_eps, d->r_zx, d->r_flags, d->stats};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sid_distill_free(d, bufs[i]);
    }
    sid_tokenizer_free(d->tok);
    sid_prompts_free(&d->prompts);
    sid_schedule_free(&d->sched);
    if (d->act.base) sid_arena_free(&d->act);
    if (d->meta.base) sid_arena_free(&d->meta);
    free(d);
}

// A round's inputs into the device: prompt rows (-1: the empty prompt), the per-sample noise
// coefficients of its timesteps, the timesteps as floats, and the noise.
static void upload_round(sid_distill *d, const sid_round_inputs *in) {
    const int m = in->m;
    int32_t *idx = sid_malloc((size_t)m * sizeof(int32_t));
    float *a = sid_malloc((size_t)m * 3 * sizeof(float)), *s = a + m, *t = a + 2 * m;
    for (int i = 0; i < m; i++) {
        idx[i] = in->prompt[i] < 0 ? d->prompts.n : in->prompt[i];
        a[i] = sid_schedule_sqrt_ab(&d->sched, in->t[i]), s[i] = sid_schedule_sqrt_1m_ab(&d->sched, in->t[i]);
        t[i] = (float)in->t[i];
    }
    const sid_backend *be = d->be;
    be->upload(d->r_idx, idx, (size_t)m * sizeof(int32_t));
    be->upload(d->r_a, a, (size_t)m * sizeof(float)), be->upload(d->r_s, s, (size_t)m * sizeof(float));
    be->upload(d->r_t, t, (size_t)m * sizeof(float));
    be->upload(d->r_z, in->z, (size_t)m * d->D * sizeof(float)), be->upload(d->r_eps, in->eps, (size_t)m * d->D * sizeof(float));
    if (in->z_extra) be->upload(d->r_zx, in->z_extra, (size_t)(d->cfg.gen_steps - 1) * m * d->D * sizeof(float));
    be->gather_rows(d->ctx_round, d->ctx, d->r_idx, m, (size_t)d->T * d->Wt);
    free(idx), free(a);
}

void sid_distill_read_stats(sid_distill *d, sid_iter_stats *st) {
    double v[4];
    d->be->download(v, d->stats, sizeof v);
    st->loss_fake += v[0], st->loss_gen += v[1];
    st->nonfinite_fake += (size_t)v[2], st->nonfinite_gen += (size_t)v[3];
    d->be->fill((float *)d->stats, 0.0f, 8);  // four doubles are eight floats of zero bits
}

// ---------------------------------------------------------------- guided evaluation
typedef struct {
    sid_unet_saved *s;
    int two;
} guided_saved;

// eps [m, D]: the kappa-guided prediction (one batched [uncond; cond] pass unless kappa == 1).
static guided_saved guided_f(sid_distill *d, const sid_params *ps, const float *xt, float kappa, int m, float *eps) {
    sid_ctx c = {(sid_params *)ps, &d->act, d->be, &d->meta};
    const sid_backend *be = d->be;
    const sid_unet *u = &d->teacher.unet;
    if (kappa == 1.0f) return (guided_saved){sid_unet_forward(&c, u, eps, xt, d->r_t, d->ctx_round, m, d->H, d->W, d->T), 0};
    const size_t n = (size_t)m * d->D, cs = (size_t)m * d->T * d->Wt;
    float *c2 = sid_ctx_out(&c, 2 * cs), *o2 = sid_ctx_out(&c, 2 * n);
    be->scale_fwd(c2, d->ctx_uncond, 1.0f, cs), be->scale_fwd(c2 + cs, d->ctx_round, 1.0f, cs);
    guided_saved g = {sid_unet_forward_pairs(&c, u, o2, xt, d->r_t, c2, 2 * m, d->H, d->W, d->T), 1};
    be->cfg_combine_fwd(eps, o2, o2 + n, kappa, n);
    return g;
}

// Backward of guided_f for d(loss)/d(eps): parameter gradients (unless ps is frozen) and dxt += d/dx_t.
static void guided_b(sid_distill *d, const sid_params *ps, guided_saved g, const float *deps, float kappa, int m, float *dxt) {
    sid_ctx c = {(sid_params *)ps, &d->act, d->be, &d->meta};
    const sid_backend *be = d->be;
    const sid_unet *u = &d->teacher.unet;
    const size_t n = (size_t)m * d->D;
    if (!g.two) {
        sid_unet_backward(&c, u, dxt, NULL, deps, g.s);
        return;
    }
    float *do2 = sid_ctx_floats(&c, 2 * n);
    be->cfg_combine_bwd(do2, do2 + n, deps, kappa, n);
    sid_unet_backward(&c, u, dxt, NULL, do2, g.s);  // a paired pass: dxt += the two halves' gradient
}

// ---------------------------------------------------------------- dropping NaN samples
// keep[i] = 0 for the samples whose flag the device set (one small download per round).
static unsigned char *download_keep(sid_distill *d, int m) {
    float *f = sid_malloc((size_t)m * sizeof(float));
    d->be->download(f, d->r_flags, (size_t)m * sizeof(float));
    unsigned char *keep = sid_malloc((size_t)m);
    for (int i = 0; i < m; i++) keep[i] = f[i] == 0.0f;
    free(f);
    return keep;
}

// The round's inputs without the dropped samples (keep[i] == 0), in heap copies.
typedef struct {
    sid_round_inputs in;
    int *prompt;
    float *z, *eps, *z_extra;
    int32_t *t;
} kept_inputs;

static void keep_only(const sid_distill *d, const sid_round_inputs *in, const unsigned char *keep, kept_inputs *k) {
    const size_t D = d->D;
    const int m = in->m, extra = in->z_extra ? d->cfg.gen_steps - 1 : 0;
    int n = 0;
    for (int i = 0; i < m; i++) n += keep[i] != 0;
    k->prompt = sid_malloc((size_t)n * sizeof(int)), k->t = sid_malloc((size_t)n * sizeof(int32_t));
    k->z = sid_malloc((size_t)n * D * sizeof(float)), k->eps = sid_malloc((size_t)n * D * sizeof(float));
    k->z_extra = extra ? sid_malloc((size_t)extra * n * D * sizeof(float)) : NULL;
    for (int i = 0, j = 0; i < m; i++) {
        if (!keep[i]) continue;
        k->prompt[j] = in->prompt[i], k->t[j] = in->t[i];
        memcpy(k->z + j * D, in->z + i * D, D * sizeof(float)), memcpy(k->eps + j * D, in->eps + i * D, D * sizeof(float));
        for (int s = 0; s < extra; s++)
            memcpy(k->z_extra + ((size_t)s * n + j) * D, in->z_extra + ((size_t)s * m + i) * D, D * sizeof(float));
        j++;
    }
    k->in = (sid_round_inputs){n, k->prompt, k->z, k->eps, k->z_extra, k->t};
}

static void kept_free(kept_inputs *k) { free(k->prompt), free(k->z), free(k->eps), free(k->z_extra), free(k->t); }

typedef void (*round_fn)(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st);

// After a round's forward: when some samples were dropped (keep[i] == 0), counts them and runs the
// round again on the others (a dropped sample's NaN activations would turn every weight gradient NaN
// in the backward, 0 x NaN; so the others still train, docs/sid.md). 1 if it did, and the caller's
// round ends there; frees keep either way.
static int rerun_without_dropped(sid_distill *d, const sid_round_inputs *in, unsigned char *keep, int *dropped,
                                 sid_iter_stats *st, round_fn round) {
    int nkeep = 0;
    for (int i = 0; i < in->m; i++) nkeep += keep[i] != 0;
    if (nkeep < in->m) {
        *dropped += in->m - nkeep;
        if (nkeep) {
            kept_inputs k;
            keep_only(d, in, keep, &k);
            round(d, &k.in, st);
            kept_free(&k);
        }
    }
    free(keep);
    return nkeep < in->m;
}

// ---------------------------------------------------------------- phase 1: the fake score network
void sid_distill_fake_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st) {
    const int m = in->m;
    const size_t n = (size_t)m * d->D;
    const sid_backend *be = d->be;
    sid_arena_reset(&d->act, 0), sid_arena_reset(&d->meta, 0);
    sid_ctx c = {&d->fake, &d->act, be, &d->meta};
    upload_round(d, in);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *eps_hat = sid_ctx_out(&c, n), *deps = sid_ctx_floats(&c, n);
    sid_generator_apply(&d->g, &d->gen, &d->act, d->ctx_round, d->T, d->r_z, in->z_extra ? d->r_zx : NULL, m, xg);
    be->add_noise_fwd(xt, xg, d->r_eps, d->r_a, d->r_s, m, d->D);
    guided_saved g = guided_f(d, &d->fake, xt, d->cfg.kappa[0], m, eps_hat);
    be->fill(d->r_flags, 0.0f, (size_t)m);
    be->nan_rows(d->r_flags, eps_hat, m, d->D);
    if (rerun_without_dropped(d, in, download_keep(d, m), &st->dropped_fake, st, sid_distill_fake_round)) return;
    const float scale = 1.0f / d->cfg.batch;  // the divisor stays the batch, whatever is dropped
    be->dsm_loss_fwd(d->stats, eps_hat, d->r_eps, scale, m, d->D);
    be->dsm_loss_bwd(deps, eps_hat, d->r_eps, scale, m, d->D);
    guided_b(d, &d->fake, g, deps, d->cfg.kappa[0], m, NULL);
}

static void adam(const sid_distill *d, sid_params *ps, float *m, float *v, float lr, int64_t step) {
    d->be->adam(ps->data, ps->grad, m, v, ps->total, lr, d->cfg.beta1, d->cfg.beta2, d->cfg.adam_eps, 0.0f, 0, step);
}

void sid_distill_fake_update(sid_distill *d, sid_iter_stats *st) {
    (void)st;  // the sanitised count is on the device until sid_distill_read_stats
    d->be->sanitize(d->fake.grad, d->fake.total, 1e5f, -1e5f, d->stats + 2);
    adam(d, &d->fake, d->fake_m, d->fake_v, d->cfg.lr, ++d->fake_steps);
    d->be->fill(d->fake.grad, 0.0f, d->fake.total);
}

// ---------------------------------------------------------------- phase 2: the generator
void sid_distill_gen_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st) {
    const int m = in->m;
    const size_t n = (size_t)m * d->D, D = d->D;
    const sid_backend *be = d->be;
    sid_arena_reset(&d->act, 0), sid_arena_reset(&d->meta, 0);
    sid_ctx c = {&d->gen, &d->act, be, &d->meta};
    upload_round(d, in);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *ef = sid_ctx_out(&c, n), *er = sid_ctx_out(&c, n);
    float *dxt = sid_ctx_floats(&c, n), *dxg = sid_ctx_floats(&c, n), *dyf = sid_ctx_floats(&c, n), *dyr = sid_ctx_floats(&c, n);
    float *def = sid_ctx_floats(&c, n), *der = sid_ctx_floats(&c, n);
    const int clip = d->g.clip_sample;
    const float r = d->g.clip_range;
    float *yf0 = clip ? sid_ctx_out(&c, n) : NULL, *yr0 = clip ? sid_ctx_out(&c, n) : NULL;
    sid_generator_saved gs;
    sid_generator_forward(&d->g, &d->gen, &d->act, d->ctx_round, d->T, d->r_z, in->z_extra ? d->r_zx : NULL, m, xg, &gs);
    be->add_noise_fwd(xt, xg, d->r_eps, d->r_a, d->r_s, m, D);
    sid_params fake_frozen = d->fake;  // psi is frozen here: gradients reach only its input
    fake_frozen.grad = NULL;
    guided_saved gf = guided_f(d, &fake_frozen, xt, d->cfg.kappa[1], m, ef);
    guided_saved gr = guided_f(d, &d->teacher.unet_ps, xt, d->cfg.kappa[3], m, er);
    // y = (x_t - s eps) / a per sample with its own t, in place (clamped as the scheduler's x0 when clip_sample)
    float *yf = ef, *yr = er;
    be->x0_from_eps_fwd(yf, xt, ef, d->r_a, d->r_s, m, D), be->x0_from_eps_fwd(yr, xt, er, d->r_a, d->r_s, m, D);
    if (clip) {
        be->scale_fwd(yf0, yf, 1.0f, n), be->scale_fwd(yr0, yr, 1.0f, n);
        be->clamp_fwd(yf, yf0, -r, r, n), be->clamp_fwd(yr, yr0, -r, r, n);
    }
    be->fill(d->r_flags, 0.0f, (size_t)m);
    be->nan_rows(d->r_flags, xg, m, D), be->nan_rows(d->r_flags, yf, m, D), be->nan_rows(d->r_flags, yr, m, D);
    if (rerun_without_dropped(d, in, download_keep(d, m), &st->dropped_gen, st, sid_distill_gen_round)) return;
    const float alpha = d->cfg.alpha, inv_b = 1.0f / d->cfg.batch;
    be->sid_loss_fwd(d->stats + 1, xg, yr, yf, alpha, inv_b, m, D);
    be->sid_loss_bwd(dxg, dyr, dyf, xg, yr, yf, alpha, inv_b, m, D);  // dxg: the explicit x_g term
    if (clip) {  // the clamps' gradients: zero where a prediction was clamped
        float *gr_ = sid_ctx_floats(&c, n), *gf_ = sid_ctx_floats(&c, n);
        be->clamp_bwd(gr_, dyr, yr0, -r, r, n), be->clamp_bwd(gf_, dyf, yf0, -r, r, n);
        dyr = gr_, dyf = gf_;
    }
    // through y = (x_t - s eps) / a: directly into x_t, and into each network's eps
    be->x0_from_eps_bwd(dxt, der, dyr, d->r_a, d->r_s, m, D), be->x0_from_eps_bwd(dxt, def, dyf, d->r_a, d->r_s, m, D);
    guided_b(d, &d->teacher.unet_ps, gr, der, d->cfg.kappa[3], m, dxt);  // teacher: input gradient only
    guided_b(d, &fake_frozen, gf, def, d->cfg.kappa[1], m, dxt);       // fake: input gradient only
    be->add_noise_bwd(dxg, NULL, dxt, d->r_a, d->r_s, m, D);          // x_t = a x_g + s eps
    sid_generator_backward(&d->g, &d->gen, &d->act, &gs, dxg, m);
}

void sid_distill_gen_update(sid_distill *d, sid_iter_stats *st) {
    (void)st;
    d->be->sanitize(d->gen.grad, d->gen.total, 1e5f, -1e5f, d->stats + 3);
    adam(d, &d->gen, d->gen_m, d->gen_v, d->cfg.glr, ++d->gen_steps_done);
    d->be->fill(d->gen.grad, 0.0f, d->gen.total);
}

void sid_distill_ema(sid_distill *d) {
    const double beta = d->cfg.ema_halflife_img > 0
                            ? sid_ema_beta(d->cfg.batch, d->cfg.ema_halflife_img, d->cfg.ema_rampup, (double)d->nimg)
                            : 0.0;
    d->be->ema(d->ema.data, d->gen.data, d->gen.total, (float)beta);
    d->nimg += d->cfg.batch;
}
