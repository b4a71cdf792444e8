#include "models/unet.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"

// How batches are split over threads: see "splitting the batch" below.
enum { MAX_PARTS = 64, SPLIT_SHAPES = 8, PART_SAMPLES = 4 };
// Private gradient blocks cost (threads - 1) x the parameters; networks that large have ops big
// enough for op-level threading.
static const size_t split_max_grad_bytes = (size_t)256 << 20;

struct sid_unet_split {
    struct {
        int H, W, M, pairs;
        size_t bytes;  // arena peak of a one-sample (one-pair) forward, temporaries included
    } shape[SPLIT_SHAPES];
    int next;          // the slot a new shape takes
    float *grads;      // (threads - 1) private gradient blocks
    size_t grads_cap;  // floats
};

// ---------------------------------------------------------------- config

// Keys whose only supported value is "unset" (null/absent) or one fixed value: anything else would
// change the network, so it is rejected rather than ignored.
static int check_fixed(const cJSON *j, const char *path) {
    static const char *const must_be_null[] = {"class_embed_type", "addition_embed_type", "time_cond_proj_dim",
                                               "time_embedding_dim", "timestep_post_act", "encoder_hid_dim",
                                               "num_class_embeds", "projection_class_embeddings_input_dim"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof must_be_null[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, must_be_null[i]);
        if (v && !cJSON_IsNull(v)) {
            sid_set_error("%s: '%s' is not supported by sid (must be null)", path, must_be_null[i]);
            return -1;
        }
    }
    static const struct {
        const char *key, *want;
    } strings[] = {{"act_fn", "silu"},
                   {"time_embedding_type", "positional"},
                   {"resnet_time_scale_shift", "default"}};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *v;
        if (sid_json_string(j, strings[i].key, &v, strings[i].want, 0, path)) return -1;
        if (strcmp(v, strings[i].want)) {
            sid_set_error("%s: '%s' = \"%s\" is not supported by sid (only \"%s\")", path, strings[i].key, v,
                          strings[i].want);
            return -1;
        }
    }
    static const struct {
        const char *key;
        int want;
    } ints[] = {{"conv_in_kernel", 3}, {"conv_out_kernel", 3}, {"downsample_padding", 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int v;
        if (sid_json_int(j, ints[i].key, &v, ints[i].want, 0, path)) return -1;
        if (v != ints[i].want) {
            sid_set_error("%s: '%s' = %d is not supported by sid (only %d)", path, ints[i].key, v, ints[i].want);
            return -1;
        }
    }
    static const char *const must_be_false[] = {"dual_cross_attention", "only_cross_attention", "center_input_sample"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof must_be_false[0]; i++) {
        int v;
        if (sid_json_bool(j, must_be_false[i], &v, 0, 0, path)) return -1;
        if (v) {
            sid_set_error("%s: '%s' = true is not supported by sid", path, must_be_false[i]);
            return -1;
        }
    }
    double scale;
    if (sid_json_double(j, "mid_block_scale_factor", &scale, 1.0, 0, path)) return -1;
    if (scale != 1.0) {
        sid_set_error("%s: 'mid_block_scale_factor' = %g is not supported by sid (only 1)", path, scale);
        return -1;
    }
    return 0;
}

static int block_types(const cJSON *j, const char *key, const char *attn, const char *plain, int *out, int n,
                       const char *path) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        sid_set_error("%s: '%s' must be a list of %d block types (one per block_out_channels entry)", path, key, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        const char *s = cJSON_IsString(e) ? e->valuestring : "";
        if (strcmp(s, attn) == 0) out[i] = 1;
        else if (strcmp(s, plain) == 0) out[i] = 0;
        else {
            sid_set_error("%s: '%s'[%d] = \"%s\" is not supported by sid (%s or %s)", path, key, i, s, attn, plain);
            return -1;
        }
    }
    return 0;
}

// Upper bounds on the sizes a config may ask for. Each is far above any Stable Diffusion model
// (SD1.5: 1280 channels, 2 layers, cross_attention_dim 768, sample_size 64) and low enough that
// every weight size the layers compute in int (cin x cout x 9, 8 x ch^2 for the feed-forward,
// (4 x ch0)^2 for the time embedding) and one sample's widest feature map stay below 2^31.
enum {
    UNET_MAX_IO_CHANNELS = 1024,
    UNET_MAX_CHANNELS = 8192,
    UNET_MAX_LAYERS = 64,
    UNET_MAX_CROSS_DIM = 16384,
    UNET_MAX_SAMPLE_SIZE = 1024,
};

static int in_range(int v, int lo, int hi, const char *key, const char *path) {
    if (v >= lo && v <= hi) return 0;
    sid_set_error("%s: '%s' = %d is out of range (%d to %d)", path, key, v, lo, hi);
    return -1;
}

// Every size from the config, checked before anything is sized from it: zero or negative
// counts would divide by zero or wrap, absurd ones would overflow the buffer arithmetic.
static int validate_sizes(const sid_unet_config *c, const char *heads_key, const char *path) {
    const int n = c->levels;
    if (in_range(c->in_channels, 1, UNET_MAX_IO_CHANNELS, "in_channels", path) ||
        in_range(c->out_channels, 1, UNET_MAX_IO_CHANNELS, "out_channels", path) ||
        in_range(c->sample_size, 1, UNET_MAX_SAMPLE_SIZE, "sample_size", path) ||
        in_range(c->layers_per_block, 1, UNET_MAX_LAYERS, "layers_per_block", path) ||
        in_range(c->cross_attention_dim, 1, UNET_MAX_CROSS_DIM, "cross_attention_dim", path) ||
        in_range(c->transformer_layers, 1, UNET_MAX_LAYERS, "transformer_layers_per_block", path) ||
        in_range(c->norm_num_groups, 1, UNET_MAX_CHANNELS, "norm_num_groups", path))
        return -1;
    char key[64];
    for (int i = 0; i < n; i++) {
        const int ch = c->block_out_channels[i];
        snprintf(key, sizeof key, "block_out_channels[%d]", i);
        if (in_range(ch, 1, UNET_MAX_CHANNELS, key, path)) return -1;
        if (ch % c->norm_num_groups) {
            sid_set_error("%s: block_out_channels[%d] = %d is not divisible by 'norm_num_groups' %d", path, i, ch,
                          c->norm_num_groups);
            return -1;
        }
        // The mid block attends at the last level's width with the last level's heads.
        const int attends = c->down_attn[i] || c->up_attn[n - 1 - i] || (c->mid_block && i == n - 1);
        snprintf(key, sizeof key, "%s[%d]", heads_key, i);
        if (in_range(c->heads[i], 1, attends ? ch : UNET_MAX_CHANNELS, key, path)) return -1;
        if (attends && ch % c->heads[i]) {
            sid_set_error("%s: block_out_channels[%d] = %d is not divisible by its %d heads ('%s')%s", path, i, ch,
                          c->heads[i], heads_key, c->mid_block && i == n - 1 ? " (used by the mid block)" : "");
            return -1;
        }
    }
    // One sample's feature map at full resolution, the widest activation the network makes.
    int64_t widest = c->in_channels > c->block_out_channels[0] ? c->in_channels : c->block_out_channels[0];
    if (widest * c->sample_size * c->sample_size > INT32_MAX) {
        sid_set_error("%s: 'sample_size' = %d with %lld channels makes feature maps of more than 2^31 values", path,
                      c->sample_size, (long long)widest);
        return -1;
    }
    return 0;
}

int sid_unet_config_parse(sid_unet_config *c, const char *text, const char *path) {
    memset(c, 0, sizeof *c);
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        sid_set_error("%s: not a JSON object", path);
        cJSON_Delete(j);
        return -1;
    }
    int rc = -1, n, nh, heads[SID_UNET_MAX_LEVELS], tl[SID_UNET_MAX_LEVELS], ntl;
    double eps, shift;
    const char *mid;
    const cJSON *nah = cJSON_GetObjectItemCaseSensitive(j, "num_attention_heads");
    const int heads_key_is_nah = nah && !cJSON_IsNull(nah);
    if (check_fixed(j, path) || sid_json_int(j, "in_channels", &c->in_channels, 4, 0, path) ||
        sid_json_int(j, "out_channels", &c->out_channels, 4, 0, path) ||
        sid_json_int(j, "sample_size", &c->sample_size, 64, 0, path) ||
        sid_json_int_array(j, "block_out_channels", c->block_out_channels, SID_UNET_MAX_LEVELS, &c->levels, path) ||
        sid_json_int(j, "layers_per_block", &c->layers_per_block, 2, 0, path) ||
        sid_json_int(j, "cross_attention_dim", &c->cross_attention_dim, 1280, 0, path) ||
        sid_json_int(j, "norm_num_groups", &c->norm_num_groups, 32, 0, path) ||
        sid_json_double(j, "norm_eps", &eps, 1e-5, 0, path) || sid_json_double(j, "freq_shift", &shift, 0, 0, path) ||
        sid_json_bool(j, "flip_sin_to_cos", &c->flip_sin_to_cos, 1, 0, path) ||
        sid_json_bool(j, "use_linear_projection", &c->use_linear_projection, 0, 0, path) ||
        sid_json_string(j, "mid_block_type", &mid, "UNetMidBlock2DCrossAttn", 0, path) ||
        sid_json_int_array(j, heads_key_is_nah ? "num_attention_heads" : "attention_head_dim", heads,
                           SID_UNET_MAX_LEVELS, &nh, path))
        goto done;
    c->norm_eps = (float)eps, c->freq_shift = (float)shift;
    n = c->levels;
    if (n < 1 || block_types(j, "down_block_types", "CrossAttnDownBlock2D", "DownBlock2D", c->down_attn, n, path) ||
        block_types(j, "up_block_types", "CrossAttnUpBlock2D", "UpBlock2D", c->up_attn, n, path))
        goto done;
    if (nh != 1 && nh != n) {
        sid_set_error("%s: attention heads list has %d entries for %d levels", path, nh, n);
        goto done;
    }
    for (int i = 0; i < n; i++) c->heads[i] = heads[nh == 1 ? 0 : i];
    ntl = 1, tl[0] = 1;
    if (cJSON_GetObjectItemCaseSensitive(j, "transformer_layers_per_block") &&
        sid_json_int_array(j, "transformer_layers_per_block", tl, SID_UNET_MAX_LEVELS, &ntl, path))
        goto done;
    for (int i = 1; i < ntl; i++)
        if (tl[i] != tl[0]) {
            sid_set_error("%s: 'transformer_layers_per_block' must be the same at every level", path);
            goto done;
        }
    c->transformer_layers = tl[0];
    if (strcmp(mid, "UNetMidBlock2DCrossAttn") == 0) c->mid_block = 1;
    else {
        sid_set_error("%s: 'mid_block_type' = \"%s\" is not supported by sid", path, mid);
        goto done;
    }
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "mid_block_type"))) c->mid_block = 0;
    if (validate_sizes(c, heads_key_is_nah ? "num_attention_heads" : "attention_head_dim", path)) goto done;
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

int sid_unet_config_load(sid_unet_config *c, const char *path) {
    char *text;
    size_t len;
    if (sid_read_file(path, &text, &len)) return -1;
    int rc = sid_unet_config_parse(c, text, path);
    free(text);
    return rc;
}

int sid_unet_config_save(const sid_unet_config *c, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "_class_name", "UNet2DConditionModel");
    cJSON_AddStringToObject(j, "act_fn", "silu");
    cJSON_AddItemToObject(j, "attention_head_dim", cJSON_CreateIntArray(c->heads, c->levels));  // = heads
    cJSON_AddItemToObject(j, "block_out_channels", cJSON_CreateIntArray(c->block_out_channels, c->levels));
    cJSON_AddNumberToObject(j, "cross_attention_dim", c->cross_attention_dim);
    cJSON *down = cJSON_AddArrayToObject(j, "down_block_types"), *up = cJSON_AddArrayToObject(j, "up_block_types");
    for (int i = 0; i < c->levels; i++) {
        cJSON_AddItemToArray(down, cJSON_CreateString(c->down_attn[i] ? "CrossAttnDownBlock2D" : "DownBlock2D"));
        cJSON_AddItemToArray(up, cJSON_CreateString(c->up_attn[i] ? "CrossAttnUpBlock2D" : "UpBlock2D"));
    }
    cJSON_AddNumberToObject(j, "downsample_padding", 1);
    cJSON_AddBoolToObject(j, "flip_sin_to_cos", c->flip_sin_to_cos);
    cJSON_AddNumberToObject(j, "freq_shift", c->freq_shift);
    cJSON_AddNumberToObject(j, "in_channels", c->in_channels);
    cJSON_AddNumberToObject(j, "layers_per_block", c->layers_per_block);
    cJSON_AddNumberToObject(j, "mid_block_scale_factor", 1);
    if (c->mid_block) cJSON_AddStringToObject(j, "mid_block_type", "UNetMidBlock2DCrossAttn");
    else cJSON_AddNullToObject(j, "mid_block_type");
    sid_json_add_float(j, "norm_eps", c->norm_eps);
    cJSON_AddNumberToObject(j, "norm_num_groups", c->norm_num_groups);
    cJSON_AddNumberToObject(j, "out_channels", c->out_channels);
    cJSON_AddNumberToObject(j, "sample_size", c->sample_size);
    cJSON_AddNumberToObject(j, "transformer_layers_per_block", c->transformer_layers);
    cJSON_AddBoolToObject(j, "use_linear_projection", c->use_linear_projection);
    int rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}

// ---------------------------------------------------------------- structure
struct sid_unet_level {
    sid_resnet *res;
    sid_transformer *attn;  // NULL for plain blocks
    sid_conv sample;        // downsampler (down path) or upsampler conv (up path)
    int n, has_sample;
};

static void level_alloc(sid_unet_level *l, int n, int attn) {
    l->n = n;
    l->res = sid_calloc((size_t)n * sizeof *l->res);
    l->attn = attn ? sid_calloc((size_t)n * sizeof *l->attn) : NULL;
}

void sid_unet_decl(sid_unet *u, sid_params *ps, const sid_unet_config *c) {
    char p[160];
    memset(u, 0, sizeof *u);
    u->cfg = *c;
    const int n = c->levels, *boc = c->block_out_channels, G = c->norm_num_groups, T = c->transformer_layers;
    const float eps = c->norm_eps;
    u->temb_dim = 4 * boc[0];
    sid_conv_decl(&u->conv_in, ps, c->in_channels, boc[0], 3, 1, 1, "conv_in");
    sid_linear_decl(&u->time1, ps, boc[0], u->temb_dim, 1, "time_embedding.linear_1");
    sid_linear_decl(&u->time2, ps, u->temb_dim, u->temb_dim, 1, "time_embedding.linear_2");
    u->split = sid_calloc(sizeof *u->split);
    u->down = sid_calloc((size_t)n * sizeof *u->down);
    u->up = sid_calloc((size_t)n * sizeof *u->up);
    for (int i = 0; i < n; i++) {
        sid_unet_level *l = &u->down[i];
        level_alloc(l, c->layers_per_block, c->down_attn[i]);
        for (int j = 0; j < l->n; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            sid_resnet_decl(&l->res[j], ps, j == 0 ? (i ? boc[i - 1] : boc[0]) : boc[i], boc[i], u->temb_dim, G, eps, p);
            if (l->attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                sid_transformer_decl(&l->attn[j], ps, boc[i], c->heads[i], c->cross_attention_dim, T, G,
                                     c->use_linear_projection, p);
            }
        }
        if ((l->has_sample = i < n - 1)) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            sid_conv_decl(&l->sample, ps, boc[i], boc[i], 3, 2, 1, p);
        }
    }
    if (c->mid_block) {
        const int C = boc[n - 1];
        sid_resnet_decl(&u->mid_res[0], ps, C, C, u->temb_dim, G, eps, "mid_block.resnets.0");
        sid_transformer_decl(&u->mid_attn, ps, C, c->heads[n - 1], c->cross_attention_dim, T, G,
                             c->use_linear_projection, "mid_block.attentions.0");
        sid_resnet_decl(&u->mid_res[1], ps, C, C, u->temb_dim, G, eps, "mid_block.resnets.1");
    }
    for (int i = 0; i < n; i++) {
        // diffusers: reversed channel and head lists; the first resnet takes the previous block's
        // width, the last takes the skip of the level below (unet_2d_blocks.py, res_skip_channels).
        const int out = boc[n - 1 - i], prev = boc[n - 1 - (i ? i - 1 : 0)], in = boc[n - 1 - (i + 1 < n ? i + 1 : n - 1)];
        sid_unet_level *l = &u->up[i];
        level_alloc(l, c->layers_per_block + 1, c->up_attn[i]);
        for (int j = 0; j < l->n; j++) {
            const int skip = j == l->n - 1 ? in : out, rin = j == 0 ? prev : out;
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            sid_resnet_decl(&l->res[j], ps, rin + skip, out, u->temb_dim, G, eps, p);
            if (l->attn) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                sid_transformer_decl(&l->attn[j], ps, out, c->heads[n - 1 - i], c->cross_attention_dim, T, G,
                                     c->use_linear_projection, p);
            }
        }
        if ((l->has_sample = i < n - 1)) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            sid_conv_decl(&l->sample, ps, out, out, 3, 1, 1, p);
        }
    }
    sid_norm_decl(&u->norm_out, ps, boc[0], G, eps, "conv_norm_out");
    sid_conv_decl(&u->conv_out, ps, boc[0], c->out_channels, 3, 1, 1, "conv_out");
}

size_t sid_unet_param_count(const sid_unet_config *c, int *tensors) {
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, c);
    const size_t n = sid_params_count(&ps);
    if (tensors) *tensors = ps.n;
    sid_unet_free(&u);
    sid_params_free(&ps);
    return n;
}

static void level_free(sid_unet_level *l) {
    if (l->attn)
        for (int j = 0; j < l->n; j++) sid_transformer_free(&l->attn[j]);
    free(l->res);
    free(l->attn);
}

void sid_unet_free(sid_unet *u) {
    if (u->split) free(u->split->grads);
    free(u->split);
    for (int i = 0; i < u->cfg.levels && u->down; i++) level_free(&u->down[i]), level_free(&u->up[i]);
    if (u->cfg.mid_block) sid_transformer_free(&u->mid_attn);
    free(u->down);
    free(u->up);
    memset(u, 0, sizeof *u);
}

// ---------------------------------------------------------------- LDM naming
static const char *const resnet_ldm[][2] = {{"norm1.", "in_layers.0."},       {"conv1.", "in_layers.2."},
                                            {"time_emb_proj.", "emb_layers.1."}, {"norm2.", "out_layers.0."},
                                            {"conv2.", "out_layers.3."},       {"conv_shortcut.", "skip_connection."}};

static int resnet_part(const char *rest, char *buf, size_t cap, const char *block) {
    for (size_t i = 0; i < sizeof resnet_ldm / sizeof resnet_ldm[0]; i++) {
        size_t k = strlen(resnet_ldm[i][0]);
        if (strncmp(rest, resnet_ldm[i][0], k) == 0) {
            snprintf(buf, cap, "%s.%s%s", block, resnet_ldm[i][1], rest + k);
            return 0;
        }
    }
    return -1;
}

int sid_unet_ldm_name(const void *ctx, const char *n, char *buf, size_t cap) {
    const sid_unet_config *c = ctx;
    const int L = c->layers_per_block;
    int i, j, k = 0;
    char blk[64];
    static const char *const direct[][2] = {{"time_embedding.linear_1.", "time_embed.0."},
                                            {"time_embedding.linear_2.", "time_embed.2."},
                                            {"conv_in.", "input_blocks.0.0."},
                                            {"conv_norm_out.", "out.0."},
                                            {"conv_out.", "out.2."}};
    for (size_t d = 0; d < sizeof direct / sizeof direct[0]; d++) {
        size_t len = strlen(direct[d][0]);
        if (strncmp(n, direct[d][0], len) == 0) return snprintf(buf, cap, "%s%s", direct[d][1], n + len), 0;
    }
    if (sscanf(n, "down_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k) {
        snprintf(blk, sizeof blk, "input_blocks.%d.0", i * (L + 1) + j + 1);
        return resnet_part(n + k, buf, cap, blk);
    }
    if (sscanf(n, "down_blocks.%d.attentions.%d.%n", &i, &j, &k) == 2 && k)
        return snprintf(buf, cap, "input_blocks.%d.1.%s", i * (L + 1) + j + 1, n + k), 0;
    if (sscanf(n, "down_blocks.%d.downsamplers.0.conv.%n", &i, &k) == 1 && k)
        return snprintf(buf, cap, "input_blocks.%d.0.op.%s", (i + 1) * (L + 1), n + k), 0;
    if (sscanf(n, "mid_block.resnets.%d.%n", &i, &k) == 1 && k) {
        snprintf(blk, sizeof blk, "middle_block.%d", 2 * i);
        return resnet_part(n + k, buf, cap, blk);
    }
    if (strncmp(n, "mid_block.attentions.0.", 23) == 0) return snprintf(buf, cap, "middle_block.1.%s", n + 23), 0;
    if (sscanf(n, "up_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k) {
        snprintf(blk, sizeof blk, "output_blocks.%d.0", i * (L + 1) + j);
        return resnet_part(n + k, buf, cap, blk);
    }
    if (sscanf(n, "up_blocks.%d.attentions.%d.%n", &i, &j, &k) == 2 && k)
        return snprintf(buf, cap, "output_blocks.%d.1.%s", i * (L + 1) + j, n + k), 0;
    if (sscanf(n, "up_blocks.%d.upsamplers.0.conv.%n", &i, &k) == 1 && k && i >= 0 && i < c->levels)
        return snprintf(buf, cap, "output_blocks.%d.%d.conv.%s", i * (L + 1) + L, c->up_attn[i] ? 2 : 1, n + k), 0;
    return -1;
}

// ---------------------------------------------------------------- the tape
// Forward records each layer application over numbered tensors; backward replays the
// tape in reverse with one lazily zeroed gradient per tensor, so skip connections and
// concatenations need no special cases. The tape is host metadata (sid_ctx_host: the meta
// arena, or the activation arena on the CPU); the tensors it names live in the activation arena,
// in the backend's memory.
typedef enum { OP_CONV, OP_RESNET, OP_TRANSFORMER, OP_UPSAMPLE, OP_CONCAT, OP_GROUPNORM, OP_SILU, OP_PAIR } op_kind;

typedef struct {
    float *data, *grad;
    int N, C, H, W;  // N: the batch, half the network's in a paired pass until the pairing
} tensor;

typedef struct {
    op_kind kind;
    const void *layer;
    int in, in2, out;
    sid_transformer_saved *ts;  // OP_TRANSFORMER
    sid_resnet_saved rs;        // OP_RESNET
    int recompute;              // a checkpointed block: nothing saved, backward reruns its forward
    sid_norm_saved ns;          // OP_GROUPNORM
} tape_op;

enum { MAX_TENSORS = 512 };

// A paired pass (guided evaluation): samples i and N/2 + i share x and t and differ in ctx only, so
// every layer before the first one that reads ctx (the leading convolutions and ResNets) runs once
// on the N/2 shared samples; OP_PAIR then stacks each live tensor on itself, and the rest runs on
// N. Backward adds the two halves' gradients at each OP_PAIR and runs the shared layers once.
typedef struct {
    int N, M, H, W, checkpointing;
    int pairs, cur;  // cur: the batch of the tensors being made (N/2 before the pairing)
    const float *x, *t, *ctx;
    float *tproj, *h1, *a1, *emb, *emb_shared;  // emb [N]; emb_shared [N/2] (paired only)
    tensor tens[MAX_TENSORS];
    tape_op ops[MAX_TENSORS];
    int nt, nops;
} unet_tape;

static int new_tensor(const sid_ctx *c, unet_tape *s, int C, int H, int W) {
    if (s->nt == MAX_TENSORS) sid_die("unet: more than %d tensors in one forward", MAX_TENSORS);
    s->tens[s->nt] = (tensor){sid_ctx_out(c, (size_t)s->cur * C * H * W), NULL, s->cur, C, H, W};
    return s->nt++;
}

static tape_op *record(unet_tape *s, op_kind k, const void *layer, int in, int in2, int out) {
    tape_op *op = &s->ops[s->nops++];
    *op = (tape_op){.kind = k, .layer = layer, .in = in, .in2 = in2, .out = out};
    return op;
}

static int conv(const sid_ctx *c, unet_tape *s, const sid_conv *l, int in) {
    const tensor *x = &s->tens[in];
    const int H = (x->H + 2 * l->pad - l->k) / l->stride + 1, W = (x->W + 2 * l->pad - l->k) / l->stride + 1;
    const int out = new_tensor(c, s, l->cout, H, W);
    sid_conv_f(c, l, s->tens[out].data, s->tens[in].data, x->N, x->H, x->W);
    record(s, OP_CONV, l, in, -1, out);
    return out;
}

// Where a block's saved state starts in the activation arena and in the host arena (when separate),
// so that a checkpointed block can drop it.
typedef struct {
    size_t act, meta;
} arena_marks;
static arena_marks marks_of(const sid_ctx *c) { return (arena_marks){c->act->used, c->meta ? c->meta->used : 0}; }
static void release_to(const sid_ctx *c, arena_marks m) {
    sid_arena_reset(c->act, m.act);
    if (c->meta) sid_arena_reset(c->meta, m.meta);
}

// The time embedding of a batch of n: the shared one before the pairing.
static float *emb_for(const unet_tape *s, int n) { return n == s->N ? s->emb : s->emb_shared; }

static int resnet(const sid_ctx *c, unet_tape *s, const sid_resnet *r, int in) {
    const tensor *x = &s->tens[in];
    const int out = new_tensor(c, s, r->cout, x->H, x->W);
    const arena_marks m = marks_of(c);
    const sid_resnet_saved rs =
        sid_resnet_f(c, r, s->tens[out].data, s->tens[in].data, emb_for(s, x->N), x->N, x->H, x->W);
    tape_op *op = record(s, OP_RESNET, r, in, -1, out);
    if (s->checkpointing) release_to(c, m), op->recompute = 1;
    else op->rs = rs;
    return out;
}

static int transformer(const sid_ctx *c, unet_tape *s, const sid_transformer *t, int in) {
    const tensor *x = &s->tens[in];
    const int out = new_tensor(c, s, t->C, x->H, x->W);
    const arena_marks m = marks_of(c);
    sid_transformer_saved *ts =
        sid_transformer_f(c, t, s->tens[out].data, s->tens[in].data, s->ctx, x->N, x->H, x->W, s->M);
    tape_op *op = record(s, OP_TRANSFORMER, t, in, -1, out);
    if (s->checkpointing) release_to(c, m), op->recompute = 1;
    else op->ts = ts;
    return out;
}

// A checkpointed block's backward: its forward again, into a scratch output, for the saved state.
static void resnet_recomputed_b(const sid_ctx *c, const unet_tape *s, const tape_op *op, float *gin, const float *g,
                                const tensor *in, float *demb) {
    const sid_resnet *r = op->layer;
    const arena_marks m = marks_of(c);
    const float *emb = emb_for(s, in->N);
    float *scratch = sid_ctx_out(c, (size_t)in->N * r->cout * in->H * in->W);
    const sid_resnet_saved rs = sid_resnet_f(c, r, scratch, in->data, emb, in->N, in->H, in->W);
    sid_resnet_b(c, r, gin, demb, g, in->data, emb, rs, in->N, in->H, in->W);
    release_to(c, m);
}
static void transformer_recomputed_b(const sid_ctx *c, const unet_tape *s, const tape_op *op, float *gin,
                                     float *dctx, const float *g, const tensor *in) {
    const sid_transformer *t = op->layer;
    const arena_marks m = marks_of(c);
    float *scratch = sid_ctx_out(c, (size_t)in->N * t->C * in->H * in->W);
    sid_transformer_saved *ts = sid_transformer_f(c, t, scratch, in->data, s->ctx, in->N, in->H, in->W, s->M);
    sid_transformer_b(c, t, gin, dctx, g, in->data, s->ctx, ts, in->N, in->H, in->W, s->M);
    release_to(c, m);
}

// The batch split's per-shape arena sizes were measured with the other setting: measured again.
void sid_unet_set_checkpointing(sid_unet *u, int on) {
    if (u->checkpointing == (on != 0)) return;
    u->checkpointing = on != 0;
    if (u->split) memset(u->split->shape, 0, sizeof u->split->shape), u->split->next = 0;
}

static int upsample(const sid_ctx *c, unet_tape *s, int in) {
    const tensor *x = &s->tens[in];
    const int out = new_tensor(c, s, x->C, 2 * x->H, 2 * x->W);
    sid_be(c)->upsample2x_fwd(s->tens[out].data, s->tens[in].data, x->N * x->C, x->H, x->W);
    record(s, OP_UPSAMPLE, NULL, in, -1, out);
    return out;
}

static int concat(const sid_ctx *c, unet_tape *s, int a, int b) {
    const tensor *x = &s->tens[a], *y = &s->tens[b];
    const int out = new_tensor(c, s, x->C + y->C, x->H, x->W);
    sid_be(c)->concat_fwd(s->tens[out].data, x->data, y->data, x->N, x->C, y->C, x->H * x->W);
    record(s, OP_CONCAT, NULL, a, b, out);
    return out;
}

static int groupnorm(const sid_ctx *c, unet_tape *s, const sid_norm *l, int in) {
    const tensor *x = &s->tens[in];
    const int out = new_tensor(c, s, x->C, x->H, x->W);
    const sid_norm_saved ns = sid_groupnorm_f(c, l, s->tens[out].data, x->data, x->N, x->H * x->W);
    record(s, OP_GROUPNORM, l, in, -1, out)->ns = ns;
    return out;
}

static int silu(const sid_ctx *c, unet_tape *s, int in) {
    const tensor *x = &s->tens[in];
    const int out = new_tensor(c, s, x->C, x->H, x->W);
    sid_be(c)->act_fwd(SID_ACT_SILU, s->tens[out].data, x->data, (size_t)x->N * x->C * x->H * x->W);
    record(s, OP_SILU, NULL, in, -1, out);
    return out;
}

// dst [2 len] = [src; src], and its adjoint dst [len] += src[:len] + src[len:].
static void stack_twice(const sid_backend *be, float *dst, const float *src, size_t len) {
    be->scale_fwd(dst, src, 1.0f, len), be->scale_fwd(dst + len, src, 1.0f, len);
}
static void add_halves(const sid_backend *be, float *dst, const float *src, size_t len) {
    be->add_fwd(dst, dst, src, len), be->add_fwd(dst, dst, src + len, len);
}

// The pairing of a paired pass (see unet_tape): the time embedding and the live tensors h and
// skips[0..nskip) stacked on themselves, renumbered in place. Once.
static void pair_up(const sid_ctx *c, unet_tape *s, int td, int *h, int *skips, int nskip) {
    if (!s->pairs || s->cur == s->N) return;
    const sid_backend *be = sid_be(c);
    const int n = s->cur;
    s->cur = s->N;
    s->emb = sid_ctx_out(c, (size_t)s->N * td);
    stack_twice(be, s->emb, s->emb_shared, (size_t)n * td);
    int from[MAX_TENSORS / 4], to[MAX_TENSORS / 4], nmap = 0;
    for (int k = -1; k < nskip; k++) {
        int *i = k < 0 ? h : &skips[k], j = 0;
        while (j < nmap && from[j] != *i) j++;
        if (j == nmap) {
            const tensor *x = &s->tens[*i];
            const int out = new_tensor(c, s, x->C, x->H, x->W);
            stack_twice(be, s->tens[out].data, s->tens[*i].data, (size_t)n * x->C * x->H * x->W);
            record(s, OP_PAIR, NULL, *i, -1, out);
            from[nmap] = *i, to[nmap++] = out;
        }
        *i = to[j];
    }
}

// pairs: a paired pass (x and t hold N/2 samples).
static unet_tape *tape_forward(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                               const float *ctx, int N, int H, int W, int M, int pairs) {
    const sid_backend *be = sid_be(c);
    const sid_unet_config *cfg = &u->cfg;
    const int n = cfg->levels, b0 = cfg->block_out_channels[0];
    if (H % (1 << (n - 1)) || W % (1 << (n - 1)))
        sid_die("unet: a %dx%d input does not halve %d times", H, W, n - 1);
    unet_tape *s = sid_ctx_host(c, sizeof *s);  // zero-filled
    s->N = N, s->M = M, s->H = H, s->W = W, s->x = x, s->t = t, s->ctx = ctx, s->checkpointing = u->checkpointing;
    s->pairs = pairs, s->cur = pairs ? N / 2 : N;
    const int n0 = s->cur, td = u->temb_dim;
    // time embedding: sinusoidal -> linear_1 -> SiLU -> linear_2 (each resnet applies its own SiLU)
    s->tproj = sid_ctx_out(c, (size_t)n0 * b0);
    s->h1 = sid_ctx_out(c, (size_t)n0 * td);
    s->a1 = sid_ctx_out(c, (size_t)n0 * td);
    s->emb = sid_ctx_out(c, (size_t)n0 * td);
    be->timestep_embedding_fwd(s->tproj, t, n0, b0, cfg->flip_sin_to_cos, cfg->freq_shift, 10000.0f);
    sid_linear_f(c, &u->time1, s->h1, s->tproj, n0);
    be->act_fwd(SID_ACT_SILU, s->a1, s->h1, (size_t)n0 * td);
    sid_linear_f(c, &u->time2, s->emb, s->a1, n0);
    if (pairs) s->emb_shared = s->emb;

    s->tens[0] = (tensor){(float *)x, NULL, n0, cfg->in_channels, H, W};
    s->nt = 1;
    int skips[4 * SID_UNET_MAX_LEVELS * 4], nskip = 0;
    int h = conv(c, s, &u->conv_in, 0);
    skips[nskip++] = h;
    for (int i = 0; i < n; i++) {
        const sid_unet_level *l = &u->down[i];
        for (int j = 0; j < l->n; j++) {
            h = resnet(c, s, &l->res[j], h);
            if (l->attn) pair_up(c, s, td, &h, skips, nskip), h = transformer(c, s, &l->attn[j], h);
            skips[nskip++] = h;
        }
        if (l->has_sample) skips[nskip++] = h = conv(c, s, &l->sample, h);
    }
    if (cfg->mid_block) {
        h = resnet(c, s, &u->mid_res[0], h);
        pair_up(c, s, td, &h, skips, nskip);
        h = transformer(c, s, &u->mid_attn, h);
        h = resnet(c, s, &u->mid_res[1], h);
    }
    pair_up(c, s, td, &h, skips, nskip);  // a network without cross-attention: the up path runs on N
    for (int i = 0; i < n; i++) {
        const sid_unet_level *l = &u->up[i];
        for (int j = 0; j < l->n; j++) {
            h = concat(c, s, h, skips[--nskip]);  // current first, skip second
            h = resnet(c, s, &l->res[j], h);
            if (l->attn) h = transformer(c, s, &l->attn[j], h);
        }
        if (l->has_sample) h = conv(c, s, &l->sample, upsample(c, s, h));
    }
    h = silu(c, s, groupnorm(c, s, &u->norm_out, h));
    // the last conv writes straight into the caller's buffer
    const tensor *ht = &s->tens[h];
    sid_conv_f(c, &u->conv_out, out, ht->data, N, ht->H, ht->W);
    s->tens[s->nt] = (tensor){out, NULL, N, cfg->out_channels, H, W};
    record(s, OP_CONV, &u->conv_out, h, -1, s->nt++);
    return s;
}

static float *grad_of(const sid_ctx *c, unet_tape *s, int i) {
    tensor *t = &s->tens[i];
    if (!t->grad) t->grad = sid_ctx_floats(c, (size_t)t->N * t->C * t->H * t->W);
    return t->grad;
}

static void tape_backward(const sid_ctx *c, const sid_unet *u, float *dx, float *dctx, const float *dout,
                          unet_tape *s) {
    const sid_backend *be = sid_be(c);
    const size_t mark = sid_arena_mark(c->act);
    const int td = u->temb_dim, n0 = s->pairs ? s->N / 2 : s->N;
    float *demb = c->ps->grad ? sid_ctx_floats(c, (size_t)s->N * td) : NULL;
    float *demb_shared = demb && s->pairs ? sid_ctx_floats(c, (size_t)n0 * td) : NULL;
    s->tens[s->nt - 1].grad = (float *)dout;
    s->tens[0].grad = dx;  // NULL: the input gradient is not wanted
    for (int k = s->nops - 1; k >= 0; k--) {
        const tape_op *op = &s->ops[k];
        tensor *in = &s->tens[op->in];
        const float *g = s->tens[op->out].grad;
        if (!g) continue;  // nothing flows back from an unused tensor
        float *gin = op->in == 0 ? dx : grad_of(c, s, op->in);
        const int HW = in->H * in->W, N = in->N;
        float *de = N == s->N ? demb : demb_shared;
        switch (op->kind) {
        case OP_CONV: sid_conv_b(c, op->layer, gin, g, in->data, N, in->H, in->W); break;
        case OP_RESNET:
            if (op->recompute) resnet_recomputed_b(c, s, op, gin, g, in, de);
            else sid_resnet_b(c, op->layer, gin, de, g, in->data, emb_for(s, N), op->rs, N, in->H, in->W);
            break;
        case OP_TRANSFORMER:
            if (op->recompute) transformer_recomputed_b(c, s, op, gin, dctx, g, in);
            else sid_transformer_b(c, op->layer, gin, dctx, g, in->data, s->ctx, op->ts, N, in->H, in->W, s->M);
            break;
        case OP_UPSAMPLE:
            if (gin) be->upsample2x_bwd(gin, g, N * in->C, in->H, in->W);
            break;
        case OP_CONCAT: {
            tensor *b = &s->tens[op->in2];
            be->concat_bwd(gin, grad_of(c, s, op->in2), g, N, in->C, b->C, HW);
        } break;
        case OP_GROUPNORM: sid_groupnorm_b(c, op->layer, gin, g, in->data, op->ns, N, HW); break;
        case OP_SILU:
            if (gin) be->act_bwd(SID_ACT_SILU, gin, g, in->data, (size_t)N * in->C * HW);
            break;
        case OP_PAIR:
            if (gin) add_halves(be, gin, g, (size_t)N * in->C * HW);
            break;
        }
    }
    // time MLP: only weight gradients (timesteps are not differentiated)
    if (demb) {
        if (demb_shared) add_halves(be, demb_shared, demb, (size_t)n0 * td), demb = demb_shared;
        float *da1 = sid_ctx_floats(c, (size_t)n0 * td), *dh1 = sid_ctx_floats(c, (size_t)n0 * td);
        sid_linear_b(c, &u->time2, da1, demb, s->a1, n0);
        be->act_bwd(SID_ACT_SILU, dh1, da1, s->h1, (size_t)n0 * td);
        sid_linear_b(c, &u->time1, NULL, dh1, s->tproj, n0);
    }
    for (int i = 0; i < s->nt; i++) s->tens[i].grad = NULL;  // they live in the arena released below
    sid_arena_reset(c->act, mark);
}

// ---------------------------------------------------------------- splitting the batch over threads
// Op by op, the small UNets scale badly over threads (the tiny teacher ran 1.3x faster on 2
// threads than on 1): every op is a fork/join over a few hundred KB. So each thread instead
// takes parts of the batch through the whole network with single-threaded ops, and the
// parameter gradients of the threads are summed once at the end. Parts hold at most
// PART_SAMPLES samples (more when MAX_PARTS would be exceeded) and their number is a multiple of
// the thread count; thread i takes parts i, i + T, ..., so a part's tensors stay in the core's
// cache from one op to the next (one part of 32 samples per thread wrote and re-read 2-4 MB
// tensors: a SiD-LSG iteration at batch 64 took 1.53-1.56 s against 1.38-1.43 s with parts of 4
// or 8 samples, AVX2 kernels, 2 threads), and the summation order depends on the batch size and
// the thread count only. A part's saved activations live
// in its own slice of the caller's arena, sized from a one-sample forward measured the first time
// a shape is seen. This is a policy of the CPU backend (host memory, OpenMP threads running ops
// side by side); on any other backend the whole batch runs as one.
struct sid_unet_saved {
    int parts, first[MAX_PARTS + 1];  // part i holds samples [first[i], first[i+1]); part 0 is largest
    int pairs, half;                  // a paired pass: first[] counts pairs, sample i pairs with half + i
    unet_tape *tape[MAX_PARTS];
};

int sid_unet_saved_parts(const sid_unet_saved *s) { return s->parts; }

static int parts_for(const sid_ctx *c, int N) {
    if (sid_be(c) != &sid_backend_cpu || omp_in_parallel()) return 1;
    int T = omp_get_max_threads();
    if (T > MAX_PARTS) T = MAX_PARTS;
    if (T > N) T = N;
    if (T <= 1 || (c->ps->grad && (size_t)(T - 1) * c->ps->total * sizeof(float) > split_max_grad_bytes)) return 1;
    int P = (N + PART_SAMPLES - 1) / PART_SAMPLES;
    P = (P + T - 1) / T * T;
    if (P > MAX_PARTS) P = MAX_PARTS / T * T;
    return P > N ? N : P;
}

// The threads that run P parts (P is a multiple of it, see parts_for).
static int split_threads(int P) {
    const int T = omp_get_max_threads();
    return T < P ? T : P;
}

static size_t *shape_bytes(struct sid_unet_split *sp, int H, int W, int M, int pairs) {
    for (int i = 0; i < SPLIT_SHAPES; i++)
        if (sp->shape[i].H == H && sp->shape[i].W == W && sp->shape[i].M == M && sp->shape[i].pairs == pairs)
            return &sp->shape[i].bytes;
    const int i = sp->next;
    sp->next = (i + 1) % SPLIT_SHAPES;
    sp->shape[i].H = H, sp->shape[i].W = W, sp->shape[i].M = M, sp->shape[i].pairs = pairs, sp->shape[i].bytes = 0;
    return &sp->shape[i].bytes;
}

// Per-sample strides of x, out and ctx.
typedef struct {
    size_t x, out, ctx;
} sample_sizes;

static sample_sizes sizes_of(const sid_unet *u, int H, int W, int M) {
    const size_t HW = (size_t)H * W;
    return (sample_sizes){u->cfg.in_channels * HW, u->cfg.out_channels * HW, (size_t)M * u->cfg.cross_attention_dim};
}

// Copies rows [a, a + n) and [half + a, half + a + n) of src (rows of len floats) to dst, or back.
static void pair_rows(float *dst, const float *src, size_t len, int half, int a, int n, int gather) {
    const size_t k = (size_t)n * len;
    if (gather) {
        memcpy(dst, src + a * len, k * sizeof(float)), memcpy(dst + k, src + (half + a) * len, k * sizeof(float));
    } else {
        memcpy(dst + a * len, src, k * sizeof(float)), memcpy(dst + (half + a) * len, src + k, k * sizeof(float));
    }
}

// Pairs [a, a + n) of a paired pass over 2 half samples: their contexts and outputs gathered into
// buffers of the part's own arena (the tape keeps the context for backward).
static unet_tape *pair_part_forward(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                    const float *ctx, int half, int a, int n, int H, int W, int M) {
    const sample_sizes z = sizes_of(u, H, W, M);
    float *cp = ctx ? sid_ctx_out(c, 2 * (size_t)n * z.ctx) : NULL, *op = sid_ctx_out(c, 2 * (size_t)n * z.out);
    if (ctx) pair_rows(cp, ctx, z.ctx, half, a, n, 1);
    unet_tape *s = tape_forward(c, u, op, x + a * z.x, t + a, cp, 2 * n, H, W, M, 1);
    pair_rows(out, op, z.out, half, a, n, 0);
    return s;
}

static unet_tape *part_forward(const sid_ctx *c, const sid_unet *u, const sid_unet_saved *h, int i, float *out,
                               const float *x, const float *t, const float *ctx, int H, int W, int M) {
    const int a = h->first[i], n = h->first[i + 1] - a;
    if (h->pairs) return pair_part_forward(c, u, out, x, t, ctx, h->half, a, n, H, W, M);
    const sample_sizes z = sizes_of(u, H, W, M);
    return tape_forward(c, u, out + a * z.out, x + a * z.x, t + a, ctx ? ctx + a * z.ctx : NULL, n, H, W, M, 0);
}

static sid_unet_saved *unet_forward(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                    const float *ctx, int N, int H, int W, int M, int pairs) {
    sid_unet_saved *h = sid_ctx_host(c, sizeof *h);
    const int units = pairs ? N / 2 : N;  // what the parts split: samples, or pairs
    int parts = parts_for(c, N);
    if (parts > units) parts = units;
    h->parts = parts, h->pairs = pairs, h->half = N / 2;
    for (int i = 0; i <= parts; i++) h->first[i] = i * (units / parts) + (i < units % parts ? i : units % parts);
    if (parts == 1) {
        h->tape[0] = tape_forward(c, u, out, x, t, ctx, N, H, W, M, pairs);
        return h;
    }
    sid_arena *act = c->act;
    // A part of n samples needs at most n times the arena peak of a one-sample forward: every
    // allocation is either per sample or fixed, rounded up to 64 bytes, in the same order for
    // any n. That peak is measured once per shape on the first sample (the result is dropped).
    // The parts keep their host structs in their own slices (the CPU's arena is host memory, and
    // threads cannot share the meta arena), so the measuring pass does too.
    size_t *one = shape_bytes(u->split, H, W, M, pairs);
    if (!*one) {
        const size_t mark = act->used, peak = act->peak;
        const sid_ctx one_c = {c->ps, act, c->be, NULL};
        act->peak = mark;
        if (pairs)  // writes the first pair's outputs, which part 0 writes again
            pair_part_forward(&one_c, u, out, x, t, ctx, N / 2, 0, 1, H, W, M);
        else
            tape_forward(&one_c, u, sid_ctx_out(c, sizes_of(u, H, W, M).out), x, t, ctx, 1, H, W, M, 0);
        *one = act->peak - mark;
        act->used = mark;
        if (act->peak < peak) act->peak = peak;
    }
    const size_t slice = *one * (size_t)h->first[1];
    char *base = sid_arena_alloc_uninit(act, slice * parts);
    const int nth = split_threads(parts);
#pragma omp parallel for num_threads(nth) schedule(static, 1)
    for (int i = 0; i < parts; i++) {
        omp_set_num_threads(1);  // the ops inside run serially on this thread
        sid_arena part = {.base = base + slice * i, .cap = slice, .name = act->name};
        const sid_ctx pc = {c->ps, &part, c->be, NULL};
        h->tape[i] = part_forward(&pc, u, h, i, out, x, t, ctx, H, W, M);
    }
    return h;
}

sid_unet_saved *sid_unet_forward(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                 const float *ctx, int N, int H, int W, int M) {
    return unet_forward(c, u, out, x, t, ctx, N, H, W, M, 0);
}
sid_unet_saved *sid_unet_forward_pairs(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                       const float *ctx, int N, int H, int W, int M) {
    if (N % 2) sid_die("unet: a paired pass of %d samples", N);
    return unet_forward(c, u, out, x, t, ctx, N, H, W, M, 1);
}

void sid_unet_backward(const sid_ctx *c, const sid_unet *u, float *dx, float *dctx, const float *dout,
                       sid_unet_saved *h) {
    const int parts = h->parts;
    if (parts == 1) {
        tape_backward(c, u, dx, dctx, dout, h->tape[0]);
        return;
    }
    // Split (CPU only, so every buffer below is host memory): each thread's temporaries take an
    // equal share of the arena's free space (its parts run in turn, each releasing them), and
    // threads but the first add into private gradient blocks.
    sid_arena *act = c->act;
    const int nth = split_threads(parts);
    const size_t mark = act->used, slice = (act->cap - mark) / nth / 64 * 64;
    struct sid_unet_split *sp = u->split;
    const size_t P = c->ps->grad ? c->ps->total : 0;
    if (P * (nth - 1) > sp->grads_cap) {
        free(sp->grads);
        sp->grads_cap = P * (nth - 1);
        sp->grads = sid_aligned_alloc(sp->grads_cap * sizeof(float));
    }
    const unet_tape *t0 = h->tape[0];
    const sample_sizes z = sizes_of(u, t0->H, t0->W, t0->M);
    size_t peak[MAX_PARTS] = {0};
#pragma omp parallel num_threads(nth)
    {
        omp_set_num_threads(1);
        const int th = omp_get_thread_num();
        sid_params ps = *c->ps;
        if (P && th > 0) {
            ps.grad = sp->grads + P * (th - 1);
            memset(ps.grad, 0, P * sizeof(float));
        }
        for (int i = th; i < parts; i += nth) {
            sid_arena part = {.base = act->base + mark + slice * th, .cap = slice, .name = act->name};
            const sid_ctx pc = {&ps, &part, c->be, NULL};
            const int a = h->first[i], n = h->first[i + 1] - a;
            if (h->pairs) {  // the part's output gradients gathered, its context gradients added back
                float *dop = sid_ctx_out(&pc, 2 * (size_t)n * z.out);
                float *dcp = dctx ? sid_ctx_floats(&pc, 2 * (size_t)n * z.ctx) : NULL;
                pair_rows(dop, dout, z.out, h->half, a, n, 1);
                tape_backward(&pc, u, dx ? dx + a * z.x : NULL, dcp, dop, h->tape[i]);
                for (int k = 0; dcp && k < 2; k++) {
                    float *d = dctx + ((size_t)k * h->half + a) * z.ctx;
                    const float *s = dcp + (size_t)k * n * z.ctx;
                    for (size_t j = 0; j < (size_t)n * z.ctx; j++) d[j] += s[j];
                }
            } else {
                tape_backward(&pc, u, dx ? dx + a * z.x : NULL, dctx ? dctx + a * z.ctx : NULL, dout + a * z.out,
                              h->tape[i]);
            }
            if (part.peak > peak[th]) peak[th] = part.peak;
        }
    }
    if (P) {
        float *g = c->ps->grad;
        const float *priv = sp->grads;
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < P; j++) {
            float acc = 0;
            for (int i = 1; i < nth; i++) acc += priv[P * (i - 1) + j];
            g[j] += acc;
        }
    }
    size_t peaks = 0;
    for (int i = 0; i < nth; i++) peaks += peak[i];
    if (mark + peaks > act->peak) act->peak = mark + peaks;
}
