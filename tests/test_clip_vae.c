// The CLIP text encoder and the AutoencoderKL held equal to transformers / diffusers.
// tests/data/clip/{quick,gelu} and tests/data/vae/tiny are tiny random models saved by the real
// libraries, with golden tensors (tools/reference/clip_vae_reference.py): every check loads the
// folder with the C loader (strict), runs it, and compares. Parameter counts of the real SD
// configs come from their config.json text; loading rejects broken files with one-line errors.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/arena.h"
#include "core/error.h"
#include "harness.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/clip_text.h"
#include "models/vae.h"
#include "ops/backend.h"
#include "ops/guard/guard.h"

// ---------------------------------------------------------------- helpers

static const char *data_path(char *buf, size_t cap, const char *rel) {
    snprintf(buf, cap, "%s/%s", test_data_dir(), rel);
    return buf;
}

static void make_tmpdir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/sid_test_clip_vae_XXXXXX");
    if (!mkdtemp(dir)) sid_die("mkdtemp failed");
}

// max |a - b| / max |b|: the error relative to the reference's largest magnitude
static double rel_err(const float *a, const float *b, size_t n) {
    double scale = 1e-12, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= err)) err = e;  // NaN wins
    }
    return err / scale;
}

// A golden float tensor of exactly `want` values (0: any), malloc'd; NULL after a failure.
static float *golden(const sid_safetensors *st, const char *name, size_t want) {
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) return test_fail(__FILE__, __LINE__, "%s: no tensor '%s' (rerun tools/reference)", st->path, name), NULL;
    size_t n = (size_t)sid_shape_numel(t->ndim, t->shape);
    if (want && n != want)
        return test_fail(__FILE__, __LINE__, "'%s' has %zu values, the test expects %zu", name, n, want), NULL;
    float *h = sid_malloc(n * sizeof(float) + 4);
    if (sid_st_read_f32(st, t, h)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        free(h);
        return NULL;
    }
    return h;
}

// Token ids stored as I64 or I32 -> int32; *n gets the count.
static int32_t *golden_ids(const sid_safetensors *st, const char *name, int *B, int *T) {
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t || t->ndim != 2 || (t->dtype != SID_I64 && t->dtype != SID_I32))
        return test_fail(__FILE__, __LINE__, "%s: '%s' must be a [B, T] I64 or I32 tensor", st->path, name), NULL;
    *B = (int)t->shape[0], *T = (int)t->shape[1];
    const size_t n = (size_t)*B * *T;
    int32_t *ids = sid_malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == SID_I64) {
            int64_t v;
            memcpy(&v, (const char *)t->data + i * 8, 8);
            ids[i] = (int32_t)v;
        } else {
            memcpy(&ids[i], (const char *)t->data + i * 4, 4);
        }
    }
    return ids;
}

// An error message is one line that names what it is about.
static void expect_one_line(const char *what, const char *needle) {
    const char *e = sid_error();
    EXPECT(strchr(e, '\n') == NULL, "%s: error spans lines: %s", what, e);
    EXPECT(strstr(e, needle) != NULL, "%s: error '%s' does not mention '%s'", what, e, needle);
}

// Writes a copy of a parameter set with one tensor dropped, one renamed to an unknown name, one
// given another shape, or one extra tensor appended; names get `prefix` and pass through `rename`.
typedef enum { AS_IS, DROP, EXTRA, RESHAPE } file_edit;
static void write_edited(const sid_params *ps, const char *path, const char *prefix, sid_rename_fn rename,
                         file_edit edit, int victim) {
    sid_st_entry *e = sid_calloc((size_t)(ps->n + 1) * sizeof *e);
    char(*names)[300] = sid_calloc((size_t)(ps->n + 1) * sizeof *names);
    static const float extra[4] = {1, 2, 3, 4};
    int n = 0;
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        if (edit == DROP && i == victim) continue;
        char base[256];
        if (rename) rename(p->name, base, sizeof base);
        else snprintf(base, sizeof base, "%s", p->name);
        snprintf(names[n], sizeof names[n], "%s%s", prefix ? prefix : "", base);
        e[n] = (sid_st_entry){.name = names[n], .dtype = SID_F32, .ndim = p->ndim, .data = sid_p(ps, i)};
        memcpy(e[n].shape, p->shape, sizeof p->shape);
        if (edit == RESHAPE && i == victim) e[n].shape[0] = p->shape[0] / 2;  // data stays big enough
        n++;
    }
    if (edit == EXTRA) {
        snprintf(names[n], sizeof names[n], "%s%s", prefix ? prefix : "", "decoder.unknown_layer.weight");
        e[n++] = (sid_st_entry){.name = names[n - 1], .dtype = SID_F32, .ndim = 1, .shape = {4}, .data = extra};
    }
    if (sid_st_write(path, e, n, NULL, 0)) test_fail(__FILE__, __LINE__, "%s", sid_error());
    free(names);
    free(e);
}

// Every golden run goes through one of these backends: the CPU, then the guard device (CPU kernels
// behind GPU-like memory rules, ops/guard/guard.h), whose results must equal the CPU's bit for bit.
static const sid_backend *const run_backends[] = {&sid_backend_cpu, &sid_backend_guard};
enum { N_RUN_BACKENDS = 2 };

// The loaded parameters moved to be (nothing for the CPU), an activation arena in its memory and a
// host arena for the saved-state records (sid_ctx_host); ctx_free releases both arenas.
typedef struct {
    sid_ctx c;
    sid_arena act, meta;
} test_ctx;

static void ctx_init(test_ctx *t, const sid_backend *be, sid_params *ps, size_t bytes) {
    sid_params_to_backend(ps, be);
    sid_backend_arena_init(&t->act, be, "test activations", bytes);
    sid_arena_init(&t->meta, "test saved state", 1u << 20);
    t->c = (sid_ctx){.ps = ps, .act = &t->act, .be = be, .meta = &t->meta};
    if (be == &sid_backend_guard)  // the run below really is on the device
        EXPECT(sid_guard_owns(ps->data) && (!ps->grad || sid_guard_owns(ps->grad)) && sid_guard_owns(t->act.base),
               "guard: parameters or arena are not in guard memory");
}

static void ctx_free(test_ctx *t) {
    sid_arena_free(&t->act);
    sid_arena_free(&t->meta);
}

// A device copy of host bytes (freed with be->free).
static void *dev_put(const sid_backend *be, const void *host, size_t bytes) {
    void *d = be->alloc(bytes ? bytes : 4);
    if (bytes) be->upload(d, host, bytes);
    return d;
}
static float *dev_zeros(const sid_backend *be, size_t n) { return be->alloc(n ? n * sizeof(float) : 4); }
// A malloc'd host copy of n floats of device memory.
static float *host_get(const sid_backend *be, const float *d, size_t n) {
    float *h = sid_malloc(n * sizeof(float) + 4);
    if (n) be->download(h, d, n * sizeof(float));
    return h;
}

// The guard run equals the CPU run bit for bit (NaN payloads included).
static void expect_same_bits(const char *what, const char *be_name, const float *mine, const float *cpu, size_t n) {
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&mine[i], &cpu[i], sizeof(float)) != 0 && !diff++) first = i;
    EXPECT(diff == 0, "%s on %s: %zu of %zu values differ from the CPU run's bits (first at %zu: %.9g vs %.9g)",
           what, be_name, diff, n, first, diff ? mine[first] : 0.0, diff ? cpu[first] : 0.0);
}

// Guard buffers live before a run, to check that the run leaves none behind.
static size_t guard_live_buffers(void) {
    size_t n = 0;
    sid_guard_live(&n, NULL);
    return n;
}

// ---------------------------------------------------------------- CLIP: configs and counts
static const char *const SD15_TEXT_CONFIG = "clip/sd15-text_encoder-config.json";
static const char *const SD21_TEXT_CONFIG = "clip/sd21base-text_encoder-config.json";

static void test_clip_config_counts(void) {
    char path[512];
    sid_clip_config c;
    EXPECT(sid_clip_config_load(&c, data_path(path, sizeof path, SD15_TEXT_CONFIG)) == 0, "%s", sid_error());
    sid_clip_config sd = sid_clip_config_sd15();
    EXPECT(memcmp(&c, &sd, sizeof c) == 0, "SD1.5 config.json differs from sid_clip_config_sd15()");
    EXPECT(sid_clip_param_count(&c) == 123060480u, "CLIP-L counts %zu parameters, want 123,060,480",
           sid_clip_param_count(&c));
    sid_params ps = {0};
    sid_clip m;
    sid_clip_decl(&m, &ps, &c);
    EXPECT(ps.n == 196, "CLIP-L declares %d tensors, want 196", ps.n);  // sd.cpp's "clip ... (196 tensors)"
    EXPECT(sid_params_find(&ps, "text_model.encoder.layers.11.mlp.fc2.weight") >= 0 &&
               ps.items[sid_params_find(&ps, "text_model.encoder.layers.11.mlp.fc2.weight")].shape[1] == 3072,
           "fc2 of the last layer is missing or misshapen");
    sid_clip_free(&m);
    sid_params_free(&ps);

    // SD2.x: the 23-layer OpenCLIP ViT-H text tower with exact gelu
    EXPECT(sid_clip_config_load(&c, data_path(path, sizeof path, SD21_TEXT_CONFIG)) == 0, "%s", sid_error());
    EXPECT(c.layers == 23 && c.hidden == 1024 && c.heads == 16 && c.act == SID_ACT_GELU, "SD2.1 config misread");
    EXPECT(sid_clip_param_count(&c) == 340387840u, "SD2.1 text encoder counts %zu parameters, want 340,387,840",
           sid_clip_param_count(&c));
}

static void test_clip_config_errors(void) {
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    sid_clip_config c;
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"hidden_act\": \"relu\"}", "'hidden_act'"},
        {"{\"hidden_act\": \"gelu_new\"}", "gelu_new"},
        {"{\"hidden_size\": 30, \"num_attention_heads\": 4}", "'num_attention_heads'"},
        {"{\"hidden_size\": \"768\"}", "'hidden_size'"},
        {"{\"num_hidden_layers\": 0}", "'num_hidden_layers'"},
        {"{\"layer_norm_eps\": -1}", "'layer_norm_eps'"},
        {"{\"vocab_size\": 49408,}", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write_text(path, bad[i].json);
        EXPECT(sid_clip_config_load(&c, path) == -1, "accepted %s", bad[i].json);
        expect_one_line(bad[i].json, bad[i].needle);
        expect_one_line(bad[i].json, "config.json");
    }
    // absent keys take CLIPTextConfig's defaults; a CLIPConfig's text_config is read
    test_write_text(path, "{\"text_config\": {\"hidden_size\": 64, \"num_attention_heads\": 2, \"hidden_act\": \"gelu\"}}");
    EXPECT(sid_clip_config_load(&c, path) == 0, "%s", sid_error());
    EXPECT(c.hidden == 64 && c.heads == 2 && c.act == SID_ACT_GELU && c.layers == 12 && c.vocab_size == 49408 &&
               c.intermediate == 2048 && c.max_positions == 77 && c.eps == 1e-5f,
           "defaults or text_config misread");
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- CLIP against transformers
typedef struct {
    sid_clip_config cfg;
    sid_params ps;
    sid_clip m;
    sid_safetensors gold;
    int32_t *ids;
    int B, T;
} clip_fixture;

static int clip_open(clip_fixture *f, const char *name) {
    char rel[128], path[512];
    memset(f, 0, sizeof *f);
    snprintf(rel, sizeof rel, "clip/%s/config.json", name);
    if (sid_clip_config_load(&f->cfg, data_path(path, sizeof path, rel))) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return -1;
    }
    sid_clip_decl(&f->m, &f->ps, &f->cfg);
    sid_params_alloc(&f->ps, 1);
    snprintf(rel, sizeof rel, "clip/%s/model.safetensors", name);
    if (sid_clip_load(&f->ps, data_path(path, sizeof path, rel), NULL)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return -1;
    }
    snprintf(rel, sizeof rel, "clip/%s/golden.safetensors", name);
    if (sid_st_open(&f->gold, data_path(path, sizeof path, rel))) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return -1;
    }
    f->ids = golden_ids(&f->gold, "ids", &f->B, &f->T);
    return f->ids ? 0 : -1;
}

static void clip_close(clip_fixture *f) {
    free(f->ids);
    sid_st_close(&f->gold);
    sid_clip_free(&f->m);
    sid_params_free(&f->ps);
}

// Golden gradients are keyed by transformers 5 names, which drop "text_model.".
static const char *golden_param_name(const char *ours) { return ours + strlen("text_model."); }

// Everything a golden CLIP case produces, in host memory.
typedef struct {
    float *out_skip, *out, *dembed, *grad, *dembed_frozen, *grad2;
} clip_results;

static void clip_results_free(clip_results *r) {
    free(r->out_skip), free(r->out), free(r->dembed), free(r->grad), free(r->dembed_frozen), free(r->grad2);
    memset(r, 0, sizeof *r);
}

// One golden CLIP case on be, from the loaded fixture (its parameters move to be): clip-skip forward,
// full forward, backward, a frozen backward and a second (accumulating) backward; ids and dout are
// uploaded, every result downloaded.
static void clip_run(clip_fixture *f, const sid_backend *be, const float *dout, clip_results *r) {
    const int B = f->B, T = f->T;
    const size_t n = (size_t)B * T * f->cfg.hidden, total = f->ps.total;
    test_ctx t;
    ctx_init(&t, be, &f->ps, 64u << 20);
    const sid_ctx *c = &t.c;
    int32_t *ids = dev_put(be, f->ids, (size_t)B * T * sizeof *ids);
    float *ddout = dev_put(be, dout, n * sizeof(float));
    float *out = dev_zeros(be, n), *dembed = dev_zeros(be, n), *dembed2 = dev_zeros(be, n);
    // clip skip: all layers but the last, still through final_layer_norm = LN(hidden_states[-2])
    sid_clip_saved *s = sid_clip_forward(c, &f->m, out, ids, B, T, f->cfg.layers - 1);
    EXPECT(s != NULL, "%s", sid_error());
    r->out_skip = host_get(be, out, n);
    sid_arena_reset(&t.act, 0), sid_arena_reset(&t.meta, 0);

    s = sid_clip_forward(c, &f->m, out, ids, B, T, f->cfg.layers);
    EXPECT(s != NULL, "%s", sid_error());
    r->out = host_get(be, out, n);
    sid_clip_backward(c, &f->m, dembed, ddout, ids, s, B, T);
    r->dembed = host_get(be, dembed, n);
    r->grad = host_get(be, f->ps.grad, total);
    // A frozen encoder (no gradient block) still gives the input gradient, and only that.
    float *grad = f->ps.grad;
    f->ps.grad = NULL;
    sid_clip_backward(c, &f->m, dembed2, ddout, ids, s, B, T);
    f->ps.grad = grad;
    r->dembed_frozen = host_get(be, dembed2, n);
    // Backward accumulates: a second pass doubles every gradient.
    sid_clip_backward(c, &f->m, NULL, ddout, ids, s, B, T);
    r->grad2 = host_get(be, f->ps.grad, total);
    be->free(ids), be->free(ddout), be->free(out), be->free(dembed), be->free(dembed2);
    ctx_free(&t);
}

// A run's results against the transformers reference.
static void clip_check_golden(const clip_fixture *f, const clip_results *r, const char *name, const char *be_name) {
    const int B = f->B, T = f->T, C = f->cfg.hidden;
    const size_t n = (size_t)B * T * C;
    const double tol = 1e-4;  // relative to the largest reference magnitude, every check below
    const int verbose = getenv("SID_TEST_VERBOSE") != NULL;
    float *want = golden(&f->gold, "out", n), *want_skip = golden(&f->gold, "out_skip", n);
    if (want && want_skip) {
        double e = rel_err(r->out_skip, want_skip, n);
        if (verbose) printf("\n  clip/%s %s clip-skip forward %.1e", name, be_name, e);
        EXPECT(e <= tol, "clip/%s on %s: clip-skip output differs from final_layer_norm(hidden_states[-2]) by %.3g",
               name, be_name, e);
        e = rel_err(r->out, want, n);
        if (verbose) printf("\n  clip/%s %s forward %.1e", name, be_name, e);
        EXPECT(e <= tol, "clip/%s on %s: last_hidden_state differs from transformers by %.3g", name, be_name, e);
    }
    free(want), free(want_skip);

    double worst = 0;
    int checked_full = 0, checked_sample = 0, checked_zero = 0;
    for (int i = 0; i < f->ps.n; i++) {
        const sid_param *p = &f->ps.items[i];
        const float *g = r->grad + p->offset;
        char key[300];
        const char *kb = strstr(p->name, "k_proj.bias");
        if (kb) {
            // Exactly zero: a key bias adds q.b to every score of a query, which softmax ignores, so
            // PyTorch's value is rounding noise too. Held to 1e-4 of the value-bias gradient instead.
            snprintf(key, sizeof key, "%.*sv_proj.bias", (int)(kb - p->name), p->name);
            const int vi = sid_params_find(&f->ps, key);
            double mine = 0, scale = 0;
            for (size_t k = 0; k < p->numel; k++) mine = fmax(mine, fabs(g[k]));
            for (size_t k = 0; vi >= 0 && k < p->numel; k++)
                scale = fmax(scale, fabs(r->grad[f->ps.items[vi].offset + k]));
            EXPECT(vi >= 0 && mine <= 1e-4 * scale, "clip/%s on %s: gradient of %s is %.3g, not ~0 (v bias: %.3g)",
                   name, be_name, p->name, mine, scale);
            checked_zero++;
            continue;
        }
        snprintf(key, sizeof key, "grad.%s", golden_param_name(p->name));
        if (sid_st_find(&f->gold, key)) {
            float *w = golden(&f->gold, key, p->numel);
            if (!w) continue;
            const double e = rel_err(g, w, p->numel);
            EXPECT(e <= tol, "clip/%s on %s: gradient of %s differs from PyTorch by %.3g", name, be_name, p->name, e);
            worst = fmax(worst, e), checked_full++;
            free(w);
            continue;
        }
        // elements 0, s, 2s, ... (s = max(1, numel / 64)) and the L2 norm of the whole gradient
        const size_t step = p->numel / 64 ? p->numel / 64 : 1, ns = (p->numel + step - 1) / step;
        snprintf(key, sizeof key, "grad_sample.%s", golden_param_name(p->name));
        float *w = golden(&f->gold, key, ns);
        snprintf(key, sizeof key, "grad_norm.%s", golden_param_name(p->name));
        float *norm = golden(&f->gold, key, 1);
        if (w && norm) {
            float *mine = sid_malloc(ns * sizeof(float));
            double sq = 0;
            for (size_t k = 0; k < ns; k++) mine[k] = g[k * step];
            for (size_t k = 0; k < p->numel; k++) sq += (double)g[k] * g[k];
            const double e = fmax(rel_err(mine, w, ns), fabs(sqrt(sq) - norm[0]) / norm[0]);
            EXPECT(e <= tol, "clip/%s on %s: gradient of %s (sample and norm) differs from PyTorch by %.3g", name,
                   be_name, p->name, e);
            worst = fmax(worst, e), checked_sample++;
            free(mine);
        }
        free(w), free(norm);
    }
    if (verbose)
        printf("\n  clip/%s %s gradients: %d in full, %d sampled, %d ~0, worst %.1e", name, be_name, checked_full,
               checked_sample, checked_zero, worst);
    EXPECT(checked_full + checked_sample + checked_zero == f->ps.n, "clip/%s on %s: %d of %d gradients checked", name,
           be_name, checked_full + checked_sample + checked_zero, f->ps.n);

    // The embedding gradients are the input gradient scattered by id and by position.
    float *dtok = sid_calloc((size_t)f->cfg.vocab_size * C * sizeof(float));
    for (int bt = 0; bt < B * T; bt++)
        for (int k = 0; k < C; k++) dtok[(size_t)f->ids[bt] * C + k] += r->dembed[(size_t)bt * C + k];
    const double e = rel_err(dtok, r->grad + f->ps.items[f->m.tok].offset, (size_t)f->cfg.vocab_size * C);
    EXPECT(e <= 1e-6, "clip/%s on %s: dembed scattered by id differs from the token-embedding gradient by %.3g", name,
           be_name, e);
    free(dtok);

    EXPECT(rel_err(r->dembed_frozen, r->dembed, n) == 0, "clip/%s on %s: frozen backward gives another input gradient",
           name, be_name);
    float *twice = sid_malloc(f->ps.total * sizeof(float) + 4);
    for (size_t k = 0; k < f->ps.total; k++) twice[k] = 2 * r->grad[k];
    EXPECT(rel_err(r->grad2, twice, f->ps.total) <= 1e-6, "clip/%s on %s: a second backward does not accumulate", name,
           be_name);
    free(twice);
}

static void clip_matches_transformers(const char *name) {
    clip_results res[N_RUN_BACKENDS];
    memset(res, 0, sizeof res);
    for (int k = 0; k < N_RUN_BACKENDS; k++) {
        const sid_backend *be = run_backends[k];
        const size_t live = guard_live_buffers();
        clip_fixture f;
        if (clip_open(&f, name)) {
            clip_close(&f);
            break;
        }
        const size_t n = (size_t)f.B * f.T * f.cfg.hidden;
        float *dout = golden(&f.gold, "dout", n);
        if (dout) {
            clip_run(&f, be, dout, &res[k]);
            clip_check_golden(&f, &res[k], name, be->name);
            if (k > 0) {
                const size_t total = f.ps.total;
                expect_same_bits("clip-skip output", be->name, res[k].out_skip, res[0].out_skip, n);
                expect_same_bits("output", be->name, res[k].out, res[0].out, n);
                expect_same_bits("dembed", be->name, res[k].dembed, res[0].dembed, n);
                expect_same_bits("parameter gradients", be->name, res[k].grad, res[0].grad, total);
                expect_same_bits("frozen dembed", be->name, res[k].dembed_frozen, res[0].dembed_frozen, n);
                expect_same_bits("accumulated gradients", be->name, res[k].grad2, res[0].grad2, total);
            }
        }
        free(dout);
        clip_close(&f);
        EXPECT(guard_live_buffers() == live, "clip/%s on %s: %zu guard buffers left live", name, be->name,
               guard_live_buffers() - live);
    }
    for (int k = 0; k < N_RUN_BACKENDS; k++) clip_results_free(&res[k]);
}

static void test_clip_quick_gelu_matches_transformers(void) { clip_matches_transformers("quick"); }
static void test_clip_gelu_matches_transformers(void) { clip_matches_transformers("gelu"); }

static void test_clip_rejects_bad_ids(void) {
    for (int k = 0; k < N_RUN_BACKENDS; k++) {
        const sid_backend *be = run_backends[k];
        clip_fixture f;
        if (clip_open(&f, "quick")) return clip_close(&f);
        test_ctx t;
        ctx_init(&t, be, &f.ps, 16u << 20);
        const size_t nids = (size_t)f.B * f.T * sizeof *f.ids;
        float *out = dev_zeros(be, (size_t)f.B * f.T * f.cfg.hidden);
        f.ids[f.T + 2] = f.cfg.vocab_size;  // sequence 1, position 2
        int32_t *ids = dev_put(be, f.ids, nids);
        EXPECT(sid_clip_forward(&t.c, &f.m, out, ids, f.B, f.T, f.cfg.layers) == NULL,
               "%s: an id past the vocabulary ran", be->name);
        expect_one_line("bad id", "position 2");
        f.ids[f.T + 2] = -1;
        be->upload(ids, f.ids, nids);
        EXPECT(sid_clip_forward(&t.c, &f.m, out, ids, f.B, f.T, f.cfg.layers) == NULL, "%s: a negative id ran",
               be->name);
        be->free(ids), be->free(out);
        ctx_free(&t);
        clip_close(&f);
    }
}

static void test_clip_load_namings_and_rejections(void) {
    clip_fixture f;
    if (clip_open(&f, "gelu")) return clip_close(&f);
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/te.safetensors", dir);
    sid_params other = {0};
    sid_clip m2;
    sid_clip_decl(&m2, &other, &f.cfg);
    sid_params_alloc(&other, 0);

    // our names carry "text_model." like every SD checkpoint; the golden file has transformers 5's bare names
    write_edited(&f.ps, path, NULL, NULL, AS_IS, 0);
    EXPECT(sid_clip_load(&other, path, NULL) == 0, "text_model. names: %s", sid_error());
    EXPECT(memcmp(other.data, f.ps.data, f.ps.total * sizeof(float)) == 0, "text_model. names load other values");
    // an SD1 single-file checkpoint: cond_stage_model.transformer. + the same names, plus position_ids
    {
        sid_st_entry *e = sid_calloc((size_t)(f.ps.n + 1) * sizeof *e);
        char(*names)[300] = sid_calloc((size_t)(f.ps.n + 1) * sizeof *names);
        int64_t pos[16];
        for (int i = 0; i < 16; i++) pos[i] = i;
        for (int i = 0; i < f.ps.n; i++) {
            snprintf(names[i], sizeof names[i], "cond_stage_model.transformer.%s", f.ps.items[i].name);
            e[i] = (sid_st_entry){.name = names[i], .dtype = SID_F32, .ndim = f.ps.items[i].ndim,
                                  .data = sid_p(&f.ps, i)};
            memcpy(e[i].shape, f.ps.items[i].shape, sizeof e[i].shape);
        }
        e[f.ps.n] = (sid_st_entry){.name = "cond_stage_model.transformer.text_model.embeddings.position_ids",
                                   .dtype = SID_I64, .ndim = 2, .shape = {1, 16}, .data = pos};
        EXPECT(sid_st_write(path, e, f.ps.n + 1, NULL, 0) == 0, "%s", sid_error());
        memset(other.data, 0, other.total * sizeof(float));
        EXPECT(sid_clip_load(&other, path, "cond_stage_model.transformer.") == 0, "LDM prefix: %s", sid_error());
        EXPECT(memcmp(other.data, f.ps.data, f.ps.total * sizeof(float)) == 0, "LDM prefix loads other values");
        free(names), free(e);
    }

    // broken files: one line naming the tensor
    const int victim = sid_params_find(&f.ps, "text_model.encoder.layers.1.mlp.fc1.weight");
    write_edited(&f.ps, path, NULL, NULL, DROP, victim);
    EXPECT(sid_clip_load(&other, path, NULL) == -1, "a file without a tensor loaded");
    expect_one_line("missing", "missing tensor 'text_model.encoder.layers.1.mlp.fc1.weight'");
    write_edited(&f.ps, path, NULL, NULL, EXTRA, 0);
    EXPECT(sid_clip_load(&other, path, NULL) == -1, "a file with an extra tensor loaded");
    expect_one_line("extra", "unexpected tensor 'decoder.unknown_layer.weight'");
    write_edited(&f.ps, path, NULL, NULL, RESHAPE, victim);
    EXPECT(sid_clip_load(&other, path, NULL) == -1, "a misshapen tensor loaded");
    expect_one_line("shape", "'text_model.encoder.layers.1.mlp.fc1.weight' has shape [16, 16]");
    // a config that does not match the weights: a 4-layer model, a 3-layer file
    sid_clip_config big = f.cfg;
    big.layers = 4;
    sid_params bigps = {0};
    sid_clip m3;
    sid_clip_decl(&m3, &bigps, &big);
    sid_params_alloc(&bigps, 0);
    char model[512];
    EXPECT(sid_clip_load(&bigps, data_path(model, sizeof model, "clip/gelu/model.safetensors"), NULL) == -1,
           "a 3-layer file loaded into a 4-layer model");
    expect_one_line("4 layers", "encoder.layers.3.");
    sid_clip_free(&m3), sid_params_free(&bigps);

    sid_clip_free(&m2), sid_params_free(&other);
    test_remove_tree(dir);
    clip_close(&f);
}

// ---------------------------------------------------------------- VAE: configs and counts
static void test_vae_config_counts(void) {
    char path[512];
    sid_vae_config c;
    EXPECT(sid_vae_config_load(&c, data_path(path, sizeof path, "vae/sd15-vae-config.json")) == 0, "%s", sid_error());
    sid_vae_config sd = sid_vae_config_sd();
    EXPECT(memcmp(&c, &sd, sizeof c) == 0, "SD1.5 vae/config.json differs from sid_vae_config_sd()");
    EXPECT(c.scaling_factor == 0.18215f, "scaling_factor default %g", c.scaling_factor);
    size_t enc = 0, dec = 0, all = sid_vae_param_count(&c, &enc, &dec);
    EXPECT(all == 83653863u, "AutoencoderKL counts %zu parameters, want 83,653,863", all);
    EXPECT(enc == 34163664u, "encoder + quant_conv count %zu, want 34,163,664", enc);
    EXPECT(dec == 49490199u, "decoder + post_quant_conv count %zu, want 49,490,199", dec);

    // names and shapes equal diffusers' state_dict of this config (written by the reference tool)
    sid_params ps = {0};
    sid_vae v;
    sid_vae_decl(&v, &ps, &c);
    EXPECT(ps.n == 248, "the SD VAE declares %d tensors, want 248", ps.n);
    gzFile z = gzopen(data_path(path, sizeof path, "vae/sd-vae-keys.txt.gz"), "rb");
    EXPECT(z != NULL, "cannot open %s", path);
    char line[512];
    int rows = 0, seen = 0;
    while (z && gzgets(z, line, sizeof line)) {
        char name[300], shape[100];
        if (line[0] == '#' || sscanf(line, "%299s %99[^\n]", name, shape) != 2) continue;
        rows++;
        int i = sid_params_find(&ps, name);
        if (i < 0) {
            EXPECT(0, "diffusers tensor %s is not declared", name);
            continue;
        }
        char mine[100];
        sid_shape_str(ps.items[i].ndim, ps.items[i].shape, mine, sizeof mine);
        EXPECT(strcmp(mine, shape) == 0, "%s: declared %s, diffusers has %s", name, mine, shape);
        seen++;
    }
    if (z) gzclose(z);
    EXPECT(rows == 248 && seen == 248, "%d diffusers keys listed, %d matched", rows, seen);
    sid_vae_free(&v);
    sid_params_free(&ps);

    // the tiny test config: non-default scaling factor, JSON nulls for unset keys
    EXPECT(sid_vae_config_load(&c, data_path(path, sizeof path, "vae/tiny/config.json")) == 0, "%s", sid_error());
    EXPECT(c.n_blocks == 2 && c.block_out[0] == 4 && c.block_out[1] == 8 && c.layers_per_block == 1 &&
               c.norm_groups == 2 && c.scaling_factor == 0.3f && c.use_quant_conv && c.mid_attention,
           "tiny config misread");
}

static void test_vae_config_errors(void) {
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    sid_vae_config c;
    static const struct {
        const char *json, *needle;
    } bad[] = {
        {"{\"block_out_channels\": [64, 128], \"down_block_types\": [\"DownEncoderBlock2D\", \"CrossAttnDownBlock2D\"],"
         " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
         "CrossAttnDownBlock2D"},
        {"{\"block_out_channels\": [64, 128], \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
         " \"up_block_types\": [\"UpDecoderBlock2D\", \"AttnUpDecoderBlock2D\"]}",
         "'up_block_types' entry 1"},
        {"{\"block_out_channels\": [64, 128], \"down_block_types\": [\"DownEncoderBlock2D\"],"
         " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}",
         "'down_block_types' has 1 entries"},
        {"{\"block_out_channels\": [64], \"act_fn\": \"relu\"}", "'act_fn'"},
        {"{\"block_out_channels\": [48], \"norm_num_groups\": 32}", "'norm_num_groups'"},
        {"{\"block_out_channels\": [64], \"shift_factor\": 0.1159}", "'shift_factor'"},
        {"{\"block_out_channels\": [64], \"scaling_factor\": \"0.18\"}", "'scaling_factor'"},
        {"{\"layers_per_block\": 2}", "'block_out_channels'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write_text(path, bad[i].json);
        EXPECT(sid_vae_config_load(&c, path) == -1, "accepted %s", bad[i].json);
        expect_one_line(bad[i].json, bad[i].needle);
        expect_one_line(bad[i].json, "config.json");
    }
    test_write_text(path, "{\"block_out_channels\": [64], \"use_quant_conv\": false, \"use_post_quant_conv\": false,"
                     " \"mid_block_add_attention\": false}");
    EXPECT(sid_vae_config_load(&c, path) == 0, "%s", sid_error());
    EXPECT(!c.use_quant_conv && !c.use_post_quant_conv && !c.mid_attention && c.layers_per_block == 1 &&
               c.norm_groups == 32 && c.latent_channels == 4,
           "switches or defaults misread");
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- VAE against diffusers
typedef struct {
    sid_vae_config cfg;
    sid_params ps;
    sid_vae v;
    sid_safetensors gold;
} vae_fixture;

static int vae_open(vae_fixture *f) {
    char path[512];
    memset(f, 0, sizeof *f);
    if (sid_vae_config_load(&f->cfg, data_path(path, sizeof path, "vae/tiny/config.json"))) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return -1;
    }
    sid_vae_decl(&f->v, &f->ps, &f->cfg);
    sid_params_alloc(&f->ps, 0);
    if (sid_vae_load(&f->ps, data_path(path, sizeof path, "vae/tiny/diffusion_pytorch_model.safetensors"), NULL) ||
        sid_st_open(&f->gold, data_path(path, sizeof path, "vae/tiny/golden.safetensors"))) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return -1;
    }
    return 0;
}

static void vae_close(vae_fixture *f) {
    sid_st_close(&f->gold);
    sid_vae_free(&f->v);
    sid_params_free(&f->ps);
}

typedef struct {
    float *image, *mean, *logvar;
} vae_results;

// Decode the golden latents and encode the golden pixels on be (the fixture's parameters move to be);
// the arena checks (nothing left in use, the workspace bounds) hold on every backend.
static void vae_run(vae_fixture *f, const sid_backend *be, const float *latents, const float *pixels, int B, int h,
                    int w, vae_results *r) {
    const int L = f->cfg.latent_channels;
    int H, W;
    sid_vae_image_size(&f->cfg, h, w, &H, &W);
    const size_t nz = (size_t)B * L * h * w, nx = (size_t)B * 3 * H * W;
    test_ctx t;
    ctx_init(&t, be, &f->ps, 16u << 20);
    sid_arena *act = &t.act;
    float *dz = dev_put(be, latents, nz * sizeof(float)), *dx = dev_put(be, pixels, nx * sizeof(float));
    float *image = dev_zeros(be, nx), *mean = dev_zeros(be, nz), *logvar = dev_zeros(be, nz);
    act->used = 64, act->peak = 64;  // something below, which decode must leave alone
    sid_vae_decode(&t.c, &f->v, image, dz, B, h, w);
    EXPECT(act->used == 64, "%s: decode left %zu arena bytes in use", be->name, act->used - 64);
    const size_t ws = sid_vae_decode_workspace(&f->cfg, h, w);
    EXPECT(act->peak - 64 <= ws, "%s: decode used %zu arena bytes, the workspace bound says %zu", be->name,
           act->peak - 64, ws);
    act->peak = act->used;
    sid_vae_encode(&t.c, &f->v, mean, logvar, dx, B, H, W);
    const size_t wse = sid_vae_encode_workspace(&f->cfg, H, W);
    EXPECT(act->peak - 64 <= wse, "%s: encode used %zu arena bytes, the workspace bound says %zu", be->name,
           act->peak - 64, wse);
    EXPECT(act->used == 64, "%s: encode left %zu arena bytes in use", be->name, act->used - 64);
    r->image = host_get(be, image, nx), r->mean = host_get(be, mean, nz), r->logvar = host_get(be, logvar, nz);
    be->free(dz), be->free(dx), be->free(image), be->free(mean), be->free(logvar);
    ctx_free(&t);
}

static void test_vae_matches_diffusers(void) {
    vae_results res[N_RUN_BACKENDS];
    memset(res, 0, sizeof res);
    const double tol = 1e-4;  // relative to the largest reference magnitude
    for (int k = 0; k < N_RUN_BACKENDS; k++) {
        const sid_backend *be = run_backends[k];
        const size_t live = guard_live_buffers();
        vae_fixture f;
        if (vae_open(&f)) {
            vae_close(&f);
            break;
        }
        const int B = 2, h = 3, w = 5, L = f.cfg.latent_channels;
        int H, W, h2, w2;
        sid_vae_image_size(&f.cfg, h, w, &H, &W);
        sid_vae_latent_size(&f.cfg, H, W, &h2, &w2);
        EXPECT(H == 6 && W == 10 && h2 == h && w2 == w, "sizes: image %dx%d, latent back %dx%d", H, W, h2, w2);
        const size_t nz = (size_t)B * L * h * w, nx = (size_t)B * 3 * H * W;
        float *latents = golden(&f.gold, "latents", nz), *want = golden(&f.gold, "image", nx);
        float *pixels = golden(&f.gold, "pixels", nx), *want_mean = golden(&f.gold, "mean", nz);
        float *want_logvar = golden(&f.gold, "logvar", nz);
        if (latents && want && pixels && want_mean && want_logvar) {
            vae_run(&f, be, latents, pixels, B, h, w, &res[k]);
            const double e = rel_err(res[k].image, want, nx);
            const double em = rel_err(res[k].mean, want_mean, nz), el = rel_err(res[k].logvar, want_logvar, nz);
            if (getenv("SID_TEST_VERBOSE"))
                printf("\n  vae %s decode %.1e, encode mean %.1e logvar %.1e", be->name, e, em, el);
            EXPECT(e <= tol, "%s: decoded image differs from diffusers by %.3g", be->name, e);
            EXPECT(em <= tol && el <= tol, "%s: encoder mean / logvar differ from diffusers by %.3g / %.3g", be->name,
                   em, el);
            if (k > 0) {
                expect_same_bits("decoded image", be->name, res[k].image, res[0].image, nx);
                expect_same_bits("encoder mean", be->name, res[k].mean, res[0].mean, nz);
                expect_same_bits("encoder logvar", be->name, res[k].logvar, res[0].logvar, nz);
            }
        }
        free(latents), free(want), free(pixels), free(want_mean), free(want_logvar);
        vae_close(&f);
        EXPECT(guard_live_buffers() == live, "vae on %s: %zu guard buffers left live", be->name,
               guard_live_buffers() - live);
    }
    for (int k = 0; k < N_RUN_BACKENDS; k++) free(res[k].image), free(res[k].mean), free(res[k].logvar);
}

// diffusers clamps logvar to [-30, 20]: with the logvar half of quant_conv's bias pushed to +-1000,
// channels 0-1 of logvar are exactly 20 and channels 2-3 exactly -30, on every backend.
static void test_vae_logvar_is_clamped(void) {
    for (int k = 0; k < N_RUN_BACKENDS; k++) {
        const sid_backend *be = run_backends[k];
        vae_fixture f;
        if (vae_open(&f)) return vae_close(&f);
        const int B = 2, L = f.cfg.latent_channels, H = 6, W = 10;
        int h, w;
        sid_vae_latent_size(&f.cfg, H, W, &h, &w);
        const int bi = sid_params_find(&f.ps, "quant_conv.bias");
        EXPECT(bi >= 0 && L == 4, "quant_conv.bias missing or latent_channels %d", L);
        if (bi < 0 || L != 4) return vae_close(&f);
        for (int ch = 0; ch < L; ch++) sid_p(&f.ps, bi)[L + ch] = ch < 2 ? 1000.0f : -1000.0f;
        const size_t nx = (size_t)B * 3 * H * W, nz = (size_t)B * L * h * w;
        float *pixels = golden(&f.gold, "pixels", nx);
        if (pixels) {
            test_ctx t;
            ctx_init(&t, be, &f.ps, 16u << 20);
            float *dx = dev_put(be, pixels, nx * sizeof(float)), *mean = dev_zeros(be, nz), *lv = dev_zeros(be, nz);
            sid_vae_encode(&t.c, &f.v, mean, lv, dx, B, H, W);
            float *got = host_get(be, lv, nz);
            size_t bad = 0;
            for (size_t i = 0; i < nz; i++) bad += got[i] != ((i / ((size_t)h * w)) % L < 2 ? 20.0f : -30.0f);
            EXPECT(bad == 0, "%s: %zu of %zu logvar values not clamped to exactly 20 / -30", be->name, bad, nz);
            free(got);
            be->free(dx), be->free(mean), be->free(lv);
            ctx_free(&t);
        }
        free(pixels);
        vae_close(&f);
    }
}

static int old_names(const char *ours, char *buf, size_t cap) {
    static const char *const from[] = {".to_q.", ".to_k.", ".to_v.", ".to_out.0."};
    static const char *const to[] = {".query.", ".key.", ".value.", ".proj_attn."};
    for (int i = 0; i < 4; i++) {
        const char *at = strstr(ours, from[i]);
        if (at) {
            snprintf(buf, cap, "%.*s%s%s", (int)(at - ours), ours, to[i], at + strlen(from[i]));
            return 0;
        }
    }
    snprintf(buf, cap, "%s", ours);
    return 0;
}

static void test_vae_load_namings_and_rejections(void) {
    vae_fixture f;
    if (vae_open(&f)) return vae_close(&f);
    char dir[64], path[128];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/vae.safetensors", dir);
    sid_params other = {0};
    sid_vae v2;
    sid_vae_decl(&v2, &other, &f.cfg);
    sid_params_alloc(&other, 0);

    // the 2022 naming of the mid attention, with the 1x1-conv shape [C, C, 1, 1] of LDM files
    sid_st_entry *e = sid_calloc((size_t)f.ps.n * sizeof *e);
    char(*names)[300] = sid_calloc((size_t)f.ps.n * sizeof *names);
    int renamed = 0;
    for (int i = 0; i < f.ps.n; i++) {
        const sid_param *p = &f.ps.items[i];
        old_names(p->name, names[i], sizeof names[i]);
        renamed += strcmp(names[i], p->name) != 0;
        e[i] = (sid_st_entry){.name = names[i], .dtype = SID_F16, .ndim = p->ndim};
        memcpy(e[i].shape, p->shape, sizeof p->shape);
        if (p->ndim == 2) e[i].ndim = 4, e[i].shape[2] = e[i].shape[3] = 1;
        uint16_t *h = sid_malloc(p->numel * 2 + 2);
        sid_convert_from_f32(h, SID_F16, sid_p(&f.ps, i), p->numel);
        e[i].data = h;
    }
    EXPECT(renamed == 16, "%d names renamed, want 8 weights + 8 biases", renamed);
    EXPECT(sid_st_write(path, e, f.ps.n, NULL, 0) == 0, "%s", sid_error());
    for (int i = 0; i < f.ps.n; i++) free((void *)e[i].data);
    free(e), free(names);
    EXPECT(sid_vae_load(&other, path, NULL) == 0, "old names: %s", sid_error());
    double worst = 0;
    for (size_t i = 0; i < f.ps.total; i++) worst = fmax(worst, fabs(other.data[i] - f.ps.data[i]));
    EXPECT(worst < 2e-3, "F16 copy with old names loads values off by %g", worst);

    const int victim = sid_params_find(&f.ps, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
    EXPECT(victim >= 0, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight not declared");
    write_edited(&f.ps, path, "first_stage_model.", NULL, DROP, victim);
    EXPECT(sid_vae_load(&other, path, "first_stage_model.") == -1, "a file without a tensor loaded");
    expect_one_line("missing", "missing tensor 'first_stage_model.decoder.up_blocks.1.resnets.0.conv_shortcut.weight'");
    write_edited(&f.ps, path, NULL, NULL, EXTRA, 0);
    EXPECT(sid_vae_load(&other, path, NULL) == -1, "a file with an extra tensor loaded");
    expect_one_line("extra", "unexpected tensor 'decoder.unknown_layer.weight'");
    write_edited(&f.ps, path, NULL, NULL, RESHAPE, victim);
    EXPECT(sid_vae_load(&other, path, NULL) == -1, "a misshapen tensor loaded");
    expect_one_line("shape", "'decoder.up_blocks.1.resnets.0.conv_shortcut.weight' has shape [2, 8, 1, 1]");

    sid_vae_free(&v2), sid_params_free(&other);
    test_remove_tree(dir);
    vae_close(&f);
}

TEST_LIST(T(test_clip_config_counts), T(test_clip_config_errors), T(test_clip_quick_gelu_matches_transformers),
          T(test_clip_gelu_matches_transformers), T(test_clip_rejects_bad_ids), T(test_clip_load_namings_and_rejections),
          T(test_vae_config_counts), T(test_vae_config_errors), T(test_vae_matches_diffusers), T(test_vae_logvar_is_clamped),
          T(test_vae_load_namings_and_rejections))
TEST_MAIN("clip_vae")
