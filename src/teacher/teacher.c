#define _GNU_SOURCE
#include "teacher/teacher.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "dist/dist.h"
#include "data/bpe_vocab.h"
#include "data/fmnist.h"
#include "data/prompts.h"
#include "diffusion/schedule.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "ops/backend.h"
#include "ops/ops.h"
#include "train/optim.h"
#include "train/state.h"

enum { MAX_LEN = 16 };  // tokens per prompt: the longest prompt is 9 tokens with bos/eos

sid_teacher_train_cfg sid_teacher_train_defaults(void) {
    return (sid_teacher_train_cfg){.out_dir = "models/teacher",
                                   .data_dir = NULL,
                                   .prompts_file = "data/prompts/fmnist_train.txt",
                                   .vocab_file = "data/prompts/fmnist_eval.txt",
                                   .batch = 64,
                                   .steps = 20000,
                                   .lr = 1e-3f,
                                   .lr_final = 5e-5f,
                                   .warmup = 500,
                                   .p_uncond = 0.1f,
                                   .ema_halflife_img = 50000,
                                   .seed = 1,
                                   .log_every = 50,
                                   .snapshot_every = 1000};
}

void sid_teacher_arch(sid_unet_config *u, sid_clip_config *c, int vocab_size, int max_len) {
    memset(u, 0, sizeof *u);
    *u = (sid_unet_config){.in_channels = 1, .out_channels = 1, .sample_size = 32, .levels = 3,
                           .block_out_channels = {16, 32, 32}, .layers_per_block = 1,
                           .down_attn = {0, 0, 1}, .up_attn = {1, 0, 0}, .mid_block = 1, .heads = {2, 2, 2},
                           .cross_attention_dim = 64, .transformer_layers = 1, .norm_num_groups = 8,
                           .norm_eps = 1e-5f, .freq_shift = 0, .flip_sin_to_cos = 1, .use_linear_projection = 0};
    *c = (sid_clip_config){.vocab_size = vocab_size, .hidden = 64, .layers = 2, .heads = 4, .intermediate = 256,
                           .max_positions = max_len, .act = SID_ACT_GELU, .eps = 1e-5f};
}

// ---------------------------------------------------------------- folder writing
static int write_text(const char *path, const char *text) {
    char tmp[1200];
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) return -1;
    fputs(text, f);
    return sid_atomic_commit(f, tmp, path);
}

static int write_scheduler(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/scheduler", dir);
    if (sid_mkdir_p(path)) return -1;
    snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
    return write_text(path, "{\n  \"_class_name\": \"DDPMScheduler\",\n  \"beta_start\": 0.00085,\n  \"beta_end\": 0.012,\n"
                            "  \"beta_schedule\": \"scaled_linear\",\n  \"num_train_timesteps\": 1000,\n"
                            "  \"prediction_type\": \"epsilon\",\n  \"clip_sample\": false,\n  \"timestep_spacing\": \"trailing\"\n}\n");
}

static int write_model_index(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    return write_text(path, "{\n  \"_class_name\": \"StableDiffusionPipeline\",\n  \"_diffusers_version\": \"0.42.1\",\n"
                            "  \"_sid\": \"built-in Fashion-MNIST teacher, pixel space 1x32x32 (no VAE)\",\n"
                            "  \"feature_extractor\": [null, null],\n  \"requires_safety_checker\": false,\n"
                            "  \"safety_checker\": [null, null],\n  \"scheduler\": [\"diffusers\", \"DDPMScheduler\"],\n"
                            "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                            "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                            "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n  \"vae\": [null, null]\n}\n");
}

// The tokenizer: sid's own small BPE vocabulary over the prompt files, max length MAX_LEN.
static int build_tokenizer(const sid_teacher_train_cfg *cfg, const char *dir) {
    sid_prompts a = {0}, b = {0};
    if (sid_prompts_load(cfg->prompts_file, &a)) return -1;
    if (cfg->vocab_file && sid_prompts_load(cfg->vocab_file, &b)) {
        sid_prompts_free(&a);
        return -1;
    }
    const char **corpus = sid_malloc((size_t)(a.n + b.n) * sizeof *corpus);
    for (int i = 0; i < a.n; i++) corpus[i] = a.text[i];
    for (int i = 0; i < b.n; i++) corpus[a.n + i] = b.text[i];
    int rc = sid_bpe_build(corpus, a.n + b.n, -1, dir) < 0 ? -1 : 0;
    free(corpus);
    sid_prompts_free(&a);
    sid_prompts_free(&b);
    if (rc) return -1;
    // shorter than CLIP's 77: the prompts are a few words, and the text encoder's cost scales with it
    char path[1100];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    cJSON_DeleteItemFromObject(j, "model_max_length");
    cJSON_AddNumberToObject(j, "model_max_length", MAX_LEN);
    rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}

static int export_folder(const char *dir, const sid_unet_config *uc, const sid_params *unet_ema,
                         const sid_clip_config *cc, const sid_params *clip_ema, const sid_tokenizer *tok) {
    char path[1024];
    snprintf(path, sizeof path, "%s/unet", dir);
    if (sid_mkdir_p(path)) return -1;
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    if (sid_mkdir_p(path)) return -1;
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    if (sid_unet_config_save(uc, path)) return -1;
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    if (sid_params_save(unet_ema, path, SID_F32)) return -1;
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (sid_clip_config_save(cc, sid_tokenizer_bos_id(tok), sid_tokenizer_eos_id(tok), sid_tokenizer_pad_id(tok), path))
        return -1;
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", dir);
    if (sid_params_save(clip_ema, path, SID_F32)) return -1;
    return write_scheduler(dir) || write_model_index(dir) ? -1 : 0;
}

// ---------------------------------------------------------------- training state
// One safetensors file: weights, Adam moments and EMA of both networks, and the counters in its
// metadata, so a resumed run continues exactly where the state was written.
typedef struct {
    sid_params *ps[2];
    float *v[2], *m[2], *ema[2];
} train_state;

static void state_layout(const train_state *s, sid_state_block b[8]) {
    static const char *const names[8] = {"unet.params",         "unet.adam_m",         "unet.adam_v",
                                         "unet.ema",            "text_encoder.params", "text_encoder.adam_m",
                                         "text_encoder.adam_v", "text_encoder.ema"};
    for (int k = 0; k < 2; k++) {
        float *blocks[4] = {s->ps[k]->data, s->m[k], s->v[k], s->ema[k]};
        for (int i = 0; i < 4; i++) b[4 * k + i] = (sid_state_block){names[4 * k + i], blocks[i], s->ps[k]->total, i == 0};
    }
}

// be: where the blocks are (the state file is written through the host).
static int save_state(const char *path, const sid_backend *be, const train_state *s, int64_t step, const sid_rng *rng) {
    sid_state_block b[8];
    state_layout(s, b);
    const sid_state_counter c[3] = {{"step", NULL, (uint64_t)step}, {"rng_seed", NULL, rng->seed},
                                    {"rng_offset", NULL, rng->offset}};
    return sid_state_save(path, be, b, 8, NULL, 0, c, 3);
}

static int load_state(const char *path, train_state *s, int64_t *step, sid_rng *rng) {
    sid_state_block b[8];
    state_layout(s, b);
    sid_state_counter c[3] = {{"step", NULL, 0}, {"rng_seed", NULL, 0}, {"rng_offset", NULL, 0}};
    if (sid_state_load(path, NULL, b, 8, NULL, 0, c, 3)) return -1;
    *step = (int64_t)c[0].value, rng->seed = c[1].value, rng->offset = c[2].value;
    return 0;
}

// ---------------------------------------------------------------- the loop
static double lr_at(const sid_teacher_train_cfg *c, int64_t step) {
    if (step < c->warmup) return c->lr * (double)(step + 1) / c->warmup;
    const double p = (double)(step - c->warmup) / (double)(c->steps > c->warmup ? c->steps - c->warmup : 1);
    return c->lr_final + 0.5 * (c->lr - c->lr_final) * (1 + cos(M_PI * (p > 1 ? 1 : p)));
}

// ---------------------------------------------------------------- the device
// A train_state's blocks in be's memory (moved there once, after init or resume; the parameter
// sets by sid_params_to_backend), and host copies of them for state dumps and exports.
// n zero floats in be's memory (the CPU backend's alloc is the host's calloc).
static float *floats_on(const sid_backend *be, size_t n) { return be->alloc(n * sizeof(float)); }

static float *to_device(const sid_backend *be, float *host, size_t n) {
    if (be == &sid_backend_cpu) return host;
    float *d = be->alloc(n * sizeof(float));
    be->upload(d, host, n * sizeof(float));
    free(host);
    return d;
}



typedef struct {
    train_state st;
    sid_params ps[2];
} host_state;

static void stage(const sid_backend *be, const train_state *s, host_state *h) {
    for (int k = 0; k < 2; k++) {
        const size_t n = s->ps[k]->total;
        h->ps[k] = *s->ps[k], h->ps[k].grad = NULL, h->ps[k].be = NULL;
        float *blocks[4] = {s->ps[k]->data, s->m[k], s->v[k], s->ema[k]}, *copy[4];
        for (int b = 0; b < 4; b++) copy[b] = sid_malloc(n * sizeof(float)), be->download(copy[b], blocks[b], n * sizeof(float));
        h->ps[k].data = copy[0], h->st.m[k] = copy[1], h->st.v[k] = copy[2], h->st.ema[k] = copy[3];
        h->st.ps[k] = &h->ps[k];
    }
}

static void stage_free(host_state *h) {
    for (int k = 0; k < 2; k++) free(h->ps[k].data), free(h->st.m[k]), free(h->st.v[k]), free(h->st.ema[k]);
}

// The EMA weights as a parameter set for export (host memory).
static sid_params ema_params(const host_state *h, int k) {
    sid_params e = h->ps[k];
    e.data = h->st.ema[k];
    return e;
}

static int write_snapshot(const sid_backend *be, const train_state *st, const char *state_path, int64_t step,
                          const sid_rng *rng, const char *dir, const sid_unet_config *uc, const sid_clip_config *cc,
                          const sid_tokenizer *tok, int with_state) {
    host_state h;
    stage(be, st, &h);
    const sid_params eu = ema_params(&h, 0), ec = ema_params(&h, 1);
    const int rc = (with_state && save_state(state_path, be, st, step, rng)) || export_folder(dir, uc, &eu, cc, &ec, tok);
    stage_free(&h);
    return rc ? -1 : 0;
}

int sid_teacher_train(const sid_teacher_train_cfg *cfg) {
    const sid_backend *be = sid_backend_or_cpu(cfg->be);
    char path[1024], tokdir[1024], state_path[1024];
    if (cfg->batch < 1 || cfg->steps < 1 || !(cfg->lr > 0) || cfg->p_uncond < 0 || cfg->p_uncond > 1) {
        sid_set_error("train-teacher: batch, steps and lr must be positive and p_uncond in [0, 1]");
        return -1;
    }
    // Data parallelism (src/dist/dist.h): every rank draws the whole batch and trains on its slice;
    // gradients and the loss are summed before the step; rank 0 alone writes the folder.
    const int R = sid_dist_size(), r0 = sid_dist_rank() == 0;
    if (cfg->batch % R) {
        sid_set_error("train-teacher: --batch %d must be a multiple of the %d ranks", cfg->batch, R);
        return -1;
    }
    if (sid_mkdir_p(cfg->out_dir)) return -1;
    const int partial = r0 ? sid_remove_partial_files(cfg->out_dir, 2) : 0;
    if (partial) fprintf(stderr, "train-teacher: removed %d partial file%s left by an interrupted write in %s\n", partial,
                         partial > 1 ? "s" : "", cfg->out_dir);
    snprintf(tokdir, sizeof tokdir, "%s/tokenizer", cfg->out_dir);
    snprintf(state_path, sizeof state_path, "%s/train_state.safetensors", cfg->out_dir);
    const int resume = cfg->resume && sid_file_exists(state_path);
    int built = resume || !r0 ? 0 : build_tokenizer(cfg, tokdir);
    sid_dist_bcast(&built, sizeof built, 0, "the tokenizer");  // the other ranks read what rank 0 wrote
    if (built) {
        if (!r0) sid_set_error("train-teacher: rank 0 could not write %s", tokdir);
        return -1;
    }
    sid_tokenizer *tok = sid_tokenizer_load(tokdir);
    if (!tok) return -1;

    // data and prompts, all before any training work so bad input costs nothing
    sid_fmnist data = {0};
    sid_prompts prompts = {0};
    if (sid_fmnist_load(&data, cfg->data_dir ? cfg->data_dir : sid_fmnist_default_dir(), 1, 0) ||
        sid_prompts_load(cfg->prompts_file, &prompts)) {
        sid_tokenizer_free(tok);
        sid_fmnist_free(&data);
        return -1;
    }
    int32_t *ids = sid_malloc((size_t)(prompts.n + 1) * MAX_LEN * sizeof(int32_t));
    int *by_class[SID_FMNIST_CLASSES], n_class[SID_FMNIST_CLASSES] = {0};
    for (int k = 0; k < SID_FMNIST_CLASSES; k++) by_class[k] = sid_malloc((size_t)prompts.n * sizeof(int));
    for (int i = 0; i < prompts.n; i++) {
        sid_tokenizer_encode(tok, prompts.text[i], ids + (size_t)i * MAX_LEN, MAX_LEN);
        if (prompts.cls[i] >= 0) by_class[prompts.cls[i]][n_class[prompts.cls[i]]++] = i;
    }
    sid_tokenizer_encode(tok, "", ids + (size_t)prompts.n * MAX_LEN, MAX_LEN);  // the unconditional prompt
    for (int k = 0; k < SID_FMNIST_CLASSES; k++)
        if (!n_class[k]) sid_die("%s: no prompt of class '%s'", cfg->prompts_file, sid_fmnist_class_name(k));

    sid_unet_config uc;
    sid_clip_config cc;
    sid_teacher_arch(&uc, &cc, sid_tokenizer_vocab_size(tok), MAX_LEN);
    sid_params ups = {0}, cps = {0};
    sid_unet unet;
    sid_clip clip;
    sid_unet_decl(&unet, &ups, &uc);
    sid_clip_decl(&clip, &cps, &cc);
    sid_params_alloc(&ups, 1);
    sid_params_alloc(&cps, 1);
    sid_rng rng = sid_rng_new(cfg->seed);
    sid_params ema_u = ups, ema_c = cps;  // same layout, own blocks (for saving under the same names)
    ema_u.data = sid_aligned_alloc(ups.total * sizeof(float) + 64), ema_u.grad = NULL;
    ema_c.data = sid_aligned_alloc(cps.total * sizeof(float) + 64), ema_c.grad = NULL;
    train_state st = {{&ups, &cps},
                      {sid_calloc(ups.total * sizeof(float)), sid_calloc(cps.total * sizeof(float))},
                      {sid_calloc(ups.total * sizeof(float)), sid_calloc(cps.total * sizeof(float))},
                      {ema_u.data, ema_c.data}};
    int64_t step = 0;
    int rc = 0;
    if (resume) {
        if (load_state(state_path, &st, &step, &rng)) rc = -1;
        else fprintf(stderr, "train-teacher: resuming %s at step %lld\n", state_path, (long long)step);
    } else {
        sid_params_init_default(&ups, &rng);
        sid_params_init_default(&cps, &rng);
        memcpy(ema_u.data, ups.data, ups.total * sizeof(float));
        memcpy(ema_c.data, cps.data, cps.total * sizeof(float));
    }
    if (r0)
        fprintf(stderr, "train-teacher: UNet %zu + text encoder %zu parameters, vocabulary %d, %d images, %d prompts\n",
                sid_params_count(&ups), sid_params_count(&cps), cc.vocab_size, data.n, prompts.n);
    // from here on the weights, Adam moments and EMA live in the device's memory
    sid_params_to_backend(&ups, be), sid_params_to_backend(&cps, be);
    for (int k = 0; k < 2; k++) {
        const size_t n = st.ps[k]->total;
        st.m[k] = to_device(be, st.m[k], n), st.v[k] = to_device(be, st.v[k], n), st.ema[k] = to_device(be, st.ema[k], n);
    }

    const int B = cfg->batch, D = 32 * 32, W = cc.hidden;
    sid_schedule sched;
    sid_schedule_init(&sched, 1000, SID_SD_BETA_START, SID_SD_BETA_END);
    // host: the batch as drawn (xt holds the per-image noise coefficients before they go up)
    float *x0 = sid_malloc((size_t)B * D * 4), *eps = sid_malloc((size_t)B * D * 4), *xt = sid_malloc((size_t)2 * B * 4);
    float *tf = sid_malloc((size_t)B * 4), *loss = sid_malloc((size_t)B * 4), *u = sid_malloc((size_t)B * 4);
    int32_t *t = sid_malloc((size_t)B * 4), *bid = sid_malloc((size_t)B * MAX_LEN * 4);
    // one step's buffers in the device's memory (the batch is drawn on the host)
    const size_t nb = (size_t)B * D;
    float *d_x0 = floats_on(be, nb), *d_eps = floats_on(be, nb), *d_xt = floats_on(be, nb), *d_pred = floats_on(be, nb);
    float *d_dpred = floats_on(be, nb), *d_tf = floats_on(be, (size_t)B), *d_loss = floats_on(be, (size_t)B);
    float *d_dloss = floats_on(be, (size_t)B), *d_a = floats_on(be, (size_t)B), *d_s = floats_on(be, (size_t)B);
    float *d_ctx = floats_on(be, (size_t)B * MAX_LEN * W), *d_dctx = floats_on(be, (size_t)B * MAX_LEN * W);
    int32_t *d_bid = (int32_t *)floats_on(be, (size_t)B * MAX_LEN);
    double *d_bad = (double *)floats_on(be, 2);
    sid_arena act, meta;
    sid_backend_arena_init(&act, be, "teacher activations", (size_t)B * 24 << 20);
    sid_arena_init(&meta, "teacher saved state", (size_t)4 << 20);
    const sid_adam_cfg adam = {.lr = cfg->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    snprintf(path, sizeof path, "%s/log.jsonl", cfg->out_dir);
    FILE *log = r0 ? fopen(path, resume ? "a" : "w") : NULL;
    if (r0 && !log) sid_die("%s: cannot open for writing", path);
    sid_progress bar = {0};
    if (r0) sid_progress_start(&bar, "train-teacher", cfg->steps), sid_progress_update(&bar, step);
    const int b = B / R, lo = b * sid_dist_rank();  // this rank's slice of the batch
    double loss_acc = 0, t_last = sid_now();
    int loss_n = 0;
    size_t nonfinite = 0;
    const int64_t end = cfg->stop_after > 0 && cfg->stop_after < cfg->steps ? cfg->stop_after : cfg->steps;
    while (!rc && step < end) {
        // a batch: random images, a random prompt of each image's class (or the empty prompt)
        uint32_t pick[1024];
        sid_rng_below(&rng, (uint32_t)data.n, pick, (size_t)B);
        sid_rng_uniform(&rng, u, (size_t)B);
        for (int i = 0; i < B; i++) {
            memcpy(x0 + (size_t)i * D, data.images + (size_t)pick[i] * D, D * sizeof(float));
            const int cls = data.labels[pick[i]];
            uint32_t j;
            sid_rng_below(&rng, (uint32_t)n_class[cls], &j, 1);
            const int p = u[i] < cfg->p_uncond ? prompts.n : by_class[cls][j];
            memcpy(bid + (size_t)i * MAX_LEN, ids + (size_t)p * MAX_LEN, MAX_LEN * sizeof(int32_t));
        }
        sid_sample_timesteps(&rng, t, (size_t)B, 0, 1000);
        sid_rng_normal(&rng, eps, (size_t)B * D);
        for (int i = 0; i < B; i++)  // xt = sqrt(ab) x0 + sqrt(1 - ab) eps, on the device
            tf[i] = (float)t[i], xt[i] = sid_schedule_sqrt_ab(&sched, t[i]), xt[B + i] = sid_schedule_sqrt_1m_ab(&sched, t[i]);
        be->upload(d_x0, x0, nb * 4), be->upload(d_eps, eps, nb * 4), be->upload(d_tf, tf, (size_t)B * 4);
        be->upload(d_a, xt, (size_t)B * 4), be->upload(d_s, xt + B, (size_t)B * 4);
        be->upload(d_bid, bid, (size_t)B * MAX_LEN * 4);
        be->add_noise_fwd(d_xt, d_x0, d_eps, d_a, d_s, B, D);

        // forward, epsilon MSE, backward through the UNet into the text encoder
        sid_arena_reset(&act, 0), sid_arena_reset(&meta, 0);
        be->fill(ups.grad, 0.0f, ups.total), be->fill(cps.grad, 0.0f, cps.total);
        be->fill(d_dctx, 0.0f, (size_t)B * MAX_LEN * W), be->fill(d_dpred, 0.0f, nb);
        sid_ctx cu = {&ups, &act, be, &meta}, ccx = {&cps, &act, be, &meta};
        const int32_t *sb = d_bid + (size_t)lo * MAX_LEN;
        const float *sx = d_xt + (size_t)lo * D, *st_ = d_tf + lo, *se = d_eps + (size_t)lo * D;
        sid_clip_saved *cs = sid_clip_forward(&ccx, &clip, d_ctx, sb, b, MAX_LEN, cc.layers);
        if (!cs) sid_die("%s", sid_error());
        sid_unet_saved *us = sid_unet_forward(&cu, &unet, d_pred, sx, st_, d_ctx, b, 32, 32, MAX_LEN);
        be->mse_fwd(d_loss, d_pred, se, b, D);
        be->fill(d_dloss, 1.0f / B, (size_t)b);
        be->mse_bwd(d_dpred, NULL, d_dloss, d_pred, se, b, D);
        sid_unet_backward(&cu, &unet, NULL, d_dctx, d_dpred, us);
        sid_clip_backward(&ccx, &clip, NULL, d_dctx, sb, cs, b, MAX_LEN);
        be->download(loss, d_loss, (size_t)b * 4);  // the step's one download: the per-image losses
        double l = 0;
        for (int i = 0; i < b; i++) l += loss[i];
        sid_dist_sum_on(be, ups.grad, ups.total, "UNet gradients");
        sid_dist_sum_on(be, cps.grad, cps.total, "text encoder gradients");
        sid_dist_sum_f64(&l, 1, "the loss");

        double bad[1] = {0};
        be->fill((float *)d_bad, 0.0f, 2);  // one double
        be->sanitize(ups.grad, ups.total, 1e5f, -1e5f, d_bad), be->sanitize(cps.grad, cps.total, 1e5f, -1e5f, d_bad);
        be->download(bad, d_bad, sizeof(double));
        nonfinite += (size_t)bad[0];
        if (!isfinite(l)) {
            sid_set_error("train-teacher: loss is %g at step %lld (lower --lr?); last good state: %s", l, (long long)step,
                          state_path);
            rc = -1;
            break;
        }
        sid_adam_cfg a = adam;
        a.lr = (float)lr_at(cfg, step);
        for (int k = 0; k < 2; k++)
            be->adam(st.ps[k]->data, st.ps[k]->grad, st.m[k], st.v[k], st.ps[k]->total, a.lr, a.beta1, a.beta2, a.eps,
                     a.weight_decay, a.decoupled, step + 1);
        const double nimg = (double)step * B;
        const float beta = (float)sid_ema_beta(B, cfg->ema_halflife_img, 0.05, nimg);
        be->ema(st.ema[0], ups.data, ups.total, beta), be->ema(st.ema[1], cps.data, cps.total, beta);
        step++;
        loss_acc += l / B, loss_n++;
        if (r0) sid_progress_update(&bar, step);

        if (r0 && (step % cfg->log_every == 0 || step == end)) {
            const double now = sid_now(), dt = (now - t_last) / loss_n;
            fprintf(log,
                    "{\"step\": %lld, \"kimg\": %.3f, \"loss\": %.6f, \"lr\": %.3g, \"sec_per_step\": %.4f, "
                    "\"img_per_s\": %.1f, \"nonfinite_grads\": %zu}\n",
                    (long long)step, step * (double)B / 1000, loss_acc / loss_n, a.lr, dt, B / dt, nonfinite);
            fflush(log);
            loss_acc = 0, loss_n = 0, t_last = now;
        }
        if (step % cfg->snapshot_every == 0 || step == end) {
            if (r0 && write_snapshot(be, &st, state_path, step, &rng, cfg->out_dir, &uc, &cc, tok, 1)) rc = -1;
            if (R > 1) {  // every rank stops with rank 0's failure; all must hold the same weights
                sid_dist_bcast(&rc, sizeof rc, 0, "snapshot");
                if (rc && !r0) sid_set_error("train-teacher: rank 0 could not write the snapshot at step %lld", (long long)step);
                host_state hs;
                stage(be, &st, &hs);
                const uint64_t h = sid_dist_hash(hs.ps[1].data, cps.total * sizeof(float),
                                                 sid_dist_hash(hs.ps[0].data, ups.total * sizeof(float), 0));
                stage_free(&hs);
                if (!rc && sid_dist_same_u64(h, "train-teacher: the weights")) rc = -1;
            }
            if (!rc && r0 && cfg->keep_snapshots) {
                char snap[1100];
                snprintf(snap, sizeof snap, "%s/snapshots/kimg-%06lld", cfg->out_dir, (long long)(step * B / 1000));
                if (sid_mkdir_p(snap) || write_snapshot(be, &st, state_path, step, &rng, snap, &uc, &cc, tok, 0)) rc = -1;
                snprintf(snap + strlen(snap), sizeof snap - strlen(snap), "/tokenizer");
                if (!rc && (sid_mkdir_p(snap) || build_tokenizer(cfg, snap))) rc = -1;
            }
        }
    }
    if (r0) sid_progress_finish(&bar), fclose(log);
    sid_arena_free(&act), sid_arena_free(&meta);
    void *dbufs[] = {d_x0, d_eps, d_xt, d_pred, d_dpred, d_tf, d_loss, d_dloss, d_a, d_s, d_ctx, d_dctx, d_bid, d_bad};
    for (size_t i = 0; i < sizeof dbufs / sizeof dbufs[0]; i++) be->free(dbufs[i]);
    free(x0), free(eps), free(xt), free(tf), free(loss), free(u), free(t), free(bid), free(ids);
    for (int k = 0; k < SID_FMNIST_CLASSES; k++) free(by_class[k]);
    for (int k = 0; k < 2; k++) be->free(st.m[k]), be->free(st.v[k]), be->free(st.ema[k]);
    sid_schedule_free(&sched);
    sid_unet_free(&unet);
    sid_clip_free(&clip);
    sid_params_free(&ups);
    sid_params_free(&cps);
    sid_prompts_free(&prompts);
    sid_fmnist_free(&data);
    sid_tokenizer_free(tok);
    return rc;
}
