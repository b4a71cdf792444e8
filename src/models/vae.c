#include "models/vae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

#define NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

static const float VAE_EPS = 1e-6f;  // every GroupNorm of the VAE

// ---------------------------------------------------------------- config
sid_vae_config sid_vae_config_sd(void) {
    return (sid_vae_config){.in_channels = 3, .out_channels = 3, .latent_channels = 4, .layers_per_block = 2,
                            .norm_groups = 32, .n_blocks = 4, .block_out = {128, 256, 512, 512},
                            .scaling_factor = 0.18215f, .use_quant_conv = 1, .use_post_quant_conv = 1,
                            .mid_attention = 1};
}

// A list of block type names that must each equal `want`, as many as there are blocks.
static int check_block_types(const cJSON *j, const char *key, const char *want, int n_blocks, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {  // diffusers' default is one block of that type
        if (n_blocks == 1) return 0;
        sid_set_error("%s: missing required key '%s'", path, key);
        return -1;
    }
    if (!cJSON_IsArray(v)) {
        sid_set_error("%s: '%s' must be an array of block type names", path, key);
        return -1;
    }
    if (cJSON_GetArraySize(v) != n_blocks) {
        sid_set_error("%s: '%s' has %d entries, 'block_out_channels' has %d", path, key, cJSON_GetArraySize(v),
                      n_blocks);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, want) != 0) {
            sid_set_error("%s: '%s' entry %d is %s%s%s, only %s is supported", path, key, i,
                          cJSON_IsString(e) ? "\"" : "", cJSON_IsString(e) ? e->valuestring : "not a string",
                          cJSON_IsString(e) ? "\"" : "", want);
            return -1;
        }
        i++;
    }
    return 0;
}

// Sizes far above the SD VAE's (128-512 channels, 2 layers) that keep every weight and one
// sample's feature maps countable in int.
enum { VAE_MAX_IO_CHANNELS = 1024, VAE_MAX_CHANNELS = 8192, VAE_MAX_LAYERS = 64 };

static int config_from_json(sid_vae_config *c, const cJSON *j, const char *path) {
    memset(c, 0, sizeof *c);
    const char *act = NULL;
    double sf = 0, shift = 0;
    int rc = sid_json_int(j, "in_channels", &c->in_channels, 3, 0, path) ||
             sid_json_int(j, "out_channels", &c->out_channels, 3, 0, path) ||
             sid_json_int(j, "latent_channels", &c->latent_channels, 4, 0, path) ||
             sid_json_int(j, "layers_per_block", &c->layers_per_block, 1, 0, path) ||
             sid_json_int(j, "norm_num_groups", &c->norm_groups, 32, 0, path) ||
             sid_json_int_array(j, "block_out_channels", c->block_out, SID_VAE_MAX_BLOCKS, &c->n_blocks, path) ||
             sid_json_string(j, "act_fn", &act, "silu", 0, path) ||
             sid_json_double(j, "scaling_factor", &sf, 0.18215, 0, path) ||
             sid_json_double(j, "shift_factor", &shift, 0, 0, path) ||
             sid_json_bool(j, "use_quant_conv", &c->use_quant_conv, 1, 0, path) ||
             sid_json_bool(j, "use_post_quant_conv", &c->use_post_quant_conv, 1, 0, path) ||
             sid_json_bool(j, "mid_block_add_attention", &c->mid_attention, 1, 0, path);
    if (!rc && c->n_blocks < 1) {
        sid_set_error("%s: 'block_out_channels' is empty", path);
        rc = -1;
    }
    if (!rc)
        rc = check_block_types(j, "down_block_types", "DownEncoderBlock2D", c->n_blocks, path) ||
             check_block_types(j, "up_block_types", "UpDecoderBlock2D", c->n_blocks, path);
    if (!rc) {
        const struct {
            const char *key;
            int v;
            int max;
        } sizes[] = {{"in_channels", c->in_channels, VAE_MAX_IO_CHANNELS},
                     {"out_channels", c->out_channels, VAE_MAX_IO_CHANNELS},
                     {"latent_channels", c->latent_channels, VAE_MAX_IO_CHANNELS},
                     {"layers_per_block", c->layers_per_block, VAE_MAX_LAYERS},
                     {"norm_num_groups", c->norm_groups, VAE_MAX_CHANNELS}};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && !rc; i++)
            if (sizes[i].v <= 0 || sizes[i].v > sizes[i].max) {
                sid_set_error("%s: '%s' = %d is out of range (1 to %d)", path, sizes[i].key, sizes[i].v,
                              sizes[i].max);
                rc = -1;
            }
        for (int i = 0; i < c->n_blocks && !rc; i++)
            if (c->block_out[i] > VAE_MAX_CHANNELS) {
                sid_set_error("%s: 'block_out_channels' entry %d (%d) is out of range (1 to %d)", path, i,
                              c->block_out[i], VAE_MAX_CHANNELS);
                rc = -1;
            } else if (c->block_out[i] <= 0 || c->block_out[i] % c->norm_groups) {
                sid_set_error("%s: 'block_out_channels' entry %d (%d) is not a positive multiple of "
                              "'norm_num_groups' (%d)", path, i, c->block_out[i], c->norm_groups);
                rc = -1;
            }
    }
    if (!rc && strcmp(act, "silu") != 0) {
        sid_set_error("%s: 'act_fn' \"%s\" is not supported (only silu)", path, act);
        rc = -1;
    }
    if (!rc && !(sf > 0)) {
        sid_set_error("%s: 'scaling_factor' must be positive, got %g", path, sf);
        rc = -1;
    }
    if (!rc && shift != 0) {
        sid_set_error("%s: 'shift_factor' %g is not supported (Stable Diffusion 1/2 VAEs have none)", path, shift);
        rc = -1;
    }
    c->scaling_factor = (float)sf;
    return rc ? -1 : 0;
}

int sid_vae_config_parse(sid_vae_config *c, const char *text, const char *path) {
    cJSON *j = cJSON_Parse(text);
    if (!cJSON_IsObject(j)) {
        sid_set_error("%s: not a JSON object", path);
        cJSON_Delete(j);
        return -1;
    }
    int rc = config_from_json(c, j, path);
    cJSON_Delete(j);
    return rc;
}

int sid_vae_config_load(sid_vae_config *c, const char *path) {
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    int rc = config_from_json(c, j, path);
    cJSON_Delete(j);
    return rc;
}

// ---------------------------------------------------------------- parameters
static void mid_decl(sid_vae_mid *m, sid_params *ps, const sid_vae_config *c, const char *prefix) {
    static const char *const names[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    char buf[256];
    const int C = c->block_out[c->n_blocks - 1];
    m->has_attn = c->mid_attention;
    if (m->has_attn) {
        sid_norm_decl(&m->norm, ps, C, c->norm_groups, VAE_EPS, NAME(buf, "%s.attentions.0.group_norm", prefix));
        sid_attn_decl(&m->attn, ps, C, C, 1, 1, NAME(buf, "%s.attentions.0", prefix), names);
    }
    for (int i = 0; i < 2; i++)
        sid_resnet_decl(&m->res[i], ps, C, C, 0, c->norm_groups, VAE_EPS, NAME(buf, "%s.resnets.%d", prefix, i));
}

static void block_decl(sid_vae_block *b, sid_params *ps, const sid_vae_config *c, int cin, int cout, int n_resnets,
                       int sample, int up, const char *prefix) {
    char buf[256];
    b->n_resnets = n_resnets;
    b->resnets = sid_calloc((size_t)n_resnets * sizeof *b->resnets);
    for (int j = 0; j < n_resnets; j++)
        sid_resnet_decl(&b->resnets[j], ps, j ? cout : cin, cout, 0, c->norm_groups, VAE_EPS,
                        NAME(buf, "%s.resnets.%d", prefix, j));
    b->has_sample = sample;
    if (sample && up) sid_conv_decl(&b->sample, ps, cout, cout, 3, 1, 1, NAME(buf, "%s.upsamplers.0.conv", prefix));
    if (sample && !up) sid_conv_decl(&b->sample, ps, cout, cout, 3, 2, 0, NAME(buf, "%s.downsamplers.0.conv", prefix));
}

void sid_vae_decl(sid_vae *v, sid_params *ps, const sid_vae_config *c) {
    char buf[256];
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    const int n = c->n_blocks, L = c->latent_channels, top = c->block_out[n - 1], G = c->norm_groups;
    // encoder
    sid_vae_coder *e = &v->enc;
    sid_conv_decl(&e->conv_in, ps, c->in_channels, c->block_out[0], 3, 1, 1, "encoder.conv_in");
    e->blocks = sid_calloc((size_t)n * sizeof *e->blocks);
    for (int i = 0; i < n; i++)
        block_decl(&e->blocks[i], ps, c, i ? c->block_out[i - 1] : c->block_out[0], c->block_out[i],
                   c->layers_per_block, i < n - 1, 0, NAME(buf, "encoder.down_blocks.%d", i));
    mid_decl(&e->mid, ps, c, "encoder.mid_block");
    sid_norm_decl(&e->norm_out, ps, top, G, VAE_EPS, "encoder.conv_norm_out");
    sid_conv_decl(&e->conv_out, ps, top, 2 * L, 3, 1, 1, "encoder.conv_out");
    // decoder: up_blocks.i works at width block_out[n-1-i]
    sid_vae_coder *d = &v->dec;
    sid_conv_decl(&d->conv_in, ps, L, top, 3, 1, 1, "decoder.conv_in");
    mid_decl(&d->mid, ps, c, "decoder.mid_block");
    d->blocks = sid_calloc((size_t)n * sizeof *d->blocks);
    for (int i = 0, prev = top; i < n; prev = c->block_out[n - 1 - i], i++)
        block_decl(&d->blocks[i], ps, c, prev, c->block_out[n - 1 - i], c->layers_per_block + 1, i < n - 1, 1,
                   NAME(buf, "decoder.up_blocks.%d", i));
    sid_norm_decl(&d->norm_out, ps, c->block_out[0], G, VAE_EPS, "decoder.conv_norm_out");
    sid_conv_decl(&d->conv_out, ps, c->block_out[0], c->out_channels, 3, 1, 1, "decoder.conv_out");
    if (c->use_quant_conv) sid_conv_decl(&v->quant_conv, ps, 2 * L, 2 * L, 1, 1, 0, "quant_conv");
    if (c->use_post_quant_conv) sid_conv_decl(&v->post_quant_conv, ps, L, L, 1, 1, 0, "post_quant_conv");
}

void sid_vae_free(sid_vae *v) {
    for (int i = 0; i < v->cfg.n_blocks; i++) {
        if (v->enc.blocks) free(v->enc.blocks[i].resnets);
        if (v->dec.blocks) free(v->dec.blocks[i].resnets);
    }
    free(v->enc.blocks);
    free(v->dec.blocks);
    v->enc.blocks = v->dec.blocks = NULL;
}

size_t sid_vae_param_count(const sid_vae_config *c, size_t *encoder, size_t *decoder) {
    sid_params ps = {0};
    sid_vae v;
    sid_vae_decl(&v, &ps, c);
    size_t enc = 0, dec = 0;
    for (int i = 0; i < ps.n; i++) {
        const char *nm = ps.items[i].name;
        if (strncmp(nm, "encoder.", 8) == 0 || strncmp(nm, "quant_conv.", 11) == 0) enc += ps.items[i].numel;
        else dec += ps.items[i].numel;
    }
    sid_vae_free(&v);
    sid_params_free(&ps);
    if (encoder) *encoder = enc;
    if (decoder) *decoder = dec;
    return enc + dec;
}

// Old diffusers files: mid attention query/key/value/proj_attn for to_q/to_k/to_v/to_out.0.
static int old_attention_names(const char *ours, char *buf, size_t cap) {
    static const char *const from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
    static const char *const to[] = {".query.", ".key.", ".value.", ".proj_attn."};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(ours, from[i]);
        if (at && strstr(ours, ".mid_block.attentions.")) {
            snprintf(buf, cap, "%.*s%s%s", (int)(at - ours), ours, to[i], at + strlen(from[i]));
            return 0;
        }
    }
    snprintf(buf, cap, "%s", ours);
    return 0;
}

// The LDM part of a resnet's parameter name: "conv_shortcut." is "nin_shortcut.", the rest
// (norm1, conv1, norm2, conv2) is kept.
static int ldm_resnet(char *buf, size_t cap, const char *head, const char *rest) {
    static const char *const from = "conv_shortcut.", *const to = "nin_shortcut.";
    if (strncmp(rest, from, strlen(from)) == 0) snprintf(buf, cap, "%s.%s%s", head, to, rest + strlen(from));
    else snprintf(buf, cap, "%s.%s", head, rest);
    return 0;
}

// "<coder>.mid_block.<rest>" -> "<coder>.mid.<...>"
static int ldm_mid(char *buf, size_t cap, const char *coder, const char *rest) {
    static const char *const attn[][2] = {{"group_norm.", "norm."}, {"to_q.", "q."},  {"to_k.", "k."},
                                          {"to_v.", "v."},          {"to_out.0.", "proj_out."}};
    char head[64];
    int j, k = 0;
    if (sscanf(rest, "resnets.%d.%n", &j, &k) == 1 && k && (j == 0 || j == 1)) {
        snprintf(head, sizeof head, "%s.mid.block_%d", coder, j + 1);
        return ldm_resnet(buf, cap, head, rest + k);
    }
    static const char *const pre = "attentions.0.";
    if (strncmp(rest, pre, strlen(pre)) == 0) {
        rest += strlen(pre);
        for (size_t i = 0; i < sizeof attn / sizeof attn[0]; i++) {
            const size_t n = strlen(attn[i][0]);
            if (strncmp(rest, attn[i][0], n) == 0) return snprintf(buf, cap, "%s.mid.attn_1.%s%s", coder, attn[i][1], rest + n), 0;
        }
    }
    return -1;
}

int sid_vae_ldm_name(const void *cfg, const char *n, char *buf, size_t cap) {
    const sid_vae_config *c = cfg;
    static const char *const direct[][2] = {
        {"encoder.conv_in.", "encoder.conv_in."},       {"encoder.conv_out.", "encoder.conv_out."},
        {"encoder.conv_norm_out.", "encoder.norm_out."}, {"decoder.conv_in.", "decoder.conv_in."},
        {"decoder.conv_out.", "decoder.conv_out."},     {"decoder.conv_norm_out.", "decoder.norm_out."},
        {"quant_conv.", "quant_conv."},                 {"post_quant_conv.", "post_quant_conv."}};
    for (size_t d = 0; d < sizeof direct / sizeof direct[0]; d++) {
        const size_t len = strlen(direct[d][0]);
        if (strncmp(n, direct[d][0], len) == 0) return snprintf(buf, cap, "%s%s", direct[d][1], n + len), 0;
    }
    int i, j, k = 0;
    char head[64];
    if (sscanf(n, "encoder.down_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k) {
        snprintf(head, sizeof head, "encoder.down.%d.block.%d", i, j);
        return ldm_resnet(buf, cap, head, n + k);
    }
    k = 0;
    if (sscanf(n, "encoder.down_blocks.%d.downsamplers.0.conv.%n", &i, &k) == 1 && k)
        return snprintf(buf, cap, "encoder.down.%d.downsample.conv.%s", i, n + k), 0;
    k = 0;
    if (sscanf(n, "decoder.up_blocks.%d.resnets.%d.%n", &i, &j, &k) == 2 && k && i >= 0 && i < c->n_blocks) {
        snprintf(head, sizeof head, "decoder.up.%d.block.%d", c->n_blocks - 1 - i, j);
        return ldm_resnet(buf, cap, head, n + k);
    }
    k = 0;
    if (sscanf(n, "decoder.up_blocks.%d.upsamplers.0.conv.%n", &i, &k) == 1 && k && i >= 0 && i < c->n_blocks)
        return snprintf(buf, cap, "decoder.up.%d.upsample.conv.%s", c->n_blocks - 1 - i, n + k), 0;
    static const char *const mids[2] = {"encoder", "decoder"};
    for (int m = 0; m < 2; m++) {
        char pre[32];
        const int len = snprintf(pre, sizeof pre, "%s.mid_block.", mids[m]);
        if (strncmp(n, pre, (size_t)len) == 0) return ldm_mid(buf, cap, mids[m], n + len);
    }
    return -1;
}

int sid_vae_load(sid_params *ps, const char *path, const char *prefix) {
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    char name[256];
    snprintf(name, sizeof name, "%sdecoder.mid_block.attentions.0.query.weight", prefix ? prefix : "");
    const int old = sid_st_find(&st, name) != NULL;
    snprintf(name, sizeof name, "%sdecoder.mid.block_1.conv1.weight", prefix ? prefix : "");
    const int ldm = sid_st_find(&st, name) != NULL;
    sid_st_close(&st);
    if (ldm) {  // the rename table needs only the number of blocks, which the declared names tell
        sid_vae_config c = {0};
        while (c.n_blocks < SID_VAE_MAX_BLOCKS) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.0.conv1.weight", c.n_blocks);
            if (sid_params_find(ps, name) < 0) break;
            c.n_blocks++;
        }
        return sid_params_load_mapped(ps, path, prefix, sid_vae_ldm_name, &c, 1, NULL);
    }
    return sid_params_load(ps, path, prefix, old ? old_attention_names : NULL, 1, NULL);
}

// ---------------------------------------------------------------- forward
// The VAE runs forward only, one sample at a time: each step reads one of two ping-pong buffers
// and writes the other, and whatever a layer saves in the arena for a backward pass is released
// right after it. The same code also runs as a plan (no arithmetic) that measures the largest
// tensor and the largest per-step arena use, which gives the workspace bound.
typedef struct {
    const sid_ctx *c;
    int plan;
    size_t max_tensor, max_temp;  // plan: floats
    float *buf[2];
    int cur, C, h, w;  // the current tensor [C, h, w] is buf[cur]
} vae_run;

static inline size_t rup(size_t n) { return (n + 15) / 16 * 16; }  // arena floats are 64-byte aligned
static inline float *cur(vae_run *r) { return r->buf[r->cur]; }
static inline float *nxt(vae_run *r) { return r->buf[r->cur ^ 1]; }

// Plan: the step's output is [C, h, w] and it needs `temp` arena floats while running.
static void plan_step(vae_run *r, int C, int h, int w, size_t temp) {
    size_t n = (size_t)C * h * w;
    if (n > r->max_tensor) r->max_tensor = n;
    if (temp > r->max_temp) r->max_temp = temp;
}

static void finish(vae_run *r, int C, int h, int w) {
    if (!r->plan) r->cur ^= 1;
    r->C = C, r->h = h, r->w = w;
}

static void step_conv(vae_run *r, const sid_conv *l) {
    const int h = r->h, w = r->w;
    sid_conv2d_shape s = {1, l->cin, h, w, l->cout, l->k, l->stride, l->pad};
    const int ho = sid_conv2d_hout(&s), wo = sid_conv2d_wout(&s);
    if (r->plan) plan_step(r, l->cout, ho, wo, 0);
    else sid_conv_f(r->c, l, nxt(r), cur(r), 1, h, w);
    finish(r, l->cout, ho, wo);
}

static void step_resnet(vae_run *r, const sid_resnet *l) {
    const size_t hw = (size_t)r->h * r->w, big = (size_t)(l->cin > l->cout ? l->cin : l->cout) * hw;
    if (r->plan) {  // what sid_resnet_f takes: n1, c1, n2, two sets of GN stats, a scratch, the shortcut
        plan_step(r, l->cout, r->h, r->w,
                  rup(l->cin * hw) + 3 * rup(l->cout * hw) + rup(big) + 4 * rup(l->norm1.groups) + 64);
    } else {
        const size_t mark = sid_arena_mark(r->c->act);
        sid_resnet_f(r->c, l, nxt(r), cur(r), NULL, 1, r->h, r->w);
        sid_arena_reset(r->c->act, mark);
    }
    finish(r, l->cout, r->h, r->w);
}

// x + to_out(attention(to_q/k/v(group_norm(x) as tokens))), one head over the h*w tokens
static void step_attn(vae_run *r, const sid_vae_mid *m) {
    const int C = r->C, L = r->h * r->w;
    const size_t n = (size_t)C * L;
    if (r->plan) {  // GN out, tokens, attention out + q, k, v, o, lse, GN stats
        plan_step(r, C, r->h, r->w, 7 * rup(n) + rup(L) + 2 * rup(m->norm.groups) + 64);
    } else {
        const size_t mark = sid_arena_mark(r->c->act);
        float *gn = sid_ctx_floats(r->c, n), *tok = sid_ctx_floats(r->c, n), *a = sid_ctx_floats(r->c, n);
        const sid_backend *be = sid_be(r->c);
        sid_groupnorm_f(r->c, &m->norm, gn, cur(r), 1, L);
        be->transpose_fwd(tok, gn, 1, C, L);
        sid_attn_f(r->c, &m->attn, a, tok, NULL, 1, L, L, 0);
        be->transpose_fwd(nxt(r), a, 1, L, C);
        be->add_fwd(nxt(r), nxt(r), cur(r), n);
        sid_arena_reset(r->c->act, mark);
    }
    finish(r, C, r->h, r->w);
}

static void step_mid(vae_run *r, const sid_vae_mid *m) {
    step_resnet(r, &m->res[0]);
    if (m->has_attn) step_attn(r, m);
    step_resnet(r, &m->res[1]);
}

static void step_upsample(vae_run *r) {
    if (r->plan) plan_step(r, r->C, 2 * r->h, 2 * r->w, 0);
    else sid_be(r->c)->upsample2x_fwd(nxt(r), cur(r), r->C, r->h, r->w);
    finish(r, r->C, 2 * r->h, 2 * r->w);
}

// diffusers Downsample2D with padding 0: zero-pad one row at the bottom and one column at the right,
// then the 3x3 stride-2 conv without padding. The padding is two channel concats with zeros (exact
// copies on the backend): [C h, w] rows + one zero column -> [C h, w + 1]; then per channel
// [C, h (w + 1)] + one zero row of w + 1 -> [C, (h + 1)(w + 1)].
static void step_downsample(vae_run *r, const sid_conv *l) {
    const int C = r->C, h = r->h, w = r->w, hp = h + 1, wp = w + 1;
    if (h < 2 || w < 2) sid_die("vae: cannot downsample a %dx%d feature map", h, w);
    const size_t np = (size_t)C * hp * wp, nr = (size_t)C * h * wp;
    const size_t nzero = (size_t)C * (h > wp ? h : wp);
    const int ho = (hp - 3) / 2 + 1, wo = (wp - 3) / 2 + 1;
    if (r->plan) {
        plan_step(r, C, ho, wo, rup(np) + rup(nr) + rup(nzero));
    } else {
        const sid_backend *be = sid_be(r->c);
        const size_t mark = sid_arena_mark(r->c->act);
        float *p = sid_ctx_out(r->c, np), *rows = sid_ctx_out(r->c, nr);
        const float *zero = sid_ctx_floats(r->c, nzero);  // zero-filled
        be->concat_fwd(rows, cur(r), zero, C * h, w, 1, 1);
        be->concat_fwd(p, rows, zero, C, h * wp, wp, 1);
        sid_conv_f(r->c, l, nxt(r), p, 1, hp, wp);
        sid_arena_reset(r->c->act, mark);
    }
    finish(r, C, ho, wo);
}

// GroupNorm, SiLU, conv_out, into dst or, when dst is NULL, the other ping-pong buffer
static void step_out(vae_run *r, const sid_vae_coder *k, float *dst) {
    const size_t n = (size_t)r->C * r->h * r->w;
    if (r->plan) {
        plan_step(r, k->conv_out.cout, r->h, r->w, rup(n) + 2 * rup(k->norm_out.groups) + 16);
    } else {
        const size_t mark = sid_arena_mark(r->c->act);
        float *g = sid_ctx_floats(r->c, n);
        sid_groupnorm_f(r->c, &k->norm_out, g, cur(r), 1, r->h * r->w);
        sid_be(r->c)->act_fwd(SID_ACT_SILU, g, g, n);
        sid_conv_f(r->c, &k->conv_out, dst ? dst : nxt(r), g, 1, r->h, r->w);
        sid_arena_reset(r->c->act, mark);
    }
    if (dst) r->C = k->conv_out.cout;  // the result left the ping-pong buffers
    else finish(r, k->conv_out.cout, r->h, r->w);
}

// One sample of latents [L, h, w] -> image [out_channels, H, W] (dst NULL in a plan).
static void decode_one(vae_run *r, const sid_vae *v, float *dst, const float *z, int h, int w) {
    const sid_vae_config *cf = &v->cfg;
    const size_t nz = (size_t)cf->latent_channels * h * w;
    r->C = cf->latent_channels, r->h = h, r->w = w;
    if (r->plan) plan_step(r, r->C, h, w, 0);
    else sid_be(r->c)->scale_fwd(cur(r), z, 1.0f / cf->scaling_factor, nz);
    if (cf->use_post_quant_conv) step_conv(r, &v->post_quant_conv);
    step_conv(r, &v->dec.conv_in);
    step_mid(r, &v->dec.mid);
    for (int i = 0; i < cf->n_blocks; i++) {
        const sid_vae_block *b = &v->dec.blocks[i];
        for (int j = 0; j < b->n_resnets; j++) step_resnet(r, &b->resnets[j]);
        if (b->has_sample) {
            step_upsample(r);
            step_conv(r, &b->sample);
        }
    }
    step_out(r, &v->dec, dst);
}

// One sample of pixels [in, H, W] -> the encoder's moments [2L, h, w] in dst.
static void encode_one(vae_run *r, const sid_vae *v, float *dst, const float *x, int H, int W) {
    const sid_vae_config *cf = &v->cfg;
    r->C = cf->in_channels, r->h = H, r->w = W;
    if (r->plan) plan_step(r, r->C, H, W, 0);
    else sid_be(r->c)->scale_fwd(cur(r), x, 1.0f, (size_t)r->C * H * W);  // an exact copy
    step_conv(r, &v->enc.conv_in);
    for (int i = 0; i < cf->n_blocks; i++) {
        const sid_vae_block *b = &v->enc.blocks[i];
        for (int j = 0; j < b->n_resnets; j++) step_resnet(r, &b->resnets[j]);
        if (b->has_sample) step_downsample(r, &b->sample);
    }
    step_mid(r, &v->enc.mid);
    if (cf->use_quant_conv) {
        step_out(r, &v->enc, NULL);
        if (!r->plan) sid_conv_f(r->c, &v->quant_conv, dst, cur(r), 1, r->h, r->w);
    } else {
        step_out(r, &v->enc, dst);
    }
}

// A plan over a declared-but-unallocated model of the config.
static size_t workspace(const sid_vae_config *c, int encode, int a, int b) {
    sid_params ps = {0};
    sid_vae v;
    sid_vae_decl(&v, &ps, c);
    vae_run r = {.plan = 1};
    size_t extra = 0;
    if (encode) {
        encode_one(&r, &v, NULL, NULL, a, b);
        int h, w;
        sid_vae_latent_size(c, a, b, &h, &w);
        extra = rup((size_t)2 * c->latent_channels * h * w);  // the moments
    } else {
        decode_one(&r, &v, NULL, NULL, a, b);
    }
    sid_vae_free(&v);
    sid_params_free(&ps);
    return (2 * rup(r.max_tensor) + r.max_temp + extra) * sizeof(float) + 4096;
}

size_t sid_vae_decode_workspace(const sid_vae_config *c, int h, int w) { return workspace(c, 0, h, w); }
size_t sid_vae_encode_workspace(const sid_vae_config *c, int H, int W) { return workspace(c, 1, H, W); }

void sid_vae_latent_size(const sid_vae_config *c, int H, int W, int *h, int *w) {
    for (int i = 0; i < c->n_blocks - 1; i++) H = (H + 1 - 3) / 2 + 1, W = (W + 1 - 3) / 2 + 1;
    *h = H, *w = W;
}

void sid_vae_image_size(const sid_vae_config *c, int h, int w, int *H, int *W) {
    *H = h << (c->n_blocks - 1), *W = w << (c->n_blocks - 1);
}

static void run_begin(vae_run *r, const sid_ctx *c, size_t max_tensor) {
    *r = (vae_run){.c = c};
    r->buf[0] = sid_ctx_floats(c, max_tensor);
    r->buf[1] = sid_ctx_floats(c, max_tensor);
}

void sid_vae_decode(const sid_ctx *c, const sid_vae *v, float *image_out, const float *latents, int B, int h, int w) {
    const sid_vae_config *cf = &v->cfg;
    vae_run plan = {.plan = 1};
    decode_one(&plan, v, NULL, NULL, h, w);
    const size_t mark = sid_arena_mark(c->act);
    vae_run r;
    run_begin(&r, c, plan.max_tensor);
    int H, W;
    sid_vae_image_size(cf, h, w, &H, &W);
    for (int b = 0; b < B; b++)
        decode_one(&r, v, image_out + (size_t)b * cf->out_channels * H * W,
                   latents + (size_t)b * cf->latent_channels * h * w, h, w);
    sid_arena_reset(c->act, mark);
}

void sid_vae_encode(const sid_ctx *c, const sid_vae *v, float *mean, float *logvar, const float *pixels, int B, int H,
                    int W) {
    const sid_vae_config *cf = &v->cfg;
    const int L = cf->latent_channels;
    int h, w;
    sid_vae_latent_size(cf, H, W, &h, &w);
    vae_run plan = {.plan = 1};
    encode_one(&plan, v, NULL, NULL, H, W);
    const size_t mark = sid_arena_mark(c->act);
    vae_run r;
    run_begin(&r, c, plan.max_tensor);
    const size_t nl = (size_t)L * h * w;
    const sid_backend *be = sid_be(c);
    float *moments = sid_ctx_floats(c, 2 * nl);
    for (int b = 0; b < B; b++) {
        encode_one(&r, v, moments, pixels + (size_t)b * cf->in_channels * H * W, H, W);
        be->scale_fwd(mean + b * nl, moments, 1.0f, nl);  // exact copies
        be->scale_fwd(logvar + b * nl, moments + nl, 1.0f, nl);
    }
    sid_arena_reset(c->act, mark);
    be->clamp_fwd(logvar, logvar, -30.0f, 20.0f, (size_t)B * nl);  // diffusers' DiagonalGaussianDistribution
}
