#include "models/clip_vision.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

// ---------------------------------------------------------------- config
// Far above any CLIP image tower (ViT-g: 1408 wide, 40 layers, 6144 MLP; ViT-bigG 1664, 48, 8192)
// and low enough that every weight and activation count fits the int sizes of the ops.
enum {
    VIS_MAX_HIDDEN = 16384,
    VIS_MAX_INTERMEDIATE = 65536,
    VIS_MAX_LAYERS = 256,
    VIS_MAX_IMAGE = 4096,
    VIS_MAX_CHANNELS = 64,
    VIS_MAX_TOKENS = 65536,
};

static int config_from_json(sid_clip_vision_config *c, const cJSON *root, const char *path) {
    const cJSON *j = root, *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (cJSON_IsObject(vc)) j = vc;  // a full CLIPConfig: its image tower
    const char *act = NULL;
    double eps = 0;
    // Defaults are transformers' CLIPVisionConfig class defaults (what it uses for absent keys).
    if (sid_json_int(j, "hidden_size", &c->hidden, 768, 0, path) ||
        sid_json_int(j, "intermediate_size", &c->intermediate, 3072, 0, path) ||
        sid_json_int(j, "num_hidden_layers", &c->layers, 12, 0, path) ||
        sid_json_int(j, "num_attention_heads", &c->heads, 12, 0, path) ||
        sid_json_int(j, "image_size", &c->image_size, 224, 0, path) ||
        sid_json_int(j, "patch_size", &c->patch_size, 32, 0, path) ||
        sid_json_int(j, "num_channels", &c->channels, 3, 0, path) ||
        sid_json_string(j, "hidden_act", &act, "quick_gelu", 0, path) ||
        sid_json_double(j, "layer_norm_eps", &eps, 1e-5, 0, path))
        return -1;
    const struct {
        const char *key;
        int v, max;
    } sizes[] = {{"hidden_size", c->hidden, VIS_MAX_HIDDEN},
                 {"intermediate_size", c->intermediate, VIS_MAX_INTERMEDIATE},
                 {"num_hidden_layers", c->layers, VIS_MAX_LAYERS},
                 {"num_attention_heads", c->heads, VIS_MAX_HIDDEN},
                 {"image_size", c->image_size, VIS_MAX_IMAGE},
                 {"patch_size", c->patch_size, VIS_MAX_IMAGE},
                 {"num_channels", c->channels, VIS_MAX_CHANNELS}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].v <= 0 || sizes[i].v > sizes[i].max)
            return sid_set_error("%s: '%s' = %d is out of range (1 to %d)", path, sizes[i].key, sizes[i].v,
                                 sizes[i].max),
                   -1;
    if (c->hidden % c->heads)
        return sid_set_error("%s: 'hidden_size' %d is not divisible by 'num_attention_heads' %d", path, c->hidden,
                             c->heads),
               -1;
    if (c->patch_size > c->image_size)
        return sid_set_error("%s: 'patch_size' %d is larger than 'image_size' %d", path, c->patch_size,
                             c->image_size),
               -1;
    if ((int64_t)sid_clip_vision_grid(c) * sid_clip_vision_grid(c) + 1 > VIS_MAX_TOKENS)
        return sid_set_error("%s: 'image_size' %d / 'patch_size' %d gives more than %d tokens", path, c->image_size,
                             c->patch_size, VIS_MAX_TOKENS),
               -1;
    if (strcmp(act, "quick_gelu") == 0) c->act = SID_ACT_QUICK_GELU;
    else if (strcmp(act, "gelu") == 0) c->act = SID_ACT_GELU;
    else return sid_set_error("%s: 'hidden_act' \"%s\" is not supported (quick_gelu or gelu)", path, act), -1;
    if (!(eps > 0)) return sid_set_error("%s: 'layer_norm_eps' must be positive, got %g", path, eps), -1;
    c->eps = (float)eps;
    return 0;
}

int sid_clip_vision_config_parse(sid_clip_vision_config *c, const char *text, const char *path) {
    cJSON *root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        sid_set_error("%s: not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    int rc = config_from_json(c, root, path);
    cJSON_Delete(root);
    return rc;
}

int sid_clip_vision_config_load(sid_clip_vision_config *c, const char *path) {
    cJSON *root = sid_json_load(path);
    if (!root) return -1;
    int rc = config_from_json(c, root, path);
    cJSON_Delete(root);
    return rc;
}

// ---------------------------------------------------------------- parameters
void sid_clip_vision_decl(sid_clip_vision *m, sid_params *ps, const sid_clip_vision_config *c) {
    char p[128];
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    const int C = c->hidden, P = c->patch_size;
    m->patch = sid_params_add(ps, 4, (int64_t[]){C, c->channels, P, P}, "vision_model.embeddings.patch_embedding.weight");
    m->cls = sid_params_add(ps, 1, (int64_t[]){C}, "vision_model.embeddings.class_embedding");
    m->pos = sid_params_add(ps, 2, (int64_t[]){sid_clip_vision_tokens(c), C},
                            "vision_model.embeddings.position_embedding.weight");
    sid_norm_decl(&m->pre_ln, ps, C, 1, c->eps, "vision_model.pre_layrnorm");
    m->layers = sid_calloc((size_t)c->layers * sizeof *m->layers);
    for (int i = 0; i < c->layers; i++) {
        snprintf(p, sizeof p, "vision_model.encoder.layers.%d", i);
        sid_clip_layer_decl(&m->layers[i], ps, C, c->intermediate, c->heads, c->eps, p);
    }
    sid_norm_decl(&m->post_ln, ps, C, 1, c->eps, "vision_model.post_layernorm");
}

void sid_clip_vision_free(sid_clip_vision *m) {
    free(m->layers);
    m->layers = NULL;
}

size_t sid_clip_vision_param_count(const sid_clip_vision_config *c) {
    sid_params ps = {0};
    sid_clip_vision m;
    sid_clip_vision_decl(&m, &ps, c);
    const size_t n = sid_params_count(&ps);
    sid_clip_vision_free(&m);
    sid_params_free(&ps);
    return n;
}

// Our names without "vision_model.": the file's names under the prefix (or the whole file's names).
static int strip_vision_model(const char *ours, char *buf, size_t cap) {
    const char *pre = "vision_model.";
    const size_t n = strlen(pre);
    snprintf(buf, cap, "%s", strncmp(ours, pre, n) == 0 ? ours + n : ours);
    return 0;
}

int sid_clip_vision_load(sid_params *ps, const char *path) {
    static const char *const ignore[] = {"position_ids", NULL};
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    const int prefixed = sid_st_find(&st, "vision_model.embeddings.class_embedding") != NULL;
    sid_st_close(&st);
    return sid_params_load(ps, path, prefixed ? "vision_model." : NULL, strip_vision_model, 1, ignore);
}

// ---------------------------------------------------------------- forward
static size_t arena_bytes(size_t bytes) { return (bytes + 63) & ~(size_t)63; }
static size_t arena_floats(size_t n) { return arena_bytes(n * sizeof(float)); }

size_t sid_clip_vision_act_bytes(const sid_clip_vision_config *c, int N) {
    const size_t G = (size_t)sid_clip_vision_grid(c) * sid_clip_vision_grid(c), T = G + 1, C = (size_t)c->hidden;
    const size_t ntc = (size_t)N * T * C;
    // held throughout: the two hidden-state buffers
    const size_t held = 2 * arena_floats(ntc);
    // the embedding stage: patch map, token table, ids, summed embeddings, pre-LN statistics
    const size_t embed = arena_floats((size_t)N * C * G) + arena_floats((1 + (size_t)N * G) * C) +
                         arena_bytes((size_t)N * T * sizeof(int32_t)) + arena_floats(ntc) + 2 * arena_floats((size_t)N * T);
    const size_t layer = sid_clip_layer_infer_bytes(c->hidden, c->intermediate, c->heads, N, (int)T);
    // the pooling: class-token indices, the gathered rows, post-LN statistics
    const size_t pool = arena_bytes((size_t)N * sizeof(int32_t)) + arena_floats((size_t)N * C) + 2 * arena_floats((size_t)N);
    size_t peak = embed > layer ? embed : layer;
    return held + (peak > pool ? peak : pool);
}

void sid_clip_vision_forward(const sid_ctx *c, const sid_clip_vision *m, float *pooled, const float *pixels, int N) {
    if (N <= 0) return;
    const sid_clip_vision_config *cfg = &m->cfg;
    const sid_backend *be = sid_be(c);
    const int C = cfg->hidden, P = cfg->patch_size, S = cfg->image_size, g = sid_clip_vision_grid(cfg);
    const int G = g * g, T = G + 1;
    const size_t ntc = (size_t)N * T * C;
    const size_t mark = sid_arena_mark(c->act);
    float *h = sid_ctx_out(c, ntc), *o = sid_ctx_out(c, ntc);
    const size_t stage = sid_arena_mark(c->act);
    int32_t *host = sid_malloc((size_t)N * T * sizeof(int32_t));

    // patch embedding: the bias-free conv, then [N, C, G] -> [N, G, C] rows of a token table
    // whose row 0 is the class embedding (copied as x * 1, exact)
    const sid_conv2d_shape cs = {N, cfg->channels, S, S, C, P, P, 0};
    float *map = sid_ctx_out(c, (size_t)N * C * G), *table = sid_ctx_out(c, (1 + (size_t)N * G) * C);
    be->conv2d_fwd(map, pixels, sid_p(c->ps, m->patch), NULL, &cs);
    be->scale_fwd(table, sid_p(c->ps, m->cls), 1.0f, (size_t)C);
    be->transpose_fwd(table + C, map, N, C, G);
    // tokens (n, 0) -> the class row, (n, 1 + p) -> patch p of image n; + the position embedding
    int32_t *ids = sid_arena_alloc_uninit(c->act, (size_t)N * T * sizeof(int32_t));
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) host[(size_t)n * T + t] = t == 0 ? 0 : 1 + n * G + (t - 1);
    be->upload(ids, host, (size_t)N * T * sizeof(int32_t));
    float *x = sid_ctx_out(c, ntc);
    be->embedding_fwd(x, ids, table, sid_p(c->ps, m->pos), N, T, C);
    sid_layernorm_f(c, &m->pre_ln, h, x, N * T);
    sid_arena_reset(c->act, stage);

    for (int i = 0; i < cfg->layers; i++) {
        sid_clip_layer_infer(c, &m->layers[i], cfg->act, o, h, N, T, 0);
        float *t = h;
        h = o, o = t;
    }

    // the class token of each image, then post_layernorm
    int32_t *rows = sid_arena_alloc_uninit(c->act, (size_t)N * sizeof(int32_t));
    for (int n = 0; n < N; n++) host[n] = n * T;
    be->upload(rows, host, (size_t)N * sizeof(int32_t));
    float *cls = sid_ctx_out(c, (size_t)N * C);
    be->gather_rows(cls, h, rows, N, (size_t)C);
    sid_layernorm_f(c, &m->post_ln, pooled, cls, N);
    free(host);
    sid_arena_reset(c->act, mark);
}
