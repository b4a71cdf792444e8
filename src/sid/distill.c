#define _GNU_SOURCE
#include "sid/distill.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "data/prompts.h"
#include "diffusion/ddim.h"
#include "eval/classifier.h"
#include "eval/eval.h"
#include "io/file.h"
#include "io/json.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "ops/ops.h"
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
    if (c->gen_steps < 1 || c->gen_steps > 4) BAD("distill: --gen-steps %d must be 1..4", c->gen_steps);
    if (!(c->duration_img > 0) || !(c->tick_img > 0) || c->snapshot_ticks < 1)
        BAD("distill: duration, tick and snapshot interval must be positive");
    if (!(c->ema_halflife_img >= 0)) BAD("distill: --ema must be >= 0");
    if (c->metrics && c->metrics_n < 10) BAD("distill: --metrics-n must be >= 10");
    return 0;
#undef BAD
}

struct sid_distill {
    sid_distill_cfg cfg;
    sid_sd_model teacher;
    sid_params fake, gen, ema;  // the teacher UNet's layout; the teacher's sid_unet indexes all three
    float *fake_m, *fake_v, *gen_m, *gen_v;
    int64_t fake_steps, gen_steps_done;
    sid_tokenizer *tok;
    int T, Wt;  // tokens per prompt, text width
    sid_prompts prompts;
    float *ctx;        // [(n + 1), T, Wt]: every prompt's embedding, then the empty prompt's
    float *ctx_round;  // [micro, T, Wt]
    float *ctx_uncond; // [micro, T, Wt]: the empty prompt's, repeated
    sid_schedule sched;
    sid_arena act;
    int C, H, W;
    size_t D;
    int64_t nimg;
    sid_rng rng;
};

const sid_params *sid_distill_fake(const sid_distill *d) { return &d->fake; }
const sid_params *sid_distill_gen(const sid_distill *d) { return &d->gen; }
const sid_params *sid_distill_gen_ema(const sid_distill *d) { return &d->ema; }
int sid_distill_n_prompts(const sid_distill *d) { return d->prompts.n; }
size_t sid_distill_sample_size(const sid_distill *d) { return d->D; }

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

static int encode_all(sid_distill *d) {
    const int n = d->prompts.n, T = d->T, Wt = d->Wt;
    int32_t *ids = sid_malloc((size_t)(n + 1) * T * sizeof(int32_t));
    for (int i = 0; i <= n; i++)
        if (sid_tokenizer_encode(d->tok, i < n ? d->prompts.text[i] : "", ids + (size_t)i * T, T) < 0) {
            sid_set_error("%s: line %d cannot be tokenised", d->cfg.prompts_file, i + 1);
            free(ids);
            return -1;
        }
    d->ctx = sid_malloc((size_t)(n + 1) * T * Wt * sizeof(float));
    // in chunks: the text embeddings are constants, computed once (sid-lsg-spec.md 9.27)
    for (int i0 = 0; i0 <= n; i0 += 64) {
        const int b = n + 1 - i0 < 64 ? n + 1 - i0 : 64;
        sid_arena_reset(&d->act, 0);
        sid_ctx c = {&d->teacher.clip_ps, &d->act};
        if (!sid_clip_forward(&c, &d->teacher.clip, d->ctx + (size_t)i0 * T * Wt, ids + (size_t)i0 * T, b, T,
                              d->teacher.clip_skip_layers)) {
            free(ids);
            return -1;
        }
    }
    free(ids);
    return 0;
}

sid_distill *sid_distill_open(const sid_distill_cfg *cfg) {
    if (sid_distill_validate(cfg)) return NULL;
    sid_distill *d = sid_calloc(sizeof *d);
    d->cfg = *cfg;
    if (sid_sd_load(&d->teacher, cfg->teacher_dir, SID_SD_UNET | SID_SD_TEXT, 0)) goto fail;
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
    sid_arena_init(&d->act, "distillation activations", (size_t)12 << 30);  // address space; used as needed
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
    sid_ctx c = {(sid_params *)ps, &d->act};
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
    sid_ctx c = {(sid_params *)ps, &d->act};
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

// ---------------------------------------------------------------- the generator
typedef struct {
    int K;
    int32_t t[4];
    float *x_in[4];
    sid_unet_saved *s[4];
} gen_saved;

static void gen_forward(const sid_params *ps, const sid_unet *u, sid_arena *act, const sid_schedule *s, int t_init,
                        int K, const float *ctx, int M, const float *z, const float *z_extra, int N, int H, int W,
                        float *x, gen_saved *gs) {
    sid_ctx c = {(sid_params *)ps, act};
    const size_t D = (size_t)u->cfg.in_channels * H * W, n = (size_t)N * D;
    float *tf = sid_ctx_out(&c, (size_t)N), *eps = sid_ctx_out(&c, n);
    if (gs) gs->K = K;
    for (int i = 0; i < K; i++) {
        const int t = (int)(t_init * (1.0 - (double)i / K));  // truncation: 625, 312 / 625, 468, 312, 156
        const float a = sid_schedule_sqrt_ab(s, t), sg = sid_schedule_sqrt_1m_ab(s, t);
        float *xin = sid_ctx_out(&c, n);
        const float *noise = i == 0 ? z : z_extra + (size_t)(i - 1) * n;
        for (size_t k = 0; k < n; k++) xin[k] = (i == 0 ? 0.0f : a * x[k]) + sg * noise[k];
        for (int k = 0; k < N; k++) tf[k] = (float)t;
        sid_unet_saved *us = sid_unet_forward(&c, u, eps, xin, tf, ctx, N, H, W, M);
        for (size_t k = 0; k < n; k++) x[k] = (xin[k] - sg * eps[k]) / a;
        if (gs) gs->t[i] = t, gs->x_in[i] = xin, gs->s[i] = us;
    }
}

void sid_generator_apply(const sid_params *ps, const sid_unet *u, sid_arena *act, const sid_schedule *s, int t_init,
                         int steps, const float *ctx, int M, const float *z, const float *z_extra, int N, int H,
                         int W, float *x) {
    const size_t mark = sid_arena_mark(act);
    gen_forward(ps, u, act, s, t_init, steps, ctx, M, z, z_extra, N, H, W, x, NULL);
    sid_arena_reset(act, mark);
}

// dD: d(loss)/d(x_g); accumulates the generator's parameter gradients.
static void gen_backward(sid_distill *d, const gen_saved *gs, const float *dD_in, int N) {
    sid_ctx c = {&d->gen, &d->act};
    const size_t n = (size_t)N * d->D;
    float *dD = sid_ctx_out(&c, n), *deps = sid_ctx_out(&c, n), *dx = gs->K > 1 ? sid_ctx_out(&c, n) : NULL;
    memcpy(dD, dD_in, n * sizeof(float));
    for (int i = gs->K - 1; i >= 0; i--) {
        const float a = sid_schedule_sqrt_ab(&d->sched, gs->t[i]), sg = sid_schedule_sqrt_1m_ab(&d->sched, gs->t[i]);
        // D = (x_in - s eps) / a: d/d eps = -(s/a) dD, d/d x_in = dD / a (+ through the UNet)
        for (size_t k = 0; k < n; k++) deps[k] = -(sg / a) * dD[k];
        if (i > 0)
            for (size_t k = 0; k < n; k++) dx[k] = dD[k] / a;
        sid_unet_backward(&c, &d->teacher.unet, i > 0 ? dx : NULL, NULL, deps, gs->s[i]);
        if (i > 0) {  // x_in = a_i D_{i-1} + s_i noise
            for (size_t k = 0; k < n; k++) dD[k] = a * dx[k];
        }
    }
}

// ---------------------------------------------------------------- phase 1: the fake score network
static int sample_has_nan(const float *x, size_t D) {
    for (size_t i = 0; i < D; i++)
        if (isnan(x[i])) return 1;
    return 0;
}

void sid_distill_fake_round(sid_distill *d, const sid_round_inputs *in, sid_iter_stats *st) {
    const int m = in->m;
    const size_t n = (size_t)m * d->D;
    sid_arena_reset(&d->act, 0);
    sid_ctx c = {&d->fake, &d->act};
    gather_ctx(d, in->prompt, m);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *eps_hat = sid_ctx_out(&c, n), *deps = sid_ctx_floats(&c, n);
    float *tf = sid_ctx_out(&c, (size_t)m);
    sid_generator_apply(&d->gen, &d->teacher.unet, &d->act, &d->sched, d->cfg.t_init, d->cfg.gen_steps, d->ctx_round,
                        d->T, in->z, in->z_extra, m, d->H, d->W, xg);  // no gradient
    sid_add_noise(&d->sched, xt, xg, in->eps, in->t, m, d->D);
    for (int i = 0; i < m; i++) tf[i] = (float)in->t[i];
    guided_saved g = guided_f(d, &d->fake, xt, tf, d->cfg.kappa[0], m, eps_hat);
    double loss = 0;
    const float scale = 1.0f / d->cfg.batch;  // the divisor stays the batch, whatever is dropped
    for (int i = 0; i < m; i++) {
        const float *e = eps_hat + i * d->D, *t = in->eps + i * d->D;
        if (sample_has_nan(e, d->D)) {
            st->dropped_fake++;
            continue;
        }
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
    sid_ctx c = {&d->gen, &d->act};
    gather_ctx(d, in->prompt, m);
    float *xg = sid_ctx_out(&c, n), *xt = sid_ctx_out(&c, n), *ef = sid_ctx_out(&c, n), *er = sid_ctx_out(&c, n);
    float *tf = sid_ctx_out(&c, (size_t)m), *dxt = sid_ctx_floats(&c, n), *dxg = sid_ctx_floats(&c, n);
    float *def = sid_ctx_floats(&c, n), *der = sid_ctx_floats(&c, n);
    gen_saved gs;
    gen_forward(&d->gen, &d->teacher.unet, &d->act, &d->sched, d->cfg.t_init, d->cfg.gen_steps, d->ctx_round, d->T,
                in->z, in->z_extra, m, d->H, d->W, xg, &gs);
    sid_add_noise(&d->sched, xt, xg, in->eps, in->t, m, D);
    for (int i = 0; i < m; i++) tf[i] = (float)in->t[i];
    sid_params fake_frozen = d->fake;  // psi is frozen here: gradients reach only its input
    fake_frozen.grad = NULL;
    guided_saved gf = guided_f(d, &fake_frozen, xt, tf, d->cfg.kappa[1], m, ef);
    guided_saved gr = guided_f(d, &d->teacher.unet_ps, xt, tf, d->cfg.kappa[3], m, er);
    const float alpha = d->cfg.alpha, inv_b = 1.0f / d->cfg.batch;
    double loss = 0;
    for (int i = 0; i < m; i++) {
        const float a = sid_schedule_sqrt_ab(&d->sched, in->t[i]), s = sid_schedule_sqrt_1m_ab(&d->sched, in->t[i]);
        const size_t o = (size_t)i * D;
        // y = (x_t - s eps) / a, per sample with its own t
        float *yf = ef + o, *yr = er + o;
        for (size_t k = 0; k < D; k++) yf[k] = (xt[o + k] - s * yf[k]) / a, yr[k] = (xt[o + k] - s * yr[k]) / a;
        if (sample_has_nan(xg + o, D) || sample_has_nan(yf, D) || sample_has_nan(yr, D)) {
            st->dropped_gen++;
            continue;
        }
        double w = 0;
        for (size_t k = 0; k < D; k++) w += fabs((double)xg[o + k] - yr[k]);
        w = w / D > 1e-5 ? w / D : 1e-5;  // stop-gradient normaliser
        const float kw = (float)(inv_b / w);
        double l = 0;
        for (size_t k = 0; k < D; k++) {
            const float dd = yr[k] - yf[k], e = (yr[k] - xg[o + k]) - alpha * dd;
            l += (double)dd * e;
            const float g_yr = kw * (e + (1 - alpha) * dd), g_yf = kw * (alpha * dd - e);
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
    gen_backward(d, &gs, dxg, m);
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

// ---------------------------------------------------------------- the run
typedef struct {
    uint32_t *perm;
    int n, pos;
} prompt_stream;

static void stream_shuffle(prompt_stream *p, sid_rng *rng) {
    for (int i = 0; i < p->n; i++) p->perm[i] = (uint32_t)i;
    for (int i = p->n - 1; i > 0; i--) {  // Fisher-Yates from the run's counter-based stream
        uint32_t j;
        sid_rng_below(rng, (uint32_t)i + 1, &j, 1);
        uint32_t t = p->perm[i];
        p->perm[i] = p->perm[j], p->perm[j] = t;
    }
    p->pos = 0;
}

static int stream_next(prompt_stream *p, sid_rng *rng) {
    if (p->pos == p->n) stream_shuffle(p, rng);
    return (int)p->perm[p->pos++];
}

// Draws one round's inputs from the run's RNG; dropout marks prompts as the empty prompt.
static void draw_round(sid_distill *d, prompt_stream *ps, int dropout, int *prompt, float *z, float *z_extra,
                       float *eps, int32_t *t, sid_round_inputs *in) {
    const int m = d->cfg.micro;
    float u[4096];
    for (int i = 0; i < m; i++) prompt[i] = stream_next(ps, &d->rng);
    if (dropout) {
        sid_rng_uniform(&d->rng, u, (size_t)m);
        for (int i = 0; i < m; i++)
            if (u[i] < 0.1f) prompt[i] = -1;
    }
    sid_rng_normal(&d->rng, z, (size_t)m * d->D);
    if (d->cfg.gen_steps > 1) sid_rng_normal(&d->rng, z_extra, (size_t)(d->cfg.gen_steps - 1) * m * d->D);
    sid_rng_normal(&d->rng, eps, (size_t)m * d->D);
    sid_sample_timesteps(&d->rng, t, (size_t)m, d->cfg.tmin, d->cfg.tmax);
    *in = (sid_round_inputs){m, prompt, z, eps, d->cfg.gen_steps > 1 ? z_extra : NULL, t};
}

static int copy_file(const char *src, const char *dst) {
    char *data, tmp[2200];
    size_t len;
    if (sid_read_file(src, &data, &len)) return -1;
    FILE *f = sid_atomic_begin(dst, tmp, sizeof tmp);
    if (!f) return free(data), -1;
    fwrite(data, 1, len, f);
    free(data);
    return sid_atomic_commit(f, tmp, dst);
}

// The EMA generator as a model folder: its UNet, and the teacher's text encoder, tokenizer,
// scheduler and model_index.json, plus sid_generator.json saying how to run it.
static int export_generator(const sid_distill *d, const char *dir) {
    static const char *const copies[] = {"model_index.json", "text_encoder/config.json", "text_encoder/model.safetensors",
                                         "text_encoder/model.fp16.safetensors", "tokenizer/vocab.json",
                                         "tokenizer/merges.txt", "tokenizer/tokenizer_config.json",
                                         "tokenizer/special_tokens_map.json", "tokenizer/added_tokens.json",
                                         "scheduler/scheduler_config.json"};
    char a[2048], b[2048];
    static const char *const sub[] = {"unet", "text_encoder", "tokenizer", "scheduler"};
    for (int i = 0; i < 4; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, sub[i]);
        if (sid_mkdir_p(a)) return -1;
    }
    for (size_t i = 0; i < sizeof copies / sizeof copies[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", d->cfg.teacher_dir, copies[i]);
        snprintf(b, sizeof b, "%s/%s", dir, copies[i]);
        if (sid_file_exists(a) && copy_file(a, b)) return -1;
    }
    snprintf(a, sizeof a, "%s/unet/config.json", dir);
    if (sid_unet_config_save(&d->teacher.unet_cfg, a)) return -1;
    snprintf(a, sizeof a, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    if (sid_params_save(&d->ema, a, SID_F32)) return -1;
    snprintf(a, sizeof a, "%s/sid_generator.json", dir);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "SiD-LSG one-step generator");
    cJSON_AddNumberToObject(j, "t_init", d->cfg.t_init);
    cJSON_AddNumberToObject(j, "steps", d->cfg.gen_steps);
    cJSON_AddStringToObject(j, "teacher", d->cfg.teacher_dir);
    int rc = sid_json_save(a, j);
    cJSON_Delete(j);
    return rc;
}

static int save_state(const sid_distill *d, const prompt_stream *ps, const char *path) {
    const sid_params *nets[3] = {&d->fake, &d->gen, &d->ema};
    static const char *const names[3] = {"fake", "gen", "gen_ema"};
    sid_st_entry e[10];
    int n = 0;
    for (int k = 0; k < 3; k++) e[n++] = (sid_st_entry){names[k], SID_F32, 1, {(int64_t)nets[k]->total}, nets[k]->data};
    e[n++] = (sid_st_entry){"fake.adam_v", SID_F32, 1, {(int64_t)d->fake.total}, d->fake_v};
    e[n++] = (sid_st_entry){"gen.adam_v", SID_F32, 1, {(int64_t)d->gen.total}, d->gen_v};
    if (d->fake_m) {
        e[n++] = (sid_st_entry){"fake.adam_m", SID_F32, 1, {(int64_t)d->fake.total}, d->fake_m};
        e[n++] = (sid_st_entry){"gen.adam_m", SID_F32, 1, {(int64_t)d->gen.total}, d->gen_m};
    }
    e[n++] = (sid_st_entry){"prompt_perm", SID_I32, 1, {ps->n}, ps->perm};
    char v[6][32];
    snprintf(v[0], 32, "%lld", (long long)d->nimg), snprintf(v[1], 32, "%llu", (unsigned long long)d->rng.seed);
    snprintf(v[2], 32, "%llu", (unsigned long long)d->rng.offset), snprintf(v[3], 32, "%d", ps->pos);
    snprintf(v[4], 32, "%lld", (long long)d->fake_steps), snprintf(v[5], 32, "%lld", (long long)d->gen_steps_done);
    const char *kv[12] = {"nimg", v[0], "rng_seed", v[1], "rng_offset", v[2], "prompt_pos", v[3],
                          "fake_steps", v[4], "gen_steps", v[5]};
    return sid_st_write(path, e, n, kv, 6);
}

static int load_state(sid_distill *d, prompt_stream *ps, const char *path) {
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    struct {
        const char *name;
        float *dst;
        size_t n;
    } t[7] = {{"fake", d->fake.data, d->fake.total},      {"gen", d->gen.data, d->gen.total},
              {"gen_ema", d->ema.data, d->ema.total},     {"fake.adam_v", d->fake_v, d->fake.total},
              {"gen.adam_v", d->gen_v, d->gen.total},     {"fake.adam_m", d->fake_m, d->fake.total},
              {"gen.adam_m", d->gen_m, d->gen.total}};
    int rc = 0;
    for (int k = 0; k < 7 && !rc; k++) {
        if (!t[k].dst) continue;
        const sid_st_tensor *x = sid_st_find(&st, t[k].name);
        if (!x || sid_shape_numel(x->ndim, x->shape) != (int64_t)t[k].n) {
            sid_set_error("%s: '%s' missing or of another size (a different teacher or --beta1?)", path, t[k].name);
            rc = -1;
        } else {
            rc = sid_st_read_f32(&st, x, t[k].dst);
        }
    }
    const sid_st_tensor *p = sid_st_find(&st, "prompt_perm");
    if (!rc && (!p || p->dtype != SID_I32 || sid_shape_numel(p->ndim, p->shape) != ps->n)) {
        sid_set_error("%s: prompt_perm missing or for another prompt file", path);
        rc = -1;
    }
    if (!rc) memcpy(ps->perm, p->data, (size_t)ps->n * sizeof(int32_t));
    const char *keys[6] = {"nimg", "rng_seed", "rng_offset", "prompt_pos", "fake_steps", "gen_steps"};
    unsigned long long val[6] = {0};
    for (int k = 0; k < 6 && !rc; k++) {
        const cJSON *j = st.metadata ? cJSON_GetObjectItemCaseSensitive(st.metadata, keys[k]) : NULL;
        if (!cJSON_IsString(j)) {
            sid_set_error("%s: metadata lacks '%s'", path, keys[k]);
            rc = -1;
        } else {
            val[k] = strtoull(j->valuestring, NULL, 10);
        }
    }
    if (!rc) {
        d->nimg = (int64_t)val[0], d->rng.seed = val[1], d->rng.offset = val[2], ps->pos = (int)val[3];
        d->fake_steps = (int64_t)val[4], d->gen_steps_done = (int64_t)val[5];
    }
    sid_st_close(&st);
    return rc;
}

static int write_config(const sid_distill_cfg *c, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "teacher", c->teacher_dir);
    cJSON_AddStringToObject(j, "prompts", c->prompts_file);
    cJSON_AddNumberToObject(j, "alpha", c->alpha);
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "kappa%d", k + 1);
        cJSON_AddNumberToObject(j, key, c->kappa[k]);
    }
    cJSON_AddNumberToObject(j, "init_timestep", c->t_init);
    cJSON_AddNumberToObject(j, "tmin", c->tmin);
    cJSON_AddNumberToObject(j, "tmax", c->tmax);
    cJSON_AddNumberToObject(j, "lr", c->lr);
    cJSON_AddNumberToObject(j, "glr", c->glr);
    cJSON_AddNumberToObject(j, "beta1", c->beta1);
    cJSON_AddNumberToObject(j, "beta2", c->beta2);
    cJSON_AddNumberToObject(j, "adam_eps", c->adam_eps);
    cJSON_AddNumberToObject(j, "batch", c->batch);
    cJSON_AddNumberToObject(j, "micro", c->micro);
    cJSON_AddNumberToObject(j, "ema_halflife_img", c->ema_halflife_img);
    cJSON_AddNumberToObject(j, "ema_rampup", c->ema_rampup);
    cJSON_AddNumberToObject(j, "duration_img", c->duration_img);
    cJSON_AddNumberToObject(j, "tick_img", c->tick_img);
    cJSON_AddNumberToObject(j, "snapshot_ticks", c->snapshot_ticks);
    cJSON_AddNumberToObject(j, "seed", (double)c->seed);
    cJSON_AddNumberToObject(j, "gen_steps", c->gen_steps);
    cJSON_AddBoolToObject(j, "metrics", c->metrics);
    cJSON_AddNumberToObject(j, "metrics_n", c->metrics_n);
    cJSON_AddNumberToObject(j, "threads", sid_threads_get());
    int rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}

// Embeddings of arbitrary prompts (grids, metrics) with the teacher's text encoder.
static float *encode_list(sid_distill *d, const char *const *texts, int n) {
    const int T = d->T, Wt = d->Wt;
    int32_t *ids = sid_malloc((size_t)n * T * sizeof(int32_t));
    for (int i = 0; i < n; i++) sid_tokenizer_encode(d->tok, texts[i], ids + (size_t)i * T, T);
    float *out = sid_malloc((size_t)n * T * Wt * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += 64) {
        const int b = n - i0 < 64 ? n - i0 : 64;
        sid_arena_reset(&d->act, 0);
        sid_ctx c = {&d->teacher.clip_ps, &d->act};
        sid_clip_forward(&c, &d->teacher.clip, out + (size_t)i0 * T * Wt, ids + (size_t)i0 * T, b, T, d->teacher.clip_skip_layers);
    }
    free(ids);
    return out;
}

// One-step samples of the EMA generator for n prompts with noise from seed: x [n, D].
static void ema_samples(sid_distill *d, const float *ctx, int n, uint64_t seed, float *x) {
    sid_rng r = sid_rng_new(seed);
    float *z = sid_malloc((size_t)n * d->D * sizeof(float)), *ze = NULL;
    sid_rng_normal(&r, z, (size_t)n * d->D);
    if (d->cfg.gen_steps > 1) {
        ze = sid_malloc((size_t)(d->cfg.gen_steps - 1) * n * d->D * sizeof(float));
        sid_rng_normal(&r, ze, (size_t)(d->cfg.gen_steps - 1) * n * d->D);
    }
    for (int i0 = 0; i0 < n; i0 += 128) {
        const int b = n - i0 < 128 ? n - i0 : 128;
        sid_arena_reset(&d->act, 0);
        // the multi-step noise of a chunk is laid out [steps-1, b, D]: take this chunk's slices
        float *zc = NULL;
        if (ze) {
            zc = sid_malloc((size_t)(d->cfg.gen_steps - 1) * b * d->D * sizeof(float));
            for (int k = 0; k < d->cfg.gen_steps - 1; k++)
                memcpy(zc + (size_t)k * b * d->D, ze + ((size_t)k * n + i0) * d->D, (size_t)b * d->D * sizeof(float));
        }
        sid_generator_apply(&d->ema, &d->teacher.unet, &d->act, &d->sched, d->cfg.t_init, d->cfg.gen_steps,
                            ctx + (size_t)i0 * d->T * d->Wt, d->T, z + (size_t)i0 * d->D, zc, b, d->H, d->W,
                            x + (size_t)i0 * d->D);
        free(zc);
    }
    free(z), free(ze);
}

int sid_distill_run(const sid_distill_cfg *cfg) {
    if (sid_distill_validate(cfg)) return -1;
    char path[1200], state_path[1200];
    if (sid_mkdir_p(cfg->out_dir)) return -1;
    snprintf(state_path, sizeof state_path, "%s/training-state.safetensors", cfg->out_dir);
    if (cfg->resume && !sid_file_exists(state_path)) {
        sid_set_error("%s: nothing to resume (no training-state.safetensors)", cfg->out_dir);
        return -1;
    }
    sid_prompts evalp = {0};
    if (sid_prompts_load(cfg->eval_prompts, &evalp)) return -1;
    sid_classifier cls;
    int have_cls = 0;
    if (cfg->metrics) {
        if (sid_classifier_load(&cls, cfg->classifier_dir)) return sid_prompts_free(&evalp), -1;
        have_cls = 1;
    }
    sid_distill *d = sid_distill_open(cfg);
    if (!d) {
        sid_prompts_free(&evalp);
        if (have_cls) sid_classifier_free(&cls);
        return -1;
    }
    if (cfg->metrics && (d->C != 1 || d->H != 32)) {
        sid_set_error("%s: --metrics needs the built-in Fashion-MNIST teacher (1x32x32 samples)", cfg->teacher_dir);
        sid_distill_close(d);
        return -1;
    }
    // everything below is released by the one cleanup path at the end, whatever was reached
    prompt_stream ps = {sid_malloc((size_t)d->prompts.n * sizeof(uint32_t)), d->prompts.n, 0};
    float *grid_ctx = NULL, *grid = NULL, *metric_ctx = NULL, *mimg = NULL, *z = NULL, *eps = NULL, *ze = NULL;
    int *mcls = NULL, *prompt = NULL, nm = 0, rc = -1;
    int32_t *t = NULL;
    FILE *stats = NULL;
    sid_gauss ref = {0};
    snprintf(path, sizeof path, "%s/config.json", cfg->out_dir);
    if (write_config(cfg, path)) goto done;
    if (cfg->resume) {
        if (load_state(d, &ps, state_path)) goto done;
        fprintf(stderr, "distill: resuming %s at %lld images\n", state_path, (long long)d->nimg);
    } else {
        stream_shuffle(&ps, &d->rng);
    }

    // fixed grid: 4 held-out prompts per class (or the first 40), fixed noise
    enum { GRID = 40 };
    const char *gp[GRID];
    int ng = 0, per[16] = {0};
    for (int i = 0; i < evalp.n && ng < GRID; i++)
        if (evalp.cls[i] < 0 || (evalp.cls[i] < 16 && per[evalp.cls[i]] < 4)) {
            if (evalp.cls[i] >= 0) per[evalp.cls[i]]++;
            gp[ng++] = evalp.text[i];
        }
    grid_ctx = encode_list(d, gp, ng), grid = sid_malloc((size_t)GRID * d->D * sizeof(float));
    // metrics: balanced classes over the held-out prompts
    nm = cfg->metrics ? cfg->metrics_n : 0;
    if (nm) {
        const char **mp = sid_malloc((size_t)nm * sizeof *mp);
        mcls = sid_malloc((size_t)nm * sizeof(int));
        int *byc[10], nbc[10] = {0};
        for (int k = 0; k < 10; k++) byc[k] = sid_malloc((size_t)evalp.n * sizeof(int));
        for (int i = 0; i < evalp.n; i++)
            if (evalp.cls[i] >= 0 && evalp.cls[i] < 10) byc[evalp.cls[i]][nbc[evalp.cls[i]]++] = i;
        for (int i = 0; i < nm; i++) {
            const int k = i % 10;
            mcls[i] = k, mp[i] = nbc[k] ? evalp.text[byc[k][(i / 10) % nbc[k]]] : "";
        }
        metric_ctx = encode_list(d, mp, nm);
        mimg = sid_malloc((size_t)nm * d->D * sizeof(float));
        free(mp);
        for (int k = 0; k < 10; k++) free(byc[k]);
    }
    if (nm && sid_eval_reference(&cls, NULL, &ref)) goto done;

    const int m = cfg->micro, A = cfg->batch / cfg->micro;
    prompt = sid_malloc((size_t)m * sizeof(int));
    z = sid_malloc((size_t)m * d->D * 4), eps = sid_malloc((size_t)m * d->D * 4);
    ze = cfg->gen_steps > 1 ? sid_malloc((size_t)(cfg->gen_steps - 1) * m * d->D * 4) : NULL;
    t = sid_malloc((size_t)m * sizeof(int32_t));
    const int dropout = cfg->kappa[0] != 1.0f || cfg->kappa[1] != 1.0f;
    snprintf(path, sizeof path, "%s/stats.jsonl", cfg->out_dir);
    stats = fopen(path, cfg->resume ? "a" : "w");
    if (!stats) {
        sid_set_error("%s: cannot open for writing", path);
        goto done;
    }
    const int64_t end = cfg->stop_after_img > 0 && cfg->stop_after_img < cfg->duration_img ? cfg->stop_after_img
                                                                                          : (int64_t)cfg->duration_img;
    sid_progress bar;
    sid_progress_start(&bar, "distill", end);
    int64_t next_tick = ((d->nimg / (int64_t)cfg->tick_img) + 1) * (int64_t)cfg->tick_img;
    int tick = (int)(d->nimg / (int64_t)cfg->tick_img);
    sid_iter_stats acc = {0};
    int iters = 0;
    rc = 0;
    double t_tick = sid_now(), t_start = sid_now();
    if (!cfg->resume) {
        ema_samples(d, grid_ctx, ng, 2024, grid);
        snprintf(path, sizeof path, "%s/fakes_init.png", cfg->out_dir);
        if (sid_png_write_grid(path, grid, ng, d->C, d->H, d->W, 8, 2)) {
            rc = -1;
            goto done;
        }
    }
    double train_s = 0, train_flops = 0;  // this tick's iterations only (no snapshot work)
    while (d->nimg < end) {
        const double it_t0 = sid_now(), it_f0 = sid_ops_flops();
        sid_iter_stats st = {0};
        sid_round_inputs in;
        for (int r = 0; r < A; r++) {
            draw_round(d, &ps, dropout, prompt, z, ze, eps, t, &in);
            sid_distill_fake_round(d, &in, &st);
        }
        sid_distill_fake_update(d, &st);
        for (int r = 0; r < A; r++) {
            draw_round(d, &ps, 0, prompt, z, ze, eps, t, &in);
            sid_distill_gen_round(d, &in, &st);
        }
        sid_distill_gen_update(d, &st);
        sid_distill_ema(d);
        train_s += sid_now() - it_t0, train_flops += sid_ops_flops() - it_f0;
        if (!isfinite(st.loss_fake) || !isfinite(st.loss_gen)) {
            sid_set_error("distill: non-finite loss at %lld images (fake %g, generator %g); last state: %s",
                          (long long)d->nimg, st.loss_fake, st.loss_gen, state_path);
            rc = -1;
            break;
        }
        acc.loss_fake += st.loss_fake, acc.loss_gen += st.loss_gen, acc.dropped_fake += st.dropped_fake;
        acc.dropped_gen += st.dropped_gen, acc.nonfinite_fake += st.nonfinite_fake, acc.nonfinite_gen += st.nonfinite_gen;
        iters++;
        sid_progress_update(&bar, d->nimg);
        if (d->nimg >= next_tick || d->nimg >= end) {
            tick++;
            next_tick += (int64_t)cfg->tick_img;
            const double now = sid_now(), dt = now - t_tick;
            const int snap = tick % cfg->snapshot_ticks == 0 || d->nimg >= end;
            double fid = NAN, align = NAN;
            if (snap) {
                ema_samples(d, grid_ctx, ng, 2024, grid);
                snprintf(path, sizeof path, "%s/fakes_%06lld.png", cfg->out_dir, (long long)d->nimg);
                char gen_dir[1200];
                snprintf(gen_dir, sizeof gen_dir, "%s/generator", cfg->out_dir);
                if (sid_png_write_grid(path, grid, ng, d->C, d->H, d->W, 8, 2) || export_generator(d, gen_dir) ||
                    save_state(d, &ps, state_path)) {
                    rc = -1;
                    break;
                }
                if (nm) {
                    ema_samples(d, metric_ctx, nm, 7, mimg);
                    sid_eval_result er;
                    if (sid_eval_images(&cls, &ref, mimg, mcls, nm, &er) == 0) fid = er.fid, align = er.alignment;
                }
            }
            fprintf(stats,
                    "{\"tick\": %d, \"kimg\": %.3f, \"loss_fake\": %.6g, \"loss_gen\": %.6g, \"sec_per_iter\": %.4f, "
                    "\"img_per_s\": %.2f, \"sec_per_kimg\": %.2f, \"peak_activation_mb\": %.1f, \"dropped_nan\": %d, "
                    "\"sanitized_grads\": %zu, \"gflop_per_iter\": %.3f, \"gflop_per_s\": %.2f",
                    tick, d->nimg / 1000.0, acc.loss_fake / iters, acc.loss_gen / iters, dt / iters,
                    iters * cfg->batch / dt, dt / (iters * cfg->batch / 1000.0), d->act.peak / 1e6,
                    acc.dropped_fake + acc.dropped_gen, acc.nonfinite_fake + acc.nonfinite_gen,
                    train_flops * 1e-9 / iters, train_s > 0 ? train_flops * 1e-9 / train_s : 0.0);
            if (!isnan(fid)) fprintf(stats, ", \"fid\": %.3f, \"alignment\": %.4f", fid, align);
            fprintf(stats, ", \"elapsed_s\": %.1f}\n", now - t_start);
            fflush(stats);
            memset(&acc, 0, sizeof acc);
            iters = 0, train_s = 0, train_flops = 0;
            t_tick = sid_now();
        }
    }
    sid_progress_finish(&bar);
done:
    if (stats) fclose(stats);
    free(prompt), free(z), free(eps), free(ze), free(t);
    free(grid_ctx), free(grid), free(metric_ctx), free(mimg), free(mcls), free(ps.perm);
    if (nm) sid_gauss_free(&ref);
    sid_distill_close(d);
    sid_prompts_free(&evalp);
    if (have_cls) sid_classifier_free(&cls);
    return rc;
}
