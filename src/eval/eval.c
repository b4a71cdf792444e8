#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/fmnist.h"

enum { IMG = SID_CLS_RES * SID_CLS_RES };

void sid_eval_quantize(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float x = (src[i] + 1.0f) * 127.5f;
        float q;
        if (!(x > 0.0f)) q = 0;  // also NaN
        else if (x >= 255.0f) q = 255;
        else q = (float)(int)(x + 0.5f);
        dst[i] = q / 127.5f - 1.0f;
    }
}

// Features of n images (already in [-1, 1] on the 8-bit grid) -> fitted Gaussian; logits optional.
static int fit_images(const sid_classifier *c, const float *imgs, int n, sid_gauss *g, float *logits) {
    float *feat = sid_malloc((size_t)n * SID_CLS_FEATURES * sizeof(float));
    sid_classifier_run(c, imgs, n, feat, logits, NULL);
    int rc = sid_gauss_fit(g, feat, n, SID_CLS_FEATURES);
    free(feat);
    return rc;
}

int sid_eval_reference(const sid_classifier *c, const char *data_dir, sid_gauss *ref) {
    memset(ref, 0, sizeof *ref);
    sid_fmnist test;
    if (sid_fmnist_load(&test, data_dir, 0, 0)) return -1;
    int rc = fit_images(c, test.images, test.n, ref, NULL);
    sid_fmnist_free(&test);
    return rc;
}

int sid_eval_images(const sid_classifier *c, const sid_gauss *ref, const float *imgs, const int *prompted_class,
                    int N, sid_eval_result *out) {
    memset(out, 0, sizeof *out);
    if (N < 2) {
        sid_set_error("evaluation needs at least 2 images (got %d)", N);
        return -1;
    }
    if (prompted_class)
        for (int i = 0; i < N; i++)
            if (prompted_class[i] < 0 || prompted_class[i] >= SID_CLS_CLASSES) {
                sid_set_error("evaluation: image %d was prompted with class %d, not one of 0..%d", i,
                              prompted_class[i], SID_CLS_CLASSES - 1);
                return -1;
            }
    sid_gauss own = {0};
    if (!ref) {
        if (sid_eval_reference(c, NULL, &own)) return -1;
        ref = &own;
    }
    float *q = sid_aligned_alloc((size_t)N * IMG * sizeof(float));
    float *logits = sid_malloc((size_t)N * SID_CLS_CLASSES * sizeof(float));
    sid_eval_quantize(q, imgs, (size_t)N * IMG);
    sid_gauss gen = {0};
    int rc = fit_images(c, q, N, &gen, logits);
    if (rc == 0) rc = sid_frechet_distance(&gen, ref, &out->fid);
    out->n = N;
    out->alignment = out->confidence = NAN;
    for (int k = 0; k < SID_CLS_CLASSES; k++) out->class_alignment[k] = NAN;
    if (rc == 0 && prompted_class) {
        int right = 0, class_right[SID_CLS_CLASSES] = {0};
        double conf = 0;
        for (int i = 0; i < N; i++) {
            const float *z = logits + (size_t)i * SID_CLS_CLASSES;
            const int want = prompted_class[i];
            int best = 0;
            double zmax = z[0], sum = 0;
            for (int k = 1; k < SID_CLS_CLASSES; k++)
                if (z[k] > z[best]) best = k, zmax = z[k];
            for (int k = 0; k < SID_CLS_CLASSES; k++) sum += exp(z[k] - zmax);
            conf += exp(z[want] - zmax) / sum;
            right += best == want;
            class_right[want] += best == want;
            out->class_count[want]++;
        }
        out->alignment = (double)right / N;
        out->confidence = conf / N;
        for (int k = 0; k < SID_CLS_CLASSES; k++)
            if (out->class_count[k]) out->class_alignment[k] = (double)class_right[k] / out->class_count[k];
    }
    sid_gauss_free(&gen);
    sid_gauss_free(&own);
    free(q), free(logits);
    return rc;
}

// Features of a whole split, with the accuracy of the predictions.
static float *split_features(const sid_classifier *c, const sid_fmnist *d, double *accuracy) {
    float *feat = sid_malloc((size_t)d->n * SID_CLS_FEATURES * sizeof(float));
    int32_t *pred = sid_malloc((size_t)d->n * sizeof(int32_t));
    sid_classifier_run(c, d->images, d->n, feat, NULL, pred);
    int right = 0;
    for (int i = 0; i < d->n; i++) right += pred[i] == d->labels[i];
    *accuracy = d->n ? (double)right / d->n : 0;
    free(pred);
    return feat;
}

int sid_eval_real_floor(const sid_classifier *c, const char *data_dir, int n_small, sid_eval_floor *out) {
    memset(out, 0, sizeof *out);
    sid_fmnist train, test;
    if (sid_fmnist_load(&train, data_dir, 1, 0)) return -1;
    if (sid_fmnist_load(&test, data_dir, 0, 0)) {
        sid_fmnist_free(&train);
        return -1;
    }
    if (n_small < 2 || n_small > train.n) n_small = train.n < 5000 ? train.n : 5000;
    float *ftr = split_features(c, &train, &out->train_accuracy);
    float *fte = split_features(c, &test, &out->test_accuracy);
    out->n_train = train.n, out->n_test = test.n, out->n_small = n_small;
    sid_gauss gtr = {0}, gsm = {0}, gte = {0};
    int rc = sid_gauss_fit(&gte, fte, test.n, SID_CLS_FEATURES);
    if (rc == 0) rc = sid_gauss_fit(&gtr, ftr, train.n, SID_CLS_FEATURES);
    if (rc == 0) rc = sid_gauss_fit(&gsm, ftr, n_small, SID_CLS_FEATURES);
    if (rc == 0) rc = sid_frechet_distance(&gtr, &gte, &out->fid_train_test);
    if (rc == 0) rc = sid_frechet_distance(&gsm, &gte, &out->fid_small_test);
    sid_gauss_free(&gtr), sid_gauss_free(&gsm), sid_gauss_free(&gte);
    free(ftr), free(fte);
    sid_fmnist_free(&train), sid_fmnist_free(&test);
    return rc;
}

// Overlap of [a0, a1) and [b0, b1).
static double overlap(double a0, double a1, double b0, double b1) {
    const double lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;
    return hi > lo ? hi - lo : 0;
}

void sid_image_to_grey32(const float *img, int C, int H, int W, float *out) {
    enum { R = 32 };
    const size_t plane = (size_t)H * W;
    const double sy = (double)H / R, sx = (double)W / R;
    for (int oy = 0; oy < R; oy++)
        for (int ox = 0; ox < R; ox++) {
            const double y0 = oy * sy, y1 = y0 + sy, x0 = ox * sx, x1 = x0 + sx;
            double sum = 0, wsum = 0;
            for (int y = (int)y0; y < H && y < y1; y++) {
                const double wy = overlap(y0, y1, y, y + 1);
                for (int x = (int)x0; x < W && x < x1; x++) {
                    const double w = wy * overlap(x0, x1, x, x + 1);
                    const size_t i = (size_t)y * W + x;
                    const double v = C == 3 ? 0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i] : img[i];
                    sum += w * v, wsum += w;
                }
            }
            out[oy * R + ox] = (float)(wsum > 0 ? sum / wsum : 0);
        }
}
