// Evaluation metrics: the Fashion-MNIST loader on the Debian files (when installed), the
// classifier (finite-difference gradients, training, save/load, the shipped weights' accuracy),
// and the Frechet distance (closed forms, LAPACK against a naive Denman-Beavers reference).
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/fmnist.h"
#include "eval/classifier.h"
#include "eval/eval.h"
#include "eval/fid.h"
#include "harness.h"
#include "io/idx.h"
#include "io/json.h"

enum { IMG = SID_CLS_RES * SID_CLS_RES };

static const char *model_dir(void) {
    return getenv("SID_CLASSIFIER_DIR") ? getenv("SID_CLASSIFIER_DIR") : SID_CLS_DEFAULT_DIR;
}

// Whether the Debian Fashion-MNIST files are here; says so visibly when they are not.
static int have_data(const char *what) {
    if (sid_fmnist_available(NULL, 0) && sid_fmnist_available(NULL, 1)) return 1;
    printf(" SKIPPED (%s needs Fashion-MNIST in %s: %s) ...", what, sid_fmnist_default_dir(), SID_FMNIST_INSTALL);
    return 0;
}

static int contains(const char *s, const char *sub) { return strstr(s ? s : "", sub) != NULL; }

static void make_tmpdir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/sid_test_eval_XXXXXX");
    if (!mkdtemp(dir)) sid_die("mkdtemp failed");
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1200];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

// ---------------------------------------------------------------- data

static void test_fmnist_test_split(void) {
    if (!have_data("the loader check")) return;
    sid_fmnist d;
    EXPECT(sid_fmnist_load(&d, NULL, 0, 0) == 0, "load: %s", sid_error());
    if (test_failed()) return;
    EXPECT(d.n == 10000, "test images: %d", d.n);
    static const int first_labels[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) EXPECT(d.labels[i] == first_labels[i], "label %d: %d", i, d.labels[i]);
    int counts[10] = {0};
    for (int i = 0; i < d.n; i++) {
        EXPECT(d.labels[i] >= 0 && d.labels[i] < 10, "label %d out of range: %d", i, d.labels[i]);
        if (d.labels[i] >= 0 && d.labels[i] < 10) counts[d.labels[i]]++;
    }
    for (int k = 0; k < 10; k++) EXPECT(counts[k] == 1000, "class %d has %d test images", k, counts[k]);
    // image 0 (an ankle boot): raw byte sum 33456, max 255, row 14 cols 10..17, first lit pixel (7, 19)
    const float *x = d.images;
    double sum = 0, mx = -2, mn = 2;
    int border_ok = 1;
    for (int y = 0; y < 32; y++)
        for (int c = 0; c < 32; c++) {
            const float v = x[y * 32 + c];
            if (y < 2 || y >= 30 || c < 2 || c >= 30) border_ok &= v == -1.0f;
            else sum += (v + 1.0) * 127.5;
            mx = v > mx ? v : mx, mn = v < mn ? v : mn;
        }
    EXPECT(border_ok, "the 2-pixel border is not -1");
    EXPECT(fabs(sum - 33456) < 0.05, "pixel sum %.3f, want 33456", sum);
    EXPECT(mx == 1.0f && mn == -1.0f, "range [%g, %g], want [-1, 1]", mn, mx);
    static const int row14[8] = {0, 0, 98, 136, 110, 109, 110, 162};
    for (int c = 0; c < 8; c++) {
        const float want = row14[c] / 127.5f - 1.0f, got = x[(14 + 2) * 32 + 10 + c + 2];
        EXPECT(got == want, "pixel (14, %d): %.7f, want %.7f", 10 + c, got, want);
    }
    EXPECT(x[(7 + 2) * 32 + 19 + 2] > -1.0f && x[(7 + 2) * 32 + 18 + 2] == -1.0f, "first lit pixel moved");
    // every image: values in [-1, 1] and the border black
    int bad = 0;
    for (int i = 0; i < d.n && !bad; i++)
        for (int y = 0; y < 32; y++)
            for (int c = 0; c < 32; c++) {
                const float v = d.images[(size_t)i * IMG + y * 32 + c];
                if (!(v >= -1.0f && v <= 1.0f) || ((y < 2 || y >= 30 || c < 2 || c >= 30) && v != -1.0f)) bad = i + 1;
            }
    EXPECT(!bad, "image %d has a value outside [-1, 1] or a lit border", bad - 1);
    sid_fmnist_free(&d);
}

static void test_fmnist_train_split(void) {
    if (!have_data("the loader check")) return;
    sid_fmnist d;
    EXPECT(sid_fmnist_load(&d, NULL, 1, 1000) == 0, "load: %s", sid_error());
    if (test_failed()) return;
    EXPECT(d.n == 1000, "limit: %d images", d.n);
    EXPECT(d.labels[0] == 9 && d.labels[1] == 0 && d.labels[2] == 0 && d.labels[3] == 3, "first labels %d %d %d %d",
           d.labels[0], d.labels[1], d.labels[2], d.labels[3]);
    // the same bytes as the IDX reader sees
    char path[1024];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", sid_fmnist_default_dir());
    sid_idx raw;
    EXPECT(sid_idx_read(path, &raw) == 0, "idx: %s", sid_error());
    if (!test_failed()) {
        EXPECT(raw.ndim == 3 && raw.dims[0] == 60000 && raw.dims[1] == 28 && raw.dims[2] == 28,
               "train images: %d dims, [%lld, %lld, %lld]", raw.ndim, (long long)raw.dims[0], (long long)raw.dims[1],
               (long long)raw.dims[2]);
        int diff = 0;
        for (int i = 0; i < 1000; i++)
            for (int p = 0; p < 784; p++)
                diff += d.images[(size_t)i * IMG + (p / 28 + 2) * 32 + p % 28 + 2] !=
                        raw.data[(size_t)i * 784 + p] / 127.5f - 1.0f;
        EXPECT(diff == 0, "%d pixels differ from the IDX bytes", diff);
        sid_idx_free(&raw);
    }
    sid_fmnist_free(&d);
}

static void test_fmnist_missing(void) {
    sid_fmnist d;
    const char *bogus = "/nonexistent/sid-fashion-mnist";
    EXPECT(sid_fmnist_load(&d, bogus, 1, 0) == -1, "a bogus folder loaded");
    char e[1024];
    snprintf(e, sizeof e, "%s", sid_error());
    EXPECT(contains(e, "/nonexistent/sid-fashion-mnist/train-images-idx3-ubyte.gz"), "error names no file: %s", e);
    EXPECT(contains(e, "apt-get install dataset-fashion-mnist"), "error gives no install command: %s", e);
    EXPECT(!strchr(e, '\n'), "error is not one line: %s", e);
    EXPECT(d.images == NULL && d.n == 0, "output not cleared");
    EXPECT(!sid_fmnist_available(bogus, 0), "bogus folder reported available");
}

static void test_fmnist_names_and_pad(void) {
    EXPECT(strcmp(sid_fmnist_class_name(0), "T-shirt/top") == 0 && strcmp(sid_fmnist_class_name(9), "Ankle boot") == 0,
           "class names");
    EXPECT(sid_fmnist_class_name(10) == NULL && sid_fmnist_class_name(-1) == NULL, "out-of-range names");
    for (int k = 0; k < 10; k++)
        EXPECT(sid_fmnist_class_from_name(sid_fmnist_class_name(k)) == k, "name of class %d does not map back", k);
    EXPECT(sid_fmnist_class_from_name("ankle-BOOT") == 9 && sid_fmnist_class_from_name("t-shirt") == 0 &&
               sid_fmnist_class_from_name("sneakers") == -1 && sid_fmnist_class_from_name("") == -1,
           "name matching");
    uint8_t src[784];
    for (int i = 0; i < 784; i++) src[i] = (uint8_t)(i % 256);
    static float dst[IMG];
    sid_fmnist_pad(dst, src, 1);
    EXPECT(dst[0] == -1.0f && dst[31] == -1.0f && dst[33] == -1.0f && dst[2 * 32 + 1] == -1.0f, "border");
    EXPECT(dst[2 * 32 + 2] == -1.0f && dst[2 * 32 + 3] == 1.0f / 127.5f - 1.0f, "pixel (0,0)=0 and (0,1)=1");
    EXPECT(dst[(2 + 9) * 32 + 2 + 3] == 1.0f, "pixel 255 -> 1: %g", dst[(2 + 9) * 32 + 2 + 3]);  // 9*28+3 = 255
}

// ---------------------------------------------------------------- classifier

static double batch_loss(const sid_classifier *c, sid_arena *act, const float *x, const int32_t *y, int B) {
    const size_t mark = sid_arena_mark(act);
    sid_classifier_acts a;
    sid_classifier_forward(c, act, x, B, &a);
    const double l = sid_softmax_xent(NULL, a.logits, y, B, SID_CLS_CLASSES, NULL);
    sid_arena_reset(act, mark);
    return l;
}

static void check_gradients(sid_cls_arch arch) {
    enum { B = 3 };
    sid_classifier c;
    sid_classifier_init_arch(&c, arch, 1);
    sid_classifier_init_random(&c, test_seed);
    // GN weights and biases away from their 1/0 defaults, so their gradients are generic
    sid_rng r = sid_rng_new(test_seed + 1);
    for (int i = 0; i < (arch == SID_CLS_CNN ? SID_CLS_STAGES : 0); i++) {
        float *g = sid_p(&c.ps, c.norm[i].w), *b = sid_p(&c.ps, c.norm[i].b);
        sid_rng_uniform(&r, g, (size_t)c.norm[i].C);
        sid_rng_uniform(&r, b, (size_t)c.norm[i].C);
        for (int k = 0; k < c.norm[i].C; k++) g[k] = 0.5f + g[k], b[k] = 0.4f * b[k] - 0.2f;
    }
    static float x[B * IMG], dx[B * IMG];
    sid_rng_uniform(&r, x, B * IMG);
    for (int i = 0; i < B * IMG; i++) x[i] = 2 * x[i] - 1;
    const int32_t y[B] = {3, 7, 0};
    sid_arena act;
    sid_arena_init(&act, "test", sid_classifier_arena_bytes(B) * 2);
    sid_classifier_acts a;
    sid_classifier_forward(&c, &act, x, B, &a);
    float dlogits[B * SID_CLS_CLASSES];
    sid_softmax_xent(dlogits, a.logits, y, B, SID_CLS_CLASSES, NULL);
    memset(c.ps.grad, 0, c.ps.total * sizeof(float));
    memset(dx, 0, sizeof dx);
    sid_classifier_backward(&c, &act, &a, dlogits, dx);
    sid_arena_reset(&act, 0);

    // per tensor: the 3 entries with the largest gradient, by central differences in float
    int checked = 0;
    for (int t = 0; t < c.ps.n; t++) {
        const sid_param *p = &c.ps.items[t];
        float *w = c.ps.data + p->offset, *g = c.ps.grad + p->offset;
        int pick[3] = {-1, -1, -1};
        for (size_t i = 0; i < p->numel; i++)
            for (int k = 0; k < 3; k++)
                if (pick[k] < 0 || fabsf(g[i]) > fabsf(g[pick[k]])) {
                    for (int m = 2; m > k; m--) pick[m] = pick[m - 1];
                    pick[k] = (int)i;
                    break;
                }
        for (int k = 0; k < 3; k++) {
            if (pick[k] < 0) continue;
            const float w0 = w[pick[k]], h = 1e-2f * fmaxf(1.0f, fabsf(w0));
            w[pick[k]] = w0 + h;
            const double lp = batch_loss(&c, &act, x, y, B);
            w[pick[k]] = w0 - h;
            const double lm = batch_loss(&c, &act, x, y, B);
            w[pick[k]] = w0;
            const double fd = (lp - lm) / (2.0 * h), an = g[pick[k]];
            const double err = fabs(fd - an) / fmax(fabs(an), 1e-3);
            EXPECT(err < 0.01, "%s[%d]: backward %.6g, finite difference %.6g", p->name, pick[k], an, fd);
            checked++;
        }
    }
    // input gradient at a few interior pixels
    for (int k = 0; k < 4; k++) {
        int i = 0;  // the largest input gradient not checked yet
        for (int j = 1; j < B * IMG; j++)
            if (fabsf(dx[j]) > fabsf(dx[i])) i = j;
        const float x0 = x[i], h = 1e-2f;
        x[i] = x0 + h;
        const double lp = batch_loss(&c, &act, x, y, B);
        x[i] = x0 - h;
        const double lm = batch_loss(&c, &act, x, y, B);
        x[i] = x0;
        const double fd = (lp - lm) / (2.0 * h);
        EXPECT(fabs(fd - dx[i]) <= 0.01 * fmax(fabs(dx[i]), 1e-3), "dx[%d]: backward %.6g, finite difference %.6g", i,
               dx[i], fd);
        dx[i] = 0;  // the next pick is another input
    }
    EXPECT(checked >= 3 * c.ps.n - 2, "checked %d entries", checked);
    sid_arena_free(&act);
    sid_classifier_free(&c);
}

static void test_classifier_gradients(void) { check_gradients(SID_CLS_CNN); }
static void test_mlp_gradients(void) { check_gradients(SID_CLS_MLP); }

static void test_softmax_xent(void) {
    const float z[2 * 3] = {1, 2, 3, 0, 0, 0};
    const int32_t y[2] = {2, 1};
    float d[6];
    int right;
    const double l = sid_softmax_xent(d, z, y, 2, 3, &right);
    const double l0 = log(exp(1) + exp(2) + exp(3)) - 3, l1 = log(3.0);
    EXPECT(fabs(l - 0.5 * (l0 + l1)) < 1e-9, "loss %.9f", l);
    EXPECT(right == 1, "correct %d", right);  // row 1 is a three-way tie: arg-max 0
    const double p2 = exp(3) / (exp(1) + exp(2) + exp(3));
    EXPECT(fabsf(d[2] - (float)((p2 - 1) / 2)) < 1e-7f && fabsf(d[4] - (float)((1.0 / 3 - 1) / 2)) < 1e-7f &&
               fabsf(d[3] - (float)(1.0 / 6)) < 1e-7f,
           "dlogits %g %g %g", d[2], d[3], d[4]);
}

// Real images when the data set is here, else smooth random blobs with 10 labels.
static void some_images(float *x, int32_t *y, int n) {
    sid_fmnist d;
    if (sid_fmnist_available(NULL, 1) && sid_fmnist_load(&d, NULL, 1, n) == 0) {
        memcpy(x, d.images, (size_t)n * IMG * sizeof(float));
        memcpy(y, d.labels, (size_t)n * sizeof(int32_t));
        sid_fmnist_free(&d);
        return;
    }
    sid_rng r = sid_rng_new(test_seed + 7);
    for (int i = 0; i < n; i++) {
        y[i] = i % 10;
        for (int p = 0; p < IMG; p++) {
            const int py = p / 32, px = p % 32;
            x[(size_t)i * IMG + p] = (py / 4 + px / 4) % 10 == y[i] ? 0.8f : -0.8f;
        }
    }
    float noise[IMG];
    for (int i = 0; i < n; i++) {
        sid_rng_normal(&r, noise, IMG);
        for (int p = 0; p < IMG; p++) x[(size_t)i * IMG + p] += 0.1f * noise[p];
    }
}

static void test_classifier_training_lowers_loss(void) {
    enum { B = 32, STEPS = 12 };
    static float x[B * IMG];
    int32_t y[B];
    some_images(x, y, B);
    sid_classifier c;
    sid_classifier_init(&c, 1);
    sid_classifier_init_random(&c, test_seed);
    const sid_adam_cfg adam = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    sid_classifier_trainer t;
    sid_classifier_trainer_init(&t, &c, B, &adam);
    double first = 0, last = 0;
    int right = 0;
    for (int s = 0; s < STEPS; s++) {
        const double l = sid_classifier_train_step(&c, &t, x, y, B, 1e-3f, &right);
        if (s == 0) first = l;
        last = l;
    }
    EXPECT(first > 1.8 && first < 3.0, "initial loss %.4f is not near ln 10", first);
    EXPECT(last < 0.5 * first, "loss %.4f -> %.4f in %d steps", first, last, STEPS);
    EXPECT(t.act.peak <= t.act.cap, "arena");
    sid_classifier_trainer_free(&t);
    sid_classifier_free(&c);
}

static void test_classifier_batch_independence(void) {
    // GroupNorm is per image: features of an image do not depend on the batch it is run in
    enum { N = 70 };
    static float x[N * IMG], f_all[N * SID_CLS_FEATURES], f_one[SID_CLS_FEATURES], logits[N * SID_CLS_CLASSES];
    int32_t y[N], pred[N];
    some_images(x, y, N);
    sid_classifier c;
    sid_classifier_init(&c, 0);
    sid_classifier_init_random(&c, test_seed);
    sid_classifier_run(&c, x, N, f_all, logits, pred);
    sid_classifier_run(&c, x + 66 * IMG, 1, f_one, NULL, NULL);
    double diff = 0;
    for (int j = 0; j < SID_CLS_FEATURES; j++) diff = fmax(diff, fabs(f_one[j] - f_all[66 * SID_CLS_FEATURES + j]));
    EXPECT(diff < 1e-5, "features of image 66 alone vs in a batch differ by %g", diff);
    int arg_ok = 1;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int k = 1; k < 10; k++)
            if (logits[i * 10 + k] > logits[i * 10 + best]) best = k;
        arg_ok &= best == pred[i];
    }
    EXPECT(arg_ok, "predictions are not the arg-max of the logits");
    sid_classifier_free(&c);
}

static void test_classifier_save_load(void) {
    char dir[256], path[512];
    make_tmpdir(dir, sizeof dir);
    enum { N = 8 };
    static float x[N * IMG], la[N * 10], lb[N * 10];
    int32_t y[N];
    some_images(x, y, N);
    sid_classifier c, d;
    sid_classifier_init(&c, 0);
    sid_classifier_init_random(&c, test_seed);
    cJSON *info = cJSON_CreateObject();
    cJSON_AddNumberToObject(info, "test_accuracy", 0.5);
    EXPECT(sid_classifier_save(&c, dir, SID_F32, info) == 0, "save: %s", sid_error());
    cJSON_Delete(info);
    EXPECT(sid_classifier_load(&d, dir) == 0, "load: %s", sid_error());
    if (!test_failed()) {
        sid_classifier_run(&c, x, N, NULL, la, NULL);
        sid_classifier_run(&d, x, N, NULL, lb, NULL);
        EXPECT(memcmp(la, lb, sizeof la) == 0, "F32 round trip changes the logits");
        sid_classifier_free(&d);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg = sid_json_load(path);
    double acc = 0;
    EXPECT(cfg && sid_json_double(cfg, "test_accuracy", &acc, 0, 1, path) == 0 && acc == 0.5, "info not in config");
    // F16 weights load and predict nearly alike
    EXPECT(sid_classifier_save(&c, dir, SID_F16, NULL) == 0, "save f16: %s", sid_error());
    EXPECT(sid_classifier_load(&d, dir) == 0, "load f16: %s", sid_error());
    if (!test_failed()) {
        sid_classifier_run(&d, x, N, NULL, lb, NULL);
        double diff = 0;
        for (int i = 0; i < N * 10; i++) diff = fmax(diff, fabs(la[i] - lb[i]));
        EXPECT(diff < 2e-2, "F16 logits differ by %g", diff);
        sid_classifier_free(&d);
    }
    // a config of another architecture, and a missing folder, are refused in one line
    cJSON_ReplaceItemInObject(cfg, "architecture", cJSON_CreateString("resnet-50"));
    sid_json_save(path, cfg);
    cJSON_Delete(cfg);
    EXPECT(sid_classifier_load(&d, dir) == -1 && contains(sid_error(), "resnet-50") && contains(sid_error(), path),
           "wrong architecture: %s", sid_error());
    snprintf(path, sizeof path, "%s/nope", dir);
    EXPECT(sid_classifier_load(&d, path) == -1 && contains(sid_error(), "train-classifier"), "missing: %s",
           sid_error());
    sid_classifier_free(&c);
    remove_dir(dir);
}

// ---------------------------------------------------------------- FID

static double trace(const double *a, int n) {
    double t = 0;
    for (int i = 0; i < n; i++) t += a[(size_t)i * n + i];
    return t;
}

// A random SPD matrix X X^T / m + ridge I with X [n, m] normal.
static void random_spd(sid_rng *r, double *a, int n, int m, double ridge) {
    float *x = sid_malloc((size_t)n * m * sizeof(float));
    sid_rng_normal(r, x, (size_t)n * m);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < m; k++) s += (double)x[i * m + k] * x[j * m + k];
            a[(size_t)i * n + j] = s / m + (i == j ? ridge : 0);
        }
    free(x);
}

static void gauss_alloc(sid_gauss *g, int d) {
    g->d = d, g->n = 1000;
    g->mu = sid_calloc((size_t)d * sizeof(double));
    g->cov = sid_calloc((size_t)d * d * sizeof(double));
}

static void test_fid_identical_sets(void) {
    enum { N = 3000, D = 32 };
    static float f[N * D];
    sid_rng r = sid_rng_new(test_seed);
    sid_rng_normal(&r, f, N * D);
    for (int i = 0; i < N; i++)  // correlated, non-zero mean
        for (int j = 1; j < D; j++) f[i * D + j] += 0.5f * f[i * D + j - 1] + 0.1f * j;
    double fid = -1;
    EXPECT(sid_fid_features(f, N, f, N, D, &fid) == 0, "%s", sid_error());
    sid_gauss g;
    sid_gauss_fit(&g, f, N, D);
    const double tr = trace(g.cov, D);
    EXPECT(fabs(fid) < 1e-6 * tr, "FID of a set with itself: %.3g (trace %.3g)", fid, tr);
    // n < d: singular covariances still give a finite, non-negative distance
    double small = -1;
    EXPECT(sid_fid_features(f, 10, f + 10 * D, 10, D, &small) == 0 && isfinite(small) && small >= 0,
           "singular covariances: %g", small);
    EXPECT(sid_fid_features(f, 10, f, 10, D, &small) == 0 && fabs(small) < 1e-6 * tr, "singular, identical: %g", small);
    EXPECT(sid_fid_features(f, 1, f, 10, D, &small) == -1 && contains(sid_error(), "at least 2"), "n = 1 accepted");
    sid_gauss_free(&g);
}

static void test_fid_shifted_means(void) {
    enum { N = 2000, D = 24 };
    static float f[N * D];
    sid_rng r = sid_rng_new(test_seed + 2);
    sid_rng_normal(&r, f, N * D);
    sid_gauss a, b;
    sid_gauss_fit(&a, f, N, D);
    sid_gauss_fit(&b, f, N, D);
    double want = 0;
    for (int j = 0; j < D; j++) {
        const double dm = 0.25 * (j % 5) - 0.3;
        b.mu[j] += dm;
        want += dm * dm;
    }
    double fid = 0;
    EXPECT(sid_frechet_distance(&a, &b, &fid) == 0, "%s", sid_error());
    EXPECT(fabs(fid - want) < 1e-9 * (want + trace(a.cov, D)), "shifted means: %.12f, want |dmu|^2 = %.12f", fid, want);
    // through the features too: a constant shift of every row (exact in float: a power of two)
    static float g[N * D];
    for (int i = 0; i < N * D; i++) g[i] = f[i] + 4.0f;
    EXPECT(sid_fid_features(f, N, g, N, D, &fid) == 0 && fabs(fid - 16.0 * D) < 1e-6 * 16 * D,
           "features + 4: %.9f, want %d", fid, 16 * D);
    sid_gauss_free(&a), sid_gauss_free(&b);
}

static void test_fid_diagonal_closed_form(void) {
    // diagonal covariances: d^2 = |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2
    enum { D = 40 };
    sid_gauss a, b;
    gauss_alloc(&a, D), gauss_alloc(&b, D);
    double want = 0;
    for (int i = 0; i < D; i++) {
        a.mu[i] = 0.1 * i, b.mu[i] = 0.1 * i + (i % 3 == 0 ? 0.5 : 0);
        a.cov[i * D + i] = 0.5 + 0.1 * i, b.cov[i * D + i] = 2.0 / (1 + i);
        want += (a.mu[i] - b.mu[i]) * (a.mu[i] - b.mu[i]) +
                pow(sqrt(a.cov[i * D + i]) - sqrt(b.cov[i * D + i]), 2);
    }
    double fid = 0;
    EXPECT(sid_frechet_distance(&a, &b, &fid) == 0 && fabs(fid - want) < 1e-10 * want, "diagonal: %.12f, want %.12f",
           fid, want);
    sid_gauss c;
    gauss_alloc(&c, D + 1);
    EXPECT(sid_frechet_distance(&a, &c, &fid) == -1 && contains(sid_error(), "do not match"), "widths not checked");
    sid_gauss_free(&a), sid_gauss_free(&b), sid_gauss_free(&c);
}

static void test_fid_lapack_vs_naive(void) {
    enum { D = 64 };
    sid_rng r = sid_rng_new(test_seed + 3);
    static double a[D * D], s[D * D], s2[D * D];
    for (int rep = 0; rep < 3; rep++) {
        random_spd(&r, a, D, 2 * D, 0.05 + 0.5 * rep);
        EXPECT(sid_sqrtm_psd(a, D, s) == 0, "%s", sid_error());
        const int it = sid_sqrtm_denman_beavers(a, D, s2, 100);
        EXPECT(it > 0, "Denman-Beavers: %s", sid_error());
        double num = 0, den = 0, back = 0;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                num += pow(s[i * D + j] - s2[i * D + j], 2), den += pow(s2[i * D + j], 2);
                double sq = 0;
                for (int k = 0; k < D; k++) sq += s[i * D + k] * s[k * D + j];
                back = fmax(back, fabs(sq - a[i * D + j]));
            }
        EXPECT(sqrt(num / den) < 1e-8, "rep %d: sqrtm LAPACK vs Denman-Beavers (%d iterations): %.3g relative", rep, it,
               sqrt(num / den));
        EXPECT(back < 1e-10 * trace(a, D), "rep %d: sqrtm(a)^2 - a: %.3g", rep, back);
        // the whole distance, symmetric LAPACK form vs pytorch-fid's form with Denman-Beavers
        sid_gauss g1, g2;
        gauss_alloc(&g1, D), gauss_alloc(&g2, D);
        memcpy(g1.cov, a, sizeof a);
        random_spd(&r, g2.cov, D, 3 * D, 0.1);
        float mu[2 * D];
        sid_rng_normal(&r, mu, 2 * D);
        for (int j = 0; j < D; j++) g1.mu[j] = 0.3 * mu[j], g2.mu[j] = 0.3 * mu[D + j];
        double fl = 0, fn = 0;
        EXPECT(sid_frechet_distance(&g1, &g2, &fl) == 0, "%s", sid_error());
        EXPECT(sid_frechet_distance_naive(&g1, &g2, &fn) == 0, "%s", sid_error());
        EXPECT(fabs(fl - fn) < 1e-8 * fabs(fn), "rep %d: FID LAPACK %.12g vs naive %.12g", rep, fl, fn);
        EXPECT(fl > 1, "rep %d: FID %.3g of different random Gaussians", rep, fl);
        sid_gauss_free(&g1), sid_gauss_free(&g2);
    }
}

static void test_fid_different_sets_synthetic(void) {
    // two sets from different Gaussians are far apart; two draws of the same one are close
    enum { N = 2000, D = 16 };
    static float a[N * D], b[N * D], c[N * D];
    sid_rng r = sid_rng_new(test_seed + 4);
    sid_rng_normal(&r, a, N * D);
    sid_rng_normal(&r, b, N * D);
    sid_rng_normal(&r, c, N * D);
    for (int i = 0; i < N * D; i++) c[i] = 2.0f * c[i] + (i % D < 4 ? 1.5f : 0);
    double same = 0, diff = 0;
    EXPECT(sid_fid_features(a, N, b, N, D, &same) == 0 && sid_fid_features(a, N, c, N, D, &diff) == 0, "%s",
           sid_error());
    EXPECT(same < 0.1 && diff > 20, "same %.4f (want < 0.1), different %.4f (want > 20)", same, diff);
}

// ---------------------------------------------------------------- the shipped classifier

static void test_shipped_classifier(void) {
    if (!have_data("the shipped classifier check")) return;
    if (getenv("SID_ASAN")) {  // 2,000 images through the CNN: a minute under ASan; training runs there above
        printf(" SKIPPED under ASan (make asan sets SID_ASAN) ...");
        return;
    }
    sid_classifier c;
    EXPECT(sid_classifier_load(&c, model_dir()) == 0, "%s (run the tests from the repository root)", sid_error());
    if (test_failed()) return;
    enum { N = 2000 };
    sid_fmnist test;
    EXPECT(sid_fmnist_load(&test, NULL, 0, N) == 0, "%s", sid_error());
    float *feat = sid_malloc((size_t)N * SID_CLS_FEATURES * sizeof(float));
    int32_t *pred = sid_malloc(N * sizeof(int32_t));
    sid_classifier_run(&c, test.images, N, feat, NULL, pred);
    int right = 0;
    for (int i = 0; i < N; i++) right += pred[i] == test.labels[i];
    EXPECT(right >= 0.89 * N, "accuracy on the first %d test images: %.2f%%", N, 100.0 * right / N);
    printf(" [accuracy %.2f%%]", 100.0 * right / N);

    // real features: two classes are far apart, two halves of one set are close
    float *fa = sid_malloc((size_t)N * SID_CLS_FEATURES * sizeof(float));
    float *fb = sid_malloc((size_t)N * SID_CLS_FEATURES * sizeof(float));
    int na = 0, nb = 0;
    for (int i = 0; i < N; i++) {  // trousers (1) vs bags (8)
        if (test.labels[i] == 1) memcpy(fa + (size_t)na++ * SID_CLS_FEATURES, feat + (size_t)i * SID_CLS_FEATURES, SID_CLS_FEATURES * sizeof(float));
        if (test.labels[i] == 8) memcpy(fb + (size_t)nb++ * SID_CLS_FEATURES, feat + (size_t)i * SID_CLS_FEATURES, SID_CLS_FEATURES * sizeof(float));
    }
    double halves = 0, classes = 0;
    EXPECT(sid_fid_features(feat, N / 2, feat + (size_t)(N / 2) * SID_CLS_FEATURES, N / 2, SID_CLS_FEATURES, &halves) == 0,
           "%s", sid_error());
    EXPECT(sid_fid_features(fa, na, fb, nb, SID_CLS_FEATURES, &classes) == 0, "%s", sid_error());
    EXPECT(classes > 20 * halves && classes > 10, "FID trousers vs bags %.3f, halves of the test set %.3f", classes,
           halves);
    printf(" [FID halves %.3f, trousers vs bags %.1f]", halves, classes);

    // sid_eval_images: test images judged against test statistics with their own labels
    sid_gauss ref;
    EXPECT(sid_gauss_fit(&ref, feat, N, SID_CLS_FEATURES) == 0, "%s", sid_error());
    sid_eval_result res;
    EXPECT(sid_eval_images(&c, &ref, test.images, test.labels, N, &res) == 0, "%s", sid_error());
    EXPECT(res.n == N && fabs(res.alignment - (double)right / N) < 1e-12 && fabs(res.fid) < 1e-6,
           "eval of the reference set itself: n %d, alignment %.4f, FID %.3g", res.n, res.alignment, res.fid);
    EXPECT(res.confidence > 0.8 && res.confidence <= 1, "confidence %.3f", res.confidence);
    int total = 0;
    for (int k = 0; k < SID_CLS_CLASSES; k++) total += res.class_count[k];
    EXPECT(total == N, "class counts sum to %d", total);
    // wrong prompts (on a quarter of the set): alignment collapses
    enum { Q = N / 4 };
    int *wrong = sid_malloc(Q * sizeof(int));
    for (int i = 0; i < Q; i++) wrong[i] = (test.labels[i] + 5) % 10;
    sid_eval_result bad;
    EXPECT(sid_eval_images(&c, &ref, test.images, wrong, Q, &bad) == 0 && bad.alignment < 0.05,
           "wrong prompts: alignment %.3f", bad.alignment);
    wrong[5] = 10;
    EXPECT(sid_eval_images(&c, &ref, test.images, wrong, Q, &bad) == -1 && contains(sid_error(), "class 10"),
           "prompt 10 accepted");
    // NULL prompts: FID only; noise images are far from the test set
    float *noise = sid_aligned_alloc((size_t)Q * IMG * sizeof(float));
    sid_rng r = sid_rng_new(test_seed + 9);
    sid_rng_uniform(&r, noise, (size_t)Q * IMG);
    for (size_t i = 0; i < (size_t)Q * IMG; i++) noise[i] = 2 * noise[i] - 1;
    EXPECT(sid_eval_images(&c, &ref, noise, NULL, Q, &bad) == 0 && isnan(bad.alignment) && bad.fid > 50 * halves,
           "noise: FID %.3f (halves %.3f)", bad.fid, halves);
    printf(" [FID noise %.1f]", bad.fid);
    free(noise), free(wrong), free(fa), free(fb), free(feat), free(pred);
    sid_gauss_free(&ref);
    sid_fmnist_free(&test);
    sid_classifier_free(&c);
}

static void test_quantize(void) {
    const float in[6] = {-1.0f, 1.0f, 0.0f, 2.5f, NAN, -1.0f + 1.0f / 127.5f * 0.49f};
    float out[6];
    sid_eval_quantize(out, in, 6);
    EXPECT(out[0] == -1.0f && out[1] == 1.0f && out[3] == 1.0f && out[4] == -1.0f && out[5] == -1.0f,
           "quantize: %g %g %g %g %g", out[0], out[1], out[3], out[4], out[5]);
    EXPECT(fabsf(out[2] - (128 / 127.5f - 1.0f)) < 1e-7f, "0 -> byte 128: %g", out[2]);
}

TEST_LIST(T(test_fmnist_test_split), T(test_fmnist_train_split), T(test_fmnist_missing), T(test_fmnist_names_and_pad),
          T(test_softmax_xent), T(test_classifier_gradients), T(test_mlp_gradients), T(test_classifier_training_lowers_loss),
          T(test_classifier_batch_independence), T(test_classifier_save_load), T(test_fid_identical_sets),
          T(test_fid_shifted_means), T(test_fid_diagonal_closed_form), T(test_fid_lapack_vs_naive),
          T(test_fid_different_sets_synthetic), T(test_quantize), T(test_shipped_classifier))
TEST_MAIN("eval")
