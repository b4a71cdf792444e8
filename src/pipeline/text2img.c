#include "pipeline/text2img.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "diffusion/ddim.h"
#include "diffusion/schedule.h"
#include "io/file.h"
#include "io/json.h"
#include "sid/generator.h"

int sid_text2img_open(sid_text2img *p, const char *dir) { return sid_text2img_open_on(p, dir, NULL); }

int sid_text2img_open_on(sid_text2img *p, const char *dir, const sid_backend *be) {
    memset(p, 0, sizeof *p);
    char path[1100];
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    const unsigned parts = SID_SD_UNET | SID_SD_TEXT | (sid_file_exists(path) ? SID_SD_VAE : 0);
    p->m = sid_calloc(sizeof *p->m);
    if (sid_sd_load(p->m, dir, parts, 0)) {
        free(p->m);
        p->m = NULL;
        return -1;
    }
    if (!p->m->tokenizer_dir[0]) {
        sid_set_error("%s: the model has no tokenizer/ folder", dir);
        sid_text2img_close(p);
        return -1;
    }
    if (!(p->tok = sid_tokenizer_load(p->m->tokenizer_dir))) {
        sid_text2img_close(p);
        return -1;
    }
    p->max_len = sid_tokenizer_max_length(p->tok);
    if (p->max_len <= 0 || p->max_len > p->m->clip_cfg.max_positions) p->max_len = p->m->clip_cfg.max_positions;
    if (be && be != &sid_backend_cpu) {  // the weights live on the device from here on
        p->be = be;
        sid_params_to_backend(&p->m->unet_ps, be), sid_params_to_backend(&p->m->clip_ps, be);
        if (p->m->components & SID_SD_VAE) sid_params_to_backend(&p->m->vae_ps, be);
    }
    return 0;
}

// A buffer in the pipeline's memory (the device's, or the host's on the CPU), zero-filled.
static void *dev_alloc(const sid_text2img *p, size_t bytes) { return sid_backend_or_cpu(p->be)->alloc(bytes); }
static void dev_free(const sid_text2img *p, void *x) { sid_backend_or_cpu(p->be)->free(x); }

void sid_text2img_close(sid_text2img *p) {
    if (p->m) sid_sd_free(p->m);
    free(p->m);
    sid_tokenizer_free(p->tok);
    memset(p, 0, sizeof *p);
}

int sid_text2img_encode(sid_text2img *p, const char *const *prompts, int n, float *ctx) {
    const int T = p->max_len, W = p->m->clip_cfg.hidden;
    int32_t *ids = sid_malloc((size_t)n * T * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int cut = 0;
        if (sid_tokenizer_encode_ex(p->tok, prompts[i] ? prompts[i] : "", ids + (size_t)i * T, T, &cut) < 0) {
            free(ids);
            sid_set_error("prompt %d: cannot be tokenised (not UTF-8?)", i);
            return -1;
        }
        p->truncated += cut;
    }
    sid_arena act, meta;
    sid_backend_arena_init(&act, p->be, "text encoder activations", (size_t)n * T * (16 * (size_t)W + (size_t)p->m->clip_cfg.intermediate * 2 + 64) * sizeof(float) * (size_t)(p->m->clip_cfg.layers + 1) + (64 << 20));
    sid_arena_init(&meta, "text encoder state", (size_t)1 << 20);
    int32_t *d_ids = ids;
    if (p->be) d_ids = p->be->alloc((size_t)n * T * sizeof(int32_t)), p->be->upload(d_ids, ids, (size_t)n * T * sizeof(int32_t));
    sid_ctx c = {&p->m->clip_ps, &act, p->be, &meta};
    int rc = sid_clip_forward(&c, &p->m->clip, ctx, d_ids, n, T, p->m->clip_skip_layers) ? 0 : -1;
    sid_arena_free(&act), sid_arena_free(&meta);
    if (p->be) p->be->free(d_ids);
    free(ids);
    return rc;
}

void sid_text2img_image_shape(const sid_text2img *p, int *C, int *H, int *W) {
    const sid_unet_config *u = &p->m->unet_cfg;
    if (p->m->components & SID_SD_VAE) {
        sid_vae_image_size(&p->m->vae_cfg, u->sample_size, u->sample_size, H, W);
        *C = p->m->vae_cfg.out_channels;
    } else {
        *C = u->out_channels, *H = *W = u->sample_size;
    }
}

typedef struct {
    sid_text2img *p;
    const float *cond, *uncond;  // [n, T, W], in the pipeline's memory
    float cfg;
    sid_arena *act, *meta;
    int H, W;
} denoiser;

// eps [N, D] at x_t [N, D] and timesteps t [N], all in the pipeline's memory.
static void guided_eps(const denoiser *d, float *eps, const float *x, const float *t, int N) {
    const sid_sd_model *m = d->p->m;
    const sid_backend *be = sid_backend_or_cpu(d->p->be);
    const int T = d->p->max_len, Wd = m->clip_cfg.hidden, C = m->unet_cfg.in_channels;
    const size_t D = (size_t)C * d->H * d->W, nctx = (size_t)N * T * Wd;
    sid_arena_reset(d->act, 0), sid_arena_reset(d->meta, 0);
    sid_ctx c = {(sid_params *)&m->unet_ps, d->act, d->p->be, d->meta};
    if (d->cfg == 1.0f) {
        sid_unet_forward(&c, &m->unet, eps, x, t, d->cond, N, d->H, d->W, T);
        return;
    }
    // one batched pass over [uncond; cond], as diffusers does, the layers before the first
    // cross-attention shared by the two halves
    float *ctx2 = sid_ctx_out(&c, 2 * nctx), *e2 = sid_ctx_out(&c, 2 * D * N);
    be->scale_fwd(ctx2, d->uncond, 1.0f, nctx), be->scale_fwd(ctx2 + nctx, d->cond, 1.0f, nctx);
    sid_unet_forward_pairs(&c, &m->unet, e2, x, t, ctx2, 2 * N, d->H, d->W, T);
    be->cfg_combine_fwd(eps, e2, e2 + D * N, d->cfg, D * N);
}

// sid_ddim_sample's loop with every buffer in the pipeline's memory: each step's scalars
// (sid_ddim_step_coeffs) as per-sample arrays filled on the device, and the step as the ops that
// compute sid_ddim_step_with's expressions in the same order (so the CPU's samples do not change).
static int ddim_sample(const denoiser *d, const sid_schedule *s, const sid_ddim_config *c, int n_steps, float *x, int N,
                       size_t D) {
    if (n_steps < 1 || n_steps > s->T) {
        sid_set_error("ddim: the number of steps must be in [1, %d], got %d", s->T, n_steps);
        return -1;
    }
    int *ts = sid_malloc((size_t)n_steps * sizeof *ts);
    if (sid_ddim_timesteps(c, s->T, n_steps, ts) != 0) return free(ts), -1;
    const sid_backend *be = sid_backend_or_cpu(d->p->be);
    const size_t n = (size_t)N * D;
    float *out = be->alloc(n * sizeof(float)), *p0 = be->alloc(n * sizeof(float)), *e = be->alloc(n * sizeof(float));
    float *k = be->alloc((size_t)5 * N * sizeof(float)), *tf = k, *sa = k + N, *sb = k + 2 * N, *sap = k + 3 * N,
          *dir = k + 4 * N;
    for (int step = 0; step < n_steps; step++) {
        const sid_ddim_coeffs q = sid_ddim_step_coeffs(s, c, ts[step], sid_ddim_prev_timestep(ts[step], s->T, n_steps));
        be->fill(tf, (float)ts[step], (size_t)N);
        guided_eps(d, out, x, tf, N);
        be->fill(sa, q.sqrt_ab, (size_t)N), be->fill(sb, q.sqrt_1m_ab, (size_t)N);
        be->fill(sap, q.sqrt_ab_prev, (size_t)N), be->fill(dir, q.dir, (size_t)N);
        const float *eps = out;
        switch (c->prediction) {
        case SID_PRED_V:  // p0 = sa x - sb v, e = sa v + sb x
            be->scale_fwd(sb, sb, -1.0f, (size_t)N);
            be->add_noise_fwd(p0, x, out, sa, sb, N, D);
            be->scale_fwd(sb, sb, -1.0f, (size_t)N);
            be->add_noise_fwd(e, out, x, sa, sb, N, D);
            eps = e;
            break;
        case SID_PRED_SAMPLE:  // p0 = the output, e = (x - sa p0) / sb
            be->scale_fwd(p0, out, 1.0f, n);
            be->x0_from_eps_fwd(e, x, p0, sb, sa, N, D);
            eps = e;
            break;
        default:  // p0 = (x - sb eps) / sa
            be->x0_from_eps_fwd(p0, x, out, sa, sb, N, D);
            break;
        }
        if (q.clip_range > 0) be->clamp_fwd(p0, p0, -q.clip_range, q.clip_range, n);
        be->add_noise_fwd(x, p0, eps, sap, dir, N, D);  // x_prev = sa_prev p0 + dir e
    }
    be->free(out), be->free(p0), be->free(e), be->free(k);
    free(ts);
    return 0;
}

// Latents [b, C, S, S] -> out: decoded by the VAE when the model has one, else copied; both in the
// pipeline's memory.
static void to_pixels(const sid_text2img *p, sid_arena *act, sid_arena *meta, const float *x, int b, float *out) {
    const sid_sd_model *m = p->m;
    const int S = m->unet_cfg.sample_size;
    if (m->components & SID_SD_VAE) {
        sid_arena_reset(act, 0), sid_arena_reset(meta, 0);
        sid_ctx c = {(sid_params *)&m->vae_ps, act, p->be, meta};
        sid_vae_decode(&c, &m->vae, out, x, b, S, S);
    } else {
        sid_backend_or_cpu(p->be)->scale_fwd(out, x, 1.0f, (size_t)b * m->unet_cfg.in_channels * S * S);
    }
}

int sid_text2img_sample(sid_text2img *p, const char *const *prompts, int n, uint64_t seed, int steps, float cfg,
                        int chunk, float *out) {
    const sid_sd_model *m = p->m;
    const sid_backend *be = sid_backend_or_cpu(p->be);
    const sid_unet_config *u = &m->unet_cfg;
    const int T = p->max_len, Wd = m->clip_cfg.hidden, S = u->sample_size;
    const size_t D = (size_t)u->in_channels * S * S, nctx_one = (size_t)T * Wd;
    sid_schedule sched;
    if (sid_schedule_init(&sched, m->train_timesteps, m->beta_start, m->beta_end)) return -1;
    const sid_ddim_config dc = sid_sd_ddim_config(m);
    if (chunk < 1) chunk = n;
    // the noise from the host's counter-based RNG (the same numbers on every device)
    float *xh = sid_malloc((size_t)n * D * sizeof(float));
    sid_rng rng = sid_rng_new(seed);
    sid_rng_normal(&rng, xh, (size_t)n * D);
    int C, H, W;
    sid_text2img_image_shape(p, &C, &H, &W);
    const size_t P = (size_t)C * H * W;
    float *x = dev_alloc(p, (size_t)chunk * D * sizeof(float)), *img = dev_alloc(p, (size_t)chunk * P * sizeof(float));
    float *cond = dev_alloc(p, (size_t)chunk * nctx_one * sizeof(float));
    float *uncond = dev_alloc(p, (size_t)chunk * nctx_one * sizeof(float));
    const char **empty = sid_malloc((size_t)chunk * sizeof *empty);
    for (int i = 0; i < chunk; i++) empty[i] = "";
    int rc = sid_text2img_encode(p, empty, chunk, uncond);
    sid_arena act, meta;
    // On the CPU address space only: pages are touched as the forward pass uses them.
    sid_backend_arena_init(&act, p->be, "sampling activations", p->be ? sid_device_arena_bytes((size_t)1 << 30) : (size_t)6 << 30);
    sid_arena_init(&meta, "sampling state", (size_t)4 << 20);
    for (int i0 = 0; i0 < n && rc == 0; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        rc = sid_text2img_encode(p, prompts + i0, b, cond);
        be->upload(x, xh + (size_t)i0 * D, (size_t)b * D * sizeof(float));
        denoiser d = {p, cond, uncond, cfg, &act, &meta, S, S};
        if (!rc) rc = ddim_sample(&d, &sched, &dc, steps, x, b, D);
        if (rc) break;
        to_pixels(p, &act, &meta, x, b, img);
        be->download(out + (size_t)i0 * P, img, (size_t)b * P * sizeof(float));
    }
    sid_arena_free(&act), sid_arena_free(&meta);
    dev_free(p, x), dev_free(p, img), dev_free(p, cond), dev_free(p, uncond);
    free(xh), free(empty);
    sid_schedule_free(&sched);
    return rc;
}

int sid_text2img_is_generator(const char *dir, int *t_init, int *steps) {
    char path[1100];
    snprintf(path, sizeof path, "%s/sid_generator.json", dir);
    if (!sid_file_exists(path)) return 0;
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    int rc = sid_json_int(j, "t_init", t_init, 625, 1, path) || sid_json_int(j, "steps", steps, 1, 1, path) ? -1 : 1;
    cJSON_Delete(j);
    return rc;
}

static size_t latent_size(const sid_text2img *p) {
    const sid_unet_config *u = &p->m->unet_cfg;
    return (size_t)u->in_channels * u->sample_size * u->sample_size;
}

// Generation from given noise: z [n, D] for the first step, ze [steps - 1, n, D] for the others.
// Takes ownership of z and ze.
static int generate_from_noise(sid_text2img *p, const char *const *prompts, int n, float *z, float *ze, int t_init,
                               int steps, float *out) {
    const sid_unet_config *u = &p->m->unet_cfg;
    const sid_backend *be = sid_backend_or_cpu(p->be);
    const int S = u->sample_size, chunk = 256;
    const size_t D = latent_size(p), row = (size_t)p->max_len * p->m->clip_cfg.hidden;
    int C, H, W;
    sid_text2img_image_shape(p, &C, &H, &W);
    const size_t P = (size_t)C * H * W;
    sid_schedule sched;
    if (sid_schedule_init(&sched, p->m->train_timesteps, p->m->beta_start, p->m->beta_end)) return free(z), free(ze), -1;
    sid_arena act, meta;
    sid_backend_arena_init(&act, p->be, "generation activations",
                           p->be ? sid_device_arena_bytes((size_t)1 << 30) : (size_t)6 << 30);
    sid_arena_init(&meta, "generation state", (size_t)4 << 20);
    const sid_generator g = {&p->m->unet, &sched, t_init, steps, p->m->clip_sample, p->m->clip_sample_range, S, S,
                             p->be, &meta};
    float *ctx = dev_alloc(p, (size_t)chunk * row * sizeof(float)), *x = dev_alloc(p, (size_t)chunk * D * sizeof(float));
    float *dz = dev_alloc(p, (size_t)chunk * D * sizeof(float)), *img = dev_alloc(p, (size_t)chunk * P * sizeof(float));
    float *zc = steps > 1 ? sid_malloc((size_t)(steps - 1) * chunk * D * sizeof(float)) : NULL;
    float *dzc = steps > 1 ? dev_alloc(p, (size_t)(steps - 1) * chunk * D * sizeof(float)) : NULL;
    int rc = 0;
    for (int i0 = 0; i0 < n && !rc; i0 += chunk) {
        const int b = n - i0 < chunk ? n - i0 : chunk;
        if ((rc = sid_text2img_encode(p, prompts + i0, b, ctx))) break;
        for (int k = 0; k < steps - 1; k++)  // this chunk's slice of each extra step's noise
            memcpy(zc + (size_t)k * b * D, ze + ((size_t)k * n + i0) * D, (size_t)b * D * sizeof(float));
        be->upload(dz, z + (size_t)i0 * D, (size_t)b * D * sizeof(float));
        if (zc) be->upload(dzc, zc, (size_t)(steps - 1) * b * D * sizeof(float));
        sid_arena_reset(&act, 0), sid_arena_reset(&meta, 0);
        sid_generator_apply(&g, &p->m->unet_ps, &act, ctx, p->max_len, dz, dzc, b, x);
        to_pixels(p, &act, &meta, x, b, img);
        be->download(out + (size_t)i0 * P, img, (size_t)b * P * sizeof(float));
    }
    sid_arena_free(&act), sid_arena_free(&meta);
    sid_schedule_free(&sched);
    dev_free(p, ctx), dev_free(p, x), dev_free(p, dz), dev_free(p, img), dev_free(p, dzc);
    free(z), free(ze), free(zc);
    return rc;
}

int sid_text2img_generate(sid_text2img *p, const char *const *prompts, int n, uint64_t seed, int t_init, int steps,
                          float *out) {
    const size_t D = latent_size(p);
    // the noise comes from the host's counter-based RNG (the same numbers on every device)
    float *z = sid_malloc((size_t)n * D * sizeof(float)), *ze = NULL;
    sid_rng rng = sid_rng_new(seed);
    sid_rng_normal(&rng, z, (size_t)n * D);
    if (steps > 1) {
        ze = sid_malloc((size_t)(steps - 1) * n * D * sizeof(float));
        sid_rng_normal(&rng, ze, (size_t)(steps - 1) * n * D);
    }
    return generate_from_noise(p, prompts, n, z, ze, t_init, steps, out);
}

int sid_text2img_generate_seeded(sid_text2img *p, const char *const *prompts, int n, const uint64_t *seeds,
                                 int t_init, int steps, float *out) {
    const size_t D = latent_size(p);
    float *z = sid_malloc((size_t)n * D * sizeof(float)), *ze = NULL;
    if (steps > 1) ze = sid_malloc((size_t)(steps - 1) * n * D * sizeof(float));
    for (int i = 0; i < n; i++) {  // image i: its own stream, the first step's noise first
        sid_rng rng = sid_rng_new(seeds[i]);
        sid_rng_normal(&rng, z + (size_t)i * D, D);
        for (int k = 0; k < steps - 1; k++) sid_rng_normal(&rng, ze + ((size_t)k * n + i) * D, D);
    }
    return generate_from_noise(p, prompts, n, z, ze, t_init, steps, out);
}
