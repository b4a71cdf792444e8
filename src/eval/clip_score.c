// The CLIP score (clip_score.h): one parameter set for both towers and the two projections, loaded
// strictly from model.safetensors and moved to the backend; per batch the pixels and the token
// ids go up, the projected features come down, and the cosines are taken on the host in double.
#include "eval/clip_score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/tokenizer.h"
#include "models/clip_text.h"
#include "models/clip_vision.h"

static const float OPENAI_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float OPENAI_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};
enum { MAX_PROJECTION = 65536 };

struct sid_clip_scorer {
    const sid_backend *be;
    int batch, dim, T;
    sid_params ps;
    sid_clip text;
    sid_clip_vision vision;
    sid_linear vproj, tproj;
    sid_tokenizer *tok;
    int32_t prefix[3];
    float mean[3], std[3];
    sid_arena act;
    // batch buffers in the backend's memory
    float *pixels, *hidden, *eot, *pooled, *img, *txt;
    int32_t *ids, *rows;
    // host
    int32_t *host_ids, *host_rows;
};

// ---------------------------------------------------------------- caption cleaning
// Strict UTF-8 to code points (no overlongs, surrogates or values above U+10FFFF); -1 when invalid.
static long utf8_to_cps(const char *s, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        uint32_t c = *p, min;
        int extra;
        if (c < 0x80) extra = 0, min = 0;
        else if ((c & 0xE0) == 0xC0) extra = 1, c &= 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) extra = 2, c &= 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) extra = 3, c &= 0x07, min = 0x10000;
        else return -1;
        p++;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xC0) != 0x80) return -1;
            c = (c << 6) | (*p & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
        out[n++] = c;
    }
    return n;
}

static size_t cp_to_utf8(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Python's html.unescape of a numeric reference: 0 and out-of-range values -> U+FFFD, 0x80..0x9F
// as Windows-1252, the codepoints it drops -> 0 (nothing).
static uint32_t numeric_ref(uint64_t v) {
    static const uint16_t cp1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                        0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                        0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                        0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};
    if (v == 0) return 0xFFFD;
    if (v == 0x0D) return 0x0D;
    if (v >= 0x80 && v <= 0x9F) return cp1252[v - 0x80];
    if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) return 0xFFFD;
    if ((v >= 0x1 && v <= 0x8) || v == 0xB || (v >= 0xE && v <= 0x1F) || (v >= 0x7F && v <= 0x9F) ||
        (v >= 0xFDD0 && v <= 0xFDEF) || (v & 0xFFFE) == 0xFFFE)
        return 0;
    return (uint32_t)v;
}

static int is_hex(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

// One pass of HTML character-reference unescaping over cps[0..n) in place; returns the new length.
// need_semicolon: ftfy's pass (only "&...;" references); else html.unescape's (a numeric reference
// and the legacy names amp lt gt quot nbsp may also end without ';').
static long unescape_pass(uint32_t *cps, long n, int need_semicolon) {
    static const struct {
        const char *name;
        uint32_t cp;
        int legacy;
    } names[] = {{"amp", '&', 1}, {"AMP", '&', 1}, {"lt", '<', 1},    {"LT", '<', 1},        {"gt", '>', 1},
                 {"GT", '>', 1},  {"quot", '"', 1}, {"QUOT", '"', 1}, {"apos", '\'', 0}, {"nbsp", 0xA0, 1}};
    long w = 0;
    for (long i = 0; i < n;) {
        if (cps[i] != '&') {
            cps[w++] = cps[i++];
            continue;
        }
        long j = i + 1;
        uint32_t rep = 0;
        long end = -1;  // index past the reference
        if (j < n && cps[j] == '#') {
            int hex = j + 1 < n && (cps[j + 1] == 'x' || cps[j + 1] == 'X');
            long k = j + 1 + hex, d = k;
            uint64_t v = 0;
            while (d < n && (hex ? is_hex(cps[d]) : cps[d] >= '0' && cps[d] <= '9')) {
                const uint32_t c = cps[d];
                const int dv = c <= '9' ? (int)(c - '0') : (int)((c | 0x20) - 'a' + 10);
                if (v <= 0x7FFFFFFF) v = v * (hex ? 16 : 10) + (uint64_t)dv;
                d++;
            }
            const int semi = d < n && cps[d] == ';';
            if (d > k && (semi || !need_semicolon) && (!need_semicolon || d - k + hex <= 24)) {
                rep = numeric_ref(v);
                end = d + semi;
                if (!rep) {  // a dropped codepoint
                    i = end;
                    continue;
                }
            }
        } else {
            for (size_t t = 0; t < sizeof names / sizeof names[0] && end < 0; t++) {
                const size_t L = strlen(names[t].name);
                long k = 0;
                while (k < (long)L && j + k < n && cps[j + k] == (unsigned char)names[t].name[k]) k++;
                if (k != (long)L) continue;
                const int semi = j + k < n && cps[j + k] == ';';
                if (semi) rep = names[t].cp, end = j + k + 1;
                else if (!need_semicolon && names[t].legacy) rep = names[t].cp, end = j + k;
            }
        }
        if (end < 0) {
            cps[w++] = cps[i++];
            continue;
        }
        cps[w++] = rep;
        i = end;
    }
    return w;
}

char *sid_clip_clean_caption(const char *caption) {
    const size_t len = strlen(caption);
    uint32_t *cps = sid_malloc((len + 1) * sizeof *cps);
    long n = utf8_to_cps(caption, cps);
    if (n < 0) {
        free(cps);
        sid_set_error("clip score: caption \"%.40s\" is not valid UTF-8", caption);
        return NULL;
    }
    // ftfy.fix_text: HTML references unless the text has a '<' (repeated until nothing changes, as
    // fix_text repeats its fixes), ligatures, full-width forms, curly quotes
    int has_lt = 0;
    for (long i = 0; i < n; i++) has_lt |= cps[i] == '<';
    if (!has_lt)
        for (int round = 0; round < 16; round++) {
            const long m = unescape_pass(cps, n, 1);
            if (m == n) break;  // every replacement shortens the text
            n = m;
        }
    static const char *const ligatures[] = {"ff", "fi", "fl", "ffi", "ffl", "st", "st"};  // U+FB00..U+FB06
    long extra = 0;
    for (long i = 0; i < n; i++) extra += cps[i] >= 0xFB00 && cps[i] <= 0xFB06 ? 2 : 0;
    if (extra) {
        uint32_t *grown = sid_malloc((size_t)(n + extra + 1) * sizeof *grown);
        long w = 0;
        for (long i = 0; i < n; i++) {
            if (cps[i] >= 0xFB00 && cps[i] <= 0xFB06)
                for (const char *l = ligatures[cps[i] - 0xFB00]; *l; l++) grown[w++] = (unsigned char)*l;
            else grown[w++] = cps[i];
        }
        free(cps);
        cps = grown, n = w;
    }
    for (long i = 0; i < n; i++) {
        uint32_t c = cps[i];
        if (c >= 0xFF01 && c <= 0xFF5E) c = c - 0xFF01 + 0x21;  // full-width ASCII
        else if (c == 0x3000) c = ' ';                           // ideographic space
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        cps[i] = c;
    }
    // basic_clean: html.unescape twice
    n = unescape_pass(cps, n, 0);
    n = unescape_pass(cps, n, 0);
    char *out = sid_malloc((size_t)n * 4 + 1), *o = out;
    for (long i = 0; i < n; i++) o += cp_to_utf8(cps[i], o);
    *o = 0;
    free(cps);
    return out;
}

// ---------------------------------------------------------------- open
static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has_tokenizer_files(const char *dir) {
    char p[1200];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    if (sid_file_exists(p)) return 1;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    return sid_file_exists(p);
}

static int read_mean_std(sid_clip_scorer *s, const char *dir) {
    char path[1100];
    memcpy(s->mean, OPENAI_MEAN, sizeof s->mean);
    memcpy(s->std, OPENAI_STD, sizeof s->std);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (!sid_file_exists(path)) return 0;
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    static const char *const keys[2] = {"image_mean", "image_std"};
    float *dst[2] = {s->mean, s->std};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!a) continue;  // absent: OpenAI's, as CLIPImageProcessor's default
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) {
            sid_set_error("%s: '%s' must be an array of 3 numbers", path, keys[k]);
            rc = -1;
            break;
        }
        for (int i = 0; i < 3 && !rc; i++) {
            const cJSON *v = cJSON_GetArrayItem(a, i);
            if (!cJSON_IsNumber(v) || !(k == 0 || v->valuedouble > 0) || !isfinite(v->valuedouble)) {
                sid_set_error("%s: '%s' element %d must be a %snumber", path, keys[k], i, k ? "positive " : "");
                rc = -1;
            } else {
                dst[k][i] = (float)v->valuedouble;
            }
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int read_config(sid_clip_scorer *s, sid_clip_config *tc, sid_clip_vision_config *vc, const char *dir) {
    char path[1100], label[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = sid_json_load(path);
    if (!root) return -1;
    int rc = 0;
    static const char *const subs[2] = {"text_config", "vision_config"};
    for (int k = 0; k < 2 && !rc; k++)
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, subs[k]))) {
            sid_set_error("%s: no '%s' object (a transformers CLIPModel config has text_config and vision_config)",
                          path, subs[k]);
            rc = -1;
        }
    char *text = rc ? NULL : cJSON_PrintUnformatted(root);
    if (!rc) {
        snprintf(label, sizeof label, "%s (text_config)", path);
        rc = sid_clip_config_parse(tc, text, label);
    }
    if (!rc) {
        snprintf(label, sizeof label, "%s (vision_config)", path);
        rc = sid_clip_vision_config_parse(vc, text, label);
    }
    if (!rc) rc = sid_json_int(root, "projection_dim", &s->dim, 512, 0, path);
    if (!rc && (s->dim <= 0 || s->dim > MAX_PROJECTION)) {
        sid_set_error("%s: 'projection_dim' = %d is out of range (1 to %d)", path, s->dim, MAX_PROJECTION);
        rc = -1;
    }
    if (!rc && vc->channels != 3) {
        sid_set_error("%s (vision_config): 'num_channels' = %d, the CLIP score takes RGB images (3)", path,
                      vc->channels);
        rc = -1;
    }
    free(text);
    cJSON_Delete(root);
    return rc;
}

static int open_tokenizer(sid_clip_scorer *s, const char *dir) {
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/tokenizer", dir);
    const char *from = has_tokenizer_files(dir) ? dir : is_dir(sub) ? sub : NULL;
    if (!from) {
        sid_set_error("%s: no CLIP tokenizer (vocab.json and merges.txt, or tokenizer.json, in the folder or in "
                      "tokenizer/; tools/reference/convert_open_clip.py writes them)",
                      dir);
        return -1;
    }
    if (!(s->tok = sid_tokenizer_load(from))) return -1;
    const int V = sid_tokenizer_vocab_size(s->tok);
    if (V > s->text.cfg.vocab_size) {
        sid_set_error("%s: the tokenizer has %d tokens, the text tower's vocab_size is %d", from, V,
                      s->text.cfg.vocab_size);
        return -1;
    }
    // GigaGAN: tokenize("A photo depicts ")[:, 1:4]
    int32_t *ids = sid_malloc((size_t)s->T * sizeof *ids);
    const int n = sid_tokenizer_encode(s->tok, "A photo depicts ", ids, s->T);
    if (n < 0) {
        free(ids);
        return -1;
    }
    for (int k = 0; k < 3; k++) s->prefix[k] = 1 + k < n ? ids[1 + k] : 0;
    free(ids);
    return 0;
}

sid_clip_scorer *sid_clip_scorer_open(const char *dir, const sid_backend *be, int batch) {
    if (batch < 1) return sid_set_error("clip score: batch %d (must be at least 1)", batch), NULL;
    sid_clip_scorer *s = sid_calloc(sizeof *s);
    s->be = sid_backend_or_cpu(be);
    s->batch = batch;
    sid_clip_config tc;
    sid_clip_vision_config vc;
    char path[1100];
    if (read_config(s, &tc, &vc, dir) || read_mean_std(s, dir)) {
        free(s);
        return NULL;
    }
    s->T = tc.max_positions;
    if (s->T < 5) {  // BOS, the 3 prefix tokens, EOT
        sid_set_error("%s/config.json (text_config): 'max_position_embeddings' = %d, the protocol needs at least 5",
                      dir, s->T);
        free(s);
        return NULL;
    }
    sid_clip_decl(&s->text, &s->ps, &tc);
    sid_clip_vision_decl(&s->vision, &s->ps, &vc);
    sid_linear_decl(&s->vproj, &s->ps, vc.hidden, s->dim, 0, "visual_projection");
    sid_linear_decl(&s->tproj, &s->ps, tc.hidden, s->dim, 0, "text_projection");
    if (open_tokenizer(s, dir)) {
        sid_clip_scorer_close(s);
        return NULL;
    }
    sid_params_alloc(&s->ps, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const ignore[] = {"position_ids", "logit_scale", NULL};
    if (sid_params_load(&s->ps, path, NULL, NULL, 1, ignore)) {
        sid_clip_scorer_close(s);
        return NULL;
    }
    sid_params_to_backend(&s->ps, s->be);

    const int B = batch, T = s->T, S = vc.image_size;
    size_t act = sid_clip_vision_act_bytes(&vc, B);
    const size_t text_act = sid_clip_encode_act_bytes(&tc, B, T);
    if (text_act > act) act = text_act;
    sid_backend_arena_init(&s->act, s->be, "clip score activations", act + (1u << 16));
    const sid_backend *b = s->be;
    s->pixels = b->alloc((size_t)B * 3 * S * S * sizeof(float));
    s->hidden = b->alloc((size_t)B * T * tc.hidden * sizeof(float));
    s->eot = b->alloc((size_t)B * tc.hidden * sizeof(float));
    s->pooled = b->alloc((size_t)B * vc.hidden * sizeof(float));
    s->img = b->alloc((size_t)B * s->dim * sizeof(float));
    s->txt = b->alloc((size_t)B * s->dim * sizeof(float));
    s->ids = b->alloc((size_t)B * T * sizeof(int32_t));
    s->rows = b->alloc((size_t)B * sizeof(int32_t));
    s->host_ids = sid_malloc((size_t)B * T * sizeof(int32_t));
    s->host_rows = sid_malloc((size_t)B * sizeof(int32_t));
    return s;
}

void sid_clip_scorer_close(sid_clip_scorer *s) {
    if (!s) return;
    const sid_backend *b = s->be;
    void *dev[] = {s->pixels, s->hidden, s->eot, s->pooled, s->img, s->txt, s->ids, s->rows};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) b->free(dev[i]);
    if (s->act.base) sid_arena_free(&s->act);
    free(s->host_ids);
    free(s->host_rows);
    sid_tokenizer_free(s->tok);
    sid_clip_free(&s->text);
    sid_clip_vision_free(&s->vision);
    sid_params_free(&s->ps);
    free(s);
}

int sid_clip_scorer_image_size(const sid_clip_scorer *s) { return s->vision.cfg.image_size; }
const float *sid_clip_scorer_mean(const sid_clip_scorer *s) { return s->mean; }
const float *sid_clip_scorer_std(const sid_clip_scorer *s) { return s->std; }
int sid_clip_scorer_dim(const sid_clip_scorer *s) { return s->dim; }
int sid_clip_scorer_context(const sid_clip_scorer *s) { return s->T; }

// ---------------------------------------------------------------- tokens
int sid_clip_scorer_tokens(const sid_clip_scorer *s, const char *caption, int32_t *ids) {
    const int T = s->T;
    char *clean = sid_clip_clean_caption(caption ? caption : "");
    if (!clean) return -1;
    int32_t *raw = sid_malloc((size_t)T * sizeof *raw);
    const int n = sid_tokenizer_encode(s->tok, clean, raw, T);  // BOS .. EOT, truncated with EOT kept last
    free(clean);
    if (n < 0) {
        free(raw);
        return -1;
    }
    for (int i = n; i < T; i++) raw[i] = 0;  // OpenAI's zero padding
    ids[0] = raw[0];
    for (int k = 0; k < 3; k++) ids[1 + k] = s->prefix[k];
    for (int i = 4; i < T; i++) ids[i] = raw[i - 3];
    if (ids[T - 1] > 0) ids[T - 1] = sid_tokenizer_eos_id(s->tok);
    free(raw);
    return 0;
}

// ---------------------------------------------------------------- features
static sid_ctx ctx_of(sid_clip_scorer *s) {
    return (sid_ctx){.ps = &s->ps, .act = &s->act, .be = s->be, .meta = NULL};
}

// b <= batch images (host) -> s->img [b, dim] (device)
static void image_batch(sid_clip_scorer *s, const float *pixels, int b) {
    const sid_ctx c = ctx_of(s);
    const int S = s->vision.cfg.image_size;
    s->be->upload(s->pixels, pixels, (size_t)b * 3 * S * S * sizeof(float));
    sid_clip_vision_forward(&c, &s->vision, s->pooled, s->pixels, b);
    sid_linear_f(&c, &s->vproj, s->img, s->pooled, b);
}

// b <= batch captions -> s->txt [b, dim] (device)
static int text_batch(sid_clip_scorer *s, const char *const *captions, int b) {
    const sid_ctx c = ctx_of(s);
    const int T = s->T;
    for (int i = 0; i < b; i++) {
        int32_t *ids = s->host_ids + (size_t)i * T;
        if (sid_clip_scorer_tokens(s, captions[i], ids)) return -1;
        int best = 0;  // argmax: the first position of the largest id (EOT)
        for (int t = 1; t < T; t++)
            if (ids[t] > ids[best]) best = t;
        s->host_rows[i] = i * T + best;
    }
    s->be->upload(s->ids, s->host_ids, (size_t)b * T * sizeof(int32_t));
    s->be->upload(s->rows, s->host_rows, (size_t)b * sizeof(int32_t));
    if (sid_clip_encode(&c, &s->text, s->hidden, s->ids, b, T, s->text.cfg.layers)) return -1;
    s->be->gather_rows(s->eot, s->hidden, s->rows, b, (size_t)s->text.cfg.hidden);
    sid_linear_f(&c, &s->tproj, s->txt, s->eot, b);
    return 0;
}

int sid_clip_scorer_image_features(sid_clip_scorer *s, const float *pixels, int n, float *out) {
    const int S = s->vision.cfg.image_size;
    for (int i = 0; i < n; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        image_batch(s, pixels + (size_t)i * 3 * S * S, b);
        s->be->download(out + (size_t)i * s->dim, s->img, (size_t)b * s->dim * sizeof(float));
    }
    return 0;
}

int sid_clip_scorer_text_features(sid_clip_scorer *s, const char *const *captions, int n, float *out) {
    for (int i = 0; i < n; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        if (text_batch(s, captions + i, b)) return -1;
        s->be->download(out + (size_t)i * s->dim, s->txt, (size_t)b * s->dim * sizeof(float));
    }
    return 0;
}

int sid_clip_scorer_cosines(sid_clip_scorer *s, const float *pixels, const char *const *captions, int n, float *cos) {
    const int S = s->vision.cfg.image_size, D = s->dim;
    float *fi = sid_malloc((size_t)s->batch * D * sizeof(float)), *ft = sid_malloc((size_t)s->batch * D * sizeof(float));
    int rc = 0;
    for (int i = 0; i < n && !rc; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        if ((rc = text_batch(s, captions + i, b))) break;
        image_batch(s, pixels + (size_t)i * 3 * S * S, b);
        s->be->download(fi, s->img, (size_t)b * D * sizeof(float));
        s->be->download(ft, s->txt, (size_t)b * D * sizeof(float));
        for (int k = 0; k < b; k++) {
            const float *a = fi + (size_t)k * D, *t = ft + (size_t)k * D;
            double ab = 0, aa = 0, tt = 0;
            for (int d = 0; d < D; d++) ab += (double)a[d] * t[d], aa += (double)a[d] * a[d], tt += (double)t[d] * t[d];
            // torch.nn.functional.cosine_similarity's eps 1e-8 on the product of the norms
            cos[i + k] = (float)(ab / fmax(sqrt(aa * tt), 1e-8));
        }
    }
    free(fi);
    free(ft);
    return rc ? -1 : 0;
}
