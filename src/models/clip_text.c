#include "models/clip_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/json.h"
#include "io/safetensors.h"

#define NAME(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

// ---------------------------------------------------------------- config
sid_clip_config sid_clip_config_sd15(void) {
    return (sid_clip_config){.vocab_size = 49408, .hidden = 768, .layers = 12, .heads = 12, .intermediate = 3072,
                             .max_positions = 77, .act = SID_ACT_QUICK_GELU, .eps = 1e-5f};
}

sid_clip_config sid_clip_config_sd2(void) {
    return (sid_clip_config){.vocab_size = 49408, .hidden = 1024, .layers = 23, .heads = 16, .intermediate = 4096,
                             .max_positions = 77, .act = SID_ACT_GELU, .eps = 1e-5f};
}

// Far above any CLIP text tower (CLIP-L: 768 wide, 12 layers, 77 positions, 49408 tokens) and
// low enough that the embedding tables and every weight size stay countable in int.
enum {
    CLIP_MAX_VOCAB = 1 << 24,
    CLIP_MAX_HIDDEN = 16384,
    CLIP_MAX_INTERMEDIATE = 65536,
    CLIP_MAX_LAYERS = 256,
    CLIP_MAX_POSITIONS = 65536,
};

static int config_from_json(sid_clip_config *c, const cJSON *root, const char *path) {
    const cJSON *j = root, *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (cJSON_IsObject(tc)) j = tc;  // a full CLIPConfig: its text tower
    const char *act = NULL;
    double eps = 0;
    // Defaults are transformers' CLIPTextConfig class defaults, which is what it uses for absent keys.
    int rc = sid_json_int(j, "vocab_size", &c->vocab_size, 49408, 0, path) ||
             sid_json_int(j, "hidden_size", &c->hidden, 512, 0, path) ||
             sid_json_int(j, "intermediate_size", &c->intermediate, 2048, 0, path) ||
             sid_json_int(j, "num_hidden_layers", &c->layers, 12, 0, path) ||
             sid_json_int(j, "num_attention_heads", &c->heads, 8, 0, path) ||
             sid_json_int(j, "max_position_embeddings", &c->max_positions, 77, 0, path) ||
             sid_json_string(j, "hidden_act", &act, "quick_gelu", 0, path) ||
             sid_json_double(j, "layer_norm_eps", &eps, 1e-5, 0, path);
    if (!rc) {
        const struct {
            const char *key;
            int v;
            int max;
        } sizes[] = {{"vocab_size", c->vocab_size, CLIP_MAX_VOCAB},
                     {"hidden_size", c->hidden, CLIP_MAX_HIDDEN},
                     {"intermediate_size", c->intermediate, CLIP_MAX_INTERMEDIATE},
                     {"num_hidden_layers", c->layers, CLIP_MAX_LAYERS},
                     {"num_attention_heads", c->heads, CLIP_MAX_HIDDEN},
                     {"max_position_embeddings", c->max_positions, CLIP_MAX_POSITIONS}};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && !rc; i++)
            if (sizes[i].v <= 0 || sizes[i].v > sizes[i].max) {
                sid_set_error("%s: '%s' = %d is out of range (1 to %d)", path, sizes[i].key, sizes[i].v,
                              sizes[i].max);
                rc = -1;
            }
        // The token table: vocab_size x hidden_size values, counted in int by the layers.
        if (!rc && (int64_t)c->vocab_size * c->hidden > INT32_MAX) {
            sid_set_error("%s: 'vocab_size' %d x 'hidden_size' %d is more than 2^31 embedding values", path,
                          c->vocab_size, c->hidden);
            rc = -1;
        }
    }
    if (!rc && c->hidden % c->heads) {
        sid_set_error("%s: 'hidden_size' %d is not divisible by 'num_attention_heads' %d", path, c->hidden, c->heads);
        rc = -1;
    }
    if (!rc) {
        if (strcmp(act, "quick_gelu") == 0) c->act = SID_ACT_QUICK_GELU;
        else if (strcmp(act, "gelu") == 0) c->act = SID_ACT_GELU;
        else {
            sid_set_error("%s: 'hidden_act' \"%s\" is not supported (quick_gelu or gelu)", path, act);
            rc = -1;
        }
    }
    if (!rc && !(eps > 0)) {
        sid_set_error("%s: 'layer_norm_eps' must be positive, got %g", path, eps);
        rc = -1;
    }
    c->eps = (float)eps;
    return rc ? -1 : 0;
}

int sid_clip_config_parse(sid_clip_config *c, const char *text, const char *path) {
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

int sid_clip_config_load(sid_clip_config *c, const char *path) {
    cJSON *root = sid_json_load(path);
    if (!root) return -1;
    int rc = config_from_json(c, root, path);
    cJSON_Delete(root);
    return rc;
}

// ---------------------------------------------------------------- parameters
static const char *const clip_attn_names[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};

void sid_clip_decl(sid_clip *m, sid_params *ps, const sid_clip_config *c) {
    char p[128];
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    const int C = c->hidden;
    m->tok = sid_params_add(ps, 2, (int64_t[]){c->vocab_size, C}, "text_model.embeddings.token_embedding.weight");
    m->pos = sid_params_add(ps, 2, (int64_t[]){c->max_positions, C}, "text_model.embeddings.position_embedding.weight");
    m->layers = sid_calloc((size_t)c->layers * sizeof *m->layers);
    for (int i = 0; i < c->layers; i++) {
        snprintf(p, sizeof p, "text_model.encoder.layers.%d", i);
        sid_clip_layer_decl(&m->layers[i], ps, C, c->intermediate, c->heads, c->eps, p);
    }
    sid_norm_decl(&m->final_ln, ps, C, 1, c->eps, "text_model.final_layer_norm");
}

void sid_clip_layer_decl(sid_clip_layer *l, sid_params *ps, int hidden, int intermediate, int heads, float eps,
                         const char *prefix) {
    char buf[256];
    const int C = hidden;
    sid_attn_decl(&l->attn, ps, C, C, heads, 1, NAME(buf, "%s.self_attn", prefix), clip_attn_names);
    sid_norm_decl(&l->ln1, ps, C, 1, eps, NAME(buf, "%s.layer_norm1", prefix));
    sid_linear_decl(&l->fc1, ps, C, intermediate, 1, NAME(buf, "%s.mlp.fc1", prefix));
    sid_linear_decl(&l->fc2, ps, intermediate, C, 1, NAME(buf, "%s.mlp.fc2", prefix));
    sid_norm_decl(&l->ln2, ps, C, 1, eps, NAME(buf, "%s.layer_norm2", prefix));
}

void sid_clip_free(sid_clip *m) {
    free(m->layers);
    m->layers = NULL;
}

size_t sid_clip_param_count(const sid_clip_config *c) {
    sid_params ps = {0};
    sid_clip m;
    sid_clip_decl(&m, &ps, c);
    const size_t n = sid_params_count(&ps);
    sid_clip_free(&m);
    sid_params_free(&ps);
    return n;
}

// transformers 5 saves CLIPTextModel without the "text_model." prefix every older file has.
static int strip_text_model(const char *ours, char *buf, size_t cap) {
    const char *pre = "text_model.";
    const size_t n = strlen(pre);
    snprintf(buf, cap, "%s", strncmp(ours, pre, n) == 0 ? ours + n : ours);
    return 0;
}

int sid_clip_load(sid_params *ps, const char *path, const char *prefix) {
    static const char *const ignore[] = {"position_ids", NULL};
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    char name[256];
    snprintf(name, sizeof name, "%stext_model.embeddings.token_embedding.weight", prefix ? prefix : "");
    const int prefixed = sid_st_find(&st, name) != NULL;
    snprintf(name, sizeof name, "%stoken_embedding.weight", prefix ? prefix : "");
    const int open_clip = !prefixed && sid_st_find(&st, name) != NULL;
    sid_st_close(&st);
    if (open_clip) return sid_clip_load_open_clip(ps, path, prefix);
    return sid_params_load(ps, path, prefix, prefixed ? NULL : strip_text_model, 1, ignore);
}

// ---------------------------------------------------------------- OpenCLIP naming
// One of our names in open_clip's naming: the file's name (without the prefix) and, for the
// q/k/v projections, which third (0, 1, 2) of the fused in_proj tensor holds it (-1: all of it).
static int open_clip_name(const char *ours, char *buf, size_t cap, int *part) {
    static const char *const whole[][2] = {{"text_model.embeddings.token_embedding.weight", "token_embedding.weight"},
                                           {"text_model.embeddings.position_embedding.weight", "positional_embedding"}};
    static const char *const parts[][2] = {{"self_attn.out_proj.", "attn.out_proj."}, {"layer_norm1.", "ln_1."},
                                           {"layer_norm2.", "ln_2."},                   {"mlp.fc1.", "mlp.c_fc."},
                                           {"mlp.fc2.", "mlp.c_proj."}};
    static const char *const qkv[3] = {"self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."};
    *part = -1;
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++)
        if (strcmp(ours, whole[i][0]) == 0) return snprintf(buf, cap, "%s", whole[i][1]), 0;
    static const char *const fln = "text_model.final_layer_norm.";
    if (strncmp(ours, fln, strlen(fln)) == 0) return snprintf(buf, cap, "ln_final.%s", ours + strlen(fln)), 0;
    int layer, k = 0;
    if (sscanf(ours, "text_model.encoder.layers.%d.%n", &layer, &k) != 1 || !k) return -1;
    const char *rest = ours + k;
    for (int q = 0; q < 3; q++) {
        const size_t n = strlen(qkv[q]);
        if (strncmp(rest, qkv[q], n) == 0 && (strcmp(rest + n, "weight") == 0 || strcmp(rest + n, "bias") == 0)) {
            *part = q;
            return snprintf(buf, cap, "transformer.resblocks.%d.attn.in_proj_%s", layer, rest + n), 0;
        }
    }
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const size_t n = strlen(parts[i][0]);
        if (strncmp(rest, parts[i][0], n) == 0)
            return snprintf(buf, cap, "transformer.resblocks.%d.%s%s", layer, parts[i][1], rest + n), 0;
    }
    return -1;
}

int sid_clip_load_open_clip(sid_params *ps, const char *path, const char *prefix) {
    if (!ps->data) sid_die("sid_clip_load_open_clip before sid_params_alloc");
    const char *pre = prefix ? prefix : "";
    const size_t plen = strlen(pre);
    int layers = 0;
    char fname[512], base[448], shp[2][96];
    for (;; layers++) {
        snprintf(base, sizeof base, "text_model.encoder.layers.%d.layer_norm1.weight", layers);
        if (sid_params_find(ps, base) < 0) break;
    }
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    char *claimed = sid_calloc((size_t)st.n + 1);
    float *fused = NULL;
    size_t fused_cap = 0;
    int rc = 0;
    for (int i = 0; i < ps->n && rc == 0; i++) {
        const sid_param *p = &ps->items[i];
        int part;
        if (open_clip_name(p->name, base, sizeof base, &part)) {
            sid_set_error("%s: no OpenCLIP name for parameter '%s'", path, p->name);
            rc = -1;
            break;
        }
        snprintf(fname, sizeof fname, "%s%s", pre, base);
        const sid_st_tensor *t = sid_st_find(&st, fname);
        if (!t) {
            sid_set_error("%s: missing tensor '%s'", path, fname);
            rc = -1;
            break;
        }
        // the file's shape: ours, or [3 C, ...] for the fused projections
        int ok = t->ndim == p->ndim;
        for (int d = 0; d < p->ndim && ok; d++) ok = t->shape[d] == p->shape[d] * (d == 0 && part >= 0 ? 3 : 1);
        if (!ok) {
            int64_t want[4];
            memcpy(want, p->shape, sizeof want);
            if (part >= 0) want[0] *= 3;
            sid_set_error("%s: tensor '%s' has shape %s, the model config expects %s", path, fname,
                          sid_shape_str(t->ndim, t->shape, shp[0], sizeof shp[0]),
                          sid_shape_str(p->ndim, want, shp[1], sizeof shp[1]));
            rc = -1;
            break;
        }
        if (part < 0) {
            rc = sid_st_read_f32(&st, t, sid_p(ps, i));
        } else {  // rows [part C, (part + 1) C) of in_proj_weight / in_proj_bias
            if (3 * p->numel > fused_cap) {
                free(fused);
                fused_cap = 3 * p->numel;
                fused = sid_malloc(fused_cap * sizeof(float));
            }
            rc = sid_st_read_f32(&st, t, fused);
            if (!rc) memcpy(sid_p(ps, i), fused + (size_t)part * p->numel, p->numel * sizeof(float));
        }
        if (!rc) claimed[t - st.tensors] = 1;
    }
    // strict: every tensor under the prefix is ours, or one of open_clip's parts SD does not use
    for (int j = 0; j < st.n && rc == 0; j++) {
        const char *nm = st.tensors[j].name;
        if (claimed[j] || strncmp(nm, pre, plen) != 0) continue;
        const char *rest = nm + plen;
        static const char *const unused[] = {"text_projection", "logit_scale", "attn_mask"};
        int skip = 0, block, k = 0;
        for (size_t u = 0; u < sizeof unused / sizeof unused[0]; u++) skip |= strcmp(rest, unused[u]) == 0;
        if (skip) continue;
        if (sscanf(rest, "transformer.resblocks.%d.%n", &block, &k) == 1 && k && block >= layers) {
            if (block == layers) continue;  // the last block: SD2 conditions on the penultimate layer
            sid_set_error("%s: tensor '%s' belongs to block %d, but the text encoder config has %d layers "
                          "(only block %d, OpenCLIP's last, may be left unused)", path, nm, block, layers, layers);
        } else {
            sid_set_error("%s: unexpected tensor '%s' (not part of the configured model)", path, nm);
        }
        rc = -1;
    }
    free(fused);
    free(claimed);
    sid_st_close(&st);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- forward / backward
typedef struct {
    float *in, *n1, *t1, *n2, *f1, *g;  // input, LN1 out, after attention + residual, LN2 out, fc1 out, act out
    sid_norm_saved s1, s2;
    sid_attn_saved a;
} clip_layer_saved;

struct sid_clip_saved {
    int n_layers;
    float *h;  // final_layer_norm input
    sid_norm_saved sf;
    clip_layer_saved *layers;
};

// x [B*T, C] -> out [B*T, C]
static void layer_f(const sid_ctx *c, const sid_clip_layer *l, sid_act act, int causal, clip_layer_saved *s,
                    float *out, const float *x, int B, int T) {
    const sid_backend *be = sid_be(c);
    const int M = B * T, C = l->fc1.in, I = l->fc1.out;
    const size_t mc = (size_t)M * C, mi = (size_t)M * I;
    s->in = (float *)x;
    s->n1 = sid_ctx_floats(c, mc), s->t1 = sid_ctx_floats(c, mc), s->n2 = sid_ctx_floats(c, mc);
    s->f1 = sid_ctx_floats(c, mi), s->g = sid_ctx_floats(c, mi);
    s->s1 = sid_layernorm_f(c, &l->ln1, s->n1, x, M);
    s->a = sid_attn_f(c, &l->attn, s->t1, s->n1, NULL, B, T, T, causal);
    be->add_fwd(s->t1, s->t1, x, mc);
    s->s2 = sid_layernorm_f(c, &l->ln2, s->n2, s->t1, M);
    sid_linear_f(c, &l->fc1, s->f1, s->n2, M);
    be->act_fwd(act, s->g, s->f1, mi);
    sid_linear_f(c, &l->fc2, out, s->g, M);
    be->add_fwd(out, out, s->t1, mc);
}

// accumulates into dx (never NULL here: the embeddings below always want it)
static void layer_b(const sid_ctx *c, const sid_clip *m, const sid_clip_layer *l, const clip_layer_saved *s, float *dx,
                    const float *dout, int B, int T) {
    const sid_backend *be = sid_be(c);
    const int M = B * T, C = m->cfg.hidden, I = m->cfg.intermediate;
    const size_t mc = (size_t)M * C, mi = (size_t)M * I;
    const size_t mark = sid_arena_mark(c->act);
    float *dt1 = sid_ctx_floats(c, mc), *dn = sid_ctx_floats(c, mc);
    float *dg = sid_ctx_floats(c, mi), *df1 = sid_ctx_floats(c, mi);
    be->add_bwd(dt1, NULL, dout, mc);  // residual around the MLP
    sid_linear_b(c, &l->fc2, dg, dout, s->g, M);
    be->act_bwd(m->cfg.act, df1, dg, s->f1, mi);
    sid_linear_b(c, &l->fc1, dn, df1, s->n2, M);
    sid_layernorm_b(c, &l->ln2, dt1, dn, s->t1, s->s2, M);
    be->add_bwd(dx, NULL, dt1, mc);  // residual around the attention
    be->fill(dn, 0.0f, mc);
    sid_attn_b(c, &l->attn, dn, NULL, dt1, s->n1, NULL, s->a, B, T, T, 1);
    sid_layernorm_b(c, &l->ln1, dx, dn, s->in, s->s1, M);
    sid_arena_reset(c->act, mark);
}

// The ids live in the backend's memory: a host copy for the range check (B*T int32, one transfer).
static int check_ids(const sid_ctx *c, const sid_clip_config *cfg, const int32_t *ids, int B, int T) {
    const size_t n = (size_t)B * T;
    int32_t *h = sid_malloc(n * sizeof *h + 4);
    sid_be(c)->download(h, ids, n * sizeof *h);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (h[i] < 0 || h[i] >= cfg->vocab_size) {
            sid_set_error("clip: token id %d (sequence %d, position %d) is outside the vocabulary of %d", h[i],
                          (int)(i / T), (int)(i % T), cfg->vocab_size);
            rc = -1;
        }
    free(h);
    return rc;
}

sid_clip_saved *sid_clip_forward(const sid_ctx *c, const sid_clip *m, float *out, const int32_t *ids, int B, int T,
                                 int n_layers) {
    const sid_clip_config *cfg = &m->cfg;
    if (T < 1 || T > cfg->max_positions) sid_die("clip: %d tokens, the model has %d positions", T, cfg->max_positions);
    if (n_layers < 0 || n_layers > cfg->layers) sid_die("clip: %d layers requested of %d", n_layers, cfg->layers);
    if (check_ids(c, cfg, ids, B, T)) return NULL;
    const size_t mc = (size_t)B * T * cfg->hidden;
    // Host metadata (pointers and norm statistics' addresses), beside the activations (sid_ctx_host).
    sid_clip_saved *s = sid_ctx_host(c, sizeof *s);
    s->n_layers = n_layers;
    s->layers = sid_ctx_host(c, (size_t)(n_layers ? n_layers : 1) * sizeof *s->layers);
    float *h = sid_ctx_floats(c, mc);
    sid_be(c)->embedding_fwd(h, ids, sid_p(c->ps, m->tok), sid_p(c->ps, m->pos), B, T, cfg->hidden);
    for (int i = 0; i < n_layers; i++) {
        float *o = sid_ctx_floats(c, mc);
        layer_f(c, &m->layers[i], cfg->act, 1, &s->layers[i], o, h, B, T);
        h = o;
    }
    s->h = h;
    s->sf = sid_layernorm_f(c, &m->final_ln, out, h, B * T);
    return s;
}

void sid_clip_layer_infer(const sid_ctx *c, const sid_clip_layer *l, sid_act act, float *out, const float *x, int B,
                          int T, int causal) {
    const size_t mark = sid_arena_mark(c->act);
    clip_layer_saved s;
    layer_f(c, l, act, causal, &s, out, x, B, T);
    sid_arena_reset(c->act, mark);
}

// The bytes of one arena allocation of n floats (sid_arena_alloc rounds to 64).
static size_t arena_floats(size_t n) { return (n * sizeof(float) + 63) & ~(size_t)63; }

size_t sid_clip_layer_infer_bytes(int hidden, int intermediate, int heads, int B, int T) {
    const size_t M = (size_t)B * T, mc = M * hidden, mi = M * intermediate;
    // layer_f: n1 t1 n2 f1 g, two pairs of norm statistics, attention's q k v o and lse
    return 3 * arena_floats(mc) + 2 * arena_floats(mi) + 4 * arena_floats(M) + 4 * arena_floats(mc) +
           arena_floats((size_t)B * heads * T);
}

size_t sid_clip_encode_act_bytes(const sid_clip_config *cfg, int B, int T) {
    const size_t mc = (size_t)B * T * cfg->hidden;
    // the two hidden-state buffers, the final norm's statistics, one layer's temporaries
    return 2 * arena_floats(mc) + 2 * arena_floats((size_t)B * T) +
           sid_clip_layer_infer_bytes(cfg->hidden, cfg->intermediate, cfg->heads, B, T);
}

int sid_clip_encode(const sid_ctx *c, const sid_clip *m, float *out, const int32_t *ids, int B, int T, int n_layers) {
    const sid_clip_config *cfg = &m->cfg;
    if (T < 1 || T > cfg->max_positions) sid_die("clip: %d tokens, the model has %d positions", T, cfg->max_positions);
    if (n_layers < 0 || n_layers > cfg->layers) sid_die("clip: %d layers requested of %d", n_layers, cfg->layers);
    if (check_ids(c, cfg, ids, B, T)) return -1;
    const size_t mc = (size_t)B * T * cfg->hidden, mark = sid_arena_mark(c->act);
    float *h = sid_ctx_out(c, mc), *o = sid_ctx_out(c, mc);
    sid_be(c)->embedding_fwd(h, ids, sid_p(c->ps, m->tok), sid_p(c->ps, m->pos), B, T, cfg->hidden);
    for (int i = 0; i < n_layers; i++) {
        sid_clip_layer_infer(c, &m->layers[i], cfg->act, o, h, B, T, 1);
        float *t = h;
        h = o, o = t;
    }
    sid_layernorm_f(c, &m->final_ln, out, h, B * T);
    sid_arena_reset(c->act, mark);
    return 0;
}

void sid_clip_backward(const sid_ctx *c, const sid_clip *m, float *dembed, const float *dout, const int32_t *ids,
                       sid_clip_saved *s, int B, int T) {
    if (!dembed && !c->ps->grad) return;  // frozen and nobody wants the input gradient
    const sid_backend *be = sid_be(c);
    const size_t mc = (size_t)B * T * m->cfg.hidden;
    const size_t mark = sid_arena_mark(c->act);
    float *dh = sid_ctx_floats(c, mc);
    sid_layernorm_b(c, &m->final_ln, dh, dout, s->h, s->sf, B * T);
    for (int i = s->n_layers - 1; i >= 0; i--) {
        float *dx = sid_ctx_floats(c, mc);
        layer_b(c, m, &m->layers[i], &s->layers[i], dx, dh, B, T);
        dh = dx;
    }
    if (c->ps->grad) be->embedding_bwd(sid_g(c->ps, m->tok), sid_g(c->ps, m->pos), dh, ids, B, T, m->cfg.hidden);
    if (dembed) be->add_bwd(dembed, NULL, dh, mc);
    sid_arena_reset(c->act, mark);
}

int sid_clip_config_save(const sid_clip_config *c, int bos_id, int eos_id, int pad_id, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPTextModel"));
    cJSON_AddStringToObject(j, "model_type", "clip_text_model");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", c->hidden);
    cJSON_AddNumberToObject(j, "intermediate_size", c->intermediate);
    cJSON_AddNumberToObject(j, "num_hidden_layers", c->layers);
    cJSON_AddNumberToObject(j, "num_attention_heads", c->heads);
    cJSON_AddNumberToObject(j, "max_position_embeddings", c->max_positions);
    cJSON_AddStringToObject(j, "hidden_act", c->act == SID_ACT_QUICK_GELU ? "quick_gelu" : "gelu");
    sid_json_add_float(j, "layer_norm_eps", c->eps);
    cJSON_AddNumberToObject(j, "projection_dim", c->hidden);
    cJSON_AddNumberToObject(j, "bos_token_id", bos_id);
    cJSON_AddNumberToObject(j, "eos_token_id", eos_id);
    cJSON_AddNumberToObject(j, "pad_token_id", pad_id);
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    int rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}
