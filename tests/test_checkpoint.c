// Whole-model loading (models/checkpoint.h): a diffusers pipeline folder and single-file SD1 / SD2
// checkpoints, all assembled in temp folders from the tiny components under tests/data (unet/,
// clip/, vae/), must load into exactly the weights those components hold; the VAE's LDM rename
// table is checked against every key of the real SD VAE (tests/data/checkpoint/sd-vae-keys.tsv.gz,
// the VAE key table in tests/data/checkpoint); broken folders and files fail with one line
// naming the file.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/checkpoint.h"

// ---------------------------------------------------------------- helpers

static const char *data_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", test_data_dir(), rel);
    return buf;
}

static void make_tmpdir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/sid_test_checkpoint_XXXXXX");
    if (!mkdtemp(dir)) sid_die("mkdtemp failed");
}

static void copy_file(const char *from, const char *to) {
    char *data;
    size_t len;
    if (sid_read_file(from, &data, &len)) sid_die("%s", sid_error());
    FILE *f = fopen(to, "wb");
    if (!f || fwrite(data, 1, len, f) != len) sid_die("cannot write %s", to);
    fclose(f);
    free(data);
}

static void sub_path(char *buf, size_t cap, const char *dir, const char *rel) {
    if ((size_t)snprintf(buf, cap, "%s/%s", dir, rel) >= cap) sid_die("%s/%s: path too long", dir, rel);
}

static void make_sub(const char *dir, const char *rel) {
    char p[1024];
    sub_path(p, sizeof p, dir, rel);
    if (sid_mkdir_p(p)) sid_die("%s", sid_error());
}

// copies tests/data/<rel> to <dir>/<to>
static void copy_data(const char *rel, const char *dir, const char *to) {
    char a[1024], b[1024];
    copy_file(data_path(a, sizeof a, rel), (sub_path(b, sizeof b, dir, to), b));
}

// A failed call's message: one line that contains every needle.
static void expect_error(int rc, const char *what, const char *n1, const char *n2) {
    const char *e = rc ? sid_error() : "(no error)";
    EXPECT(rc == -1 && strstr(e, n1) && (!n2 || strstr(e, n2)) && !strchr(e, '\n'),
           "%s: rc %d, message '%s' (want '%s'%s%s)", what, rc, e, n1, n2 ? " and '" : "", n2 ? n2 : "");
}

// ---------------------------------------------------------------- the tiny components
// A model put together from the test components directly, with the component loaders: what every
// whole-model load must reproduce.
static int reference_model(sid_sd_model *m, const char *unet, const char *clip, const char *vae) {
    char dir[512], p[600];
    memset(m, 0, sizeof *m);
    snprintf(dir, sizeof dir, "%s/unet/%s", test_data_dir(), unet);
    if (sub_path(p, sizeof p, dir, "config.json"), sid_unet_config_load(&m->unet_cfg, p)) return -1;
    sid_unet_decl(&m->unet, &m->unet_ps, &m->unet_cfg);
    sid_params_alloc(&m->unet_ps, 0);
    if (sub_path(p, sizeof p, dir, "diffusion_pytorch_model.safetensors"), sid_params_load(&m->unet_ps, p, NULL, NULL, 1, NULL))
        return -1;
    snprintf(dir, sizeof dir, "%s/clip/%s", test_data_dir(), clip);
    if (sub_path(p, sizeof p, dir, "config.json"), sid_clip_config_load(&m->clip_cfg, p)) return -1;
    sid_clip_decl(&m->clip, &m->clip_ps, &m->clip_cfg);
    sid_params_alloc(&m->clip_ps, 0);
    if (sub_path(p, sizeof p, dir, "model.safetensors"), sid_clip_load(&m->clip_ps, p, NULL)) return -1;
    snprintf(dir, sizeof dir, "%s/vae/%s", test_data_dir(), vae);
    if (sub_path(p, sizeof p, dir, "config.json"), sid_vae_config_load(&m->vae_cfg, p)) return -1;
    sid_vae_decl(&m->vae, &m->vae_ps, &m->vae_cfg);
    sid_params_alloc(&m->vae_ps, 0);
    if (sub_path(p, sizeof p, dir, "diffusion_pytorch_model.safetensors"), sid_vae_load(&m->vae_ps, p, NULL)) return -1;
    m->components = SID_SD_ALL;
    return 0;
}

static int same_params(const sid_params *a, const sid_params *b) {
    if (a->n != b->n || a->total != b->total) return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->items[i].name, b->items[i].name)) return 0;
    return memcmp(a->data, b->data, a->total * sizeof(float)) == 0;
}

static void expect_same_weights(const sid_sd_model *got, const sid_sd_model *want, unsigned comp, const char *what) {
    if (comp & SID_SD_UNET)
        EXPECT(same_params(&got->unet_ps, &want->unet_ps) && memcmp(&got->unet_cfg, &want->unet_cfg, sizeof got->unet_cfg) == 0,
               "%s: UNet config or weights differ", what);
    if (comp & SID_SD_TEXT)
        EXPECT(same_params(&got->clip_ps, &want->clip_ps) && memcmp(&got->clip_cfg, &want->clip_cfg, sizeof got->clip_cfg) == 0,
               "%s: text encoder config or weights differ", what);
    if (comp & SID_SD_VAE)
        EXPECT(same_params(&got->vae_ps, &want->vae_ps) && memcmp(&got->vae_cfg, &want->vae_cfg, sizeof got->vae_cfg) == 0,
               "%s: VAE config or weights differ", what);
}

// ---------------------------------------------------------------- a diffusers folder
static const char *model_index_sd15 =
    "{\"_class_name\": \"StableDiffusionPipeline\", \"_diffusers_version\": \"0.6.0\","
    " \"feature_extractor\": [\"transformers\", \"CLIPImageProcessor\"],"
    " \"safety_checker\": [\"stable_diffusion\", \"StableDiffusionSafetyChecker\"],"
    " \"scheduler\": [\"diffusers\", \"PNDMScheduler\"], \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],"
    " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"], \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],"
    " \"vae\": [\"diffusers\", \"AutoencoderKL\"]}\n";

// SD1.5's scheduler/scheduler_config.json: PNDM, no prediction_type (-> epsilon)
static const char *scheduler_sd15 =
    "{\"_class_name\": \"PNDMScheduler\", \"_diffusers_version\": \"0.6.0\", \"beta_end\": 0.012,"
    " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"num_train_timesteps\": 1000,"
    " \"set_alpha_to_one\": false, \"skip_prk_steps\": true, \"steps_offset\": 1, \"trained_betas\": null,"
    " \"clip_sample\": false}\n";

// <dir>/{model_index.json, unet/, text_encoder/, vae/, tokenizer/, scheduler/} from the named components
static void write_folder(const char *dir, const char *unet, const char *clip, const char *vae) {
    char rel[256], to[256];
    static const char *const subs[] = {"unet", "text_encoder", "vae", "tokenizer", "scheduler"};
    for (int i = 0; i < 5; i++) make_sub(dir, subs[i]);
    snprintf(rel, sizeof rel, "unet/%s/config.json", unet), copy_data(rel, dir, "unet/config.json");
    snprintf(rel, sizeof rel, "unet/%s/diffusion_pytorch_model.safetensors", unet);
    copy_data(rel, dir, "unet/diffusion_pytorch_model.safetensors");
    snprintf(rel, sizeof rel, "clip/%s/config.json", clip), copy_data(rel, dir, "text_encoder/config.json");
    snprintf(rel, sizeof rel, "clip/%s/model.safetensors", clip), copy_data(rel, dir, "text_encoder/model.safetensors");
    snprintf(rel, sizeof rel, "vae/%s/config.json", vae), copy_data(rel, dir, "vae/config.json");
    snprintf(rel, sizeof rel, "vae/%s/diffusion_pytorch_model.safetensors", vae);
    copy_data(rel, dir, "vae/diffusion_pytorch_model.safetensors");
    sub_path(to, sizeof to, dir, "tokenizer/vocab.json"), test_write_text(to, "{}\n");
    sub_path(to, sizeof to, dir, "tokenizer/merges.txt"), test_write_text(to, "#version: 0.2\n");
    sub_path(to, sizeof to, dir, "scheduler/scheduler_config.json"), test_write_text(to, scheduler_sd15);
    sub_path(to, sizeof to, dir, "model_index.json"), test_write_text(to, model_index_sd15);
}

static void test_diffusers_folder_loads(void) {
    sid_sd_model want, m;
    if (reference_model(&want, "sd15_tiny", "quick", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    char dir[64], p[1024];
    make_tmpdir(dir, sizeof dir);
    write_folder(dir, "sd15_tiny", "quick", "tiny");

    int rc = sid_sd_load(&m, dir, SID_SD_ALL, SID_SD_UNET);
    EXPECT(rc == 0, "%s", rc ? sid_error() : "");
    if (rc == 0) {
        expect_same_weights(&m, &want, SID_SD_ALL, "diffusers folder");
        EXPECT(m.components == SID_SD_ALL && m.sd_version == 1, "components %u, version %d", m.components, m.sd_version);
        EXPECT(m.unet_ps.grad && !m.clip_ps.grad && !m.vae_ps.grad, "gradient blocks: unet %p clip %p vae %p",
               (void *)m.unet_ps.grad, (void *)m.clip_ps.grad, (void *)m.vae_ps.grad);
        sub_path(p, sizeof p, dir, "tokenizer");
        EXPECT(strcmp(m.tokenizer_dir, p) == 0, "tokenizer_dir '%s', want '%s'", m.tokenizer_dir, p);
        EXPECT(m.beta_start == 0.00085 && m.beta_end == 0.012 && m.train_timesteps == 1000 &&
                   strcmp(m.prediction_type, "epsilon") == 0,
               "schedule %g..%g over %d, %s", m.beta_start, m.beta_end, m.train_timesteps, m.prediction_type);
        EXPECT(m.clip_skip_layers == 2, "clip_skip_layers %d, want the config's 2", m.clip_skip_layers);
    }
    sid_sd_free(&m);

    // components can be left out: only the text encoder
    rc = sid_sd_load(&m, dir, SID_SD_TEXT, 0);
    EXPECT(rc == 0 && m.components == SID_SD_TEXT && m.unet_ps.n == 0 && m.vae_ps.n == 0 && m.clip_ps.n > 0 &&
               m.sd_version == 1 && m.tokenizer_dir[0],
           "text encoder only: rc %d, components %u, %d/%d/%d tensors (%s)", rc, m.components, m.unet_ps.n,
           m.clip_ps.n, m.vae_ps.n, rc ? sid_error() : "");
    if (rc == 0) expect_same_weights(&m, &want, SID_SD_TEXT, "text encoder only");
    sid_sd_free(&m);

    // the fp16 variant of a weights file, a v-prediction schedule
    sub_path(p, sizeof p, dir, "vae/diffusion_pytorch_model.safetensors");
    unlink(p);
    sub_path(p, sizeof p, dir, "vae/diffusion_pytorch_model.fp16.safetensors");
    EXPECT(sid_params_save(&want.vae_ps, p, SID_F16) == 0, "%s", sid_error());
    sub_path(p, sizeof p, dir, "scheduler/scheduler_config.json");
    test_write_text(p, "{\"_class_name\": \"DDIMScheduler\", \"beta_start\": 0.001, \"beta_end\": 0.02, "
                  "\"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 500, \"prediction_type\": \"v_prediction\"}");
    rc = sid_sd_load(&m, dir, SID_SD_VAE, 0);
    EXPECT(rc == 0, "fp16 VAE: %s", rc ? sid_error() : "");
    if (rc == 0) {
        double worst = 0;
        for (size_t i = 0; i < want.vae_ps.total; i++) worst = fmax(worst, fabs(m.vae_ps.data[i] - want.vae_ps.data[i]));
        EXPECT(m.vae_ps.total == want.vae_ps.total && worst < 2e-3, "fp16 VAE off by %g", worst);
        EXPECT(m.components == SID_SD_VAE && m.unet_ps.n == 0 && m.clip_ps.n == 0 && m.tokenizer_dir[0] == 0,
               "VAE only: components %u", m.components);
        EXPECT(m.beta_start == 0.001 && m.beta_end == 0.02 && m.train_timesteps == 500 &&
                   strcmp(m.prediction_type, "v_prediction") == 0,
               "schedule %g..%g over %d, %s", m.beta_start, m.beta_end, m.train_timesteps, m.prediction_type);
        EXPECT(m.sd_version == 1, "version %d from the quick_gelu text encoder config", m.sd_version);
    }
    sid_sd_free(&m);
    test_remove_tree(dir);
    sid_sd_free(&want);
}

// ---------------------------------------------------------------- single files
typedef struct {
    sid_st_entry *e;
    char **names;
    void **owned;
    int n, cap, n_owned;
} st_list;

static void *list_own(st_list *l, size_t bytes) {
    l->owned = realloc(l->owned, (size_t)(l->n_owned + 1) * sizeof *l->owned);
    return l->owned[l->n_owned++] = sid_calloc(bytes);
}

static void list_add(st_list *l, const char *name, sid_dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->e = realloc(l->e, (size_t)l->cap * sizeof *l->e);
        l->names = realloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    l->names[l->n] = strdup(name);
    l->e[l->n] = (sid_st_entry){.name = l->names[l->n], .dtype = dt, .ndim = ndim, .data = data};
    for (int d = 0; d < ndim; d++) l->e[l->n].shape[d] = shape[d];
    l->n++;
}

static void list_free(st_list *l) {
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    for (int i = 0; i < l->n_owned; i++) free(l->owned[i]);
    free(l->e), free(l->names), free(l->owned);
    memset(l, 0, sizeof *l);
}

// Every parameter under prefix + rename(name); 2-D VAE mid-attention weights as LDM's [C, C, 1, 1].
static void add_params(st_list *l, const sid_params *ps, const char *prefix, sid_rename_ctx_fn rename, const void *ctx,
                       const char *skip) {
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        char base[400], name[512];
        if (rename) {
            if (rename(ctx, p->name, base, sizeof base)) sid_die("no single-file name for %s", p->name);
        } else {
            snprintf(base, sizeof base, "%s", p->name);
        }
        snprintf(name, sizeof name, "%s%s", prefix, base);
        if (skip && strcmp(name, skip) == 0) continue;
        int64_t shape[4] = {p->shape[0], p->shape[1], 1, 1};
        const int conv = rename == sid_vae_ldm_name && p->ndim == 2;
        list_add(l, name, SID_F32, conv ? 4 : p->ndim, conv ? shape : p->shape, sid_p(ps, i));
    }
}

// What LDM files carry besides the three models: schedule buffers, EMA entries, position_ids.
static void add_ignorable(st_list *l, int sd_version, int with_text) {
    float *f = list_own(l, 8 * sizeof(float));
    int64_t *ids = list_own(l, 16 * sizeof(int64_t));
    for (int i = 0; i < 16; i++) ids[i] = i, f[i % 8] = 1e-4f * (float)(i % 8 + 1);
    list_add(l, "betas", SID_F32, 1, (int64_t[]){8}, f);
    list_add(l, "alphas_cumprod", SID_F32, 1, (int64_t[]){8}, f);
    list_add(l, "model_ema.decay", SID_F32, 0, NULL, f);
    list_add(l, "model_ema.num_updates", SID_I64, 0, NULL, ids);
    list_add(l, "model_ema.diffusion_modeltime_embed0weight", SID_F32, 2, (int64_t[]){2, 4}, f);
    list_add(l, "scale_factor", SID_F32, 0, NULL, f);
    if (sd_version == 1 && with_text)
        list_add(l, "cond_stage_model.transformer.text_model.embeddings.position_ids", SID_I64, 2, (int64_t[]){1, 16}, ids);
}

// The text encoder in open_clip's naming with q, k, v fused into in_proj, one more (unused) block
// after the configured layers, text_projection and logit_scale.
static const char *const OC = "cond_stage_model.model.";

static void add_open_clip(st_list *l, const sid_sd_model *m, const char *skip) {
    const sid_params *ps = &m->clip_ps;
    const int C = m->clip_cfg.hidden, I = m->clip_cfg.intermediate, L = m->clip_cfg.layers;
    char name[300], src[300];
#define P(ours) sid_p(ps, sid_params_find(ps, ours))
#define ADD(oc, nd, shp, data)                                                                      \
    do {                                                                                            \
        snprintf(name, sizeof name, "%s%s", OC, oc);                                                \
        if (!skip || strcmp(name, skip)) list_add(l, name, SID_F32, nd, (int64_t[])shp, data);      \
    } while (0)
#define SHAPE(...) {__VA_ARGS__}
    ADD("token_embedding.weight", 2, SHAPE(m->clip_cfg.vocab_size, C), P("text_model.embeddings.token_embedding.weight"));
    ADD("positional_embedding", 2, SHAPE(m->clip_cfg.max_positions, C), P("text_model.embeddings.position_embedding.weight"));
    ADD("ln_final.weight", 1, SHAPE(C), P("text_model.final_layer_norm.weight"));
    ADD("ln_final.bias", 1, SHAPE(C), P("text_model.final_layer_norm.bias"));
    float *extra = list_own(l, (size_t)(4 * C * C + 2 * I * C + 16 * C) * sizeof(float));
    for (int i = 0; i < 4 * C * C + 2 * I * C + 16 * C; i++) extra[i] = 0.01f * (float)(i % 17);
    ADD("text_projection", 2, SHAPE(C, C), extra);
    ADD("logit_scale", 0, SHAPE(0), extra);
    for (int b = 0; b <= L; b++) {  // block L: OpenCLIP's last, which SD2 does not use
        char pre[64], oc[128];
        snprintf(pre, sizeof pre, "text_model.encoder.layers.%d.", b < L ? b : 0);
        float *w = list_own(l, (size_t)3 * C * C * sizeof(float)), *bias = list_own(l, (size_t)3 * C * sizeof(float));
        static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
        for (int q = 0; q < 3; q++) {
            snprintf(src, sizeof src, "%sself_attn.%s.weight", pre, qkv[q]);
            memcpy(w + (size_t)q * C * C, P(src), (size_t)C * C * sizeof(float));
            snprintf(src, sizeof src, "%sself_attn.%s.bias", pre, qkv[q]);
            memcpy(bias + (size_t)q * C, P(src), (size_t)C * sizeof(float));
        }
        if (b == L) w = extra, bias = extra;  // the unused block holds other values
        snprintf(oc, sizeof oc, "transformer.resblocks.%d.attn.in_proj_weight", b);
        ADD(oc, 2, SHAPE(3 * C, C), w);
        snprintf(oc, sizeof oc, "transformer.resblocks.%d.attn.in_proj_bias", b);
        ADD(oc, 1, SHAPE(3 * C), bias);
        static const char *const map[][2] = {{"self_attn.out_proj", "attn.out_proj"}, {"layer_norm1", "ln_1"},
                                             {"layer_norm2", "ln_2"}, {"mlp.fc1", "mlp.c_fc"}, {"mlp.fc2", "mlp.c_proj"}};
        for (int k = 0; k < 5; k++) {
            const sid_param *p;
            snprintf(src, sizeof src, "%s%s.weight", pre, map[k][0]);
            p = &ps->items[sid_params_find(ps, src)];
            snprintf(oc, sizeof oc, "transformer.resblocks.%d.%s.weight", b, map[k][1]);
            ADD(oc, p->ndim, SHAPE(p->shape[0], p->shape[1]), b < L ? P(src) : extra);
            snprintf(src, sizeof src, "%s%s.bias", pre, map[k][0]);
            p = &ps->items[sid_params_find(ps, src)];
            snprintf(oc, sizeof oc, "transformer.resblocks.%d.%s.bias", b, map[k][1]);
            ADD(oc, 1, SHAPE(p->shape[0]), b < L ? P(src) : extra);
        }
    }
#undef P
#undef ADD
#undef SHAPE
}

enum { WITH_UNET = 1, WITH_TEXT = 2, WITH_VAE = 4, WITH_ALL = 7 };

// A single-file checkpoint of m (SD1: transformers names for the text encoder; SD2: open_clip's),
// leaving out the parts not in `parts` and the tensor named `skip`.
static void write_single_file(const char *path, const sid_sd_model *m, int sd_version, int parts, const char *skip) {
    st_list l = {0};
    if (parts & WITH_UNET) add_params(&l, &m->unet_ps, "model.diffusion_model.", sid_unet_ldm_name, &m->unet_cfg, skip);
    if ((parts & WITH_TEXT) && sd_version == 1) add_params(&l, &m->clip_ps, "cond_stage_model.transformer.", NULL, NULL, skip);
    if ((parts & WITH_TEXT) && sd_version == 2) add_open_clip(&l, m, skip);
    if (parts & WITH_VAE) add_params(&l, &m->vae_ps, "first_stage_model.", sid_vae_ldm_name, &m->vae_cfg, skip);
    add_ignorable(&l, sd_version, parts & WITH_TEXT);
    if (sid_st_write(path, l.e, l.n, NULL, 0)) sid_die("%s", sid_error());
    list_free(&l);
}

// <dir>/{unet,text_encoder,vae}/config.json: the tiny components' configs, to override the built-ins
static void write_config_dir(const char *dir, const char *unet, const char *clip, const char *vae) {
    char rel[256];
    make_sub(dir, "unet"), make_sub(dir, "text_encoder"), make_sub(dir, "vae");
    snprintf(rel, sizeof rel, "unet/%s/config.json", unet), copy_data(rel, dir, "unet/config.json");
    snprintf(rel, sizeof rel, "clip/%s/config.json", clip), copy_data(rel, dir, "text_encoder/config.json");
    snprintf(rel, sizeof rel, "vae/%s/config.json", vae), copy_data(rel, dir, "vae/config.json");
}

static void test_single_file_sd1_loads(void) {
    sid_sd_model want, m;
    if (reference_model(&want, "sd15_tiny", "quick", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    char dir[64], file[1024], cfg[1024];
    make_tmpdir(dir, sizeof dir);
    sub_path(file, sizeof file, dir, "sd1.safetensors");
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_single_file(file, &want, 1, WITH_ALL, NULL);
    write_config_dir(cfg, "sd15_tiny", "quick", "tiny");

    EXPECT(sid_sd_single_file_version(file) == 1, "an SD1 file detected as %d", sid_sd_single_file_version(file));
    int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, SID_SD_UNET | SID_SD_TEXT);
    EXPECT(rc == 0, "%s", rc ? sid_error() : "");
    if (rc == 0) {
        expect_same_weights(&m, &want, SID_SD_ALL, "SD1 single file");
        EXPECT(m.sd_version == 1 && m.components == SID_SD_ALL, "version %d, components %u", m.sd_version, m.components);
        EXPECT(m.unet_ps.grad && m.clip_ps.grad && !m.vae_ps.grad, "gradient blocks");
        EXPECT(m.beta_start == 0.00085 && m.beta_end == 0.012 && m.train_timesteps == 1000 &&
                   strcmp(m.prediction_type, "epsilon") == 0 && m.tokenizer_dir[0] == 0,
               "single-file defaults: %g..%g over %d, %s, tokenizer '%s'", m.beta_start, m.beta_end, m.train_timesteps,
               m.prediction_type, m.tokenizer_dir);
    }
    sid_sd_free(&m);

    // the component loader alone recognises LDM VAE names: inside the checkpoint, and in a stand-alone
    // LDM VAE file without the prefix (e.g. vae-ft-mse-840000-ema-pruned.safetensors)
    {
        sid_params ps = {0};
        sid_vae v;
        sid_vae_decl(&v, &ps, &want.vae_cfg);
        sid_params_alloc(&ps, 0);
        rc = sid_vae_load(&ps, file, "first_stage_model.");
        EXPECT(rc == 0 && same_params(&ps, &want.vae_ps), "sid_vae_load on LDM names: %s", rc ? sid_error() : "differs");
        char vae_file[1024];
        sub_path(vae_file, sizeof vae_file, dir, "vae-ldm.safetensors");
        st_list l = {0};
        add_params(&l, &want.vae_ps, "", sid_vae_ldm_name, &want.vae_cfg, NULL);
        EXPECT(sid_st_write(vae_file, l.e, l.n, NULL, 0) == 0, "%s", sid_error());
        list_free(&l);
        memset(ps.data, 0, ps.total * sizeof(float));
        rc = sid_vae_load(&ps, vae_file, NULL);
        EXPECT(rc == 0 && same_params(&ps, &want.vae_ps), "stand-alone LDM VAE: %s", rc ? sid_error() : "differs");
        sid_vae_free(&v), sid_params_free(&ps);
    }

    // the config folder's tokenizer and scheduler replace the built-ins
    char p[1024];
    make_sub(cfg, "tokenizer"), make_sub(cfg, "scheduler");
    sub_path(p, sizeof p, cfg, "scheduler/scheduler_config.json");
    test_write_text(p, "{\"beta_start\": 0.00085, \"beta_end\": 0.012, \"beta_schedule\": \"scaled_linear\", "
                  "\"prediction_type\": \"v_prediction\"}");
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_TEXT, 0);
    sub_path(p, sizeof p, cfg, "tokenizer");
    EXPECT(rc == 0 && strcmp(m.prediction_type, "v_prediction") == 0 && strcmp(m.tokenizer_dir, p) == 0,
           "config folder overrides: rc %d, %s, tokenizer '%s' (%s)", rc, m.prediction_type, m.tokenizer_dir,
           rc ? sid_error() : "");
    sid_sd_free(&m);

    // without the tiny configs the built-in SD1.5 ones do not fit: one line naming the file (the VAE,
    // whose built-in size, 84M parameters, is the smallest of the three)
    rc = sid_sd_load(&m, file, SID_SD_VAE, 0);
    expect_error(rc, "tiny weights, SD1.5 config", "sd1.safetensors", "the model config expects");
    EXPECT(m.vae_ps.n == 0 && m.vae_ps.data == NULL, "a failed load leaves parameters behind");
    sid_sd_free(&m);
    test_remove_tree(dir);
    sid_sd_free(&want);
}

static void test_single_file_sd2_loads(void) {
    sid_sd_model want, m;
    if (reference_model(&want, "sd2_linear", "gelu", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    char dir[64], file[1024], cfg[1024];
    make_tmpdir(dir, sizeof dir);
    sub_path(file, sizeof file, dir, "sd2.safetensors");
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_single_file(file, &want, 2, WITH_ALL, NULL);
    write_config_dir(cfg, "sd2_linear", "gelu", "tiny");

    EXPECT(sid_sd_single_file_version(file) == 2, "an SD2 file detected as %d", sid_sd_single_file_version(file));
    int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, 0);
    EXPECT(rc == 0, "%s", rc ? sid_error() : "");
    if (rc == 0) {
        expect_same_weights(&m, &want, SID_SD_ALL, "SD2 single file");
        EXPECT(m.sd_version == 2 && m.clip_skip_layers == 3, "version %d, %d text layers", m.sd_version, m.clip_skip_layers);
        EXPECT(!m.unet_ps.grad && !m.clip_ps.grad, "gradient blocks without with_grad");
    }
    sid_sd_free(&m);

    // the component loader alone recognises the open_clip naming
    sid_params ps = {0};
    sid_clip c;
    sid_clip_decl(&c, &ps, &want.clip_cfg);
    sid_params_alloc(&ps, 0);
    rc = sid_clip_load(&ps, file, "cond_stage_model.model.");
    EXPECT(rc == 0 && same_params(&ps, &want.clip_ps), "sid_clip_load on open_clip names: %s", rc ? sid_error() : "differs");
    sid_clip_free(&c), sid_params_free(&ps);

    // a 2-layer config over a file with 3 + 1 blocks: block 3 is more than the one unused block
    sid_clip_config small = want.clip_cfg;
    small.layers = 2;
    sid_clip_decl(&c, &ps, &small);
    sid_params_alloc(&ps, 0);
    rc = sid_clip_load_open_clip(&ps, file, "cond_stage_model.model.");
    expect_error(rc, "2 layers of 3", "sd2.safetensors", "transformer.resblocks.3.");
    sid_clip_free(&c), sid_params_free(&ps);

    // a missing fused projection, a misshapen one
    write_single_file(file, &want, 2, WITH_ALL, "cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias");
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_TEXT, 0);
    expect_error(rc, "missing in_proj_bias", "sd2.safetensors",
                 "missing tensor 'cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias'");
    sid_sd_free(&m);
    char p[1024];
    sub_path(p, sizeof p, cfg, "text_encoder/config.json");
    test_write_text(p, "{\"architectures\": [\"CLIPTextModel\"], \"hidden_act\": \"gelu\", \"hidden_size\": 16, "
                  "\"intermediate_size\": 32, \"num_attention_heads\": 2, \"num_hidden_layers\": 3, "
                  "\"max_position_embeddings\": 16, \"vocab_size\": 100}");
    write_single_file(file, &want, 2, WITH_ALL, NULL);
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_TEXT, 0);
    EXPECT(rc == 0, "heads do not change shapes: %s", rc ? sid_error() : "");
    sid_sd_free(&m);
    test_write_text(p, "{\"hidden_act\": \"gelu\", \"hidden_size\": 16, \"intermediate_size\": 48, \"num_attention_heads\": 4,"
                  " \"num_hidden_layers\": 3, \"max_position_embeddings\": 16, \"vocab_size\": 100}");
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_TEXT, 0);
    expect_error(rc, "intermediate 48 vs 32", "sd2.safetensors", "mlp.c_fc.weight' has shape [32, 16]");
    sid_sd_free(&m);
    test_remove_tree(dir);
    sid_sd_free(&want);
}

static void test_version_detection(void) {
    sid_sd_model a, b;
    if (reference_model(&a, "sd15_tiny", "quick", "tiny") || reference_model(&b, "sd2_linear", "gelu", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&a), sid_sd_free(&b);
    }
    char dir[64], file[1024];
    make_tmpdir(dir, sizeof dir);
    sub_path(file, sizeof file, dir, "m.safetensors");
    static const struct {
        int sd, parts, want;
    } cases[] = {{1, WITH_ALL, 1},  {2, WITH_ALL, 2},  {1, WITH_TEXT, 1}, {2, WITH_TEXT, 2},
                 {1, WITH_UNET, 1}, {2, WITH_UNET, 2}, {1, WITH_VAE, -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_single_file(file, cases[i].sd == 1 ? &a : &b, cases[i].sd, cases[i].parts, NULL);
        const int v = sid_sd_single_file_version(file);
        EXPECT(v == cases[i].want, "case %zu (SD%d, parts %d): detected %d, want %d", i, cases[i].sd, cases[i].parts, v,
               cases[i].want);
        if (v < 0) expect_error(v, "VAE only", "m.safetensors", "cannot tell SD1 from SD2");
    }
    // a VAE-only file still loads its VAE; asking it for a UNet is a clear error
    sid_sd_model m;
    char cfg[1024];
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_config_dir(cfg, "sd15_tiny", "quick", "tiny");
    int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_VAE, 0);
    EXPECT(rc == 0 && m.sd_version == 1, "VAE from a VAE-only file: %s", rc ? sid_error() : "");
    if (rc == 0) expect_same_weights(&m, &a, SID_SD_VAE, "VAE-only file");
    sid_sd_free(&m);
    write_single_file(file, &a, 1, WITH_UNET | WITH_VAE, NULL);
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, 0);
    expect_error(rc, "no text encoder", "m.safetensors", "no text encoder");
    sid_sd_free(&m);
    test_remove_tree(dir);
    sid_sd_free(&a), sid_sd_free(&b);
}

// ---------------------------------------------------------------- errors
// Replaces `from` by `to` in the text file dir/rel.
static void edit_file(const char *dir, const char *rel, const char *from, const char *to) {
    char p[1024], *text, out[8192];
    size_t len;
    sub_path(p, sizeof p, dir, rel);
    if (sid_read_file(p, &text, &len)) sid_die("%s", sid_error());
    const char *at = strstr(text, from);
    if (!at) sid_die("%s: no '%s'", p, from);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    test_write_text(p, out);
    free(text);
}

static void test_folder_errors(void) {
    char dir[64], p[1024];
    sid_sd_model m;
    make_tmpdir(dir, sizeof dir);
    write_folder(dir, "sd15_tiny", "quick", "tiny");
    int rc;
#define LOAD(comp) (rc = sid_sd_load(&m, dir, comp, 0), sid_sd_free(&m), rc)

    sub_path(p, sizeof p, dir, "unet/config.json");
    rename(p, "/tmp/sid_test_checkpoint_unet_config.json");
    expect_error(LOAD(SID_SD_ALL), "missing unet/config.json", "unet/config.json", "no such file");
    EXPECT(LOAD(SID_SD_TEXT | SID_SD_VAE) == 0, "a missing UNet config stops a load without the UNet: %s", sid_error());
    rename("/tmp/sid_test_checkpoint_unet_config.json", p);
    EXPECT(LOAD(SID_SD_ALL) == 0, "restored folder: %s", sid_error());

    edit_file(dir, "model_index.json", "\"StableDiffusionPipeline\"", "\"StableDiffusionXLPipeline\"");
    expect_error(LOAD(SID_SD_ALL), "XL pipeline", "model_index.json", "StableDiffusionXLPipeline");
    edit_file(dir, "model_index.json", "\"StableDiffusionXLPipeline\"", "\"StableDiffusionPipeline\"");
    edit_file(dir, "model_index.json", "\"CLIPTextModel\"", "\"CLIPTextModelWithProjection\"");
    expect_error(LOAD(SID_SD_ALL), "text encoder class", "model_index.json", "CLIPTextModelWithProjection");
    edit_file(dir, "model_index.json", "\"CLIPTextModelWithProjection\"", "\"CLIPTextModel\"");
    edit_file(dir, "unet/config.json", "\"UNet2DConditionModel\"", "\"UNet2DModel\"");
    expect_error(LOAD(SID_SD_UNET), "unet _class_name", "unet/config.json", "UNet2DModel");
    edit_file(dir, "unet/config.json", "\"UNet2DModel\"", "\"UNet2DConditionModel\"");
    edit_file(dir, "vae/config.json", "\"AutoencoderKL\"", "\"AutoencoderTiny\"");
    expect_error(LOAD(SID_SD_VAE), "vae _class_name", "vae/config.json", "AutoencoderTiny");
    edit_file(dir, "vae/config.json", "\"AutoencoderTiny\"", "\"AutoencoderKL\"");
    edit_file(dir, "text_encoder/config.json", "\"CLIPTextModel\"", "\"T5EncoderModel\"");
    expect_error(LOAD(SID_SD_TEXT), "text encoder architectures", "text_encoder/config.json", "T5EncoderModel");
    edit_file(dir, "text_encoder/config.json", "\"T5EncoderModel\"", "\"CLIPTextModel\"");

    edit_file(dir, "scheduler/scheduler_config.json", "\"scaled_linear\"", "\"linear\"");
    expect_error(LOAD(SID_SD_VAE), "linear betas", "scheduler/scheduler_config.json", "'beta_schedule' \"linear\"");
    edit_file(dir, "scheduler/scheduler_config.json", "\"linear\"", "\"scaled_linear\", \"prediction_type\": \"sample\"");
    expect_error(LOAD(SID_SD_VAE), "sample prediction", "scheduler/scheduler_config.json", "'prediction_type' \"sample\"");
    edit_file(dir, "scheduler/scheduler_config.json", ", \"prediction_type\": \"sample\"", "");
    edit_file(dir, "scheduler/scheduler_config.json", "\"trained_betas\": null", "\"trained_betas\": [0.1, 0.2]");
    expect_error(LOAD(SID_SD_VAE), "trained betas", "scheduler/scheduler_config.json", "trained_betas");
    edit_file(dir, "scheduler/scheduler_config.json", "\"trained_betas\": [0.1, 0.2]", "\"trained_betas\": null");
    EXPECT(LOAD(SID_SD_ALL) == 0, "restored folder: %s", sid_error());

    // weights files: sharded, pickled, absent, not matching the config
    char w[1024], moved[1024];
    sub_path(w, sizeof w, dir, "unet/diffusion_pytorch_model.safetensors");
    sub_path(moved, sizeof moved, dir, "unet.safetensors");
    rename(w, moved);
    sub_path(p, sizeof p, dir, "unet/diffusion_pytorch_model.safetensors.index.json");
    test_write_text(p, "{\"weight_map\": {}}");
    expect_error(LOAD(SID_SD_UNET), "sharded", "diffusion_pytorch_model.safetensors.index.json", "sharded");
    unlink(p);
    sub_path(p, sizeof p, dir, "unet/diffusion_pytorch_model.bin");
    test_write_text(p, "pickle");
    expect_error(LOAD(SID_SD_UNET), "pickled", "unet/diffusion_pytorch_model.bin", "pickled");
    unlink(p);
    expect_error(LOAD(SID_SD_UNET), "no weights", "/unet", "no weights file");
    rename(moved, w);
    edit_file(dir, "unet/config.json", "\"cross_attention_dim\": 12", "\"cross_attention_dim\": 16");
    expect_error(LOAD(SID_SD_UNET), "config vs weights", "unet/diffusion_pytorch_model.safetensors", "attn2.to_k.weight");
    edit_file(dir, "unet/config.json", "\"cross_attention_dim\": 16", "\"cross_attention_dim\": 12");

    // folders and files that are not there
    sub_path(p, sizeof p, dir, "tokenizer/merges.txt");
    unlink(p);
    expect_error(LOAD(SID_SD_TEXT), "no merges.txt", "tokenizer/merges.txt", "no such file");
    EXPECT(LOAD(SID_SD_UNET | SID_SD_VAE) == 0, "the tokenizer matters only with the text encoder: %s", sid_error());
    sub_path(p, sizeof p, dir, "vae");
    test_remove_tree(p);
    expect_error(LOAD(SID_SD_VAE), "no vae/", "/vae", "no such folder");
    edit_file(dir, "model_index.json", "\"vae\": [\"diffusers\", \"AutoencoderKL\"]", "\"vae\": [null, null]");
    expect_error(LOAD(SID_SD_VAE), "no vae in model_index", "model_index.json", "no 'vae'");
    sub_path(p, sizeof p, dir, "model_index.json");
    unlink(p);
    expect_error(LOAD(SID_SD_UNET), "no model_index.json", "model_index.json", "no such file");
    sub_path(p, sizeof p, dir, "nothing-here");
    rc = sid_sd_load(&m, p, SID_SD_ALL, 0);
    expect_error(rc, "no such path", "nothing-here", "no such file or folder");
    sid_sd_free(&m);
    rc = sid_sd_load_with_config(&m, dir, dir, SID_SD_ALL, 0);
    expect_error(rc, "config folder with a folder", dir, "config folder");
    sid_sd_free(&m);
#undef LOAD
    test_remove_tree(dir);
}

static void test_single_file_errors(void) {
    sid_sd_model want, m;
    if (reference_model(&want, "sd15_tiny", "quick", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    char dir[64], file[1024], cfg[1024], p[1024];
    make_tmpdir(dir, sizeof dir);
    sub_path(file, sizeof file, dir, "sd1.safetensors");
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_config_dir(cfg, "sd15_tiny", "quick", "tiny");
    static const char *const victims[] = {"model.diffusion_model.output_blocks.5.1.proj_out.weight",
                                          "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
                                          "first_stage_model.encoder.mid.attn_1.q.bias",
                                          "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.bias"};
    for (int i = 0; i < 4; i++) {
        write_single_file(file, &want, 1, WITH_ALL, victims[i]);
        const int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, 0);
        char needle[300];
        snprintf(needle, sizeof needle, "missing tensor '%s'", victims[i]);
        expect_error(rc, victims[i], "sd1.safetensors", needle);
        sid_sd_free(&m);
    }
    // a tensor under a model prefix that no parameter claims
    {
        st_list l = {0};
        add_params(&l, &want.unet_ps, "model.diffusion_model.", sid_unet_ldm_name, &want.unet_cfg, NULL);
        add_params(&l, &want.vae_ps, "first_stage_model.", sid_vae_ldm_name, &want.vae_cfg, NULL);
        add_params(&l, &want.clip_ps, "cond_stage_model.transformer.", NULL, NULL, NULL);
        list_add(&l, "first_stage_model.decoder.mid.attn_2.q.bias", SID_F32, 1, (int64_t[]){2}, sid_p(&want.vae_ps, 0));
        EXPECT(sid_st_write(file, l.e, l.n, NULL, 0) == 0, "%s", sid_error());
        list_free(&l);
        const int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, 0);
        expect_error(rc, "extra VAE tensor", "sd1.safetensors", "unexpected tensor 'first_stage_model.decoder.mid.attn_2.q.bias'");
        sid_sd_free(&m);
    }
    // not a safetensors file; a pickle; a config folder that is not there
    test_write_text(file, "not a checkpoint");
    int rc = sid_sd_load(&m, file, SID_SD_ALL, 0);
    expect_error(rc, "garbage file", "sd1.safetensors", NULL);
    sid_sd_free(&m);
    sub_path(p, sizeof p, dir, "model.ckpt");
    test_write_text(p, "pickle");
    rc = sid_sd_load(&m, p, SID_SD_ALL, 0);
    expect_error(rc, "ckpt", "model.ckpt", "pickled checkpoints are not supported");
    sid_sd_free(&m);
    write_single_file(file, &want, 1, WITH_ALL, NULL);
    sub_path(p, sizeof p, dir, "no-configs");
    rc = sid_sd_load_with_config(&m, file, p, SID_SD_ALL, 0);
    expect_error(rc, "missing config folder", "no-configs", "no such folder");
    sid_sd_free(&m);
    // a broken override config names its file
    edit_file(cfg, "vae/config.json", "\"silu\"", "\"relu\"");
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_VAE, 0);
    expect_error(rc, "bad vae override", "configs/vae/config.json", "act_fn");
    sid_sd_free(&m);
    test_remove_tree(dir);
    sid_sd_free(&want);
}

// ---------------------------------------------------------------- scheduler options
// A scheduler config written to <dir>/scheduler_config.json and read into a fresh model.
static int load_scheduler(const char *dir, const char *json, sid_sd_model *m) {
    char p[1024];
    sub_path(p, sizeof p, dir, "scheduler_config.json");
    test_write_text(p, json);
    memset(m, 0, sizeof *m);
    return sid_sd_scheduler_load(m, p);
}

static int same_ddim(const sid_ddim_config *a, const sid_ddim_config *b) {
    return a->spacing == b->spacing && a->steps_offset == b->steps_offset && a->set_alpha_to_one == b->set_alpha_to_one &&
           a->prediction == b->prediction && a->clip_sample == b->clip_sample &&
           (!a->clip_sample || a->clip_sample_range == b->clip_sample_range);
}

// Every key that changes the maths is honoured or refused in one line naming it; absent keys
// take DDIMScheduler's defaults (clip_sample true).
static void test_scheduler_keys(void) {
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    sid_sd_model m;
    sid_ddim_config c, want;
    // SD1.5's file: leading, offset 1, final alpha ab[0], no clipping = sid_ddim_sd()
    int rc = load_scheduler(dir, scheduler_sd15, &m);
    c = sid_sd_ddim_config(&m), want = sid_ddim_sd();
    EXPECT(rc == 0 && same_ddim(&c, &want), "SD1.5 scheduler: rc %d, %s offset %d alpha1 %d clip %d (%s)", rc,
           sid_spacing_name(c.spacing), c.steps_offset, c.set_alpha_to_one, c.clip_sample, rc ? sid_error() : "");
    // the built-in teacher's (a copy under tests/data): trailing, offset 0, final alpha 1 = sid_ddim_default()
    char p[1024];
    memset(&m, 0, sizeof m);
    rc = sid_sd_scheduler_load(&m, data_path(p, sizeof p, "sid/teacher/scheduler/scheduler_config.json"));
    c = sid_sd_ddim_config(&m), want = sid_ddim_default();
    EXPECT(rc == 0 && same_ddim(&c, &want), "teacher scheduler: rc %d, %s offset %d alpha1 %d clip %d (%s)", rc,
           sid_spacing_name(c.spacing), c.steps_offset, c.set_alpha_to_one, c.clip_sample, rc ? sid_error() : "");
    // a bare DDPM config: DDIMScheduler's defaults, clipping included
    rc = load_scheduler(dir, "{\"_class_name\": \"DDPMScheduler\", \"beta_schedule\": \"scaled_linear\"}", &m);
    EXPECT(rc == 0 && m.clip_sample == 1 && m.clip_sample_range == 1.0f && m.set_alpha_to_one == 1 && m.steps_offset == 0 &&
               m.timestep_spacing == SID_SPACING_LEADING && m.beta_start == 0.0001 && m.beta_end == 0.02,
           "bare config: rc %d, clip %d range %g alpha1 %d offset %d %s (%s)", rc, m.clip_sample, (double)m.clip_sample_range,
           m.set_alpha_to_one, m.steps_offset, sid_spacing_name(m.timestep_spacing), rc ? sid_error() : "");
    // honoured values, and the keys of other samplers that do not change DDIM's maths
    rc = load_scheduler(dir,
                        "{\"_class_name\": \"EulerDiscreteScheduler\", \"beta_schedule\": \"scaled_linear\","
                        " \"beta_start\": 0.00085, \"beta_end\": 0.012, \"clip_sample\": true, \"clip_sample_range\": 2.5,"
                        " \"timestep_spacing\": \"linspace\", \"steps_offset\": 3, \"set_alpha_to_one\": null,"
                        " \"prediction_type\": \"v_prediction\", \"use_karras_sigmas\": true, \"interpolation_type\": \"linear\","
                        " \"timestep_type\": \"discrete\", \"final_sigmas_type\": \"zero\", \"variance_type\": \"fixed_small_log\","
                        " \"thresholding\": false, \"dynamic_thresholding_ratio\": 0.9, \"sample_max_value\": 3.0,"
                        " \"rescale_betas_zero_snr\": false, \"skip_prk_steps\": true, \"trained_betas\": null}",
                        &m);
    c = sid_sd_ddim_config(&m);
    EXPECT(rc == 0 && c.clip_sample == 1 && c.clip_sample_range == 2.5f && c.spacing == SID_SPACING_LINSPACE &&
               c.steps_offset == 3 && c.set_alpha_to_one == 0 && c.prediction == SID_PRED_V,
           "honoured keys: rc %d, clip %d range %g %s offset %d alpha1 %d pred %d (%s)", rc, c.clip_sample,
           (double)c.clip_sample_range, sid_spacing_name(c.spacing), c.steps_offset, c.set_alpha_to_one, (int)c.prediction,
           rc ? sid_error() : "");
    rc = load_scheduler(dir, "{\"beta_schedule\": \"scaled_linear\", \"clip_sample\": null, \"variance_type\": null}", &m);
    EXPECT(rc == 0 && m.clip_sample == 0, "clip_sample null (falsy in diffusers): rc %d, clip %d", rc, m.clip_sample);

    static const struct {
        const char *extra, *needle;
    } refused[] = {
        {"\"thresholding\": true", "'thresholding' true"},
        {"\"rescale_betas_zero_snr\": true", "'rescale_betas_zero_snr' true"},
        {"\"timestep_spacing\": \"karras\"", "'timestep_spacing' \"karras\""},
        {"\"steps_offset\": -1", "'steps_offset'"},
        {"\"clip_sample\": true, \"clip_sample_range\": 0", "'clip_sample_range'"},
        {"\"variance_type\": \"learned_range\"", "'variance_type' \"learned_range\""},
        {"\"variance_type\": \"learned\"", "'variance_type' \"learned\""},
        {"\"timestep_type\": \"continuous\"", "'timestep_type' \"continuous\""},
        {"\"prediction_type\": \"sample\"", "'prediction_type' \"sample\""},
        {"\"clip_sample\": \"yes\"", "'clip_sample'"},
        {"\"set_alpha_to_one\": 1", "'set_alpha_to_one'"},
        {"\"beta_schedule\": \"squaredcos_cap_v2\"", "'beta_schedule' \"squaredcos_cap_v2\""},
        {"\"trained_betas\": [0.1, 0.2]", "'trained_betas'"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"beta_start\": 0.00085, \"beta_end\": 0.012, %s%s}", refused[i].extra,
                 strstr(refused[i].extra, "beta_schedule") ? "" : ", \"beta_schedule\": \"scaled_linear\"");
        memset(&m, 0, sizeof m);
        m.train_timesteps = 7;  // a failed load leaves m as it was
        sub_path(p, sizeof p, dir, "scheduler_config.json");
        test_write_text(p, json);
        rc = sid_sd_scheduler_load(&m, p);
        expect_error(rc, refused[i].extra, "scheduler_config.json", refused[i].needle);
        EXPECT(m.train_timesteps == 7, "%s: a refused config changed the model", refused[i].extra);
    }
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- weights that are not numbers
// One value of tensor `name` in ps set to v, the old value returned through *old.
static void poke(sid_params *ps, const char *name, size_t k, float v, float *old) {
    const int i = sid_params_find(ps, name);
    if (i < 0 || k >= ps->items[i].numel) sid_die("no parameter %s[%zu]", name, k);
    *old = sid_p(ps, i)[k];
    sid_p(ps, i)[k] = v;
}

static void unpoke(sid_params *ps, const char *name, size_t k, float old) { sid_p(ps, sid_params_find(ps, name))[k] = old; }

// NaN, infinities and absurd magnitudes in a loaded weights file fail the load in one line
// naming the file and the tensor, for each component, each layout and the fp16 path.
static void test_weights_must_be_finite(void) {
    sid_sd_model want, m;
    if (reference_model(&want, "sd15_tiny", "quick", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    char dir[64], w[1024];
    make_tmpdir(dir, sizeof dir);
    write_folder(dir, "sd15_tiny", "quick", "tiny");
    EXPECT(sid_sd_load(&m, dir, SID_SD_ALL, 0) == 0, "clean folder: %s", sid_error());
    sid_sd_free(&m);
    EXPECT(sid_params_check_finite(&want.unet_ps, "unet") == 0 && sid_params_check_finite(&want.clip_ps, "clip") == 0 &&
               sid_params_check_finite(&want.vae_ps, "vae") == 0,
           "clean weights flagged: %s", sid_error());

    static const struct {
        unsigned comp;
        const char *file, *tensor;
        size_t k;
        float v;
        const char *needle;
    } cases[] = {
        {SID_SD_UNET, "unet/diffusion_pytorch_model.safetensors", "conv_in.weight", 3, NAN, "has 1 NaN value"},
        {SID_SD_UNET, "unet/diffusion_pytorch_model.safetensors", "mid_block.resnets.0.conv1.weight", 0, INFINITY,
         "has 1 infinite value"},
        {SID_SD_UNET, "unet/diffusion_pytorch_model.safetensors", "up_blocks.1.resnets.0.norm2.weight", 1, 1e30f,
         "magnitude above 10000"},
        {SID_SD_TEXT, "text_encoder/model.safetensors", "text_model.encoder.layers.0.mlp.fc1.weight", 2, -INFINITY,
         "has 1 infinite value"},
        {SID_SD_VAE, "vae/diffusion_pytorch_model.safetensors", "decoder.conv_out.weight", 5, -2e4f, "magnitude above 10000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sid_params *ps = cases[i].comp == SID_SD_UNET ? &want.unet_ps : cases[i].comp == SID_SD_TEXT ? &want.clip_ps : &want.vae_ps;
        float old;
        poke(ps, cases[i].tensor, cases[i].k, cases[i].v, &old);
        char tensor[300];
        snprintf(tensor, sizeof tensor, "tensor '%s'", cases[i].tensor);
        EXPECT(sid_params_check_finite(ps, "generator") == -1 && strstr(sid_error(), tensor) &&
                   strstr(sid_error(), "generator: ") == sid_error(),
               "sid_params_check_finite on %s: %s", cases[i].tensor, sid_error());
        sub_path(w, sizeof w, dir, cases[i].file);
        EXPECT(sid_params_save(ps, w, SID_F32) == 0, "%s", sid_error());
        int rc = sid_sd_load(&m, dir, SID_SD_ALL, 0);
        sid_sd_free(&m);
        expect_error(rc, cases[i].tensor, cases[i].file, tensor);
        if (rc) EXPECT(strstr(sid_error(), cases[i].needle), "%s: '%s' lacks '%s'", cases[i].tensor, sid_error(), cases[i].needle);
        unpoke(ps, cases[i].tensor, cases[i].k, old);
        EXPECT(sid_params_save(ps, w, SID_F32) == 0, "%s", sid_error());
    }
    // NaNs and an infinity together; a value too large for fp16 becomes an infinity in an fp16 file
    {
        float o1, o2, o3;
        const char *t = "down_blocks.0.resnets.0.conv1.bias";
        poke(&want.unet_ps, t, 0, NAN, &o1), poke(&want.unet_ps, t, 1, -NAN, &o2), poke(&want.unet_ps, t, 2, INFINITY, &o3);
        sub_path(w, sizeof w, dir, "unet/diffusion_pytorch_model.safetensors");
        EXPECT(sid_params_save(&want.unet_ps, w, SID_F32) == 0, "%s", sid_error());
        int rc = sid_sd_load(&m, dir, SID_SD_UNET, 0);
        sid_sd_free(&m);
        expect_error(rc, "NaN and Inf", "has 2 NaN and 1 infinite values", t);
        unpoke(&want.unet_ps, t, 0, o1), unpoke(&want.unet_ps, t, 1, o2), unpoke(&want.unet_ps, t, 2, o3);
        EXPECT(sid_params_save(&want.unet_ps, w, SID_F32) == 0, "%s", sid_error());

        t = "encoder.conv_in.bias";
        poke(&want.vae_ps, t, 0, 1e5f, &o1);
        sub_path(w, sizeof w, dir, "vae/diffusion_pytorch_model.safetensors");
        unlink(w);
        sub_path(w, sizeof w, dir, "vae/diffusion_pytorch_model.fp16.safetensors");
        EXPECT(sid_params_save(&want.vae_ps, w, SID_F16) == 0, "%s", sid_error());
        rc = sid_sd_load(&m, dir, SID_SD_VAE, 0);
        sid_sd_free(&m);
        expect_error(rc, "fp16 overflow", "vae/diffusion_pytorch_model.fp16.safetensors", "tensor 'encoder.conv_in.bias' has 1 infinite");
        unpoke(&want.vae_ps, t, 0, o1);
    }
    test_remove_tree(dir);

    // single files: the file's own (LDM) tensor name
    make_tmpdir(dir, sizeof dir);
    char file[1024], cfg[1024];
    sub_path(file, sizeof file, dir, "sd1.safetensors");
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_config_dir(cfg, "sd15_tiny", "quick", "tiny");
    float old;
    poke(&want.unet_ps, "conv_in.weight", 0, NAN, &old);
    write_single_file(file, &want, 1, WITH_ALL, NULL);
    unpoke(&want.unet_ps, "conv_in.weight", 0, old);
    int rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_ALL, 0);
    sid_sd_free(&m);
    expect_error(rc, "single-file NaN", "sd1.safetensors", "tensor 'model.diffusion_model.input_blocks.0.0.weight' has 1 NaN");
    sid_sd_free(&want);
    test_remove_tree(dir);

    // SD2's open_clip text encoder, whose fused tensors its own loader splits
    if (reference_model(&want, "sd2_linear", "gelu", "tiny")) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return sid_sd_free(&want);
    }
    make_tmpdir(dir, sizeof dir);
    sub_path(file, sizeof file, dir, "sd2.safetensors");
    sub_path(cfg, sizeof cfg, dir, "configs");
    write_config_dir(cfg, "sd2_linear", "gelu", "tiny");
    poke(&want.clip_ps, "text_model.encoder.layers.0.self_attn.k_proj.weight", 1, INFINITY, &old);
    write_single_file(file, &want, 2, WITH_ALL, NULL);
    rc = sid_sd_load_with_config(&m, file, cfg, SID_SD_TEXT, 0);
    sid_sd_free(&m);
    expect_error(rc, "open_clip Inf", "sd2.safetensors", "tensor 'text_model.encoder.layers.0.self_attn.k_proj.weight' has 1 infinite");
    sid_sd_free(&want);
    test_remove_tree(dir);

    // the shipped teacher passes (and so do its sampling options: trailing, final alpha 1, no clipping)
    char p[1024];
    snprintf(p, sizeof p, "%s/../../models/teacher", test_data_dir());
    if (sid_file_exists(p)) {
        rc = sid_sd_load(&m, p, SID_SD_UNET | SID_SD_TEXT, 0);
        sid_ddim_config c = sid_sd_ddim_config(&m), d = sid_ddim_default();
        EXPECT(rc == 0 && same_ddim(&c, &d), "models/teacher: rc %d, %s offset %d alpha1 %d clip %d (%s)", rc,
               sid_spacing_name(c.spacing), c.steps_offset, c.set_alpha_to_one, c.clip_sample, rc ? sid_error() : "");
        sid_sd_free(&m);
    }
    rc = sid_sd_load(&m, data_path(p, sizeof p, "sid/teacher"), SID_SD_UNET | SID_SD_TEXT, 0);
    EXPECT(rc == 0, "tests/data/sid/teacher: %s", rc ? sid_error() : "");
    sid_sd_free(&m);
    // a parameter set not yet allocated has nothing to check
    sid_params empty = {0};
    EXPECT(sid_params_check_finite(&empty, "empty") == 0, "an empty set fails: %s", sid_error());
}

// ---------------------------------------------------------------- names and built-in configs
// Every row of sd-vae-keys.tsv: diffusers name, LDM name, shape.
static void test_vae_ldm_names(void) {
    char path[512], line[512];
    gzFile z = gzopen(data_path(path, sizeof path, "checkpoint/sd-vae-keys.tsv.gz"), "rb");
    if (!z) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return;
    }
    sid_vae_config c = sid_vae_config_sd();
    sid_params ps = {0};
    sid_vae v;
    sid_vae_decl(&v, &ps, &c);
    int rows = 0, matched = 0;
    while (gzgets(z, line, sizeof line)) {
        char ours[256], ldm[256], shape[128], mapped[256] = "", mine[128];
        if (line[0] == '#' || sscanf(line, "%255s %255s %127[^\n]", ours, ldm, shape) != 3) continue;
        rows++;
        const int k = sid_params_find(&ps, ours);
        if (k < 0) {
            test_fail(__FILE__, __LINE__, "no parameter %s", ours);
            continue;
        }
        sid_shape_str(ps.items[k].ndim, ps.items[k].shape, mine, sizeof mine);
        EXPECT(strcmp(mine, shape) == 0, "%s: declared %s, the table has %s", ours, mine, shape);
        if (sid_vae_ldm_name(&c, ours, mapped, sizeof mapped) == 0 && strncmp(ldm, "first_stage_model.", 18) == 0 &&
            strcmp(mapped, ldm + 18) == 0)
            matched++;
        else
            test_fail(__FILE__, __LINE__, "%s maps to '%s', want %s", ours, mapped, ldm);
    }
    gzclose(z);
    EXPECT(rows == 248 && matched == 248 && ps.n == 248, "%d rows, %d matched, %d parameters", rows, matched, ps.n);
    char buf[128];
    EXPECT(sid_vae_ldm_name(&c, "decoder.up_blocks.0.attentions.0.to_q.weight", buf, sizeof buf) == -1 &&
               sid_vae_ldm_name(&c, "encoder.mid_block.resnets.2.conv1.weight", buf, sizeof buf) == -1 &&
               sid_vae_ldm_name(&c, "decoder.up_blocks.4.resnets.0.conv1.weight", buf, sizeof buf) == -1,
           "unknown names get an LDM name");
    sid_vae_free(&v), sid_params_free(&ps);

    // other shapes: 3 blocks of 3 layers, 6 blocks of 1; every name mapped, no two the same, reversed up blocks
    const sid_vae_config shapes[2] = {
        {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .layers_per_block = 3, .norm_groups = 2,
         .n_blocks = 3, .block_out = {4, 8, 8}, .scaling_factor = 1, .use_quant_conv = 1, .use_post_quant_conv = 1, .mid_attention = 1},
        {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .layers_per_block = 1, .norm_groups = 2,
         .n_blocks = 6, .block_out = {2, 4, 4, 4, 6, 6}, .scaling_factor = 1, .mid_attention = 1}};
    for (int s = 0; s < 2; s++) {
        sid_params q = {0};
        sid_vae_decl(&v, &q, &shapes[s]);
        char (*names)[128] = sid_calloc((size_t)q.n * 128);
        int ok = 1;
        for (int i = 0; i < q.n; i++) {
            ok &= sid_vae_ldm_name(&shapes[s], q.items[i].name, names[i], 128) == 0;
            for (int j = 0; j < i && ok; j++) ok &= strcmp(names[i], names[j]) != 0;
        }
        EXPECT(ok, "config %d: a name without an LDM name, or two the same", s);
        const int n = shapes[s].n_blocks, L = shapes[s].layers_per_block;
        snprintf(path, sizeof path, "decoder.up_blocks.%d.resnets.%d.conv_shortcut.weight", n - 2, 0);
        char want[128];
        snprintf(want, sizeof want, "decoder.up.1.block.0.nin_shortcut.weight");
        EXPECT(sid_params_find(&q, path) < 0 || (sid_vae_ldm_name(&shapes[s], path, buf, sizeof buf) == 0 && strcmp(buf, want) == 0),
               "config %d: %s -> %s", s, path, buf);
        snprintf(path, sizeof path, "decoder.up_blocks.0.resnets.%d.norm2.bias", L);
        snprintf(want, sizeof want, "decoder.up.%d.block.%d.norm2.bias", n - 1, L);
        EXPECT(sid_vae_ldm_name(&shapes[s], path, buf, sizeof buf) == 0 && strcmp(buf, want) == 0, "config %d: %s -> %s", s,
               path, buf);
        free(names);
        sid_vae_free(&v), sid_params_free(&q);
    }
}

static void test_builtin_configs(void) {
    sid_unet_config u;
    sid_clip_config c, file;
    sid_vae_config v, sd = sid_vae_config_sd();
    const size_t want_unet[2] = {859520964u, 865910724u};
    for (int ver = 1; ver <= 2; ver++) {
        EXPECT(sid_sd_default_configs(ver, &u, &c, &v) == 0, "%s", sid_error());
        sid_params ps = {0};
        sid_unet un;
        sid_unet_decl(&un, &ps, &u);
        const size_t n = sid_params_count(&ps);
        EXPECT(n == want_unet[ver - 1] && ps.n == 686, "SD%d UNet: %zu parameters in %d tensors", ver, n, ps.n);
        EXPECT(u.cross_attention_dim == c.hidden && u.use_linear_projection == (ver == 2),
               "SD%d: context %d, text width %d", ver, u.cross_attention_dim, c.hidden);
        sid_unet_free(&un), sid_params_free(&ps);
        EXPECT(memcmp(&v, &sd, sizeof v) == 0, "SD%d VAE config", ver);
    }
    char path[512];
    EXPECT(sid_clip_config_load(&file, data_path(path, sizeof path, "clip/sd21base-text_encoder-config.json")) == 0, "%s",
           sid_error());
    c = sid_clip_config_sd2();
    EXPECT(memcmp(&c, &file, sizeof c) == 0, "sid_clip_config_sd2() differs from SD2.1-base's text_encoder/config.json");
    EXPECT(sid_clip_param_count(&c) == 340387840u, "SD2 text encoder: %zu parameters", sid_clip_param_count(&c));
    EXPECT(sid_sd_default_configs(3, &u, NULL, NULL) == -1, "version 3 has built-in configs");
}

TEST_LIST(T(test_vae_ldm_names), T(test_builtin_configs), T(test_diffusers_folder_loads), T(test_single_file_sd1_loads),
          T(test_single_file_sd2_loads), T(test_version_detection), T(test_folder_errors), T(test_single_file_errors),
          T(test_scheduler_keys), T(test_weights_must_be_finite))
TEST_MAIN("checkpoint")
