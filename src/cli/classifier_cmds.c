// `sid train-classifier`: trains the evaluation classifier (eval/classifier.h) on the
// Fashion-MNIST training set and writes DIR/classifier.safetensors + DIR/config.json.
// `sid eval`: FID and alignment of a set of images (eval/eval.h), or the real-vs-real floor.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/fmnist.h"
#include "eval/classifier.h"
#include "eval/eval.h"
#include "eval/panel.h"
#include "io/safetensors.h"

// Declared here until cli/commands.h lists them (identical prototypes there are fine).
int cmd_train_classifier(int argc, char **argv);
int cmd_eval(int argc, char **argv);

enum { IMG = SID_CLS_RES * SID_CLS_RES };

static long parse_long(const char *flag, const char *s, long lo, long hi) {
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !end || *end || end == s || v < lo || v > hi) sid_die("%s: expected an integer from %ld to %ld", flag, lo, hi);
    return v;
}

static double parse_double(const char *flag, const char *s, double lo, double hi) {
    char *end = NULL;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !end || *end || end == s || !(v >= lo && v <= hi)) sid_die("%s: expected a number from %g to %g", flag, lo, hi);
    return v;
}

// Copies image src into dst, mirrored left-right when flip, moved by (dx, dy) with -1 (black) filling.
static void augment(float *dst, const float *src, int flip, int dx, int dy) {
    const int R = SID_CLS_RES;
    for (int y = 0; y < R; y++)
        for (int x = 0; x < R; x++) {
            const int sy = y - dy, sx0 = x - dx, sx = flip ? R - 1 - sx0 : sx0;
            dst[y * R + x] = sy >= 0 && sy < R && sx0 >= 0 && sx0 < R ? src[sy * R + sx] : -1.0f;
        }
}

static const char *train_usage =
    "usage: sid train-classifier [--arch cnn|mlp] [--epochs N] [--batch N] [--lr X] [--seed N] [--out DIR] [--threads N]\n"
    "                            [--data DIR] [--limit N] [--no-augment] [--dtype f16|f32]";

int cmd_train_classifier(int argc, char **argv) {
    int epochs = 4, batch = 128, limit = 0, aug = 1;
    uint64_t seed = 0;
    double lr = 1e-3;
    const char *out = NULL, *data = NULL, *dtype_name = "f16", *arch_name = "cnn";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--epochs") == 0) epochs = (int)parse_long(a, v, 1, 1000), i++;
        else if (strcmp(a, "--batch") == 0) batch = (int)parse_long(a, v, 1, 4096), i++;
        else if (strcmp(a, "--lr") == 0) lr = parse_double(a, v, 1e-8, 1), i++;
        else if (strcmp(a, "--seed") == 0) seed = (uint64_t)parse_long(a, v, 0, 2147483647L), i++;
        else if (strcmp(a, "--threads") == 0) sid_threads_set((int)parse_long(a, v, 1, 1024)), i++;
        else if (strcmp(a, "--limit") == 0) limit = (int)parse_long(a, v, 0, 1 << 24), i++;
        else if (strcmp(a, "--out") == 0 && v) out = v, i++;
        else if (strcmp(a, "--arch") == 0 && v) arch_name = v, i++;
        else if (strcmp(a, "--data") == 0 && v) data = v, i++;
        else if (strcmp(a, "--dtype") == 0 && v) dtype_name = v, i++;
        else if (strcmp(a, "--no-augment") == 0) aug = 0;
        else if (strcmp(a, "--help") == 0) return puts(train_usage), 0;
        else sid_die("train-classifier: unknown option '%s' (see sid train-classifier --help)", a);
    }
    sid_dtype dtype;
    if (strcmp(dtype_name, "f16") == 0) dtype = SID_F16;
    else if (strcmp(dtype_name, "f32") == 0) dtype = SID_F32;
    else sid_die("--dtype: '%s' is not one of f16, f32", dtype_name);
    sid_cls_arch arch;
    if (sid_classifier_arch_parse(arch_name, &arch)) sid_die("--arch: %s", sid_error());
    if (!out) out = arch == SID_CLS_MLP ? SID_CLS_MLP_DIR : SID_CLS_DEFAULT_DIR;

    sid_fmnist train, test;
    if (sid_fmnist_load(&train, data, 1, limit)) sid_die("%s", sid_error());
    if (sid_fmnist_load(&test, data, 0, 0)) sid_die("%s", sid_error());
    if (train.n < batch) sid_die("train-classifier: %d training images are fewer than one batch of %d", train.n, batch);

    sid_classifier c;
    sid_classifier_init_arch(&c, arch, 1);
    sid_classifier_init_random(&c, seed);
    const sid_adam_cfg adam = {.lr = (float)lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    sid_classifier_trainer t;
    sid_classifier_trainer_init(&t, &c, batch, &adam);
    printf("train-classifier: %s, %zu parameters; %d training images, %d test images; %d epochs of batch %d, "
           "Adam lr %g with cosine decay, %s, seed %llu, %d threads\n",
           sid_classifier_arch_name(arch), sid_params_count(&c.ps), train.n, test.n, epochs, batch, lr,
           aug ? "random flips and 1-pixel shifts" : "no augmentation", (unsigned long long)seed, sid_threads_get());
    fflush(stdout);

    const int steps_per_epoch = train.n / batch;  // the remainder of each shuffled epoch is dropped
    const int64_t total = (int64_t)steps_per_epoch * epochs;
    uint32_t *perm = sid_malloc((size_t)train.n * sizeof *perm);
    float *xb = sid_aligned_alloc((size_t)batch * IMG * sizeof(float));
    int32_t *yb = sid_malloc((size_t)batch * sizeof *yb);
    uint32_t *flips = sid_malloc((size_t)batch * sizeof *flips), *shifts = sid_malloc((size_t)batch * 2 * sizeof *shifts);
    sid_rng shuffle = sid_rng_new(seed ^ 0x5eed5eedull), augr = sid_rng_new(seed ^ 0xa06a06ull);
    for (int i = 0; i < train.n; i++) perm[i] = (uint32_t)i;
    sid_progress bar;
    sid_progress_start(&bar, "train-classifier", total);
    const double t0 = sid_now();
    int64_t step = 0;
    for (int e = 0; e < epochs; e++) {
        for (int i = train.n - 1; i > 0; i--) {  // Fisher-Yates
            uint32_t j;
            sid_rng_below(&shuffle, (uint32_t)i + 1, &j, 1);
            uint32_t tmp = perm[i];
            perm[i] = perm[j], perm[j] = tmp;
        }
        double loss_sum = 0;
        int64_t right = 0;
        const double te = sid_now();
        for (int s = 0; s < steps_per_epoch; s++, step++) {
            if (aug) {
                sid_rng_below(&augr, 2, flips, (size_t)batch);
                sid_rng_below(&augr, 3, shifts, (size_t)batch * 2);
            }
            for (int b = 0; b < batch; b++) {
                const uint32_t k = perm[(size_t)s * batch + b];
                const float *src = train.images + (size_t)k * IMG;
                if (aug) augment(xb + (size_t)b * IMG, src, (int)flips[b], (int)shifts[2 * b] - 1, (int)shifts[2 * b + 1] - 1);
                else memcpy(xb + (size_t)b * IMG, src, IMG * sizeof(float));
                yb[b] = train.labels[k];
            }
            // cosine decay from lr to 0 over the whole run
            const float lr_now = (float)(0.5 * lr * (1 + cos(3.14159265358979323846 * (double)step / (double)total)));
            int ok;
            loss_sum += sid_classifier_train_step(&c, &t, xb, yb, batch, lr_now, &ok);
            right += ok;
            sid_progress_update(&bar, step + 1);
        }
        const double test_acc = sid_classifier_accuracy(&c, test.images, test.labels, test.n);
        char dur[32];
        sid_format_duration(sid_now() - te, dur, sizeof dur);
        if (bar.enabled) fprintf(stderr, "\r\033[K");
        printf("epoch %d/%d: loss %.4f, train accuracy %.2f%% (running, augmented), test accuracy %.2f%% (%s)\n", e + 1,
               epochs, loss_sum / steps_per_epoch, 100.0 * right / ((double)steps_per_epoch * batch), 100 * test_acc,
               dur);
        fflush(stdout);
    }
    sid_progress_finish(&bar);
    free(perm), free(xb), free(yb), free(flips), free(shifts);
    sid_classifier_trainer_free(&t);

    // the accuracies reported are those of the weights as saved
    if (dtype != SID_F32)
        for (size_t i = 0; i < c.ps.total; i++) c.ps.data[i] = sid_f16_to_f32(sid_f32_to_f16(c.ps.data[i]));
    const double train_acc = sid_classifier_accuracy(&c, train.images, train.labels, train.n);
    const double test_acc = sid_classifier_accuracy(&c, test.images, test.labels, test.n);
    char dur[32];
    sid_format_duration(sid_now() - t0, dur, sizeof dur);
    printf("train-classifier: train accuracy %.2f%%, test accuracy %.2f%% (%s weights), %s\n", 100 * train_acc,
           100 * test_acc, dtype_name, dur);

    char command[2048];
    int len = snprintf(command, sizeof command, "sid train-classifier");
    for (int i = 0; i < argc && len < (int)sizeof command; i++)
        len += snprintf(command + len, sizeof command - (size_t)len, " %s", argv[i]);
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "command", command);
    cJSON_AddNumberToObject(info, "train_accuracy", round(train_acc * 1e6) / 1e6);
    cJSON_AddNumberToObject(info, "test_accuracy", round(test_acc * 1e6) / 1e6);
    cJSON_AddNumberToObject(info, "epochs", epochs);
    cJSON_AddNumberToObject(info, "batch", batch);
    cJSON_AddNumberToObject(info, "lr", lr);
    cJSON_AddNumberToObject(info, "seed", (double)seed);
    cJSON_AddBoolToObject(info, "augment", aug);
    cJSON_AddNumberToObject(info, "train_images", train.n);
    cJSON_AddNumberToObject(info, "threads", sid_threads_get());
    if (sid_classifier_save(&c, out, dtype, info)) sid_die("%s", sid_error());
    cJSON_Delete(info);
    printf("train-classifier: wrote %s/classifier.safetensors and %s/config.json\n", out, out);
    sid_classifier_free(&c);
    sid_fmnist_free(&train), sid_fmnist_free(&test);
    return 0;
}

// ---------------------------------------------------------------- sid eval

static const char *eval_usage =
    "usage: sid eval --images FILE.safetensors [--labels FILE.safetensors] [--model DIR] [--features-mlp DIR]\n"
    "                [--no-panel] [--data DIR] [--threads N]\n"
    "       sid eval --real [--n-small N] [--model DIR] [--data DIR] [--threads N]";

// Reads tensor `name` of st as n ints (I32 or I64); -1 with an error when absent or of another type.
static int read_labels(const sid_safetensors *st, const char *name, int **out, int64_t *n) {
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) {
        sid_set_error("%s: no tensor '%s'", st->path, name);
        return -1;
    }
    if (t->ndim != 1 || (t->dtype != SID_I32 && t->dtype != SID_I64)) {
        sid_set_error("%s: tensor '%s' must be a 1-D I32 or I64 array of class indices", st->path, name);
        return -1;
    }
    *n = t->shape[0];
    *out = sid_malloc((size_t)(*n ? *n : 1) * sizeof(int));
    for (int64_t i = 0; i < *n; i++) {
        int64_t v;
        if (t->dtype == SID_I32) {
            int32_t x;
            memcpy(&x, (const char *)t->data + 4 * i, 4);
            v = x;
        } else {
            memcpy(&v, (const char *)t->data + 8 * i, 8);
        }
        (*out)[i] = v < 0 || v >= SID_CLS_CLASSES ? -1 : (int)v;
        if ((*out)[i] < 0) {
            sid_set_error("%s: label %lld at %lld is not a class 0..%d", st->path, (long long)v, (long long)i,
                          SID_CLS_CLASSES - 1);
            free(*out);
            return -1;
        }
    }
    return 0;
}

static int eval_images_file(const sid_classifier *c, const char *path, const char *labels_path, const char *data,
                            const sid_classifier *mlp) {
    sid_safetensors st, lst = {0};
    if (sid_st_open(&st, path)) sid_die("%s", sid_error());
    const sid_st_tensor *t = sid_st_find(&st, "images");
    if (!t) sid_die("%s: no tensor 'images' (expected [N, 1, 32, 32] values in [-1, 1])", path);
    if (t->ndim != 4 || t->shape[1] != 1 || t->shape[2] != SID_CLS_RES || t->shape[3] != SID_CLS_RES || t->shape[0] < 2)
        sid_die("%s: tensor 'images' must have shape [N, 1, 32, 32] with N >= 2", path);
    const int n = (int)t->shape[0];
    float *imgs = sid_aligned_alloc((size_t)n * IMG * sizeof(float));
    if (sid_st_read_f32(&st, t, imgs)) sid_die("%s", sid_error());
    int *labels = NULL;
    int64_t nl = 0;
    if (labels_path) {
        if (sid_st_open(&lst, labels_path)) sid_die("%s", sid_error());
        if (read_labels(&lst, "labels", &labels, &nl)) sid_die("%s", sid_error());
    } else if (sid_st_find(&st, "labels")) {
        if (read_labels(&st, "labels", &labels, &nl)) sid_die("%s", sid_error());
    }
    if (labels && nl != n) sid_die("%s: %lld labels for %d images", labels_path ? labels_path : path, (long long)nl, n);
    sid_st_close(&st), sid_st_close(&lst);

    // With the panel its reference holds the CNN's test statistics too: the test set is scored once.
    sid_panel_ref pref = {0};
    sid_gauss own = {0};
    if (mlp && n < 10) sid_die("%s: the panel needs at least 10 images (--no-panel for FID alone)", path);
    if (mlp ? sid_panel_ref_init_shipped(&pref, c, mlp, data, n) : sid_eval_reference(c, data, &own))
        sid_die("%s", sid_error());
    const sid_gauss *ref = mlp ? &pref.test_gauss[0] : &own;
    sid_eval_result r;
    if (sid_eval_images(c, ref, imgs, labels, n, &r)) sid_die("%s", sid_error());
    printf("eval: %d images of %s vs %lld test images: FID %.4f%s\n", n, path, (long long)ref->n, r.fid,
           n < 5000 ? " (fewer than 5,000 images: FID is biased upward, compare only at equal N)" : "");
    if (labels) {
        printf("eval: alignment %.2f%% (classified as the prompted class), mean confidence %.3f\n", 100 * r.alignment,
               r.confidence);
        for (int k = 0; k < SID_CLS_CLASSES; k++)
            if (r.class_count[k])
                printf("  %-12s %5d images, alignment %.2f%%\n", sid_fmnist_class_name(k), r.class_count[k],
                       100 * r.class_alignment[k]);
    }
    printf("fid=%.6f alignment=%.6f n=%d\n", r.fid, labels ? r.alignment : NAN, n);
    if (mlp) {  // the whole panel (eval/panel.h) as one JSON line
        sid_panel pr;
        if (sid_panel_eval(&pref, imgs, labels, n, &pr)) sid_die("%s", sid_error());
        char *txt = sid_panel_json_text(&pr);
        printf("panel=%s\n", txt);
        free(txt);
    }
    sid_panel_ref_free(&pref), sid_gauss_free(&own);
    free(imgs), free(labels);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model = SID_CLS_DEFAULT_DIR, *data = NULL, *images = NULL, *labels = NULL, *mlp_dir = SID_CLS_MLP_DIR;
    int real = 0, n_small = 5000;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--images") == 0 && v) images = v, i++;
        else if (strcmp(a, "--labels") == 0 && v) labels = v, i++;
        else if (strcmp(a, "--model") == 0 && v) model = v, i++;
        else if (strcmp(a, "--data") == 0 && v) data = v, i++;
        else if (strcmp(a, "--real") == 0) real = 1;
        else if (strcmp(a, "--features-mlp") == 0 && v) mlp_dir = v, i++;
        else if (strcmp(a, "--no-panel") == 0) mlp_dir = NULL;
        else if (strcmp(a, "--n-small") == 0) n_small = (int)parse_long(a, v, 2, 1 << 24), i++;
        else if (strcmp(a, "--threads") == 0) sid_threads_set((int)parse_long(a, v, 1, 1024)), i++;
        else if (strcmp(a, "--help") == 0) return puts(eval_usage), 0;
        else sid_die("eval: unknown option '%s' (see sid eval --help)", a);
    }
    if (real == !!images) sid_die("eval: give exactly one of --images FILE or --real (see sid eval --help)");
    sid_classifier c;
    if (sid_classifier_load(&c, model)) sid_die("%s", sid_error());
    int rc = 0;
    if (images) {
        sid_classifier mlp;
        if (mlp_dir && sid_panel_load_mlp(&mlp, mlp_dir)) sid_die("%s", sid_error());
        rc = eval_images_file(&c, images, labels, data, mlp_dir ? &mlp : NULL);
        if (mlp_dir) sid_classifier_free(&mlp);
    } else {
        sid_eval_floor f;
        const double t0 = sid_now();
        if (sid_eval_real_floor(&c, data, n_small, &f)) sid_die("%s", sid_error());
        printf("eval: classifier %s: train accuracy %.2f%% (%d images), test accuracy %.2f%% (%d images)\n", model,
               100 * f.train_accuracy, f.n_train, 100 * f.test_accuracy, f.n_test);
        printf("eval: real-vs-real FID floor: train (%d) vs test (%d): %.4f; first %d train vs test: %.4f (%.1fs)\n",
               f.n_train, f.n_test, f.fid_train_test, f.n_small, f.fid_small_test, sid_now() - t0);
        printf("fid_train_test=%.6f fid_small_test=%.6f n_small=%d\n", f.fid_train_test, f.fid_small_test, f.n_small);
    }
    sid_classifier_free(&c);
    return rc;
}
