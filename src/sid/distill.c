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

static void copy_layout(sid_params *dst, const sid_params *src, int with_grad) {
    *dst = *src;
    dst->items = NULL, dst->n = dst->cap = 0;  // declared again below so it owns its names
    dst->data = dst->grad = NULL;
    dst->total = 0;
    for (int i = 0; i < src->n; i++)
        sid_params_add(dst, src->items[i].ndim, src->items[i].shape, "%s", src->items[i].name);
    sid_params_alloc(dst, with_grad);
    memcpy(dst->data, src->data, src->total * sizeof(float));
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
    float *out = sid_malloc((size_t)n * T * Wt * sizeof(float));
    // in chunks: the text embeddings are constants, computed once (docs/sid.md)
    for (int i0 = 0; i0 < n; i0 += 64) {
        const int b = n - i0 < 64 ? n - i0 : 64;
        sid_arena_reset(&d->act, 0);
        sid_ctx c = {&d->teacher.clip_ps, &d->act, NULL};
        if (!sid_clip_forward(&c, &d->teacher.clip, out + (size_t)i0 * T * Wt, ids + (size_t)i0 * T, b, T,
                              d->teacher.clip_skip_layers)) {
            free(ids), free(out);
            return NULL;
        }
    }
    free(ids);
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
    d->g = (sid_generator){&d->teacher.unet, &d->sched, cfg->t_init, cfg->gen_steps, d->teacher.clip_sample,
                           d->teacher.clip_sample_range, d->H, d->W};
    sid_arena_init(&d->act, "distillation activations", SID_DISTILL_ARENA_BYTES);  // address space; used as needed
    if (encode_all(d)) goto fail;
    copy_layout(&d->fake, &d->teacher.unet_ps, 1);
    copy_layout(&d->gen, &d->teacher.unet_ps, 1);
    copy_layout(&d->ema, &d->teacher.unet_ps, 0);
    const size_t nf = d->fake.total;
    d->fake_v = sid_calloc(nf * sizeof(float)), d->gen_v = sid_calloc(nf * sizeof(float));
    if (cfg->beta1 > 0) d->fake_m = sid_calloc(nf * sizeof(float)), d->gen_m = sid_calloc(nf * sizeof(float));
    const size_t cs = (size_t)cfg->micro * d->T * d->Wt;
    d->ctx_round = sid_malloc(cs * sizeof(float)), d->ctx_uncond = sid_malloc(cs * sizeof(float));
    for (int i = 0; i < cfg->micro; i++)
        memcpy(d->ctx_uncond + (size_t)i * d->T * d->Wt, d->ctx + (size_t)d->prompts.n * d->T * d->Wt,
               (size_t)d->T * d->Wt * sizeof(float));
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
    free(d->fake_m), free(d->fake_v), free(d->gen_m), free(d->gen_v);
    sid_tokenizer_free(d->tok);
    sid_prompts_free(&d->prompts);
    free(d->ctx), free(d->ctx_round), free(d->ctx_uncond);
    sid_schedule_free(&d->sched);
    if (d->act.base) sid_arena_free(&d->act);
    free(d);
}

static void gather_ctx(sid_distill *d, const int *prompt, int m) {
    const size_t row = (size_t)d->T * d->Wt;
    for (int i = 0; i < m; i++) {
        const int p = prompt[i] < 0 ? d->prompts.n : prompt[i];
        memcpy(d->ctx_round + i * row, d->ctx + (size_t)p * row, row * sizeof(float));
    }
}

// ---------------------------------------------------------------- guided evaluation
typedef struct {
    sid_unet_saved *s;
    int two;
} guided_saved;

// eps [m, D]: the kappa-guided prediction (one batched [uncond; cond] pass unless kappa == 1).
static guided_saved guided_f(sid_distill *d, const sid_params *ps, const float *xt, const float *tf, float kappa, int m,
                             float *eps) {
    sid_ctx c = {(sid_params *)ps, &d->act, NULL};
    const sid_unet *u = &d->teacher.unet;
    if (kappa == 1.0f) return (guided_saved){sid_unet_forward(&c, u, eps, xt, tf, d->ctx_round, m, d->H, d->W, d->T), 0};
    const size_t n = (size_t)m * d->D, cs = (size_t)m * d->T * d->Wt;
    float *x2 = sid_ctx_out(&c, 2 * n), *t2 = sid_ctx_out(&c, 2 * (size_t)m), *c2 = sid_ctx_out(&c, 2 * cs);
    float *o2 = sid_ctx_out(&c, 2 * n);
    memcpy(x2, xt, n * 4), memcpy(x2 + n, xt, n * 4), memcpy(t2, tf, m * 4), memcpy(t2 + m, tf, m * 4);
    memcpy(c2, d->ctx_uncond, cs * 4), memcpy(c2 + cs, d->ctx_round, cs * 4);
    guided_saved g = {sid_unet_forward(&c, u, o2, x2, t2, c2, 2 * m, d->H, d->W, d->T), 1};
    sid_cfg_combine(eps, o2, o2 + n, kappa, n);
    return g;
}

// Backward of guided_f for d(loss)/d(eps): parameter gradients (unless ps is frozen) and dxt += d/dx_t.
static void guided_b(sid_distill *d, const sid_params *ps, guided_saved g, const float *deps, float kappa, int m, float *dxt) {
    sid_ctx c = {(sid_params *)ps, &d->act, NULL};
    const sid_unet *u = &d->teacher.unet;
    const size_t n = (size_t)m * d->D;
    if (!g.two) {
        sid_unet_backward(&c, u, dxt, NULL, deps, g.s);
        return;
    }
    float *do2 = sid_ctx_out(&c, 2 * n), *dx2 = dxt ? sid_ctx_floats(&c, 2 * n) : NULL;
    for (size_t i = 0; i < n; i++) do2[i] = (1 - kappa) * deps[i], do2[n + i] = kappa * deps[i];
    sid_unet_backward(&c, u, dx2, NULL, do2, g.s);
    if (dxt)
        for (size_t i = 0; i < n; i++) dxt[i] += dx2[i] + dx2[n + i];
}

// ---------------------------------------------------------------- dropping NaN samples
static int sample_has_nan(const float *x, size_t D) {
    for (size_t i = 0; i < D; i++)
        if (isnan(x[i])) return 1;
    return 0;
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
    sid_arena_reset(&d->act, 0);
    sid_ctx c = {&d->fake, &d->act, NULL};
    gather_ctx(d, in->prompt, m);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *eps_hat = sid_ctx_out(&c, n), *deps = sid_ctx_floats(&c, n);
    float *tf = sid_ctx_out(&c, (size_t)m);
    sid_generator_apply(&d->g, &d->gen, &d->act, d->ctx_round, d->T, in->z, in->z_extra, m, xg);  // no gradient
    sid_add_noise(&d->sched, xt, xg, in->eps, in->t, m, d->D);
    for (int i = 0; i < m; i++) tf[i] = (float)in->t[i];
    guided_saved g = guided_f(d, &d->fake, xt, tf, d->cfg.kappa[0], m, eps_hat);
    unsigned char *keep = sid_malloc((size_t)m);
    for (int i = 0; i < m; i++) keep[i] = !sample_has_nan(eps_hat + i * d->D, d->D);
    if (rerun_without_dropped(d, in, keep, &st->dropped_fake, st, sid_distill_fake_round)) return;
    double loss = 0;
    const float scale = 1.0f / d->cfg.batch;  // the divisor stays the batch, whatever is dropped
    for (int i = 0; i < m; i++) {
        const float *e = eps_hat + i * d->D, *t = in->eps + i * d->D;
        for (size_t k = 0; k < d->D; k++) {
            const float r = e[k] - t[k];
            loss += (double)r * r;
            deps[i * d->D + k] = 2 * scale * r;
        }
    }
    st->loss_fake += loss * scale;
    guided_b(d, &d->fake, g, deps, d->cfg.kappa[0], m, NULL);
}

static void adam(const sid_distill *d, sid_params *ps, float *m, float *v, float lr, int64_t step) {
    const sid_adam_cfg a = {.lr = lr, .beta1 = d->cfg.beta1, .beta2 = d->cfg.beta2, .eps = d->cfg.adam_eps};
    sid_adam_step(ps->data, ps->grad, m, v, ps->total, &a, step);
}

void sid_distill_fake_update(sid_distill *d, sid_iter_stats *st) {
    st->nonfinite_fake += sid_nan_to_num(d->fake.grad, d->fake.total, 1e5f, -1e5f);
    adam(d, &d->fake, d->fake_m, d->fake_v, d->cfg.lr, ++d->fake_steps);
    memset(d->fake.grad, 0, d->fake.total * sizeof(float));
}

// ---------------------------------------------------------------- phase 2: the generator
void sid_distill_gen_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st) {
    const int m = in->m;
    const size_t n = (size_t)m * d->D, D = d->D;
    sid_arena_reset(&d->act, 0);
    sid_ctx c = {&d->gen, &d->act, NULL};
    gather_ctx(d, in->prompt, m);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *ef = sid_ctx_out(&c, n), *er = sid_ctx_out(&c, n);
    float *tf = sid_ctx_out(&c, (size_t)m), *dxt = sid_ctx_floats(&c, n), *dxg = sid_ctx_floats(&c, n);
    float *def = sid_ctx_floats(&c, n), *der = sid_ctx_floats(&c, n);
    float *yf0 = d->g.clip_sample ? sid_ctx_out(&c, n) : NULL, *yr0 = d->g.clip_sample ? sid_ctx_out(&c, n) : NULL;
    sid_generator_saved gs;
    sid_generator_forward(&d->g, &d->gen, &d->act, d->ctx_round, d->T, in->z, in->z_extra, m, xg, &gs);
    sid_add_noise(&d->sched, xt, xg, in->eps, in->t, m, D);
    for (int i = 0; i < m; i++) tf[i] = (float)in->t[i];
    sid_params fake_frozen = d->fake;  // psi is frozen here: gradients reach only its input
    fake_frozen.grad = NULL;
    guided_saved gf = guided_f(d, &fake_frozen, xt, tf, d->cfg.kappa[1], m, ef);
    guided_saved gr = guided_f(d, &d->teacher.unet_ps, xt, tf, d->cfg.kappa[3], m, er);
    unsigned char *keep = sid_malloc((size_t)m);
    for (int i = 0; i < m; i++) {
        const float a = sid_schedule_sqrt_ab(&d->sched, in->t[i]), s = sid_schedule_sqrt_1m_ab(&d->sched, in->t[i]);
        const size_t o = (size_t)i * D;
        // y = (x_t - s eps) / a, per sample with its own t (clamped as the scheduler's x0 when clip_sample)
        float *yf = ef + o, *yr = er + o;
        for (size_t k = 0; k < D; k++) yf[k] = (xt[o + k] - s * yf[k]) / a, yr[k] = (xt[o + k] - s * yr[k]) / a;
        if (yf0) {
            memcpy(yf0 + o, yf, D * sizeof(float)), memcpy(yr0 + o, yr, D * sizeof(float));
            sid_clip_x0(yf, D, d->g.clip_range), sid_clip_x0(yr, D, d->g.clip_range);
        }
        keep[i] = !(sample_has_nan(xg + o, D) || sample_has_nan(yf, D) || sample_has_nan(yr, D));
    }
    if (rerun_without_dropped(d, in, keep, &st->dropped_gen, st, sid_distill_gen_round)) return;
    const float alpha = d->cfg.alpha, inv_b = 1.0f / d->cfg.batch;
    float *mask_r = sid_ctx_out(&c, D), *mask_f = sid_ctx_out(&c, D);
    for (size_t k = 0; k < D; k++) mask_r[k] = mask_f[k] = 1;
    double loss = 0;
    for (int i = 0; i < m; i++) {
        const float a = sid_schedule_sqrt_ab(&d->sched, in->t[i]), s = sid_schedule_sqrt_1m_ab(&d->sched, in->t[i]);
        const size_t o = (size_t)i * D;
        const float *yf = ef + o, *yr = er + o;
        double w = 0;
        for (size_t k = 0; k < D; k++) w += fabs((double)xg[o + k] - yr[k]);
        w = w / D > 1e-5 ? w / D : 1e-5;  // stop-gradient normaliser
        const float kw = (float)(inv_b / w);
        if (yf0) {  // the clamps' gradients: 1 where a prediction was not clamped, else 0
            for (size_t k = 0; k < D; k++) mask_r[k] = mask_f[k] = 1;
            sid_clip_x0_backward(mask_r, yr0 + o, D, d->g.clip_range);
            sid_clip_x0_backward(mask_f, yf0 + o, D, d->g.clip_range);
        }
        double l = 0;
        for (size_t k = 0; k < D; k++) {
            const float dd = yr[k] - yf[k], e = (yr[k] - xg[o + k]) - alpha * dd;
            l += (double)dd * e;
            const float g_yr = mask_r[k] * kw * (e + (1 - alpha) * dd), g_yf = mask_f[k] * kw * (alpha * dd - e);
            dxg[o + k] = -kw * dd;                      // the explicit x_g term
            der[o + k] = -(s / a) * g_yr, def[o + k] = -(s / a) * g_yf;
            dxt[o + k] = (g_yr + g_yf) / a;             // through y = (x_t - s eps) / a directly
        }
        loss += l / w;
    }
    st->loss_gen += loss * inv_b;
    guided_b(d, &d->teacher.unet_ps, gr, der, d->cfg.kappa[3], m, dxt);  // teacher: input gradient only
    guided_b(d, &fake_frozen, gf, def, d->cfg.kappa[1], m, dxt);       // fake: input gradient only
    for (int i = 0; i < m; i++) {  // x_t = a x_g + s eps
        const float a = sid_schedule_sqrt_ab(&d->sched, in->t[i]);
        for (size_t k = 0; k < D; k++) dxg[(size_t)i * D + k] += a * dxt[(size_t)i * D + k];
    }
    sid_generator_backward(&d->g, &d->gen, &d->act, &gs, dxg, m);
}

void sid_distill_gen_update(sid_distill *d, sid_iter_stats *st) {
    st->nonfinite_gen += sid_nan_to_num(d->gen.grad, d->gen.total, 1e5f, -1e5f);
    adam(d, &d->gen, d->gen_m, d->gen_v, d->cfg.glr, ++d->gen_steps_done);
    memset(d->gen.grad, 0, d->gen.total * sizeof(float));
}

void sid_distill_ema(sid_distill *d) {
    const double beta = d->cfg.ema_halflife_img > 0
                            ? sid_ema_beta(d->cfg.batch, d->cfg.ema_halflife_img, d->cfg.ema_rampup, (double)d->nimg)
                            : 0.0;
    sid_ema_update(d->ema.data, d->gen.data, d->gen.total, (float)beta);
    d->nimg += d->cfg.batch;
}
