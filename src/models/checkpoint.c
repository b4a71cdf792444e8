#include "models/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"

enum { PATH_CAP = 1024 };

// ---------------------------------------------------------------- built-in configs
// Hub unet/config.json of SD1.5 (docs/models.md) and SD2.1-base's differences (2).
static const char *const unet_sd15_json =
    "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\", \"attention_head_dim\": 8,"
    " \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false, \"cross_attention_dim\": 768,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": 4,"
    " \"layers_per_block\": 2, \"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05, \"norm_num_groups\": 32,"
    " \"out_channels\": 4, \"sample_size\": 64, \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";
static const char *const unet_sd21base_json =
    "{\"_class_name\": \"UNet2DConditionModel\", \"act_fn\": \"silu\", \"attention_head_dim\": [5, 10, 20, 20],"
    " \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false, \"cross_attention_dim\": 1024,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": 4,"
    " \"layers_per_block\": 2, \"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05, \"norm_num_groups\": 32,"
    " \"out_channels\": 4, \"sample_size\": 64, \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"], \"use_linear_projection\": true}";

// SD1.5's and SD2.1-base's scheduler_config.json (docs/models.md): both epsilon-prediction,
// PNDMScheduler with steps_offset 1, set_alpha_to_one false, clip_sample false and no
// timestep_spacing (so DDIM's "leading"): sid_ddim_sd().
static void schedule_defaults(sid_sd_model *m) {
    m->beta_start = 0.00085, m->beta_end = 0.012, m->train_timesteps = 1000;
    snprintf(m->prediction_type, sizeof m->prediction_type, "epsilon");
    m->timestep_spacing = SID_SPACING_LEADING;
    m->steps_offset = 1;
    m->set_alpha_to_one = 0;
    m->clip_sample = 0;
    m->clip_sample_range = 1.0f;
}

sid_ddim_config sid_sd_ddim_config(const sid_sd_model *m) {
    sid_ddim_config c = sid_ddim_default();
    c.spacing = m->timestep_spacing;
    c.steps_offset = m->steps_offset;
    c.set_alpha_to_one = m->set_alpha_to_one;
    c.prediction = strcmp(m->prediction_type, "v_prediction") == 0 ? SID_PRED_V : SID_PRED_EPSILON;
    c.clip_sample = m->clip_sample;
    c.clip_sample_range = m->clip_sample_range;
    return c;
}

int sid_sd_default_configs(int v, sid_unet_config *unet, sid_clip_config *clip, sid_vae_config *vae) {
    if (v != 1 && v != 2) {
        sid_set_error("Stable Diffusion version %d has no built-in configs (1 or 2)", v);
        return -1;
    }
    if (unet && sid_unet_config_parse(unet, v == 2 ? unet_sd21base_json : unet_sd15_json, "built-in unet config"))
        sid_die("%s", sid_error());  // the text above is wrong: a bug, not a user error
    if (clip) *clip = v == 2 ? sid_clip_config_sd2() : sid_clip_config_sd15();
    if (vae) *vae = sid_vae_config_sd();
    return 0;
}

// ---------------------------------------------------------------- small helpers
static int is_dir(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

static int is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

// buf = a "/" b; a path too long for buf is an error naming it.
static int join(char *buf, size_t cap, const char *a, const char *b) {
    const size_t n = strlen(a);
    const int sep = n && a[n - 1] != '/';
    if ((size_t)snprintf(buf, cap, "%s%s%s", a, sep ? "/" : "", b) >= cap) {
        sid_set_error("%s/%s: path too long", a, b);
        return -1;
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    const size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// A JSON config's "_class_name", when present, must be one of `want` (NULL-terminated).
static int check_class_name(const char *path, const char *const *want) {
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    const char *cls;
    int rc = sid_json_string(j, "_class_name", &cls, NULL, 0, path);
    if (!rc && cls) {
        int ok = 0;
        for (int i = 0; want[i]; i++) ok |= strcmp(cls, want[i]) == 0;
        if (!ok) {
            sid_set_error("%s: '_class_name' \"%s\" is not supported (sid loads %s%s)", path, cls, want[0],
                          want[1] ? " and the like" : "");
            rc = -1;
        }
    }
    cJSON_Delete(j);
    return rc ? -1 : 0;
}

// transformers configs name their class in "architectures"; when present it must list CLIPTextModel.
static int check_text_encoder_class(const char *path) {
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    int rc = 0;
    if (a && !cJSON_IsNull(a)) {
        const cJSON *e;
        int ok = 0;
        const char *first = NULL;
        cJSON_ArrayForEach(e, a) {
            if (!cJSON_IsString(e)) continue;
            if (!first) first = e->valuestring;
            ok |= strcmp(e->valuestring, "CLIPTextModel") == 0;
        }
        if (!cJSON_IsArray(a) || !ok) {
            sid_set_error("%s: 'architectures' %s%s%s is not supported (sid loads CLIPTextModel)", path,
                          first ? "\"" : "", first ? first : "(no class name)", first ? "\"" : "");
            rc = -1;
        }
    }
    cJSON_Delete(j);
    return rc;
}

// The weights file of a diffusers component folder: <base>.safetensors, else <base>.fp16.safetensors.
static int find_weights(const char *dir, const char *base, const char *legacy_bin, char *out, size_t cap) {
    static const char *const variants[] = {"", ".fp16"};
    char name[256], p[PATH_CAP];
    for (int v = 0; v < 2; v++) {
        snprintf(name, sizeof name, "%s%s.safetensors", base, variants[v]);
        if (join(out, cap, dir, name)) return -1;
        if (is_file(out)) return 0;
    }
    for (int v = 0; v < 2; v++) {
        snprintf(name, sizeof name, "%s%s.safetensors.index.json", base, variants[v]);
        if (join(p, sizeof p, dir, name)) return -1;
        if (is_file(p)) {
            sid_set_error("%s: sharded weights are not supported (merge the shards into one %s.safetensors)", p, base);
            return -1;
        }
    }
    if (join(p, sizeof p, dir, legacy_bin)) return -1;
    if (is_file(p)) {
        sid_set_error("%s: pickled PyTorch weights are not supported (convert them to %s.safetensors)", p, base);
        return -1;
    }
    sid_set_error("%s: no weights file (%s.safetensors or %s.fp16.safetensors)", dir, base, base);
    return -1;
}

// ---------------------------------------------------------------- scheduler
// A boolean key as Python reads it: absent takes the class default; null is falsy (diffusers
// passes None through to the constructor, and `if None:` is false); true / false as written.
static int config_bool(const cJSON *j, const char *key, int dflt, const char *path, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) return *out = dflt, 0;
    if (cJSON_IsNull(v)) return *out = 0, 0;
    return sid_json_bool(j, key, out, dflt, 0, path);
}

// A string key that must be absent, null or one of `ok` (NULL-terminated); anything else is
// refused with `why`.
static int config_string_in(const cJSON *j, const char *key, const char *const *ok, const char *why, const char *path) {
    const char *v;
    if (sid_json_string(j, key, &v, NULL, 0, path)) return -1;
    if (!v) return 0;
    for (int i = 0; ok[i]; i++)
        if (strcmp(v, ok[i]) == 0) return 0;
    sid_set_error("%s: '%s' \"%s\" is not supported (%s)", path, key, v, why);
    return -1;
}

// The keys and what sid does with each: the table in checkpoint.h.
int sid_sd_scheduler_load(sid_sd_model *m, const char *path) {
    // discrete-time schedulers whose betas come from these keys; SD's repos ship PNDMScheduler
    static const char *const classes[] = {
        "DDPMScheduler", "PNDMScheduler", "DDIMScheduler", "LMSDiscreteScheduler", "EulerDiscreteScheduler",
        "EulerAncestralDiscreteScheduler", "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
        "HeunDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
        "UniPCMultistepScheduler", "DEISMultistepScheduler", "LCMScheduler", "TCDScheduler", NULL};
    static const char *const fixed_variances[] = {"fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", NULL};
    static const char *const discrete[] = {"discrete", NULL};
    if (check_class_name(path, classes)) return -1;
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    if (!cJSON_IsObject(j)) {
        sid_set_error("%s: not a JSON object", path);
        cJSON_Delete(j);
        return -1;
    }
    const char *schedule, *pred, *spacing;
    double b0, b1, clip_range;
    int T, offset, alpha_one, clip, thresholding, zero_snr;
    // absent keys: DDIMScheduler's defaults (scheduling_ddim.py), since sid samples with DDIM as
    // DDIMScheduler.from_config(this file) would, so a bare file means "linear" and clip_sample
    int rc = sid_json_double(j, "beta_start", &b0, 0.0001, 0, path) ||
             sid_json_double(j, "beta_end", &b1, 0.02, 0, path) ||
             sid_json_string(j, "beta_schedule", &schedule, "linear", 0, path) ||
             sid_json_int(j, "num_train_timesteps", &T, 1000, 0, path) ||
             sid_json_string(j, "prediction_type", &pred, "epsilon", 0, path) ||
             sid_json_string(j, "timestep_spacing", &spacing, "leading", 0, path) ||
             sid_json_int(j, "steps_offset", &offset, 0, 0, path) ||
             sid_json_double(j, "clip_sample_range", &clip_range, 1.0, 0, path) ||
             config_bool(j, "set_alpha_to_one", 1, path, &alpha_one) ||
             config_bool(j, "clip_sample", 1, path, &clip) ||
             config_bool(j, "thresholding", 0, path, &thresholding) ||
             config_bool(j, "rescale_betas_zero_snr", 0, path, &zero_snr);
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(j, "trained_betas");
    if (!rc && tb && !cJSON_IsNull(tb)) {
        sid_set_error("%s: 'trained_betas' is not supported (must be null)", path);
        rc = -1;
    }
    if (!rc && strcmp(schedule, "scaled_linear") != 0) {
        sid_set_error("%s: 'beta_schedule' \"%s\" is not supported (only \"scaled_linear\", Stable Diffusion's)", path,
                      schedule);
        rc = -1;
    }
    if (!rc && strcmp(pred, "epsilon") != 0 && strcmp(pred, "v_prediction") != 0) {
        sid_set_error("%s: 'prediction_type' \"%s\" is not supported (\"epsilon\" or \"v_prediction\")", path, pred);
        rc = -1;
    }
    if (!rc && T < 2) {
        sid_set_error("%s: 'num_train_timesteps' must be at least 2, got %d", path, T);
        rc = -1;
    }
    if (!rc && !(b0 > 0 && b0 < b1 && b1 < 1)) {
        sid_set_error("%s: 'beta_start' %g and 'beta_end' %g must satisfy 0 < beta_start < beta_end < 1", path, b0, b1);
        rc = -1;
    }
    if (!rc && sid_spacing_parse(spacing) < 0) {
        sid_set_error("%s: 'timestep_spacing' \"%s\" is not supported (\"leading\", \"trailing\" or \"linspace\")", path,
                      spacing);
        rc = -1;
    }
    if (!rc && offset < 0) {
        sid_set_error("%s: 'steps_offset' must be at least 0, got %d", path, offset);
        rc = -1;
    }
    if (!rc && clip && !(clip_range > 0 && clip_range < 3.4e38)) {
        sid_set_error("%s: 'clip_sample_range' must be positive with clip_sample, got %g", path, clip_range);
        rc = -1;
    }
    if (!rc && thresholding) {
        sid_set_error("%s: 'thresholding' true is not supported (dynamic thresholding is not implemented)", path);
        rc = -1;
    }
    if (!rc && zero_snr) {
        sid_set_error("%s: 'rescale_betas_zero_snr' true is not supported (only the plain scaled_linear betas)", path);
        rc = -1;
    }
    // a learned variance means the UNet's output carries variance channels next to eps
    if (!rc && config_string_in(j, "variance_type", fixed_variances,
                                "a learned variance: sid reads the whole UNet output as the prediction", path))
        rc = -1;
    // continuous timesteps: the UNet was trained on another time input than the integer t
    if (!rc && config_string_in(j, "timestep_type", discrete, "only integer timesteps, \"discrete\"", path)) rc = -1;
    if (!rc) {
        m->beta_start = b0, m->beta_end = b1, m->train_timesteps = T;
        snprintf(m->prediction_type, sizeof m->prediction_type, "%s", pred);
        m->timestep_spacing = (sid_spacing)sid_spacing_parse(spacing);
        m->steps_offset = offset;
        m->set_alpha_to_one = alpha_one;
        m->clip_sample = clip;
        m->clip_sample_range = (float)clip_range;
    }
    cJSON_Delete(j);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- declaring and loading
static void unet_alloc(sid_sd_model *m, int grad) {
    sid_unet_decl(&m->unet, &m->unet_ps, &m->unet_cfg);
    sid_params_alloc(&m->unet_ps, grad);
}

static void clip_alloc(sid_sd_model *m, int grad) {
    sid_clip_decl(&m->clip, &m->clip_ps, &m->clip_cfg);
    sid_params_alloc(&m->clip_ps, grad);
    m->clip_skip_layers = m->clip_cfg.layers;
}

static void vae_alloc(sid_sd_model *m) {
    sid_vae_decl(&m->vae, &m->vae_ps, &m->vae_cfg);
    sid_params_alloc(&m->vae_ps, 0);
}

void sid_sd_free(sid_sd_model *m) {
    sid_unet_free(&m->unet);
    sid_clip_free(&m->clip);
    sid_vae_free(&m->vae);
    sid_params_free(&m->unet_ps);
    sid_params_free(&m->clip_ps);
    sid_params_free(&m->vae_ps);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------- diffusers folder
// model_index.json's entry for a component: ["diffusers", "UNet2DConditionModel"]; `want` NULL
// accepts any class. *listed is 0 when the pipeline has no such component (absent or [null, null]).
static int index_entry(const cJSON *idx, const char *key, const char *want, const char *path, int *listed) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(idx, key);
    *listed = 0;
    if (!e || cJSON_IsNull(e)) return 0;
    const cJSON *cls = cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 ? cJSON_GetArrayItem(e, 1) : NULL;
    if (cJSON_IsNull(cls)) return 0;
    if (!cJSON_IsString(cls)) {
        sid_set_error("%s: '%s' must be a [library, class name] pair", path, key);
        return -1;
    }
    if (want && strcmp(cls->valuestring, want) != 0) {
        sid_set_error("%s: '%s' is %s, sid loads %s", path, key, cls->valuestring, want);
        return -1;
    }
    *listed = 1;
    return 0;
}

// The component folder <root>/<name>, which must exist.
static int component_dir(char *buf, size_t cap, const char *root, const char *name) {
    if (join(buf, cap, root, name)) return -1;
    if (!is_dir(buf)) {
        sid_set_error("%s: no such folder", buf);
        return -1;
    }
    return 0;
}

static int load_folder(sid_sd_model *m, const char *root, unsigned comp, unsigned grad) {
    static const char *const pipelines[] = {"StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", NULL};
    static const char *const unet_classes[] = {"UNet2DConditionModel", NULL};
    static const char *const vae_classes[] = {"AutoencoderKL", NULL};
    char idx_path[PATH_CAP], dir[PATH_CAP], cfg[PATH_CAP], w[PATH_CAP];
    if (join(idx_path, sizeof idx_path, root, "model_index.json")) return -1;
    if (!is_file(idx_path)) {
        sid_set_error("%s: no such file (a diffusers folder has one; or pass a single-file .safetensors)", idx_path);
        return -1;
    }
    if (check_class_name(idx_path, pipelines)) return -1;
    cJSON *idx = sid_json_load(idx_path);
    if (!idx) return -1;
    int rc = -1, has_unet, has_text, has_vae, has_tok, has_sched;
    if (!cJSON_IsObject(idx)) {
        sid_set_error("%s: not a JSON object", idx_path);
        goto done;
    }
    if (index_entry(idx, "unet", "UNet2DConditionModel", idx_path, &has_unet) ||
        index_entry(idx, "text_encoder", "CLIPTextModel", idx_path, &has_text) ||
        index_entry(idx, "vae", "AutoencoderKL", idx_path, &has_vae) ||
        index_entry(idx, "tokenizer", NULL, idx_path, &has_tok) ||
        index_entry(idx, "scheduler", NULL, idx_path, &has_sched))
        goto done;
    const struct {
        unsigned bit;
        int listed;
        const char *key;
    } need[] = {{SID_SD_UNET, has_unet, "unet"}, {SID_SD_TEXT, has_text, "text_encoder"}, {SID_SD_VAE, has_vae, "vae"}};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if ((comp & need[i].bit) && !need[i].listed) {
            sid_set_error("%s: the pipeline has no '%s'", idx_path, need[i].key);
            goto done;
        }

    // schedule
    schedule_defaults(m);
    if (has_sched) {
        if (component_dir(dir, sizeof dir, root, "scheduler") || join(cfg, sizeof cfg, dir, "scheduler_config.json"))
            goto done;
        if (sid_sd_scheduler_load(m, cfg)) goto done;
    }
    // SD2's text encoder is OpenCLIP's (exact gelu); read its config even when not loading it
    m->sd_version = 0;
    if (has_text && join(cfg, sizeof cfg, root, "text_encoder/config.json") == 0 && is_file(cfg)) {
        sid_clip_config c;
        if (sid_clip_config_load(&c, cfg) == 0) m->sd_version = c.act == SID_ACT_GELU ? 2 : 1;
    }

    if (comp & SID_SD_UNET) {
        if (component_dir(dir, sizeof dir, root, "unet") || join(cfg, sizeof cfg, dir, "config.json") ||
            check_class_name(cfg, unet_classes) || sid_unet_config_load(&m->unet_cfg, cfg) ||
            find_weights(dir, "diffusion_pytorch_model", "diffusion_pytorch_model.bin", w, sizeof w))
            goto done;
        unet_alloc(m, (grad & SID_SD_UNET) != 0);
        if (sid_params_load(&m->unet_ps, w, NULL, NULL, 1, NULL)) goto done;
        m->components |= SID_SD_UNET;
        if (!m->sd_version) m->sd_version = m->unet_cfg.use_linear_projection ? 2 : 1;
    }
    if (comp & SID_SD_TEXT) {
        if (component_dir(dir, sizeof dir, root, "text_encoder") || join(cfg, sizeof cfg, dir, "config.json") ||
            check_text_encoder_class(cfg) || sid_clip_config_load(&m->clip_cfg, cfg) ||
            find_weights(dir, "model", "pytorch_model.bin", w, sizeof w))
            goto done;
        clip_alloc(m, (grad & SID_SD_TEXT) != 0);
        if (sid_clip_load(&m->clip_ps, w, NULL)) goto done;
        m->components |= SID_SD_TEXT;
        if (has_tok) {
            if (component_dir(dir, sizeof dir, root, "tokenizer")) goto done;
            // vocab.json + merges.txt, or the tokenizer.json that transformers 5 writes alone
            char vocab[1100], merges[1100], fast[1100];
            if (join(vocab, sizeof vocab, dir, "vocab.json") || join(merges, sizeof merges, dir, "merges.txt") ||
                join(fast, sizeof fast, dir, "tokenizer.json"))
                goto done;
            if (!(is_file(vocab) && is_file(merges)) && !is_file(fast)) {
                sid_set_error("%s: no such file (a tokenizer folder needs vocab.json and merges.txt, or tokenizer.json)",
                              is_file(vocab) ? merges : vocab);
                goto done;
            }
            snprintf(m->tokenizer_dir, sizeof m->tokenizer_dir, "%s", dir);
        }
    }
    if (comp & SID_SD_VAE) {
        if (component_dir(dir, sizeof dir, root, "vae") || join(cfg, sizeof cfg, dir, "config.json") ||
            check_class_name(cfg, vae_classes) || sid_vae_config_load(&m->vae_cfg, cfg) ||
            find_weights(dir, "diffusion_pytorch_model", "diffusion_pytorch_model.bin", w, sizeof w))
            goto done;
        vae_alloc(m);
        if (sid_vae_load(&m->vae_ps, w, NULL)) goto done;
        m->components |= SID_SD_VAE;
    }
    if (!m->sd_version && has_unet) {  // neither the text encoder nor the UNet loaded: the UNet's config
        sid_unet_config c;
        if (join(cfg, sizeof cfg, root, "unet/config.json") == 0 && sid_unet_config_load(&c, cfg) == 0)
            m->sd_version = c.use_linear_projection ? 2 : 1;
    }
    if (!m->sd_version) m->sd_version = 1;  // only the VAE, which SD1 and SD2 share
    rc = 0;
done:
    cJSON_Delete(idx);
    return rc;
}

// ---------------------------------------------------------------- single file
static const char *const UNET_PREFIX = "model.diffusion_model.";
static const char *const VAE_PREFIX = "first_stage_model.";
static const char *const TEXT1_PREFIX = "cond_stage_model.transformer.";
static const char *const TEXT2_PREFIX = "cond_stage_model.model.";

static int has_prefix(const sid_safetensors *st, const char *prefix) {
    const size_t n = strlen(prefix);
    for (int i = 0; i < st->n; i++)
        if (strncmp(st->tensors[i].name, prefix, n) == 0) return 1;
    return 0;
}

static int detect_version(const sid_safetensors *st) {
    if (sid_st_find(st, "cond_stage_model.model.token_embedding.weight")) return 2;
    if (sid_st_find(st, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight") ||
        sid_st_find(st, "cond_stage_model.transformer.embeddings.token_embedding.weight"))
        return 1;
    const sid_st_tensor *t = sid_st_find(st, "model.diffusion_model.input_blocks.1.1.proj_in.weight");
    if (t && t->ndim == 2) return 2;
    if (t && t->ndim == 4) return 1;
    return -1;
}

int sid_sd_single_file_version(const char *path) {
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    const int v = detect_version(&st);
    sid_st_close(&st);
    if (v < 0)
        sid_set_error("%s: cannot tell SD1 from SD2 (no 'cond_stage_model.' token embedding and no "
                      "'model.diffusion_model.input_blocks.1.1.proj_in.weight')", path);
    return v;
}

// <config_dir>/<rel> when a config folder is given and has that file (or folder, for dirs), else "".
static int override_path(char *buf, size_t cap, const char *config_dir, const char *rel, int want_dir) {
    buf[0] = 0;
    if (!config_dir) return 0;
    if (join(buf, cap, config_dir, rel)) return -1;
    if (!(want_dir ? is_dir(buf) : is_file(buf))) buf[0] = 0;
    return 0;
}

static int load_single_file(sid_sd_model *m, const char *path, const char *config_dir, unsigned comp, unsigned grad) {
    static const char *const pickles[] = {".ckpt", ".pt", ".pth", ".bin"};
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0]; i++)
        if (ends_with(path, pickles[i])) {
            sid_set_error("%s: pickled checkpoints are not supported (convert it to .safetensors)", path);
            return -1;
        }
    if (config_dir && !is_dir(config_dir)) {
        sid_set_error("%s: no such folder (the config folder)", config_dir);
        return -1;
    }
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    int v = detect_version(&st);
    const int has_unet = has_prefix(&st, UNET_PREFIX), has_vae = has_prefix(&st, VAE_PREFIX);
    const int has_text = has_prefix(&st, v == 2 ? TEXT2_PREFIX : TEXT1_PREFIX);
    sid_st_close(&st);
    if (v < 0 && (comp & (SID_SD_UNET | SID_SD_TEXT)))
        return sid_sd_single_file_version(path);  // sets the error
    if (v < 0) v = 1;  // only the VAE, which SD1 and SD2 share
    m->sd_version = v;
    const struct {
        unsigned bit;
        int present;
        const char *what, *prefix;
    } parts[] = {{SID_SD_UNET, has_unet, "UNet", UNET_PREFIX},
                 {SID_SD_TEXT, has_text, "text encoder", v == 2 ? TEXT2_PREFIX : TEXT1_PREFIX},
                 {SID_SD_VAE, has_vae, "VAE", VAE_PREFIX}};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        if ((comp & parts[i].bit) && !parts[i].present) {
            sid_set_error("%s: the checkpoint has no %s (no '%s' tensors)", path, parts[i].what, parts[i].prefix);
            return -1;
        }

    char cfg[PATH_CAP];
    schedule_defaults(m);
    if (override_path(cfg, sizeof cfg, config_dir, "scheduler/scheduler_config.json", 0) ||
        (cfg[0] && sid_sd_scheduler_load(m, cfg)))
        return -1;
    if (comp & SID_SD_UNET) {
        if (override_path(cfg, sizeof cfg, config_dir, "unet/config.json", 0)) return -1;
        if (cfg[0] ? sid_unet_config_load(&m->unet_cfg, cfg) : sid_sd_default_configs(v, &m->unet_cfg, NULL, NULL))
            return -1;
        unet_alloc(m, (grad & SID_SD_UNET) != 0);
        if (sid_params_load_mapped(&m->unet_ps, path, UNET_PREFIX, sid_unet_ldm_name, &m->unet_cfg, 1, NULL)) return -1;
        m->components |= SID_SD_UNET;
    }
    if (comp & SID_SD_TEXT) {
        if (override_path(cfg, sizeof cfg, config_dir, "text_encoder/config.json", 0)) return -1;
        if (cfg[0] ? sid_clip_config_load(&m->clip_cfg, cfg) : sid_sd_default_configs(v, NULL, &m->clip_cfg, NULL))
            return -1;
        clip_alloc(m, (grad & SID_SD_TEXT) != 0);
        if (v == 2 ? sid_clip_load_open_clip(&m->clip_ps, path, TEXT2_PREFIX) : sid_clip_load(&m->clip_ps, path, TEXT1_PREFIX))
            return -1;
        // the open_clip loader splits fused tensors itself, past sid_params_load's value check
        if (v == 2 && sid_params_check_finite(&m->clip_ps, path)) return -1;
        m->components |= SID_SD_TEXT;
        if (override_path(m->tokenizer_dir, sizeof m->tokenizer_dir, config_dir, "tokenizer", 1)) return -1;
    }
    if (comp & SID_SD_VAE) {
        if (override_path(cfg, sizeof cfg, config_dir, "vae/config.json", 0)) return -1;
        if (cfg[0] ? sid_vae_config_load(&m->vae_cfg, cfg) : sid_sd_default_configs(v, NULL, NULL, &m->vae_cfg))
            return -1;
        vae_alloc(m);
        if (sid_params_load_mapped(&m->vae_ps, path, VAE_PREFIX, sid_vae_ldm_name, &m->vae_cfg, 1, NULL)) return -1;
        m->components |= SID_SD_VAE;
    }
    return 0;
}

// ---------------------------------------------------------------- entry points
int sid_sd_load_with_config(sid_sd_model *m, const char *path, const char *config_dir, unsigned components,
                            unsigned with_grad) {
    memset(m, 0, sizeof *m);
    int rc;
    if (components & ~(unsigned)SID_SD_ALL) sid_die("sid_sd_load: unknown component bits 0x%x", components);
    if (is_dir(path)) {
        if (config_dir) {
            sid_set_error("%s: a diffusers folder carries its own configs (no config folder with it)", path);
            rc = -1;
        } else {
            rc = load_folder(m, path, components, with_grad);
        }
    } else if (is_file(path)) {
        rc = load_single_file(m, path, config_dir, components, with_grad);
    } else {
        sid_set_error("%s: no such file or folder", path);
        rc = -1;
    }
    if (rc) sid_sd_free(m);
    return rc ? -1 : 0;
}

int sid_sd_load(sid_sd_model *m, const char *path, unsigned components, unsigned with_grad) {
    return sid_sd_load_with_config(m, path, NULL, components, with_grad);
}
