// The FID Inception-v3 and the Frechet distance against tests/data/fid (tools/reference/fid_reference.py):
// the declared parameters are pytorch-fid's state dict, the pool3 features equal pytorch-fid's
// network on the same hashed weights and inputs (CPU, guard device, CUDA when usable), the loader
// reads what it should and rejects what it should, and FID equals the protocol's scipy computation.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/error.h"
#include "eval/fid.h"
#include "harness.h"
#include "io/safetensors.h"
#include "models/inception.h"
#include "ops/backend.h"
#include "ops/guard/guard.h"

static void fill_hashed(sid_params *ps) {
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        const uint64_t seed = test_fnv1a64(p->name);
        float *x = sid_p(ps, i);
        const double fan_in = p->ndim == 4 ? (double)p->shape[1] * p->shape[2] * p->shape[3] : 1;
        for (size_t j = 0; j < p->numel; j++) {
            const double u = test_hashed_unit(seed, j);
            double v;
            if (test_ends_with(p->name, "conv.weight")) v = (2.0 * u - 1.0) * sqrt(6.0 / fan_in);
            else if (test_ends_with(p->name, "bn.weight")) v = 0.8 + 0.4 * u;
            else if (test_ends_with(p->name, "bn.running_var")) v = 0.5 + u;
            else v = 0.2 * u - 0.1;
            x[j] = (float)v;
        }
    }
}
static float *hashed_pixels(int N, int S) {
    char name[32];
    snprintf(name, sizeof name, "input.S%d", S);
    const size_t n = (size_t)N * 3 * S * S;
    float *x = sid_malloc(n * sizeof(float));
    const uint64_t seed = test_fnv1a64(name);
    for (size_t j = 0; j < n; j++) x[j] = (float)(255.0 * test_hashed_unit(seed, j));
    return x;
}

static void hashed_file_params(sid_params *ps) {
    *ps = (sid_params){0};
    sid_inception_decl_file(ps);
    sid_params_alloc(ps, 0);
    fill_hashed(ps);
}

static void data_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/fid/%s", test_data_dir(), name); }

// ---------------------------------------------------------------- the declaration is pytorch-fid's state dict
static void test_parameters_are_pytorch_fid_state_dict(void) {
    char path[512], line[256];
    data_path(path, sizeof path, "inception_keys.txt");
    FILE *f = fopen(path, "r");
    EXPECT(f, "%s: cannot open (regenerate with tools/reference/fid_reference.py)", path);
    if (!f) return;
    sid_params ps = {0};
    sid_inception_decl_file(&ps);
    int seen = 0, ignored = 0;
    while (fgets(line, sizeof line, f)) {
        char name[200], shape[64];
        if (sscanf(line, "%199s [%63[^]]]", name, shape) < 1) continue;
        if (test_ends_with(name, "num_batches_tracked") || !strncmp(name, "fc.", 3)) {
            ignored++;
            continue;
        }
        const int i = sid_params_find(&ps, name);
        EXPECT(i >= 0, "pytorch-fid's '%s' is not declared", name);
        if (i < 0) continue;
        seen++;
        char mine[64] = "";
        for (int d = 0; d < ps.items[i].ndim; d++)
            snprintf(mine + strlen(mine), sizeof mine - strlen(mine), "%s%lld", d ? ", " : "", (long long)ps.items[i].shape[d]);
        EXPECT(!strcmp(mine, shape), "'%s': declared [%s], pytorch-fid has [%s]", name, mine, shape);
    }
    fclose(f);
    EXPECT(seen == ps.n, "%d of the %d declared parameters are in pytorch-fid's state dict", seen, ps.n);
    EXPECT(seen == 94 * 5 && ignored > 0, "%d parameters matched (94 convs x 5 expected), %d ignored", seen, ignored);
    sid_params_free(&ps);
}

// ---------------------------------------------------------------- features equal pytorch-fid's
static float *features_on(const sid_backend *be, sid_params *file, const float *pixels, int N, int S) {
    sid_inception *m = sid_inception_from_params(file, be, "hashed weights");
    EXPECT(m, "%s", sid_error());
    if (!m) return NULL;
    sid_arena act, meta;
    sid_backend_arena_init(&act, be, "inception activations", (size_t)N * sid_inception_act_bytes(S) + (1u << 20));
    sid_arena_init(&meta, "inception meta", 1u << 16);
    const sid_ctx c = {.ps = NULL, .act = &act, .be = be, .meta = &meta};
    const size_t np = (size_t)N * 3 * S * S, nf = (size_t)N * SID_INCEPTION_FEATURES;
    float *dpix = be->alloc(np * sizeof(float)), *dfeat = be->alloc(nf * sizeof(float));
    be->upload(dpix, pixels, np * sizeof(float));
    EXPECT(sid_inception_forward(&c, m, dfeat, dpix, N, S) == 0, "%s", sid_error());
    float *h = sid_malloc(nf * sizeof(float));
    be->download(h, dfeat, nf * sizeof(float));
    be->free(dpix);
    be->free(dfeat);
    sid_arena_free(&act);
    sid_arena_free(&meta);
    sid_inception_free(m);
    return h;
}

static double max_rel(const float *a, const float *b, size_t n) {
    double scale = 0, e = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / (scale > 0 ? scale : 1);
}

static void check_golden(int N, int S) {
    char path[512], name[32];
    data_path(path, sizeof path, "inception_golden.safetensors");
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    snprintf(name, sizeof name, "features.S%d", S);
    const sid_st_tensor *t = sid_st_find(&st, name);
    const size_t nf = (size_t)N * SID_INCEPTION_FEATURES;
    EXPECT(t && (size_t)sid_shape_numel(t->ndim, t->shape) == nf, "%s: no tensor %s of %zu values", path, name, nf);
    if (!t || (size_t)sid_shape_numel(t->ndim, t->shape) != nf) {
        sid_st_close(&st);
        return;
    }
    float *want = sid_malloc(nf * sizeof(float));
    sid_st_read_f32(&st, t, want);
    sid_st_close(&st);
    float *pixels = hashed_pixels(N, S), *cpu = NULL;
    const sid_backend *be;
    for (int b = 0; (be = sid_backend_at(b)); b++) {  // the CPU first, then the guard device, then CUDA
        if (!be->available()) {
            printf("\n  SKIP backend %s: not usable on this machine", be->name);
            continue;
        }
        sid_params file;
        hashed_file_params(&file);
        float *got = features_on(be, &file, pixels, N, S);
        if (!got) continue;
        const double e = max_rel(got, want, nf);
        if (getenv("SID_TEST_VERBOSE")) printf("\n  %s S=%d: max |diff| / max |pytorch-fid| = %.2e", be->name, S, e);
        // Folded batch norms and another summation order than PyTorch's over 94 layers.
        EXPECT(e < 5e-6, "%s, %d px: pool3 features differ from pytorch-fid's by %.3g (relative to the largest)",
               be->name, S, e);
        if (be == &sid_backend_guard && cpu) {
            size_t diff = 0;
            for (size_t i = 0; i < nf; i++) diff += memcmp(&got[i], &cpu[i], sizeof(float)) != 0;
            EXPECT(diff == 0, "guard device: %zu of %zu features differ from the CPU's bits", diff, nf);
        }
        if (be == &sid_backend_cpu) cpu = got;
        else free(got);
    }
    free(cpu);
    free(pixels);
    free(want);
}

static void test_features_match_pytorch_fid_299(void) { check_golden(2, 299); }
static void test_features_match_pytorch_fid_139(void) { check_golden(1, 139); }

// A slightly wrong network must move the features well beyond the tolerance: the comparison
// above can fail.
static void test_golden_check_can_fail(void) {
    sid_params file;
    hashed_file_params(&file);
    // one batch-norm mean of the last block shifted: the features must move beyond the tolerance
    const int i = sid_params_find(&file, "Mixed_7c.branch_pool.bn.running_mean");
    EXPECT(i >= 0, "no Mixed_7c.branch_pool.bn.running_mean");
    if (i < 0) {
        sid_params_free(&file);
        return;
    }
    sid_p(&file, i)[0] -= 1.0f;
    float *pixels = hashed_pixels(1, 139);
    float *got = features_on(&sid_backend_cpu, &file, pixels, 1, 139);
    sid_params ok;
    hashed_file_params(&ok);
    float *ref = features_on(&sid_backend_cpu, &ok, pixels, 1, 139);
    if (got && ref) {
        const double e = max_rel(got, ref, SID_INCEPTION_FEATURES);
        EXPECT(e > 1e-3, "a shifted batch-norm mean moved the features by only %.3g", e);
    }
    free(got);
    free(ref);
    free(pixels);
}

// ---------------------------------------------------------------- the loader
static void test_loader_reads_and_rejects(void) {
    char dir[] = "/tmp/sid_inception_XXXXXX";
    EXPECT(mkdtemp(dir), "mkdtemp");
    char path[300];
    snprintf(path, sizeof path, "%s/pt_inception.safetensors", dir);
    sid_params file;
    hashed_file_params(&file);
    EXPECT(sid_params_save(&file, path, SID_F32) == 0, "%s", sid_error());
    float *pixels = hashed_pixels(1, 139);
    sid_inception *m = sid_inception_load(path, NULL);
    EXPECT(m, "%s", sid_error());
    float *direct = features_on(&sid_backend_cpu, &file, pixels, 1, 139);  // takes file
    if (m && direct) {
        sid_arena act;
        sid_arena_init(&act, "act", sid_inception_act_bytes(139) + (1u << 20));
        const sid_ctx c = {.act = &act};
        float feat[SID_INCEPTION_FEATURES];
        EXPECT(sid_inception_forward(&c, m, feat, pixels, 1, 139) == 0, "%s", sid_error());
        EXPECT(!memcmp(feat, direct, sizeof feat), "the loaded file gives other features than its parameters");
        EXPECT(sid_inception_forward(&c, m, feat, pixels, 1, 60) != 0 && strstr(sid_error(), "75"),
               "60 px accepted: '%s'", sid_error());
        sid_arena_free(&act);
    }
    sid_inception_free(m);
    free(direct);
    free(pixels);

    // a missing tensor and a missing file: one line naming the file and the tensor
    sid_params part = {0};
    sid_inception_decl_file(&part);
    sid_params_alloc(&part, 0);
    fill_hashed(&part);
    char drop[300];
    snprintf(drop, sizeof drop, "%s/missing.safetensors", dir);
    sid_st_entry *e = sid_malloc(sizeof *e * (size_t)part.n);
    int n = 0;
    for (int i = 0; i < part.n; i++) {
        if (!strcmp(part.items[i].name, "Mixed_6c.branch7x7_2.bn.running_var")) continue;
        e[n] = (sid_st_entry){part.items[i].name, SID_F32, part.items[i].ndim, {0}, sid_p(&part, i)};
        memcpy(e[n].shape, part.items[i].shape, sizeof part.items[i].shape);
        n++;
    }
    EXPECT(sid_st_write(drop, e, n, NULL, 0) == 0, "%s", sid_error());
    EXPECT(!sid_inception_load(drop, NULL) && strstr(sid_error(), "Mixed_6c.branch7x7_2.bn.running_var") &&
               strstr(sid_error(), drop),
           "a missing tensor gives '%s'", sid_error());
    // a negative variance
    const int v = sid_params_find(&part, "Conv2d_4a_3x3.bn.running_var");
    sid_p(&part, v)[3] = -0.5f;
    snprintf(drop, sizeof drop, "%s/negvar.safetensors", dir);
    EXPECT(sid_params_save(&part, drop, SID_F32) == 0, "%s", sid_error());
    EXPECT(!sid_inception_load(drop, NULL) && strstr(sid_error(), "Conv2d_4a_3x3.bn.running_var") &&
               strstr(sid_error(), "negative"),
           "a negative variance gives '%s'", sid_error());
    EXPECT(!sid_inception_load("/nonexistent/pt_inception.safetensors", NULL) && strstr(sid_error(), "/nonexistent"),
           "a missing file gives '%s'", sid_error());
    free(e);
    sid_params_free(&part);
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- Frechet distance against scipy
static void test_frechet_matches_scipy(void) {
    char path[512];
    data_path(path, sizeof path, "frechet_golden.safetensors");
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    static const char *const sets[][3] = {{"a", "b", "fid"}, {"a_small", "b_small", "fid_singular"}};
    for (int k = 0; k < 2; k++) {
        const sid_st_tensor *ta = sid_st_find(&st, sets[k][0]), *tb = sid_st_find(&st, sets[k][1]);
        const cJSON *want = st.metadata ? cJSON_GetObjectItemCaseSensitive(st.metadata, sets[k][2]) : NULL;
        EXPECT(ta && tb && cJSON_IsString(want), "%s: no %s / %s / metadata %s", path, sets[k][0], sets[k][1], sets[k][2]);
        if (!ta || !tb || !cJSON_IsString(want)) continue;
        const int d = (int)ta->shape[1];
        float *a = sid_malloc(sizeof(float) * (size_t)(ta->shape[0] * d)), *b = sid_malloc(sizeof(float) * (size_t)(tb->shape[0] * d));
        sid_st_read_f32(&st, ta, a);
        sid_st_read_f32(&st, tb, b);
        double got = -1;
        EXPECT(sid_fid_features(a, ta->shape[0], b, tb->shape[0], d, &got) == 0, "%s", sid_error());
        const double w = strtod(want->valuestring, NULL), rel = fabs(got - w) / w;
        if (getenv("SID_TEST_VERBOSE")) printf("\n  %s: sid %.12g scipy %.12g rel %.2e", sets[k][2], got, w, rel);
        // the singular case: scipy's sqrtm of a singular product is itself accurate only to ~1e-7
        EXPECT(rel < (k == 0 ? 1e-9 : 1e-6), "%s: sid %.12g, scipy %.12g (relative %.3g)", sets[k][2], got, w, rel);
        // from the rows against a fit: the n x n route when n - 1 < d (the singular set), else the same call
        sid_gauss gb;
        double rows = -1;
        EXPECT(sid_gauss_fit(&gb, b, tb->shape[0], d) == 0 &&
                   sid_frechet_distance_rows(a, ta->shape[0], d, &gb, &rows) == 0,
               "%s", sid_error());
        EXPECT(fabs(rows - w) / w < (k == 0 ? 1e-9 : 1e-6), "%s from rows: sid %.12g, scipy %.12g", sets[k][2], rows, w);
        sid_gauss_free(&gb);
        free(a);
        free(b);
    }
    sid_st_close(&st);
}

TEST_LIST(T(test_parameters_are_pytorch_fid_state_dict), T(test_features_match_pytorch_fid_299),
          T(test_features_match_pytorch_fid_139), T(test_golden_check_can_fail), T(test_loader_reads_and_rejects),
          T(test_frechet_matches_scipy))
TEST_MAIN("inception")
