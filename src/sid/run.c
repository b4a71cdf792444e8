// The SiD-LSG run around the phases of distill.c: prompt stream and noise, ticks with stats.jsonl,
// sample grids (decoded through the teacher's VAE for a latent teacher), generator exports, state
// dumps and resume, and the checks that stop a run going bad before it overwrites good state.
#define _GNU_SOURCE
#include <sys/stat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "dist/dist.h"
#include "eval/classifier.h"
#include "eval/eval.h"
#include "io/file.h"
#include "io/json.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "sid/distill_state.h"
#include "train/state.h"

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

// One round's buffers, sized for --micro.
// One round's buffers: prompts, u and t for the global round (M = micro x ranks images), noise for
// this rank's micro images, and scratch for a global noise draw that cannot skip.
typedef struct {
    int *prompt;
    float *z, *z_extra, *eps, *u, *scratch;
    int32_t *t;
} round_buffers;

static void round_buffers_alloc(round_buffers *b, int m, int ranks, size_t D, int gen_steps) {
    const size_t M = (size_t)m * ranks;
    b->prompt = sid_malloc(M * sizeof(int)), b->t = sid_malloc(M * sizeof(int32_t)), b->u = sid_malloc(M * sizeof(float));
    b->z = sid_malloc((size_t)m * D * sizeof(float)), b->eps = sid_malloc((size_t)m * D * sizeof(float));
    b->z_extra = gen_steps > 1 ? sid_malloc((size_t)(gen_steps - 1) * m * D * sizeof(float)) : NULL;
    b->scratch = ranks > 1 ? sid_malloc(M * D * sizeof(float)) : NULL;
}

static void round_buffers_free(round_buffers *b) {
    free(b->prompt), free(b->t), free(b->u), free(b->z), free(b->eps), free(b->z_extra), free(b->scratch);
}

// Normal draws [lo, lo + n) of a stream of `total`, advancing it by the whole draw: a rank takes its
// slice of the global round without drawing the rest (two values per counter, so the skip works
// from an even start; otherwise the whole draw is made).
static void normal_slice(sid_rng *r, float *out, size_t total, size_t lo, size_t n, float *scratch) {
    if (lo == 0 && n == total) {
        sid_rng_normal(r, out, n);
        return;
    }
    if (lo % 2 == 0) {
        sid_rng s = {r->seed, r->offset + lo / 2};
        sid_rng_normal(&s, out, n);
        r->offset += (total + 1) / 2;
    } else {
        sid_rng_normal(r, scratch, total);
        memcpy(out, scratch + lo, n * sizeof(float));
    }
}

// Draws one round's inputs from the run's RNG: the whole global round of micro x ranks images (the
// same numbers on every rank, and the same as one process drawing the round whole), of which this
// rank takes its micro images. dropout marks prompts as the empty prompt.
static void draw_round(sid_distill *d, prompt_stream *ps, int dropout, round_buffers *b, sid_round_inputs *in) {
    const int m = d->cfg.micro, R = sid_dist_size(), M = m * R, lo = m * sid_dist_rank();
    const size_t D = d->D;
    for (int i = 0; i < M; i++) b->prompt[i] = stream_next(ps, &d->rng);
    if (dropout) {
        sid_rng_uniform(&d->rng, b->u, (size_t)M);
        for (int i = 0; i < M; i++)
            if (b->u[i] < 0.1f) b->prompt[i] = -1;
    }
    normal_slice(&d->rng, b->z, (size_t)M * D, (size_t)lo * D, (size_t)m * D, b->scratch);
    for (int k = 0; k < d->cfg.gen_steps - 1; k++)
        normal_slice(&d->rng, b->z_extra + (size_t)k * m * D, (size_t)M * D, (size_t)lo * D, (size_t)m * D, b->scratch);
    normal_slice(&d->rng, b->eps, (size_t)M * D, (size_t)lo * D, (size_t)m * D, b->scratch);
    sid_sample_timesteps(&d->rng, b->t, (size_t)M, d->cfg.tmin, d->cfg.tmax);
    *in = (sid_round_inputs){m, b->prompt + lo, b->z, b->eps, d->cfg.gen_steps > 1 ? b->z_extra : NULL, b->t + lo};
}

// ---------------------------------------------------------------- memory
// One round of --micro images must fit the activation arena: measured on one image of each phase
// before the run starts (a round's activations grow linearly with its images), so that too large
// a --micro fails in one line at once instead of after minutes of work.
static int check_round_memory(sid_distill *d) {
    if (d->cfg.micro == 1) return 0;
    sid_rng r = sid_rng_new(d->cfg.seed ^ 0x6d656d6f7279ull);
    float *z = sid_malloc(d->D * sizeof(float) * 5), *eps = z + d->D, *ze = z + 2 * d->D;
    sid_rng_normal(&r, z, d->D * 5);
    const int prompt = 0;
    const int32_t t = (d->cfg.tmin + d->cfg.tmax) / 2;
    sid_round_inputs in = {1, &prompt, z, eps, d->cfg.gen_steps > 1 ? ze : NULL, &t};
    sid_iter_stats st = {0};
    d->act.peak = 0;
    sid_distill_fake_round(d, &in, &st);
    sid_distill_gen_round(d, &in, &st);
    const double one = (double)d->act.peak;
    d->be->fill(d->fake.grad, 0.0f, d->fake.total), d->be->fill(d->gen.grad, 0.0f, d->gen.total);
    sid_distill_read_stats(d, &st);  // and forgotten: the probe is no training
    sid_arena_reset(&d->act, 0);
    d->act.peak = 0;
    free(z);
    if (one * d->cfg.micro > (double)d->act.cap) {
        int fit = (int)((double)d->act.cap / one);
        while (fit > 1 && d->cfg.batch % fit) fit--;
        const double gib = 1024.0 * 1024 * 1024;
        sid_set_error("distill: --micro %d needs about %.1f GiB of activations per round (%.3f GiB per image), above the "
                      "%.0f GiB arena: use --micro %d (more accumulation rounds, the same batch)",
                      d->cfg.micro, one * d->cfg.micro / gib, one / gib, d->act.cap / gib, fit < 1 ? 1 : fit);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- images
// The pixels of n samples: the VAE's decode of latents for a latent teacher, else the samples.
static int image_shape(const sid_distill *d, int *C, int *H, int *W) {
    if (d->teacher.components & SID_SD_VAE) {
        sid_vae_image_size(&d->teacher.vae_cfg, d->H, d->W, H, W);
        *C = d->teacher.vae_cfg.out_channels;
    } else {
        *C = d->C, *H = d->H, *W = d->W;
    }
    return 0;
}

// x [n, D] in the device's memory -> host pixels [n, C, H, W].
static float *to_images(sid_distill *d, const float *x, int n) {
    int C, H, W;
    image_shape(d, &C, &H, &W);
    const size_t per = (size_t)C * H * W;
    float *img = sid_malloc((size_t)n * per * sizeof(float));
    if (!(d->teacher.components & SID_SD_VAE)) {
        d->be->download(img, x, (size_t)n * per * sizeof(float));
        return img;
    }
    float *dimg = d->be->alloc((size_t)16 * per * sizeof(float));
    for (int i0 = 0; i0 < n; i0 += 16) {
        const int b = n - i0 < 16 ? n - i0 : 16;
        sid_arena_reset(&d->act, 0), sid_arena_reset(&d->meta, 0);
        sid_ctx c = {&d->teacher.vae_ps, &d->act, d->be, &d->meta};
        sid_vae_decode(&c, &d->teacher.vae, dimg, x + (size_t)i0 * d->D, b, d->H, d->W);
        d->be->download(img + (size_t)i0 * per, dimg, (size_t)b * per * sizeof(float));
    }
    d->be->free(dimg);
    return img;
}

static int write_grid(sid_distill *d, const char *path, const float *x, int n) {
    int C, H, W;
    image_shape(d, &C, &H, &W);
    float *img = to_images(d, x, n);
    const int rc = sid_png_write_grid(path, img, n, C, H, W, 8, 2);
    free(img);
    return rc;
}

// One-step samples of the EMA generator for n prompts (embeddings ctx in the device's memory) with
// noise from seed: x [n, D] in the device's memory.
static void ema_samples(sid_distill *d, const float *ctx, int n, uint64_t seed, float *x) {
    sid_rng r = sid_rng_new(seed);
    const int extra = d->cfg.gen_steps - 1;
    const size_t D = d->D;
    float *z = sid_malloc((size_t)n * D * sizeof(float)), *ze = NULL, *zc = NULL;
    sid_rng_normal(&r, z, (size_t)n * D);
    if (extra) {
        ze = sid_malloc((size_t)extra * n * D * sizeof(float)), zc = sid_malloc((size_t)extra * 128 * D * sizeof(float));
        sid_rng_normal(&r, ze, (size_t)extra * n * D);
    }
    float *dz = d->be->alloc((size_t)128 * D * sizeof(float));
    float *dzc = extra ? d->be->alloc((size_t)extra * 128 * D * sizeof(float)) : NULL;
    for (int i0 = 0; i0 < n; i0 += 128) {
        const int b = n - i0 < 128 ? n - i0 : 128;
        sid_arena_reset(&d->act, 0), sid_arena_reset(&d->meta, 0);
        // the multi-step noise of a chunk is laid out [steps-1, b, D]: take this chunk's slices
        for (int k = 0; k < extra; k++)
            memcpy(zc + (size_t)k * b * D, ze + ((size_t)k * n + i0) * D, (size_t)b * D * sizeof(float));
        d->be->upload(dz, z + (size_t)i0 * D, (size_t)b * D * sizeof(float));
        if (extra) d->be->upload(dzc, zc, (size_t)extra * b * D * sizeof(float));
        sid_generator_apply(&d->g, &d->ema, &d->act, ctx + (size_t)i0 * d->T * d->Wt, d->T, dz, dzc, b, x + (size_t)i0 * D);
    }
    d->be->free(dz), sid_distill_free(d, dzc);
    free(z), free(ze), free(zc);
}

// A host copy of a device parameter block (for checkpoints, exports and checks): the names are
// shared with ps, the data is the caller's to free.
static sid_params host_params(const sid_distill *d, const sid_params *ps) {
    sid_params h = *ps;
    h.data = sid_malloc(ps->total * sizeof(float) + 64), h.grad = NULL, h.be = NULL;
    d->be->download(h.data, ps->data, ps->total * sizeof(float));
    return h;
}

// ---------------------------------------------------------------- files
// A teacher file in the export: a hard link when the file system allows (SD's text encoder and VAE
// are hundreds of MB, exported at every snapshot), else a copy; kept when already there.
static int link_or_copy(const char *src, const char *dst) {
    struct stat a, b;
    if (stat(src, &a)) return sid_set_error("%s: cannot read", src), -1;
    if (stat(dst, &b) == 0 && a.st_size == b.st_size && (a.st_ino == b.st_ino || a.st_mtime <= b.st_mtime)) return 0;
    unlink(dst);
    if (link(src, dst) == 0) return 0;
    FILE *in = fopen(src, "rb");
    if (!in) return sid_set_error("%s: cannot read", src), -1;
    char tmp[2200];
    FILE *f = sid_atomic_begin(dst, tmp, sizeof tmp);
    if (!f) return fclose(in), -1;
    char *buf = sid_malloc(1 << 20);
    size_t k;
    while ((k = fread(buf, 1, 1 << 20, in)) > 0) fwrite(buf, 1, k, f);
    const int bad = ferror(in);
    free(buf), fclose(in);
    if (bad) return sid_atomic_abort(f, tmp), sid_set_error("%s: read error", src), -1;
    return sid_atomic_commit(f, tmp, dst);
}

// model_index.json of the export: the teacher's, without the components that are not exported
// (SD1.5's safety checker and feature extractor), so that diffusers loads the folder as it is.
static int write_model_index(const sid_distill *d, const char *dir) {
    char a[2048];
    snprintf(a, sizeof a, "%s/model_index.json", d->cfg.teacher_dir);
    cJSON *j = sid_file_exists(a) ? sid_json_load(a) : NULL;
    if (!j) {
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "_class_name", "StableDiffusionPipeline");
    }
    static const char *const unused[] = {"safety_checker", "feature_extractor", "image_encoder"};
    for (int i = 0; i < 3; i++)
        if (cJSON_GetObjectItemCaseSensitive(j, unused[i])) {
            cJSON *none = cJSON_CreateArray();
            cJSON_AddItemToArray(none, cJSON_CreateNull()), cJSON_AddItemToArray(none, cJSON_CreateNull());
            cJSON_ReplaceItemInObjectCaseSensitive(j, unused[i], none);
        }
    if (cJSON_GetObjectItemCaseSensitive(j, "requires_safety_checker"))
        cJSON_ReplaceItemInObjectCaseSensitive(j, "requires_safety_checker", cJSON_CreateFalse());
    snprintf(a, sizeof a, "%s/model_index.json", dir);
    const int rc = sid_json_save(a, j);
    cJSON_Delete(j);
    return rc;
}

// The EMA generator as a pipeline folder in diffusers' layout: its UNet, the teacher's text
// encoder, tokenizer, scheduler and VAE, and sid_generator.json saying how to run it.
static int export_generator(const sid_distill *d, const char *dir) {
    static const char *const files[] = {
        "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors",
        "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json", "tokenizer/added_tokens.json", "scheduler/scheduler_config.json",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors"};
    static const char *const sub[] = {"unet", "text_encoder", "tokenizer", "scheduler", "vae"};
    sid_params ema = host_params(d, &d->ema);
    const int bad = sid_params_check_finite(&ema, "distill: the generator");  // never export a broken model
    if (bad) return free(ema.data), -1;
    char a[2048], b[2048];
    for (int i = 0; i < 5; i++) {
        snprintf(a, sizeof a, "%s/%s", d->cfg.teacher_dir, sub[i]);
        if (i && !sid_file_exists(a)) continue;
        snprintf(a, sizeof a, "%s/%s", dir, sub[i]);
        if (sid_mkdir_p(a)) return free(ema.data), -1;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", d->cfg.teacher_dir, files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        if (sid_file_exists(a) && link_or_copy(a, b)) return free(ema.data), -1;
    }
    if (write_model_index(d, dir)) return free(ema.data), -1;
    snprintf(a, sizeof a, "%s/unet/config.json", dir);
    if (sid_unet_config_save(&d->teacher.unet_cfg, a)) return free(ema.data), -1;
    snprintf(a, sizeof a, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    const int saved = sid_params_save(&ema, a, SID_F32);
    free(ema.data);
    if (saved) return -1;
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

// ---------------------------------------------------------------- state
// The run's state: the three networks and the Adam moments (Adam's m only with beta1 > 0), the
// prompt stream's order, and the counters (src/train/state.h).
static void state_layout(const sid_distill *d, sid_state_block b[7]) {
    const size_t n = d->fake.total;
    b[0] = (sid_state_block){"fake", d->fake.data, n, 1}, b[1] = (sid_state_block){"gen", d->gen.data, n, 1};
    b[2] = (sid_state_block){"gen_ema", d->ema.data, n, 1};
    b[3] = (sid_state_block){"fake.adam_v", d->fake_v, n, 0}, b[4] = (sid_state_block){"gen.adam_v", d->gen_v, n, 0};
    b[5] = (sid_state_block){"fake.adam_m", d->fake_m, n, 0}, b[6] = (sid_state_block){"gen.adam_m", d->gen_m, n, 0};
}

static int save_state(const sid_distill *d, const prompt_stream *ps, const char *path) {
    sid_state_block b[7];
    state_layout(d, b);
    const sid_st_entry perm = {"prompt_perm", SID_I32, 1, {ps->n}, ps->perm};
    const sid_state_counter c[6] = {{"nimg", NULL, (uint64_t)d->nimg},           {"rng_seed", NULL, d->rng.seed},
                                    {"rng_offset", NULL, d->rng.offset},         {"prompt_pos", NULL, (uint64_t)ps->pos},
                                    {"fake_updates", NULL, (uint64_t)d->fake_steps},
                                    {"gen_updates", NULL, (uint64_t)d->gen_steps_done}};
    return sid_state_save(path, d->be, b, 7, &perm, 1, c, 6);
}

static int load_state(sid_distill *d, prompt_stream *ps, const char *path) {
    sid_state_block b[7];
    state_layout(d, b);
    sid_st_entry perm = {"prompt_perm", SID_I32, 1, {ps->n}, ps->perm};
    // "fake_steps"/"gen_steps": the names of the update counters in states written before 2026-12
    sid_state_counter c[6] = {{"nimg", NULL, 0},       {"rng_seed", NULL, 0},
                              {"rng_offset", NULL, 0}, {"prompt_pos", NULL, 0},
                              {"fake_updates", "fake_steps", 0}, {"gen_updates", "gen_steps", 0}};
    if (sid_state_load(path, d->be, b, 7, &perm, 1, c, 6)) return -1;
    if (c[3].value > (uint64_t)ps->n) {
        sid_set_error("%s: prompt_pos %llu is past the %d prompts", path, (unsigned long long)c[3].value, ps->n);
        return -1;
    }
    d->nimg = (int64_t)c[0].value, d->rng.seed = c[1].value, d->rng.offset = c[2].value, ps->pos = (int)c[3].value;
    d->fake_steps = (int64_t)c[4].value, d->gen_steps_done = (int64_t)c[5].value;
    return 0;
}

// ---------------------------------------------------------------- the run's config.json
int sid_distill_config_save(const sid_distill_cfg *c, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "teacher", c->teacher_dir);
    cJSON_AddStringToObject(j, "prompts", c->prompts_file);
    sid_json_add_float(j, "alpha", c->alpha);
    for (int k = 0; k < 4; k++) {
        char key[16];
        snprintf(key, sizeof key, "kappa%d", k + 1);
        sid_json_add_float(j, key, c->kappa[k]);
    }
    cJSON_AddNumberToObject(j, "init_timestep", c->t_init);
    cJSON_AddNumberToObject(j, "tmin", c->tmin);
    cJSON_AddNumberToObject(j, "tmax", c->tmax);
    sid_json_add_float(j, "lr", c->lr);
    sid_json_add_float(j, "glr", c->glr);
    sid_json_add_float(j, "beta1", c->beta1);
    sid_json_add_float(j, "beta2", c->beta2);
    sid_json_add_float(j, "adam_eps", c->adam_eps);
    cJSON_AddNumberToObject(j, "batch", c->batch);
    cJSON_AddNumberToObject(j, "micro", c->micro);
    cJSON_AddNumberToObject(j, "ema_halflife_img", c->ema_halflife_img);
    cJSON_AddNumberToObject(j, "ema_rampup", c->ema_rampup);
    cJSON_AddNumberToObject(j, "duration_img", c->duration_img);
    cJSON_AddNumberToObject(j, "tick_img", c->tick_img);
    cJSON_AddNumberToObject(j, "snapshot_ticks", c->snapshot_ticks);
    char seed[32];  // as a string: a double holds integers exactly only up to 2^53
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->seed);
    cJSON_AddStringToObject(j, "seed", seed);
    cJSON_AddNumberToObject(j, "generator_steps", c->gen_steps);
    cJSON_AddBoolToObject(j, "metrics", c->metrics);
    cJSON_AddNumberToObject(j, "metrics_n", c->metrics_n);
    cJSON_AddStringToObject(j, "classifier", c->classifier_dir);
    cJSON_AddStringToObject(j, "eval_prompts", c->eval_prompts);
    cJSON_AddNumberToObject(j, "threads", sid_threads_get());
    int rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}

cJSON *sid_distill_config_load(const char *path, sid_distill_cfg *c) {
    cJSON *j = sid_json_load(path);
    if (!j) return NULL;
    *c = sid_distill_defaults();
    double v[18];
    const char *seed = NULL;
    int rc = sid_json_string(j, "teacher", &c->teacher_dir, NULL, 1, path) ||
             sid_json_string(j, "prompts", &c->prompts_file, NULL, 1, path) ||
             sid_json_string(j, "classifier", &c->classifier_dir, c->classifier_dir, 0, path) ||
             sid_json_string(j, "eval_prompts", &c->eval_prompts, c->eval_prompts, 0, path) ||
             sid_json_string(j, "seed", &seed, NULL, 1, path) || sid_json_bool(j, "metrics", &c->metrics, 0, 0, path);
    static const char *const num[18] = {"alpha",     "kappa1",   "kappa2",           "kappa3",     "kappa4",
                                        "lr",        "glr",      "beta1",            "beta2",      "adam_eps",
                                        "ema_halflife_img", "ema_rampup", "duration_img", "tick_img", "init_timestep",
                                        "tmin",      "tmax",     "metrics_n"};
    for (int k = 0; k < 18 && !rc; k++) rc = sid_json_double(j, num[k], &v[k], 0, 1, path);
    int ints[4];
    static const char *const ik[4] = {"batch", "micro", "snapshot_ticks", "generator_steps"};
    for (int k = 0; k < 4 && !rc; k++) rc = sid_json_int(j, ik[k], &ints[k], 0, 1, path);
    if (rc) return cJSON_Delete(j), NULL;
    c->alpha = (float)v[0];
    for (int k = 0; k < 4; k++) c->kappa[k] = (float)v[1 + k];
    c->lr = (float)v[5], c->glr = (float)v[6], c->beta1 = (float)v[7], c->beta2 = (float)v[8], c->adam_eps = (float)v[9];
    c->ema_halflife_img = v[10], c->ema_rampup = v[11], c->duration_img = v[12], c->tick_img = v[13];
    c->t_init = (int)v[14], c->tmin = (int)v[15], c->tmax = (int)v[16], c->metrics_n = (int)v[17];
    c->batch = ints[0], c->micro = ints[1], c->snapshot_ticks = ints[2], c->gen_steps = ints[3];
    c->seed = strtoull(seed, NULL, 10);
    return j;
}

// ---------------------------------------------------------------- the run
// A run that only produces NaN would train on nothing (or on sanitised noise) to the end and export
// a broken generator: such an iteration stops the run, and the last state dump stays the last good one.
const char *sid_distill_verdict(const sid_distill *d, const sid_iter_stats *st) {
    if (!isfinite(st->loss_fake) || !isfinite(st->loss_gen)) return "a non-finite loss";
    if (st->dropped_fake >= d->cfg.batch) return "every fake-net sample NaN";
    if (st->dropped_gen >= d->cfg.batch) return "every generator sample NaN";
    if (st->nonfinite_fake > d->fake.total / 2) return "most fake-net gradients non-finite";
    if (st->nonfinite_gen > d->gen.total / 2) return "most generator gradients non-finite";
    return NULL;
}


// The weights of every network as one hash, to compare across ranks.
static uint64_t weights_hash(const sid_distill *d) {
    const sid_params *nets[3] = {&d->gen, &d->fake, &d->ema};
    uint64_t h = 0;
    float *host = sid_malloc(d->gen.total * sizeof(float));
    for (int k = 0; k < 3; k++) {
        d->be->download(host, nets[k]->data, nets[k]->total * sizeof(float));
        h = sid_dist_hash(host, nets[k]->total * sizeof(float), h);
    }
    free(host);
    return h;
}

// Data parallelism (src/dist/dist.h): every rank draws the same global rounds and trains on its
// slice; gradients and the tick's stats are summed over the ranks before each update, so every
// rank takes the same Adam steps and holds the same weights (checked at every state dump); rank 0
// alone writes the run folder.
int sid_distill_run(const sid_distill_cfg *cfg) {
    if (sid_distill_validate(cfg)) return -1;
    const int R = sid_dist_size(), r0 = sid_dist_rank() == 0;
    if (cfg->batch % (cfg->micro * R)) {
        sid_set_error("distill: --batch %d must be a multiple of --micro %d x %d ranks", cfg->batch, cfg->micro, R);
        return -1;
    }
    char path[1200], state_path[1200];
    if (sid_mkdir_p(cfg->out_dir)) return -1;
    snprintf(state_path, sizeof state_path, "%s/training-state.safetensors", cfg->out_dir);
    if (cfg->resume && !sid_file_exists(state_path)) {
        sid_set_error("%s: nothing to resume (no training-state.safetensors)", cfg->out_dir);
        return -1;
    }
    const int partial = r0 ? sid_remove_partial_files(cfg->out_dir, 2) : 0;
    if (partial) fprintf(stderr, "distill: removed %d partial file%s left by an interrupted write in %s\n", partial,
                         partial > 1 ? "s" : "", cfg->out_dir);
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
    // everything below is released by the one cleanup path at the end, whatever was reached
    prompt_stream ps = {sid_malloc((size_t)d->prompts.n * sizeof(uint32_t)), d->prompts.n, 0};
    float *grid_ctx = NULL, *grid = NULL, *metric_ctx = NULL, *mimg = NULL;
    int *mcls = NULL, nm = 0, rc = -1, eval_cut = 0;
    round_buffers rb = {0};
    FILE *stats = NULL;
    sid_gauss ref = {0};
    if (cfg->metrics && (d->C != 1 || d->H != 32 || (d->teacher.components & SID_SD_VAE))) {
        sid_set_error("%s: --metrics needs the built-in Fashion-MNIST teacher (1x32x32 samples)", cfg->teacher_dir);
        goto done;
    }
    if (d->truncated_prompts && r0)  // as diffusers warns: the cut part of a prompt does not condition anything
        fprintf(stderr, "distill: warning: %d of %d prompts in %s are longer than %d tokens and were truncated\n",
                d->truncated_prompts, d->prompts.n, cfg->prompts_file, d->T);
    if (check_round_memory(d)) goto done;
    snprintf(path, sizeof path, "%s/config.json", cfg->out_dir);
    if (r0 && sid_distill_config_save(cfg, path)) goto done;
    if (cfg->resume) {
        if (load_state(d, &ps, state_path)) goto done;
        if (r0) fprintf(stderr, "distill: resuming %s at %lld images\n", state_path, (long long)d->nimg);
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
    if (!(grid_ctx = sid_distill_encode(d, gp, ng, &eval_cut))) goto done;
    grid = d->be->alloc((size_t)GRID * d->D * sizeof(float));  // samples in the device's memory
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
        metric_ctx = sid_distill_encode(d, mp, nm, NULL);
        mimg = d->be->alloc((size_t)nm * d->D * sizeof(float));
        free(mp);
        for (int k = 0; k < 10; k++) free(byc[k]);
        if (!metric_ctx) goto done;
    }
    if (nm && sid_eval_reference(&cls, NULL, &ref)) goto done;

    const int A = cfg->batch / (cfg->micro * R);
    round_buffers_alloc(&rb, cfg->micro, R, d->D, cfg->gen_steps);
    const int dropout = cfg->kappa[0] != 1.0f || cfg->kappa[1] != 1.0f;
    snprintf(path, sizeof path, "%s/stats.jsonl", cfg->out_dir);
    stats = r0 ? fopen(path, cfg->resume ? "a" : "w") : NULL;
    if (r0 && !stats) {
        sid_set_error("%s: cannot open for writing", path);
        goto done;
    }
    const int64_t end = cfg->stop_after_img > 0 && cfg->stop_after_img < cfg->duration_img ? cfg->stop_after_img
                                                                                          : (int64_t)cfg->duration_img;
    int64_t next_tick = ((d->nimg / (int64_t)cfg->tick_img) + 1) * (int64_t)cfg->tick_img;
    int tick = (int)(d->nimg / (int64_t)cfg->tick_img);
    sid_iter_stats acc = {0};
    int iters = 0;
    double t_tick = sid_now(), t_start = sid_now();
    if (!cfg->resume && r0) {
        ema_samples(d, grid_ctx, ng, 2024, grid);
        snprintf(path, sizeof path, "%s/fakes_init.png", cfg->out_dir);
        if (write_grid(d, path, grid, ng)) goto done;
    }
    rc = 0;
    sid_progress bar = {0};
    if (r0) sid_progress_start(&bar, "distill", end);
    double train_s = 0, train_flops = 0;  // this tick's iterations only (no snapshot work)
    while (d->nimg < end) {
        const double it_t0 = sid_now(), it_f0 = sid_ops_flops();
        sid_iter_stats st = {0};
        sid_round_inputs in;
        for (int r = 0; r < A; r++) {
            draw_round(d, &ps, dropout, &rb, &in);
            sid_distill_fake_round(d, &in, &st);
        }
        sid_dist_sum_on(d->be, d->fake.grad, d->fake.total, "fake-net gradients");
        sid_distill_fake_update(d, &st);
        for (int r = 0; r < A; r++) {
            draw_round(d, &ps, 0, &rb, &in);
            sid_distill_gen_round(d, &in, &st);
        }
        sid_dist_sum_on(d->be, d->gen.grad, d->gen.total, "generator gradients");
        sid_distill_gen_update(d, &st);
        sid_distill_ema(d);
        if (R > 1) {  // the iteration's drops over all ranks
            double v[2] = {st.dropped_fake, st.dropped_gen};
            sid_dist_sum_f64(v, 2, "iteration stats");
            st.dropped_fake = (int)v[0], st.dropped_gen = (int)v[1];
        }
        train_s += sid_now() - it_t0, train_flops += sid_ops_flops() - it_f0;
        // the drops are known on the host at once; losses and sanitised counts stay on the device
        // until the tick's stats block, checked there before anything is written
        const char *bad = sid_distill_verdict(d, &st);
        const int at_tick = d->nimg >= next_tick || d->nimg >= end;
        if (!bad && at_tick) {
            sid_iter_stats dev = {0};
            sid_distill_read_stats(d, &dev);  // the tick's one download besides the rounds' NaN flags
            if (R > 1) {  // the sanitised counts are of the summed gradients already
                double v[2] = {dev.loss_fake, dev.loss_gen};
                sid_dist_sum_f64(v, 2, "tick losses");
                dev.loss_fake = v[0], dev.loss_gen = v[1];
            }
            acc.loss_fake = dev.loss_fake, acc.loss_gen = dev.loss_gen;
            acc.nonfinite_fake = dev.nonfinite_fake, acc.nonfinite_gen = dev.nonfinite_gen;
            const int n_it = iters + 1;  // the mean iteration of the tick
            st = (sid_iter_stats){dev.loss_fake / n_it, dev.loss_gen / n_it, st.dropped_fake, st.dropped_gen,
                                  dev.nonfinite_fake / n_it, dev.nonfinite_gen / n_it};
            bad = sid_distill_verdict(d, &st);
        }
        if (bad) {
            sid_set_error("distill: %s at %lld images (dropped %d + %d samples, sanitised %zu + %zu gradients); stopped, "
                          "last good state: %s",
                          bad, (long long)d->nimg, st.dropped_fake, st.dropped_gen, st.nonfinite_fake, st.nonfinite_gen,
                          sid_file_exists(state_path) ? state_path : "none yet");
            rc = -1;
            break;
        }
        acc.dropped_fake += st.dropped_fake, acc.dropped_gen += st.dropped_gen;
        iters++;
        if (r0) sid_progress_update(&bar, d->nimg);
        if (at_tick) {
            tick++;
            next_tick += (int64_t)cfg->tick_img;
            const double now = sid_now(), dt = now - t_tick;
            const int snap = tick % cfg->snapshot_ticks == 0 || d->nimg >= end;
            double fid = NAN, align = NAN;
            if (snap) {
                int wrc = 0;
                if (r0) {
                    ema_samples(d, grid_ctx, ng, 2024, grid);
                    snprintf(path, sizeof path, "%s/fakes_%06lld.png", cfg->out_dir, (long long)d->nimg);
                    char gen_dir[1200];
                    snprintf(gen_dir, sizeof gen_dir, "%s/generator", cfg->out_dir);
                    wrc = write_grid(d, path, grid, ng) || export_generator(d, gen_dir) || save_state(d, &ps, state_path);
                }
                if (R > 1) {  // every rank stops with rank 0's failure, and all must hold the same weights
                    sid_dist_bcast(&wrc, sizeof wrc, 0, "snapshot");
                    if (wrc && !r0) sid_set_error("distill: rank 0 could not write the snapshot at %lld images", (long long)d->nimg);
                    if (!wrc && sid_dist_same_u64(weights_hash(d), "distill: the weights")) wrc = -1;
                }
                if (wrc) {
                    rc = -1;
                    break;
                }
                if (nm && r0) {
                    ema_samples(d, metric_ctx, nm, 7, mimg);
                    float *h = sid_malloc((size_t)nm * d->D * sizeof(float));
                    d->be->download(h, mimg, (size_t)nm * d->D * sizeof(float));
                    sid_eval_result er;
                    if (sid_eval_images(&cls, &ref, h, mcls, nm, &er) == 0) fid = er.fid, align = er.alignment;
                    free(h);
                }
            }
            if (stats) fprintf(stats,
                    "{\"tick\": %d, \"kimg\": %.3f, \"loss_fake\": %.6g, \"loss_gen\": %.6g, \"sec_per_iter\": %.4f, "
                    "\"img_per_s\": %.2f, \"sec_per_kimg\": %.2f, \"peak_activation_mb\": %.1f, \"dropped_nan\": %d, "
                    "\"sanitized_grads\": %zu, \"gflop_per_iter\": %.3f, \"gflop_per_s\": %.2f",
                    tick, d->nimg / 1000.0, acc.loss_fake / iters, acc.loss_gen / iters, dt / iters,
                    iters * cfg->batch / dt, dt / (iters * cfg->batch / 1000.0), d->act.peak / 1e6,
                    acc.dropped_fake + acc.dropped_gen, acc.nonfinite_fake + acc.nonfinite_gen,
                    train_flops * 1e-9 / iters, train_s > 0 ? train_flops * 1e-9 / train_s : 0.0);
            if (stats && !isnan(fid)) fprintf(stats, ", \"fid\": %.3f, \"alignment\": %.4f", fid, align);
            if (stats) fprintf(stats, ", \"elapsed_s\": %.1f, \"ranks\": %d}\n", now - t_start, R), fflush(stats);
            memset(&acc, 0, sizeof acc);
            iters = 0, train_s = 0, train_flops = 0;
            t_tick = sid_now();
        }
    }
    if (r0) sid_progress_finish(&bar);
done:
    if (stats) fclose(stats);
    round_buffers_free(&rb);
    sid_distill_free(d, grid_ctx), sid_distill_free(d, grid), sid_distill_free(d, metric_ctx), sid_distill_free(d, mimg);
    free(mcls), free(ps.perm);
    if (nm) sid_gauss_free(&ref);
    sid_distill_close(d);
    sid_prompts_free(&evalp);
    if (have_cls) sid_classifier_free(&cls);
    return rc;
}
