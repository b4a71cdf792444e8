// `sid inspect PATH`: what a model folder, config or checkpoint holds, counted from its
// config alone (no weights needed): a diffusers pipeline folder (model_index.json), one
// component folder or config.json, or a .safetensors file (single-file LDM or diffusers).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/checkpoint.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

static void print_count(const char *what, size_t n) {
    char digits[32], out[48];
    int len = snprintf(digits, sizeof digits, "%zu", n), k = 0;
    for (int i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0) out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
    printf("  %s%s\n", what, out);
}

static void print_list(const char *name, const int *v, int n) {
    printf("%s [", name);
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", v[i]);
    printf("]");
}

static int inspect_unet(const char *config) {
    sid_unet_config c;
    if (sid_unet_config_load(&c, config)) return -1;
    int tensors;
    size_t n = sid_unet_param_count(&c, &tensors);
    printf("%s: UNet2DConditionModel\n  ", config);
    print_list("block_out_channels", c.block_out_channels, c.levels);
    printf(", layers_per_block %d, ", c.layers_per_block);
    print_list("heads", c.heads, c.levels);
    printf(", cross_attention_dim %d, in/out channels %d/%d, %s projections, mid block %s\n", c.cross_attention_dim,
           c.in_channels, c.out_channels, c.use_linear_projection ? "linear" : "1x1 conv", c.mid_block ? "yes" : "no");
    print_count("parameters: ", n);
    printf("  tensors: %d\n", tensors);
    return 0;
}

static int inspect_clip(const char *config) {
    sid_clip_config c;
    if (sid_clip_config_load(&c, config)) return -1;
    printf("%s: CLIPTextModel\n  vocab %d, width %d, layers %d, heads %d, mlp %d, positions %d, %s\n", config,
           c.vocab_size, c.hidden, c.layers, c.heads, c.intermediate, c.max_positions,
           c.act == SID_ACT_QUICK_GELU ? "quick_gelu" : "gelu");
    print_count("parameters: ", sid_clip_param_count(&c));
    return 0;
}

static int inspect_vae(const char *config) {
    sid_vae_config c;
    if (sid_vae_config_load(&c, config)) return -1;
    size_t enc, dec, n = sid_vae_param_count(&c, &enc, &dec);
    printf("%s: AutoencoderKL\n", config);
    print_count("parameters: ", n);
    print_count("  encoder + quant_conv: ", enc);
    print_count("  decoder + post_quant_conv: ", dec);
    return 0;
}

// Which model a config.json describes: diffusers writes _class_name, transformers architectures/model_type.
static int inspect_config(const char *config) {
    cJSON *j = sid_json_load(config);
    if (!j) return -1;
    const char *cls = NULL, *type = NULL;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    if (sid_json_string(j, "_class_name", &cls, "", 0, config) || sid_json_string(j, "model_type", &type, "", 0, config)) {
        cJSON_Delete(j);
        return -1;
    }
    const char *a0 = cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0)) ? cJSON_GetArrayItem(arch, 0)->valuestring : "";
    int rc;
    if (strcmp(cls, "UNet2DConditionModel") == 0) rc = inspect_unet(config);
    else if (strcmp(cls, "AutoencoderKL") == 0) rc = inspect_vae(config);
    else if (strcmp(a0, "CLIPTextModel") == 0 || strcmp(type, "clip_text_model") == 0) rc = inspect_clip(config);
    else if (cls[0] == 0 && strstr(config, "scheduler")) rc = printf("%s: scheduler config\n", config) < 0;
    else {
        sid_set_error("%s: unknown model kind (_class_name '%s', architectures '%s')", config, cls, a0);
        rc = -1;
    }
    cJSON_Delete(j);
    return rc;
}

static int inspect_pipeline(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model_index.json", dir);
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    const char *cls = "";
    sid_json_string(j, "_class_name", &cls, "", 0, path);
    printf("%s: diffusers pipeline %s\n", dir, cls);
    int rc = 0;
    static const char *const parts[] = {"unet", "text_encoder", "vae"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s/config.json", dir, parts[i]);
        if (sid_file_exists(path)) rc = inspect_config(path);
        else printf("%s/%s: absent\n", dir, parts[i]);
    }
    snprintf(path, sizeof path, "%s/tokenizer/vocab.json", dir);
    const int has_vocab = sid_file_exists(path);
    snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", dir);
    printf("%s/tokenizer: %s\n", dir,
           has_vocab ? "vocab.json present" : sid_file_exists(path) ? "tokenizer.json present" : "absent");
    cJSON_Delete(j);
    return rc;
}

static int inspect_safetensors(const char *path) {
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    static const struct {
        const char *prefix, *what;
    } parts[] = {{"model.diffusion_model.", "UNet (LDM names)"},
                 {"first_stage_model.", "VAE (LDM names)"},
                 {"cond_stage_model.transformer.", "CLIP text encoder (SD1.x)"},
                 {"cond_stage_model.model.", "OpenCLIP text encoder (SD2.x)"}};
    size_t counts[4] = {0}, total = 0;
    int tensors[4] = {0};
    for (int i = 0; i < st.n; i++) {
        const size_t n = (size_t)sid_shape_numel(st.tensors[i].ndim, st.tensors[i].shape);
        total += n;
        for (int k = 0; k < 4; k++)
            if (strncmp(st.tensors[i].name, parts[k].prefix, strlen(parts[k].prefix)) == 0) counts[k] += n, tensors[k]++;
    }
    const int single = tensors[0] > 0;
    printf("%s: %s, %d tensors\n", path, single ? "single-file Stable Diffusion checkpoint" : "safetensors weights", st.n);
    if (single) {
        const int v = sid_sd_single_file_version(path);
        if (v > 0) printf("  detected: Stable Diffusion %s (built-in %s configs apply)\n", v == 1 ? "1.x" : "2.x", v == 1 ? "SD1.5" : "SD2.1-base");
    }
    for (int k = 0; k < 4; k++)
        if (tensors[k]) {
            printf("  %s: %d tensors, ", parts[k].what, tensors[k]);
            print_count("", counts[k]);
        }
    print_count("values in all tensors: ", total);
    sid_st_close(&st);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    if (argc != 1) sid_die("usage: sid inspect PATH (a model folder, config.json or .safetensors file)");
    const char *p = argv[0];
    char path[1024];
    struct stat sb;
    if (stat(p, &sb)) sid_die("%s: no such file or folder", p);
    // A device (/dev/zero) or FIFO is no model: refuse it before anything reads from it.
    if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode)) sid_die("%s: not a regular file or folder", p);
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        snprintf(path, sizeof path, "%s/model_index.json", p);
        if (sid_file_exists(path)) rc = inspect_pipeline(p);
        else {
            snprintf(path, sizeof path, "%s/config.json", p);
            if (!sid_file_exists(path)) sid_die("%s: neither model_index.json nor config.json in this folder", p);
            rc = inspect_config(path);
        }
    } else {
        const size_t n = strlen(p);
        rc = n > 12 && strcmp(p + n - 12, ".safetensors") == 0 ? inspect_safetensors(p) : inspect_config(p);
    }
    if (rc) sid_die("%s", sid_error());
    return 0;
}
