#include "eval/panel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/fmnist.h"
#include "eval/eval.h"

enum { IMG = SID_CLS_RES * SID_CLS_RES };

int sid_panel_ref_init(sid_panel_ref *r, const sid_classifier *const *nets, const char *const *names, int n_spaces,
                       const char *data_dir, int max_n, int max_test) {
    memset(r, 0, sizeof *r);
    if (n_spaces < 1 || n_spaces > SID_PANEL_MAX_SPACES) {
        sid_set_error("evaluation panel: %d feature spaces (1 to %d)", n_spaces, SID_PANEL_MAX_SPACES);
        return -1;
    }
    sid_fmnist test, train;
    if (sid_fmnist_load(&test, data_dir, 0, max_test)) return -1;
    if (sid_fmnist_load(&train, data_dir, 1, max_n)) return sid_fmnist_free(&test), -1;
    r->n_spaces = n_spaces, r->n_test = test.n, r->n_train = train.n;
    int rc = sid_pixel_stats_compute(test.images, test.n, SID_CLS_RES, SID_CLS_RES, &r->pix_test);
    for (int s = 0; s < n_spaces && rc == 0; s++) {
        r->net[s] = nets[s], r->name[s] = names[s];
        r->test_feat[s] = sid_malloc((size_t)test.n * SID_CLS_FEATURES * sizeof(float));
        sid_classifier_run(nets[s], test.images, test.n, r->test_feat[s], NULL, NULL);
        rc = sid_gauss_fit(&r->test_gauss[s], r->test_feat[s], test.n, SID_CLS_FEATURES);
        if (rc == 0) rc = sid_kid_set_init(&r->test_kid[s], r->test_feat[s], test.n, SID_CLS_FEATURES);
    }
    // kept as the panel scores them: on the 8-bit grid (the data already is)
    r->train_imgs = train.images, r->train_labels = train.labels;
    train.images = NULL, train.labels = NULL;
    sid_fmnist_free(&train), sid_fmnist_free(&test);
    if (rc) sid_panel_ref_free(r);
    return rc;
}

int sid_panel_ref_init_shipped(sid_panel_ref *r, const sid_classifier *cnn, const sid_classifier *mlp,
                               const char *data_dir, int max_n) {
    const sid_classifier *nets[2] = {cnn, mlp};
    const char *names[2] = {"cnn", "mlp"};
    return sid_panel_ref_init(r, nets, names, 2, data_dir, max_n, 0);
}

void sid_panel_ref_free(sid_panel_ref *r) {
    for (int s = 0; s < SID_PANEL_MAX_SPACES; s++)
        free(r->test_feat[s]), sid_gauss_free(&r->test_gauss[s]), sid_kid_set_free(&r->test_kid[s]);
    free(r->train_imgs), free(r->train_labels);
    memset(r, 0, sizeof *r);
}

// Every score of one image set (already quantised) in space s; want[i] the class image i should be.
static int score_space(const sid_panel_ref *r, int s, const float *imgs, const int *want, int N, int n_prdc,
                       sid_panel_scores *out) {
    float *feat = sid_malloc((size_t)N * SID_CLS_FEATURES * sizeof(float));
    int32_t *pred = sid_malloc((size_t)N * sizeof(int32_t));
    sid_classifier_run(r->net[s], imgs, N, feat, NULL, pred);
    sid_gauss g = {0};
    int rc = sid_gauss_fit(&g, feat, N, SID_CLS_FEATURES);
    if (rc == 0) rc = sid_frechet_distance(&g, &r->test_gauss[s], &out->fid);
    sid_kid_set mine = {0};
    if (rc == 0) rc = sid_kid_set_init(&mine, feat, N, SID_CLS_FEATURES);
    if (rc == 0) rc = sid_kid_between(&mine, &r->test_kid[s], &out->kid, &out->kid_se);
    sid_kid_set_free(&mine);
    if (rc == 0) rc = sid_prdc_compute(r->test_feat[s], n_prdc, feat, n_prdc, SID_CLS_FEATURES, SID_PANEL_K, &out->prdc);
    out->alignment = NAN;
    if (rc == 0 && want) {
        int right = 0;
        for (int i = 0; i < N; i++) right += pred[i] == want[i];
        out->alignment = (double)right / N;
    }
    sid_gauss_free(&g);
    free(feat), free(pred);
    return rc;
}

int sid_panel_eval(const sid_panel_ref *r, const float *imgs, const int *prompted_class, int N, sid_panel *out) {
    memset(out, 0, sizeof *out);
    if (N < 10 || N > r->n_train) {
        sid_set_error("evaluation panel: %d images (10 to %d, the training images its floor is made of)", N, r->n_train);
        return -1;
    }
    out->n = N, out->n_test = r->n_test, out->n_spaces = r->n_spaces;
    out->n_prdc = N < r->n_test ? N : r->n_test;
    out->pix_test = r->pix_test;
    float *q = sid_aligned_alloc((size_t)N * IMG * sizeof(float));
    sid_eval_quantize(q, imgs, (size_t)N * IMG);
    int *labels = sid_malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) labels[i] = r->train_labels[i];
    int rc = sid_pixel_stats_compute(q, N, SID_CLS_RES, SID_CLS_RES, &out->pix_gen);
    if (rc == 0) rc = sid_pixel_stats_compute(r->train_imgs, N, SID_CLS_RES, SID_CLS_RES, &out->pix_floor);
    for (int s = 0; s < r->n_spaces && rc == 0; s++) {
        out->space[s].name = r->name[s];
        rc = score_space(r, s, q, prompted_class, N, out->n_prdc, &out->space[s].gen);
        if (rc == 0) rc = score_space(r, s, r->train_imgs, labels, N, out->n_prdc, &out->space[s].floor);
    }
    free(q), free(labels);
    return rc;
}

int sid_panel_load_mlp(sid_classifier *c, const char *dir) {
    if (sid_classifier_load(c, dir) == 0) return 0;
    char why[1024];
    snprintf(why, sizeof why, "%s", sid_error());
    sid_set_error("the evaluation panel's second feature network: %s (it is shipped as %s; "
                  "`sid train-classifier --arch mlp --out DIR` trains one; --panel 0 / --no-panel skips the panel)",
                  why, SID_CLS_MLP_DIR);
    return -1;
}

static double rounded(double v, double scale) { return isfinite(v) ? round(v * scale) / scale : v; }

static void add_scores(cJSON *o, const sid_panel_scores *s, const char *suffix) {
    char key[64];
#define ADD(name, value, scale)                                         \
    do {                                                                \
        snprintf(key, sizeof key, "%s%s", name, suffix);                \
        if (isfinite(value)) cJSON_AddNumberToObject(o, key, rounded(value, scale)); \
    } while (0)
    ADD("fid", s->fid, 1e4);
    ADD("kid", s->kid, 1e7);
    ADD("kid_se", s->kid_se, 1e7);
    ADD("precision", s->prdc.precision, 1e4);
    ADD("recall", s->prdc.recall, 1e4);
    ADD("density", s->prdc.density, 1e4);
    ADD("coverage", s->prdc.coverage, 1e4);
    ADD("alignment", s->alignment, 1e4);
#undef ADD
}

static cJSON *pixels_json(const sid_pixel_stats *p) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "mean", rounded(p->mean, 1e5));
    cJSON_AddNumberToObject(o, "contrast", rounded(p->contrast, 1e5));
    cJSON_AddNumberToObject(o, "hf_share", rounded(p->hf_share, 1e5));
    return o;
}

char *sid_panel_json_text(const sid_panel *p) {
    cJSON *j = sid_panel_json(p);
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return txt;
}

cJSON *sid_panel_json(const sid_panel *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "n", p->n);
    cJSON_AddNumberToObject(j, "n_test", p->n_test);
    cJSON_AddNumberToObject(j, "n_prdc", p->n_prdc);
    for (int s = 0; s < p->n_spaces; s++) {
        cJSON *o = cJSON_AddObjectToObject(j, p->space[s].name);
        add_scores(o, &p->space[s].gen, "");
        add_scores(o, &p->space[s].floor, "_floor");
    }
    cJSON *px = pixels_json(&p->pix_gen);
    cJSON_AddItemToObject(px, "test", pixels_json(&p->pix_test));
    cJSON_AddItemToObject(px, "floor", pixels_json(&p->pix_floor));
    cJSON_AddItemToObject(j, "pixels", px);
    return j;
}
