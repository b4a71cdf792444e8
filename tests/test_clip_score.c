// The CLIP score against tests/data/clip_score (tools/reference/clip_score_reference.py): two tiny
// open_clip CLIPs (exact gelu, QuickGELU) converted by tools/reference/convert_open_clip.py, whose
// hashed weights the test writes again bit for bit. The declared parameters are the converter's
// tensors; the protocol's token sequences (prefix insertion, truncation, EOT forcing, zero padding,
// caption cleaning) equal GigaGAN's exactly; image features, text features and cosines equal
// open_clip's on the CPU, the guard device and CUDA when usable; the text encoder's forward-only
// path equals its training forward; a wrong weight or activation moves the features well beyond the
// tolerance; and every broken folder gives NULL with one line naming the file and the problem.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "eval/clip_score.h"
#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/clip_vision.h"
#include "ops/backend.h"
#include "ops/guard/guard.h"

static const char *const MODELS[2] = {"gelu", "quickgelu"};

static void fill_hashed(sid_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        const uint64_t seed = test_fnv1a64(p->name);
        float *x = sid_p(ps, i);
        double fan_in = 1;
        for (int d = 1; d < p->ndim; d++) fan_in *= (double)p->shape[d];
        const int norm = strstr(p->name, "norm") && test_ends_with(p->name, ".weight");
        const int emb = test_ends_with(p->name, "class_embedding") ||
                        (test_ends_with(p->name, "_embedding.weight") && !strstr(p->name, "patch"));
        for (size_t j = 0; j < p->numel; j++) {
            const double u = test_hashed_unit(seed, j);
            double v;
            if (norm) v = 0.8 + 0.4 * u;
            else if (test_ends_with(p->name, ".bias")) v = 0.2 * u - 0.1;
            else if (emb) v = (2.0 * u - 1.0) / 2.0;
            else v = (2.0 * u - 1.0) * sqrt(3.0 / fan_in);
            x[j] = (float)v;
        }
    }
}
static float *hashed_pixels(int N, int S) {
    const size_t n = (size_t)N * 3 * S * S;
    float *x = sid_malloc(n * sizeof(float));
    const uint64_t seed = test_fnv1a64("pixels");
    for (size_t j = 0; j < n; j++) x[j] = (float)(4.0 * test_hashed_unit(seed, j) - 2.0);
    return x;
}

// ---------------------------------------------------------------- fixture
static char tmp_root[256];
static void cleanup(void) {
    if (tmp_root[0]) test_remove_tree(tmp_root);
}
// $SID_CLIP_FIXTURE_DIR keeps the folders the cases write there (tests/cli.sh scores with one).
static const char *tmp(void) {
    static char kept[256];
    const char *keep = getenv("SID_CLIP_FIXTURE_DIR");
    if (keep && *keep) {
        snprintf(kept, sizeof kept, "%s", keep);
        if (mkdir(kept, 0700) != 0 && !sid_file_exists(kept)) sid_die("mkdir %s failed", kept);
        return kept;
    }
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/sid_test_clip_score_XXXXXX");
        if (!mkdtemp(tmp_root)) sid_die("mkdtemp failed");
        atexit(cleanup);
    }
    return tmp_root;
}

static void data_path(char *buf, size_t cap, const char *model, const char *name) {
    snprintf(buf, cap, "%s/clip_score/%s/%s", test_data_dir(), model, name);
}

// The model's parameter set as the scorer declares it, from its config.json, filled from the hash.
typedef struct {
    sid_params ps;
    sid_clip text;
    sid_clip_vision vision;
    sid_linear vproj, tproj;
    int dim;
} model_params;

static void declare(model_params *m, const char *config_path) {
    memset(m, 0, sizeof *m);
    char *text;
    size_t n;
    if (sid_read_file(config_path, &text, &n)) sid_die("%s", sid_error());
    sid_clip_config tc;
    sid_clip_vision_config vc;
    if (sid_clip_config_parse(&tc, text, config_path) || sid_clip_vision_config_parse(&vc, text, config_path))
        sid_die("%s", sid_error());
    cJSON *j = cJSON_Parse(text);
    m->dim = cJSON_GetObjectItemCaseSensitive(j, "projection_dim")->valueint;
    cJSON_Delete(j);
    free(text);
    sid_clip_decl(&m->text, &m->ps, &tc);
    sid_clip_vision_decl(&m->vision, &m->ps, &vc);
    sid_linear_decl(&m->vproj, &m->ps, vc.hidden, m->dim, 0, "visual_projection");
    sid_linear_decl(&m->tproj, &m->ps, tc.hidden, m->dim, 0, "text_projection");
    sid_params_alloc(&m->ps, 0);
    fill_hashed(&m->ps);
}
static void model_params_free(model_params *m) {
    sid_clip_free(&m->text);
    sid_clip_vision_free(&m->vision);
    sid_params_free(&m->ps);
}

// Writes ps as model.safetensors the way the converter does (plus logit_scale), leaving out the
// tensor `drop` (or none), and with the extra entries given.
static void write_weights(const sid_params *ps, const char *path, const char *drop, const sid_st_entry *extra,
                          int n_extra) {
    sid_st_entry *e = sid_malloc(sizeof *e * (size_t)(ps->n + 1 + n_extra));
    int n = 0;
    for (int i = 0; i < ps->n; i++) {
        if (drop && !strcmp(ps->items[i].name, drop)) continue;
        e[n] = (sid_st_entry){ps->items[i].name, SID_F32, ps->items[i].ndim, {0}, sid_p(ps, i)};
        memcpy(e[n].shape, ps->items[i].shape, sizeof ps->items[i].shape);
        n++;
    }
    static const float logit_scale = 2.6592f;
    e[n++] = (sid_st_entry){"logit_scale", SID_F32, 0, {0}, &logit_scale};
    for (int i = 0; i < n_extra; i++) e[n++] = extra[i];
    const char *meta[2] = {"format", "pt"};
    if (sid_st_write(path, e, n, meta, 1)) sid_die("%s", sid_error());
    free(e);
}

// tmp/<name>/: the model's config files, the CLIP vocabulary and the hashed weights.
static const char *make_folder(const char *model, const char *name) {
    static char dir[512];
    char src[1024], dst[1024];
    snprintf(dir, sizeof dir, "%s/%s", tmp(), name);
    test_remove_tree(dir);
    if (mkdir(dir, 0700) != 0) sid_die("mkdir %s failed", dir);
    // laion's tokenizer config (pad "!") beside the vocabulary: the captions' "!" must stay words
    static const char *const files[] = {"config.json", "preprocessor_config.json", "tokenizer_config.json",
                                        "special_tokens_map.json"};
    for (int k = 0; k < 4; k++) {
        data_path(src, sizeof src, model, files[k]);
        snprintf(dst, sizeof dst, "%s/%s", dir, files[k]);
        test_copy_file(src, dst);
    }
    static const char *const vocab[] = {"vocab.json", "merges.txt"};
    for (int k = 0; k < 2; k++) {
        snprintf(src, sizeof src, "%s/tokenizer/%s.gz", test_data_dir(), vocab[k]);
        snprintf(dst, sizeof dst, "%s/%s", dir, vocab[k]);
        test_gunzip(src, dst);
    }
    model_params m;
    snprintf(src, sizeof src, "%s/config.json", dir);
    declare(&m, src);
    snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
    write_weights(&m.ps, dst, NULL, NULL, 0);
    model_params_free(&m);
    return dir;
}

// ---------------------------------------------------------------- golden data
typedef struct {
    sid_safetensors st;
    cJSON *captions;
    int nc, ni, S, dim;
    const char **caps;
} golden;

static int golden_open(golden *g, const char *model) {
    char path[1024];
    memset(g, 0, sizeof *g);
    data_path(path, sizeof path, model, "golden.safetensors");
    if (sid_st_open(&g->st, path)) {
        test_fail(__FILE__, __LINE__, "%s (regenerate with tools/reference/clip_score_reference.py)", sid_error());
        return -1;
    }
    const cJSON *c = g->st.metadata ? cJSON_GetObjectItemCaseSensitive(g->st.metadata, "captions") : NULL;
    const cJSON *ni = g->st.metadata ? cJSON_GetObjectItemCaseSensitive(g->st.metadata, "n_images") : NULL;
    g->captions = cJSON_IsString(c) ? cJSON_Parse(c->valuestring) : NULL;
    const sid_st_tensor *img = sid_st_find(&g->st, "image_features");
    if (!cJSON_IsArray(g->captions) || !cJSON_IsString(ni) || !img) {
        test_fail(__FILE__, __LINE__, "%s: no captions / n_images metadata or image_features", path);
        sid_st_close(&g->st);
        cJSON_Delete(g->captions);
        return -1;
    }
    g->nc = cJSON_GetArraySize(g->captions);
    g->ni = atoi(ni->valuestring);
    g->dim = (int)img->shape[1];
    g->caps = sid_malloc(sizeof *g->caps * (size_t)g->nc);
    for (int i = 0; i < g->nc; i++) g->caps[i] = cJSON_GetArrayItem(g->captions, i)->valuestring;
    return 0;
}
static void golden_close(golden *g) {
    free(g->caps);
    cJSON_Delete(g->captions);
    sid_st_close(&g->st);
}
// A golden tensor of n floats (NULL, with a failure, when absent or of another size).
static float *golden_read(const golden *g, const char *name, size_t n) {
    const sid_st_tensor *t = sid_st_find(&g->st, name);
    if (!t || (size_t)sid_shape_numel(t->ndim, t->shape) != n) {
        test_fail(__FILE__, __LINE__, "golden: no tensor %s of %zu values", name, n);
        return NULL;
    }
    float *x = sid_malloc(n * sizeof(float));
    sid_st_read_f32(&g->st, t, x);
    return x;
}

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}
static double max_diff(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e;
}

// ---------------------------------------------------------------- the declaration is the converter's output
static void test_parameters_are_the_converters_tensors(void) {
    for (int k = 0; k < 2; k++) {
        char path[1024], line[512];
        data_path(path, sizeof path, MODELS[k], "config.json");
        model_params m;
        declare(&m, path);
        data_path(path, sizeof path, MODELS[k], "tensors.txt");
        FILE *f = fopen(path, "r");
        EXPECT(f, "%s: cannot open", path);
        if (!f) {
            model_params_free(&m);
            continue;
        }
        int seen = 0, other = 0;
        while (fgets(line, sizeof line, f)) {
            char name[300], shape[64];
            if (sscanf(line, "%299s [%63[^]]]", name, shape) < 1) continue;
            const int i = sid_params_find(&m.ps, name);
            if (i < 0) {
                EXPECT(!strcmp(name, "logit_scale"), "%s: the converter's '%s' is not declared", MODELS[k], name);
                other++;
                continue;
            }
            seen++;
            char mine[64] = "";
            for (int d = 0; d < m.ps.items[i].ndim; d++)
                snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%lld", d ? ", " : "",
                         (long long)m.ps.items[i].shape[d]);
            EXPECT(!strcmp(mine, shape), "%s '%s': declared [%s], converted [%s]", MODELS[k], name, mine, shape);
        }
        fclose(f);
        EXPECT(seen == m.ps.n && other == 1, "%s: %d of %d declared tensors converted, %d others", MODELS[k], seen,
               m.ps.n, other);
        model_params_free(&m);
    }
}

// ---------------------------------------------------------------- tokens
static void test_tokens_are_gigagans(void) {
    const char *dir = make_folder("gelu", "tokens");
    sid_clip_scorer *s = sid_clip_scorer_open(dir, NULL, 4);
    EXPECT(s, "%s", sid_error());
    golden g;
    if (!s || golden_open(&g, "gelu")) {
        sid_clip_scorer_close(s);
        return;
    }
    const int T = sid_clip_scorer_context(s);
    EXPECT(T == 77, "context %d", T);
    float *want = golden_read(&g, "tokens", (size_t)g.nc * T);
    int32_t ids[77];
    for (int i = 0; want && i < g.nc; i++) {
        EXPECT(sid_clip_scorer_tokens(s, g.caps[i], ids) == 0, "caption %d: %s", i, sid_error());
        for (int t = 0; t < T; t++)
            if (ids[t] != (int32_t)want[(size_t)i * T + t]) {
                test_fail(__FILE__, __LINE__, "caption %d (\"%.40s\"): token %d is %d, GigaGAN's is %d", i, g.caps[i],
                          t, ids[t], (int)want[(size_t)i * T + t]);
                break;
            }
    }
    // the documented shapes of the sequences
    EXPECT(sid_clip_scorer_tokens(s, "", ids) == 0 && ids[0] == 49406 && ids[1] == 320 && ids[2] == 1125 &&
               ids[3] == 29340 && ids[4] == 49407 && ids[5] == 0 && ids[76] == 0,
           "empty caption: %d %d %d %d %d %d .. %d", ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[76]);
    EXPECT(sid_clip_scorer_tokens(s, g.caps[2], ids) == 0 && ids[76] == 49407 && ids[75] != 49407,
           "long caption: last two %d %d", ids[75], ids[76]);
    // a caption that is not UTF-8: an error, not a guess
    EXPECT(sid_clip_scorer_tokens(s, "bad \xff byte", ids) == -1 && strstr(sid_error(), "UTF-8"),
           "invalid UTF-8 gives '%s'", sid_error());
    // the cleaning on its own
    char *c = sid_clip_clean_caption("fish &amp;amp; chips &#39;a&#39; \xe2\x80\x9cq\xe2\x80\x9d &ampx");
    EXPECT(c && !strcmp(c, "fish & chips 'a' \"q\" &x"), "cleaned: '%s'", c ? c : "(null)");
    free(c);
    c = sid_clip_clean_caption("a < b &amp;amp;amp; c");
    EXPECT(c && !strcmp(c, "a < b &amp; c"), "with '<' (no ftfy unescaping): '%s'", c ? c : "(null)");
    free(c);
    free(want);
    golden_close(&g);
    sid_clip_scorer_close(s);
}

// ---------------------------------------------------------------- features and cosines equal open_clip's
typedef struct {
    float *img, *txt, *cos;
} outputs;

static int run_scorer(const char *dir, const sid_backend *be, int batch, const golden *g, const float *pixels,
                      outputs *o) {
    sid_clip_scorer *s = sid_clip_scorer_open(dir, be, batch);
    EXPECT(s, "%s: %s", be->name, sid_error());
    if (!s) return -1;
    const int S = sid_clip_scorer_image_size(s), D = sid_clip_scorer_dim(s);
    EXPECT(D == g->dim, "dim %d, golden %d", D, g->dim);
    o->img = sid_malloc(sizeof(float) * (size_t)g->ni * D);
    o->txt = sid_malloc(sizeof(float) * (size_t)g->nc * D);
    o->cos = sid_malloc(sizeof(float) * (size_t)g->nc);
    // the pairs: image k % ni with caption k
    const size_t per = (size_t)3 * S * S;
    float *pairs = sid_malloc(sizeof(float) * per * (size_t)g->nc);
    for (int k = 0; k < g->nc; k++) memcpy(pairs + k * per, pixels + (k % g->ni) * per, per * sizeof(float));
    EXPECT(sid_clip_scorer_image_features(s, pixels, g->ni, o->img) == 0, "%s", sid_error());
    EXPECT(sid_clip_scorer_text_features(s, g->caps, g->nc, o->txt) == 0, "%s", sid_error());
    EXPECT(sid_clip_scorer_cosines(s, pairs, g->caps, g->nc, o->cos) == 0, "%s", sid_error());
    free(pairs);
    sid_clip_scorer_close(s);
    return 0;
}
static void outputs_free(outputs *o) {
    free(o->img);
    free(o->txt);
    free(o->cos);
}

static void check_model(int k) {
    const char *model = MODELS[k];
    char name[64];
    snprintf(name, sizeof name, "features-%s", model);
    const char *dir = make_folder(model, name);
    golden g;
    if (golden_open(&g, model)) return;
    const cJSON *S_meta = cJSON_GetObjectItemCaseSensitive(g.st.metadata, "image_size");
    const int S = cJSON_IsString(S_meta) ? atoi(S_meta->valuestring) : 0;
    float *pixels = hashed_pixels(g.ni, S);
    float *w_img = golden_read(&g, "image_features", (size_t)g.ni * g.dim);
    float *w_txt = golden_read(&g, "text_features", (size_t)g.nc * g.dim);
    float *w_cos = golden_read(&g, "cosines", (size_t)g.nc);
    outputs cpu = {0};
    const sid_backend *be;
    for (int b = 0; w_img && w_txt && w_cos && (be = sid_backend_at(b)); b++) {
        if (!be->available()) {
            printf("\n  SKIP backend %s: not usable on this machine", be->name);
            continue;
        }
        // batches that split the images and captions unevenly (the same on the guard device, whose bits
        // must be the CPU's: the GEMMs' blocking depends on the rows), one batch of all on CUDA
        const int batch = be == &sid_backend_cpu || be == &sid_backend_guard ? 5 : 16;
        outputs o = {0};
        if (run_scorer(dir, be, batch, &g, pixels, &o)) continue;
        const double ei = max_diff(o.img, w_img, (size_t)g.ni * g.dim) / max_abs(w_img, (size_t)g.ni * g.dim);
        const double et = max_diff(o.txt, w_txt, (size_t)g.nc * g.dim) / max_abs(w_txt, (size_t)g.nc * g.dim);
        const double ec = max_diff(o.cos, w_cos, (size_t)g.nc);
        if (getenv("SID_TEST_VERBOSE"))
            printf("\n  %s %s: image %.2e, text %.2e (max |diff| / max |open_clip|), cosine %.2e", model, be->name,
                   ei, et, ec);
        EXPECT(ei < 1e-5, "%s %s: image features differ from open_clip's by %.3g (relative to the largest)", model,
               be->name, ei);
        EXPECT(et < 1e-5, "%s %s: text features differ from open_clip's by %.3g (relative to the largest)", model,
               be->name, et);
        EXPECT(ec < 1e-5, "%s %s: cosines differ from GigaGAN's by %.3g", model, be->name, ec);
        if (be == &sid_backend_guard && cpu.img) {
            EXPECT(!memcmp(o.img, cpu.img, sizeof(float) * (size_t)g.ni * g.dim) &&
                       !memcmp(o.txt, cpu.txt, sizeof(float) * (size_t)g.nc * g.dim) &&
                       !memcmp(o.cos, cpu.cos, sizeof(float) * (size_t)g.nc),
                   "%s guard device: other bits than the CPU's", model);
        }
        if (be == &sid_backend_cpu) cpu = o;
        else outputs_free(&o);
    }
    outputs_free(&cpu);
    free(w_img);
    free(w_txt);
    free(w_cos);
    free(pixels);
    golden_close(&g);
}
static void test_gelu_matches_open_clip(void) { check_model(0); }
static void test_quickgelu_matches_open_clip(void) { check_model(1); }

// A slightly wrong network moves the features well beyond the tolerance: the comparisons above can fail.
static void edit_config(const char *dir, const char *sub, const char *key, cJSON *value) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    size_t n;
    if (sid_read_file(path, &text, &n)) sid_die("%s", sid_error());
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *o = sub ? cJSON_GetObjectItemCaseSensitive(j, sub) : j;
    if (value) {
        if (cJSON_GetObjectItemCaseSensitive(o, key)) cJSON_ReplaceItemInObject(o, key, value);
        else cJSON_AddItemToObject(o, key, value);
    } else {
        cJSON_DeleteItemFromObject(o, key);
    }
    text = cJSON_Print(j);
    test_write_text(path, text);
    free(text);
    cJSON_Delete(j);
}

static void test_golden_check_can_fail(void) {
    golden g;
    if (golden_open(&g, "gelu")) return;
    float *w_img = golden_read(&g, "image_features", (size_t)g.ni * g.dim);
    float *w_txt = golden_read(&g, "text_features", (size_t)g.nc * g.dim);
    float *pixels = hashed_pixels(g.ni, 56);
    // (a) one post_layernorm bias and one text-tower bias shifted
    const char *dir = make_folder("gelu", "shifted");
    char path[1024];
    model_params m;
    snprintf(path, sizeof path, "%s/config.json", dir);
    declare(&m, path);
    sid_p(&m.ps, m.vision.post_ln.b)[3] += 0.05f;
    sid_p(&m.ps, m.text.layers[1].fc2.b)[0] += 0.05f;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_weights(&m.ps, path, NULL, NULL, 0);
    model_params_free(&m);
    outputs o = {0};
    if (w_img && w_txt && !run_scorer(dir, &sid_backend_cpu, 4, &g, pixels, &o)) {
        const double ei = max_diff(o.img, w_img, (size_t)g.ni * g.dim) / max_abs(w_img, (size_t)g.ni * g.dim);
        const double et = max_diff(o.txt, w_txt, (size_t)g.nc * g.dim) / max_abs(w_txt, (size_t)g.nc * g.dim);
        EXPECT(ei > 1e-3 && et > 1e-3, "shifted biases moved the features by only %.3g (image), %.3g (text)", ei, et);
    }
    outputs_free(&o);
    // (b) the other activation: quick_gelu in both towers instead of gelu
    dir = make_folder("gelu", "activation");
    edit_config(dir, "text_config", "hidden_act", cJSON_CreateString("quick_gelu"));
    edit_config(dir, "vision_config", "hidden_act", cJSON_CreateString("quick_gelu"));
    o = (outputs){0};
    if (w_img && w_txt && !run_scorer(dir, &sid_backend_cpu, 4, &g, pixels, &o)) {
        const double ei = max_diff(o.img, w_img, (size_t)g.ni * g.dim) / max_abs(w_img, (size_t)g.ni * g.dim);
        const double et = max_diff(o.txt, w_txt, (size_t)g.nc * g.dim) / max_abs(w_txt, (size_t)g.nc * g.dim);
        EXPECT(ei > 1e-3 && et > 1e-3, "quick_gelu for gelu moved the features by only %.3g (image), %.3g (text)", ei,
               et);
    }
    outputs_free(&o);
    free(pixels);
    free(w_img);
    free(w_txt);
    golden_close(&g);
}

// ---------------------------------------------------------------- the text tower's forward-only path
static void test_encode_equals_training_forward(void) {
    char path[1024];
    data_path(path, sizeof path, "quickgelu", "config.json");
    model_params m;
    declare(&m, path);
    const sid_clip_config *c = &m.text.cfg;
    const int B = 3, T = 77;
    int32_t ids[3 * 77];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 7919u + 13u) % (unsigned)c->vocab_size);
    const size_t n = (size_t)B * T * c->hidden;
    float *a = sid_malloc(n * sizeof(float)), *b = sid_malloc(n * sizeof(float));
    sid_arena act;
    sid_arena_init(&act, "act", (size_t)64 << 20);
    sid_ctx ctx = {.ps = &m.ps, .act = &act};
    EXPECT(sid_clip_forward(&ctx, &m.text, a, ids, B, T, c->layers), "%s", sid_error());
    sid_arena_reset(&act, 0);
    act.peak = 0;
    const size_t before = act.used;
    EXPECT(sid_clip_encode(&ctx, &m.text, b, ids, B, T, c->layers) == 0, "%s", sid_error());
    EXPECT(act.used == before, "sid_clip_encode left %zu bytes allocated", act.used - before);
    EXPECT(act.peak <= sid_clip_encode_act_bytes(c, B, T), "sid_clip_encode took %zu bytes, reported %zu", act.peak,
           sid_clip_encode_act_bytes(c, B, T));
    EXPECT(!memcmp(a, b, n * sizeof(float)), "sid_clip_encode differs from sid_clip_forward");
    // the vision tower's arena bound
    sid_arena_reset(&act, 0);
    act.peak = 0;
    const sid_clip_vision_config *vc = &m.vision.cfg;
    float *px = hashed_pixels(2, vc->image_size), *pooled = sid_malloc(sizeof(float) * 2 * vc->hidden);
    sid_clip_vision_forward(&ctx, &m.vision, pooled, px, 2);
    EXPECT(act.used == 0, "sid_clip_vision_forward left %zu bytes allocated", act.used);
    EXPECT(act.peak <= sid_clip_vision_act_bytes(vc, 2), "vision forward took %zu bytes, reported %zu", act.peak,
           sid_clip_vision_act_bytes(vc, 2));
    free(px);
    free(pooled);
    sid_arena_free(&act);
    free(a);
    free(b);
    model_params_free(&m);
}

// ---------------------------------------------------------------- loading: what it accepts
static void expect_rejected(const char *dir, const char *what, const char *const *needles);
static void edit_config(const char *dir, const char *sub, const char *key, cJSON *value);

static void test_accepts_old_files_and_reads_preprocessing(void) {
    const char *dir = make_folder("quickgelu", "accepts");
    char path[1024];
    // transformers 4's position_ids buffers (int64) are ignored
    model_params m;
    snprintf(path, sizeof path, "%s/config.json", dir);
    declare(&m, path);
    int64_t tpos[77], vpos[10];
    for (int i = 0; i < 77; i++) tpos[i] = i;
    for (int i = 0; i < 10; i++) vpos[i] = i;
    const sid_st_entry extra[2] = {{"text_model.embeddings.position_ids", SID_I64, 2, {1, 77}, tpos},
                                   {"vision_model.embeddings.position_ids", SID_I64, 2, {1, 10}, vpos}};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_weights(&m.ps, path, NULL, extra, 2);
    sid_clip_scorer *s = sid_clip_scorer_open(dir, NULL, 2);
    EXPECT(s, "position_ids: %s", sid_error());
    if (s) {
        EXPECT(sid_clip_scorer_image_size(s) == 48, "image size %d", sid_clip_scorer_image_size(s));
        const float *mean = sid_clip_scorer_mean(s), *sd = sid_clip_scorer_std(s);
        EXPECT(mean[0] == 0.48145466f && mean[2] == 0.40821073f && sd[1] == 0.26130258f, "mean/std %g %g %g",
               mean[0], mean[2], sd[1]);
    }
    sid_clip_scorer_close(s);
    // the vision tower alone: from the CLIPModel file, and from a transformers 5 CLIPVisionModel file
    sid_params vps = {0};
    sid_clip_vision vis;
    sid_clip_vision_decl(&vis, &vps, &m.vision.cfg);
    sid_params_alloc(&vps, 0);
    EXPECT(sid_clip_vision_load(&vps, path) == 0, "vision from CLIPModel: %s", sid_error());
    const int i0 = sid_params_find(&vps, "vision_model.post_layernorm.bias");
    EXPECT(i0 >= 0 && !memcmp(sid_p(&vps, i0), sid_p(&m.ps, m.vision.post_ln.b), sizeof(float) * m.vision.cfg.hidden),
           "vision tower loaded other values");
    {
        sid_st_entry *e = sid_malloc(sizeof *e * (size_t)vps.n);
        char (*names)[160] = sid_malloc(sizeof *names * (size_t)vps.n);
        for (int i = 0; i < vps.n; i++) {
            snprintf(names[i], sizeof names[i], "%s", vps.items[i].name + strlen("vision_model."));
            e[i] = (sid_st_entry){names[i], SID_F32, vps.items[i].ndim, {0}, sid_p(&vps, i)};
            memcpy(e[i].shape, vps.items[i].shape, sizeof e[i].shape);
        }
        snprintf(path, sizeof path, "%s/vision5.safetensors", dir);
        EXPECT(sid_st_write(path, e, vps.n, NULL, 0) == 0, "%s", sid_error());
        EXPECT(sid_clip_vision_load(&vps, path) == 0, "transformers 5 CLIPVisionModel: %s", sid_error());
        free(e);
        free(names);
    }
    sid_clip_vision_free(&vis);
    sid_params_free(&vps);
    model_params_free(&m);
    // preprocessor_config.json's mean / std; absent -> OpenAI's
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    test_write_text(path, "{\"image_mean\": [0.5, 0.25, 0.125], \"image_std\": [0.5, 0.5, 2]}\n");
    s = sid_clip_scorer_open(dir, NULL, 1);
    EXPECT(s && sid_clip_scorer_mean(s)[1] == 0.25f && sid_clip_scorer_std(s)[2] == 2.0f, "custom mean/std: %s",
           s ? "other values" : sid_error());
    sid_clip_scorer_close(s);
    unlink(path);
    s = sid_clip_scorer_open(dir, NULL, 1);
    EXPECT(s && sid_clip_scorer_mean(s)[0] == 0.48145466f && sid_clip_scorer_std(s)[0] == 0.26862954f,
           "no preprocessor_config.json: %s", s ? "not OpenAI's mean/std" : sid_error());
    sid_clip_scorer_close(s);
    // "text_config_dict" / "vision_config_dict" of older files override the sub-configs
    edit_config(dir, "text_config", "hidden_act", cJSON_CreateString("relu"));
    edit_config(dir, NULL, "text_config_dict", cJSON_CreateObject());
    edit_config(dir, "text_config_dict", "hidden_act", cJSON_CreateString("quick_gelu"));
    s = sid_clip_scorer_open(dir, NULL, 1);
    EXPECT(s, "text_config_dict: %s", sid_error());
    sid_clip_scorer_close(s);
    edit_config(dir, NULL, "vision_config_dict", cJSON_CreateObject());
    edit_config(dir, "vision_config_dict", "patch_size", cJSON_CreateNumber(12));
    expect_rejected(dir, "vision_config_dict.patch_size 12",
                    (const char *const[]){"vision_model.embeddings.patch_embedding.weight", NULL});
    edit_config(dir, NULL, "vision_config_dict", NULL);
    // tokenizer files in tokenizer/ instead of the folder itself
    char sub[1100], from[1200], to[1200];
    snprintf(sub, sizeof sub, "%s/tokenizer", dir);
    EXPECT(mkdir(sub, 0700) == 0, "mkdir");
    static const char *const vocab[] = {"vocab.json", "merges.txt"};
    for (int k = 0; k < 2; k++) {
        snprintf(from, sizeof from, "%s/%s", dir, vocab[k]);
        snprintf(to, sizeof to, "%s/%s", sub, vocab[k]);
        EXPECT(rename(from, to) == 0, "rename");
    }
    s = sid_clip_scorer_open(dir, NULL, 1);
    EXPECT(s, "tokenizer/ subfolder: %s", sid_error());
    sid_clip_scorer_close(s);
}

// ---------------------------------------------------------------- loading: what it rejects
static int one_line(const char *e) { return e && e[0] && !strchr(e, '\n'); }

static void expect_rejected(const char *dir, const char *what, const char *const *needles) {
    sid_clip_scorer *s = sid_clip_scorer_open(dir, NULL, 2);
    const char *e = sid_error();
    int ok = !s && one_line(e);
    for (int i = 0; ok && needles[i]; i++) ok = strstr(e, needles[i]) != NULL;
    if (getenv("SID_TEST_VERBOSE")) printf("\n  %s: %s", what, s ? "(accepted)" : e);
    EXPECT(ok, "%s: %s, error '%s'", what, s ? "accepted" : "rejected", e);
    sid_clip_scorer_close(s);
}

static void test_rejects_broken_folders(void) {
    char path[1024], wpath[1100];
    // missing files
    const char *dir = make_folder("gelu", "reject");
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", dir);
    snprintf(path, sizeof path, "%s/moved.safetensors", dir);
    EXPECT(rename(wpath, path) == 0, "rename");
    expect_rejected(dir, "missing model.safetensors", (const char *const[]){wpath, NULL});
    EXPECT(rename(path, wpath) == 0, "rename");
    expect_rejected("/nonexistent/clip", "missing folder", (const char *const[]){"/nonexistent/clip/config.json", NULL});
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    unlink(path);
    expect_rejected(dir, "no tokenizer", (const char *const[]){dir, "tokenizer", NULL});

    // tensors: missing, wrong shape, unexpected, not finite
    dir = make_folder("gelu", "reject");
    snprintf(wpath, sizeof wpath, "%s/model.safetensors", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_params m;
    declare(&m, path);
    write_weights(&m.ps, wpath, "vision_model.encoder.layers.1.mlp.fc1.bias", NULL, 0);
    expect_rejected(dir, "missing tensor",
                    (const char *const[]){wpath, "missing", "vision_model.encoder.layers.1.mlp.fc1.bias", NULL});
    float junk[64 * 64] = {0};
    const sid_st_entry wrong[1] = {{"visual_projection.weight", SID_F32, 2, {31, 64}, junk}};
    write_weights(&m.ps, wpath, "visual_projection.weight", wrong, 1);
    expect_rejected(dir, "wrong shape", (const char *const[]){wpath, "visual_projection.weight", "[31, 64]", "[32, 64]", NULL});
    const sid_st_entry more[1] = {{"vision_model.encoder.layers.2.mlp.fc1.bias", SID_F32, 1, {64}, junk}};
    write_weights(&m.ps, wpath, NULL, more, 1);
    expect_rejected(dir, "unexpected tensor",
                    (const char *const[]){wpath, "unexpected", "vision_model.encoder.layers.2.mlp.fc1.bias", NULL});
    sid_p(&m.ps, m.vision.cls)[5] = NAN;
    write_weights(&m.ps, wpath, NULL, NULL, 0);
    expect_rejected(dir, "NaN weight", (const char *const[]){wpath, "vision_model.embeddings.class_embedding", NULL});
    model_params_free(&m);

    // config keys
    struct {
        const char *sub, *key, *needle;
        cJSON *value;
    } bad[] = {
        {"vision_config", "hidden_act", "hidden_act", cJSON_CreateString("relu")},
        {"text_config", "hidden_act", "hidden_act", cJSON_CreateString("swish")},
        {"vision_config", "num_attention_heads", "num_attention_heads", cJSON_CreateNumber(5)},
        {"vision_config", "patch_size", "patch_size", cJSON_CreateString("14")},
        {"vision_config", "patch_size", "patch_size", cJSON_CreateNumber(112)},
        {"vision_config", "num_hidden_layers", "num_hidden_layers", cJSON_CreateNumber(0)},
        {"text_config", "hidden_size", "hidden_size", cJSON_CreateNumber(-64)},
        {NULL, "projection_dim", "projection_dim", cJSON_CreateNumber(0)},
        {NULL, "projection_dim", "projection_dim", cJSON_CreateNumber(1.5)},
        {NULL, "vision_config", "vision_config", NULL},
        {"vision_config", "num_channels", "num_channels", cJSON_CreateNumber(1)},
        {"vision_config", "image_size", "vision_model.embeddings.position_embedding.weight", cJSON_CreateNumber(70)},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dir = make_folder("gelu", "reject");
        snprintf(path, sizeof path, "%s/config.json", dir);
        edit_config(dir, bad[i].sub, bad[i].key, bad[i].value);
        char what[128];
        snprintf(what, sizeof what, "config %s.%s", bad[i].sub ? bad[i].sub : "", bad[i].key);
        expect_rejected(dir, what, (const char *const[]){dir, bad[i].needle, NULL});
    }
    dir = make_folder("gelu", "reject");
    snprintf(path, sizeof path, "%s/config.json", dir);
    test_write_text(path, "{\"text_config\": {\"hidden_size\": 64,}\n");
    expect_rejected(dir, "invalid JSON", (const char *const[]){path, NULL});
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    make_folder("gelu", "reject");
    test_write_text(path, "{\"image_mean\": [0.5, 0.5]}\n");
    expect_rejected(dir, "short image_mean", (const char *const[]){path, "image_mean", NULL});
    EXPECT(!sid_clip_scorer_open(dir, NULL, 0) && one_line(sid_error()), "batch 0 accepted");
}

TEST_LIST(T(test_parameters_are_the_converters_tensors), T(test_tokens_are_gigagans), T(test_gelu_matches_open_clip),
          T(test_quickgelu_matches_open_clip), T(test_golden_check_can_fail), T(test_encode_equals_training_forward),
          T(test_accepts_old_files_and_reads_preprocessing), T(test_rejects_broken_folders))
TEST_MAIN("clip_score")
