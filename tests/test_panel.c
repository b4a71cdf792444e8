// The evaluation panel's metrics: KID and its jackknife error, precision/recall/density/coverage
// and the pixel statistics, each against a straightforward double-precision reference written
// here and on sets with known answers; the MLP feature network's files; the whole panel on real
// images, noise and grainy copies.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/fmnist.h"
#include "eval/classifier.h"
#include "eval/metrics.h"
#include "eval/panel.h"
#include "harness.h"

enum { IMG = SID_CLS_RES * SID_CLS_RES };

static float *gauss_rows(int64_t n, int d, double mean, double sd, uint64_t seed) {
    float *x = sid_malloc((size_t)n * d * sizeof(float));
    sid_rng r = sid_rng_new(seed);
    sid_rng_normal(&r, x, (size_t)n * d);
    for (size_t i = 0; i < (size_t)n * d; i++) x[i] = (float)(mean + sd * x[i]);
    return x;
}

// ---------------------------------------------------------------- references

static double kern(const float *a, const float *b, int d) {
    double s = 0;
    for (int c = 0; c < d; c++) s += (double)a[c] * b[c];
    const double v = s / d + 1;
    return v * v * v;
}

// The unbiased MMD^2 by its definition, with rows skip_a of a and skip_b of b left out (-1: none).
static double kid_naive(const float *a, int na, const float *b, int nb, int d, int skip_a, int skip_b) {
    double saa = 0, sbb = 0, sab = 0;
    int ma = 0, mb = 0;
    for (int i = 0; i < na; i++) {
        if (i == skip_a) continue;
        ma++;
        for (int j = 0; j < na; j++)
            if (j != i && j != skip_a) saa += kern(a + (size_t)i * d, a + (size_t)j * d, d);
        for (int j = 0; j < nb; j++)
            if (j != skip_b) sab += kern(a + (size_t)i * d, b + (size_t)j * d, d);
    }
    for (int i = 0; i < nb; i++) {
        if (i == skip_b) continue;
        mb++;
        for (int j = 0; j < nb; j++)
            if (j != i && j != skip_b) sbb += kern(b + (size_t)i * d, b + (size_t)j * d, d);
    }
    return saa / ((double)ma * (ma - 1)) + sbb / ((double)mb * (mb - 1)) - 2 * sab / ((double)ma * mb);
}

static double dist2(const float *a, const float *b, int d) {
    double s = 0;
    for (int c = 0; c < d; c++) s += ((double)a[c] - b[c]) * ((double)a[c] - b[c]);
    return s;
}

static double *radii_naive(const float *x, int n, int d, int k) {
    double *r = malloc((size_t)n * sizeof(double)), *all = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        int m = 0;
        for (int j = 0; j < n; j++)
            if (j != i) all[m++] = dist2(x + (size_t)i * d, x + (size_t)j * d, d);
        for (int a = 0; a < k; a++)  // partial selection sort: the k smallest
            for (int b = a + 1; b < m; b++)
                if (all[b] < all[a]) {
                    const double t = all[a];
                    all[a] = all[b], all[b] = t;
                }
        r[i] = all[k - 1];
    }
    free(all);
    return r;
}

static sid_prdc prdc_naive(const float *real, int nr, const float *gen, int ng, int d, int k) {
    double *rr = radii_naive(real, nr, d, k), *rg = radii_naive(gen, ng, d, k);
    sid_prdc o = {0};
    for (int j = 0; j < ng; j++) {
        int in = 0;
        for (int i = 0; i < nr; i++) in += dist2(gen + (size_t)j * d, real + (size_t)i * d, d) <= rr[i];
        o.precision += in > 0, o.density += in;
    }
    for (int i = 0; i < nr; i++) {
        int cov = 0, rec = 0;
        for (int j = 0; j < ng; j++) {
            const double v = dist2(gen + (size_t)j * d, real + (size_t)i * d, d);
            cov |= v <= rr[i], rec |= v <= rg[j];
        }
        o.coverage += cov, o.recall += rec;
    }
    o.precision /= ng, o.density /= (double)k * ng, o.coverage /= nr, o.recall /= nr;
    free(rr), free(rg);
    return o;
}

// ---------------------------------------------------------------- KID

static void test_kid_vs_naive(void) {
    enum { NA = 37, NB = 53, D = 6 };
    float *a = gauss_rows(NA, D, 0.0, 1.0, test_seed), *b = gauss_rows(NB, D, 0.3, 1.2, test_seed + 1);
    double kid, se;
    EXPECT(sid_kid(a, NA, b, NB, D, &kid, &se) == 0, "%s", sid_error());
    const double ref = kid_naive(a, NA, b, NB, D, -1, -1);
    EXPECT(fabs(kid - ref) <= 1e-5 * fmax(1.0, fabs(ref)), "KID %.9g, definition %.9g", kid, ref);
    // the jackknife by brute force: every leave-one-out estimate recomputed from scratch
    double va = 0, vb = 0, ma = 0, mb = 0, ta[NA], tb[NB];
    for (int i = 0; i < NA; i++) ma += ta[i] = kid_naive(a, NA, b, NB, D, i, -1);
    for (int j = 0; j < NB; j++) mb += tb[j] = kid_naive(a, NA, b, NB, D, -1, j);
    ma /= NA, mb /= NB;
    for (int i = 0; i < NA; i++) va += (ta[i] - ma) * (ta[i] - ma);
    for (int j = 0; j < NB; j++) vb += (tb[j] - mb) * (tb[j] - mb);
    const double se_ref = sqrt((NA - 1.0) / NA * va + (NB - 1.0) / NB * vb);
    EXPECT(fabs(se - se_ref) <= 1e-4 * se_ref, "KID standard error %.9g, brute-force jackknife %.9g", se, se_ref);
    free(a), free(b);
}

static void test_kid_known_answers(void) {
    enum { N = 40, D = 4 };
    // constant sets: k(u,u) + k(v,v) - 2 k(u,v) exactly, with no spread
    float *a = malloc(N * D * sizeof(float)), *b = malloc(N * D * sizeof(float));
    const float u[D] = {1, 0, 2, -1}, v[D] = {0, 1, 1, 0};
    for (int i = 0; i < N; i++) memcpy(a + i * D, u, sizeof u), memcpy(b + i * D, v, sizeof v);
    double kid, se;
    EXPECT(sid_kid(a, N, b, N, D, &kid, &se) == 0, "%s", sid_error());
    const double want = kern(u, u, D) + kern(v, v, D) - 2 * kern(u, v, D);
    EXPECT(fabs(kid - want) < 1e-9 * want && se < 1e-9, "constant sets: KID %.9g (want %.9g), se %.3g", kid, want, se);
    free(a), free(b);
    // same distribution: within 3 standard errors of 0; shifted: many standard errors above
    enum { M = 600, E = 16 };
    float *x = gauss_rows(M, E, 0, 1, test_seed + 2), *y = gauss_rows(M, E, 0, 1, test_seed + 3);
    float *z = gauss_rows(M, E, 0.5, 1, test_seed + 4);
    double k_same, se_same, k_shift, se_shift;
    EXPECT(sid_kid(x, M, y, M, E, &k_same, &se_same) == 0 && sid_kid(x, M, z, M, E, &k_shift, &se_shift) == 0, "%s",
           sid_error());
    EXPECT(fabs(k_same) < 3 * se_same, "same distribution: KID %.3g +- %.3g", k_same, se_same);
    EXPECT(k_shift > 10 * se_shift, "shifted by 0.5: KID %.3g +- %.3g", k_shift, se_shift);
    printf(" [same %.2g +- %.2g, shifted %.3g +- %.2g]", k_same, se_same, k_shift, se_shift);
    EXPECT(sid_kid(x, 2, y, M, E, &kid, &se) == -1, "2 rows accepted");
    free(x), free(y), free(z);
}

// ---------------------------------------------------------------- precision, recall, density, coverage

static void test_prdc_vs_naive(void) {
    enum { NR = 300, NG = 270, D = 5, K = 3 };
    float *real = gauss_rows(NR, D, 0, 1, test_seed + 5), *gen = gauss_rows(NG, D, 0.4, 0.7, test_seed + 6);
    sid_prdc got;
    EXPECT(sid_prdc_compute(real, NR, gen, NG, D, K, &got) == 0, "%s", sid_error());
    const sid_prdc want = prdc_naive(real, NR, gen, NG, D, K);
    // distances in float against double: a row exactly on a ball's edge could flip, so allow one
    EXPECT(fabs(got.precision - want.precision) <= 1.0 / NG && fabs(got.recall - want.recall) <= 1.0 / NR &&
               fabs(got.density - want.density) <= 1.0 / (K * NG) && fabs(got.coverage - want.coverage) <= 1.0 / NR,
           "precision %.4f/%.4f recall %.4f/%.4f density %.4f/%.4f coverage %.4f/%.4f (fast/naive)", got.precision,
           want.precision, got.recall, want.recall, got.density, want.density, got.coverage, want.coverage);
    EXPECT(want.precision > 0.2 && want.precision < 1 && want.recall > 0.05 && want.recall < 1,
           "a partial overlap should give fractional scores: precision %.3f recall %.3f", want.precision, want.recall);
    printf(" [P %.3f R %.3f D %.3f C %.3f]", got.precision, got.recall, got.density, got.coverage);
    free(real), free(gen);
}

static void test_prdc_known_answers(void) {
    enum { N = 200, D = 8, K = 3 };
    float *real = gauss_rows(N, D, 0, 1, test_seed + 7), *far = gauss_rows(N, D, 1000, 1, test_seed + 8);
    sid_prdc same, apart;
    EXPECT(sid_prdc_compute(real, N, real, N, D, K, &same) == 0 && sid_prdc_compute(real, N, far, N, D, K, &apart) == 0,
           "%s", sid_error());
    // a set against itself: every ball holds its centre and its k nearest neighbours
    EXPECT(same.precision == 1 && same.recall == 1 && same.coverage == 1 && fabs(same.density - (K + 1.0) / K) < 1e-12,
           "a set against itself: P %.4f R %.4f D %.4f C %.4f", same.precision, same.recall, same.density, same.coverage);
    EXPECT(apart.precision == 0 && apart.recall == 0 && apart.density == 0 && apart.coverage == 0,
           "disjoint sets: P %.4f R %.4f D %.4f C %.4f", apart.precision, apart.recall, apart.density, apart.coverage);
    EXPECT(sid_prdc_compute(real, K, real, N, D, K, &same) == -1, "k rows accepted");
    free(real), free(far);
}

// ---------------------------------------------------------------- pixel statistics

static void test_pixel_stats_known_answers(void) {
    enum { R = 32 };
    static float img[4][R * R];
    for (int y = 0; y < R; y++)
        for (int x = 0; x < R; x++) {
            img[0][y * R + x] = 0.2f;                                  // constant
            img[1][y * R + x] = (x + y) % 2 ? 1.0f : -1.0f;           // checkerboard: the Nyquist corner
            img[2][y * R + x] = 0.8f * cosf(2 * 3.14159265f * 2 * x / R);  // 2 cycles: low
            img[3][y * R + x] = 0.4f * cosf(2 * 3.14159265f * 2 * y / R) + 0.3f * cosf(2 * 3.14159265f * 12 * x / R);
        }
    sid_pixel_stats s[4];
    for (int i = 0; i < 4; i++) EXPECT(sid_pixel_stats_compute(img[i], 1, R, R, &s[i]) == 0, "%s", sid_error());
    EXPECT(fabs(s[0].mean - 0.6) < 1e-6 && s[0].contrast < 1e-6 && s[0].hf_share == 0, "constant: mean %.6f contrast %.3g hf %.3g",
           s[0].mean, s[0].contrast, s[0].hf_share);
    EXPECT(fabs(s[1].mean - 0.5) < 1e-9 && fabs(s[1].contrast - 0.5) < 1e-9 && fabs(s[1].hf_share - 1) < 1e-9,
           "checkerboard: mean %.6f contrast %.6f hf %.6f", s[1].mean, s[1].contrast, s[1].hf_share);
    EXPECT(s[2].hf_share < 1e-9 && fabs(s[2].contrast - 0.4 / sqrt(2.0)) < 1e-5, "2-cycle cosine: hf %.3g contrast %.6f",
           s[2].hf_share, s[2].contrast);
    // power goes with amplitude squared: 0.3^2 / (0.4^2 + 0.3^2) of it is at 12 cycles (> 8)
    EXPECT(fabs(s[3].hf_share - 0.36) < 1e-5, "two cosines: hf share %.6f, want 0.36", s[3].hf_share);
    // a set: powers are summed before the ratio, means and contrasts averaged
    sid_pixel_stats both;
    EXPECT(sid_pixel_stats_compute(img[1], 2, R, R, &both) == 0, "%s", sid_error());
    EXPECT(fabs(both.mean - (s[1].mean + s[2].mean) / 2) < 1e-6 && fabs(both.contrast - (s[1].contrast + s[2].contrast) / 2) < 1e-6,
           "two images: mean %.6f contrast %.6f", both.mean, both.contrast);
    EXPECT(sid_pixel_stats_compute(img[0], 1, 31, 32, &both) == -1, "odd height accepted");
}

// ---------------------------------------------------------------- the MLP's files, the whole panel

static void test_mlp_save_load(void) {
    sid_classifier c, d;
    sid_classifier_init_arch(&c, SID_CLS_MLP, 0);
    sid_classifier_init_random(&c, test_seed + 11);
    char dir[] = "/tmp/sid_test_panel_XXXXXX";
    EXPECT(mkdtemp(dir) != NULL, "mkdtemp");
    EXPECT(sid_classifier_save(&c, dir, SID_F32, NULL) == 0, "%s", sid_error());
    EXPECT(sid_classifier_load(&d, dir) == 0, "%s", sid_error());
    if (!test_failed()) {
        EXPECT(d.arch == SID_CLS_MLP && d.ps.total == c.ps.total &&
                   memcmp(d.ps.data, c.ps.data, c.ps.total * sizeof(float)) == 0,
               "the MLP did not come back as saved (arch %d, %zu of %zu parameters)", d.arch, d.ps.total, c.ps.total);
        sid_classifier_free(&d);
    }
    sid_cls_arch arch;
    EXPECT(sid_classifier_arch_parse("resnet", &arch) == -1 && strstr(sid_error(), "resnet"), "an unknown arch accepted");
    sid_classifier_free(&c);
    test_remove_tree(dir);
}

static void test_panel_on_real_and_broken_images(void) {
    if (!sid_fmnist_available(NULL, 0) || !sid_fmnist_available(NULL, 1)) {
        printf(" SKIPPED (needs Fashion-MNIST: %s) ...", SID_FMNIST_INSTALL);
        return;
    }
    if (getenv("SID_ASAN")) {  // 8,000 images through two networks: minutes under ASan; the metrics above run there
        printf(" SKIPPED under ASan (make asan sets SID_ASAN) ...");
        return;
    }
    sid_classifier cnn, mlp;
    EXPECT(sid_classifier_load(&cnn, SID_CLS_DEFAULT_DIR) == 0 && sid_classifier_load(&mlp, SID_CLS_MLP_DIR) == 0,
           "%s (run the tests from the repository root)", sid_error());
    if (test_failed()) return;
    enum { N = 1000 };  // against the first 2,000 test images (all 10k take a minute here)
    const sid_classifier *nets[2] = {&cnn, &mlp};
    const char *names[2] = {"cnn", "mlp"};
    sid_panel_ref ref;
    EXPECT(sid_panel_ref_init(&ref, nets, names, 2, NULL, 2 * N, 2000) == 0, "%s", sid_error());
    if (test_failed()) return;
    // "generated": real training images the floor does not use, with their own labels
    const float *real = ref.train_imgs + (size_t)N * IMG;
    int *cls = malloc(N * sizeof(int));
    for (int i = 0; i < N; i++) cls[i] = ref.train_labels[N + i];
    // grainy copies: +-0.25 of uniform noise on every pixel; noise alone
    float *grain = sid_aligned_alloc((size_t)N * IMG * sizeof(float)), *noise = sid_aligned_alloc((size_t)N * IMG * sizeof(float));
    sid_rng r = sid_rng_new(test_seed + 12);
    sid_rng_uniform(&r, noise, (size_t)N * IMG);
    for (size_t i = 0; i < (size_t)N * IMG; i++) {
        const float g = real[i] + 0.5f * (noise[i] - 0.5f);
        grain[i] = g > 1 ? 1 : g < -1 ? -1 : g;
        noise[i] = 2 * noise[i] - 1;
    }
    sid_panel pr, pg, pn;
    EXPECT(sid_panel_eval(&ref, real, cls, N, &pr) == 0 && sid_panel_eval(&ref, grain, cls, N, &pg) == 0 &&
               sid_panel_eval(&ref, noise, NULL, N, &pn) == 0,
           "%s", sid_error());
    if (!test_failed()) {
        for (int s = 0; s < 2; s++) {
            const sid_panel_scores *a = &pr.space[s].gen, *f = &pr.space[s].floor, *g = &pg.space[s].gen, *n = &pn.space[s].gen;
            // real images score like the floor (another sample of the same set) ...
            EXPECT(a->fid < 2 * f->fid + 1 && fabs(a->kid - f->kid) < 4 * (a->kid_se + f->kid_se) &&
                       fabs(a->prdc.precision - f->prdc.precision) < 0.06 && fabs(a->prdc.recall - f->prdc.recall) < 0.06,
                   "%s: real images FID %.3f KID %.5f P %.3f R %.3f vs floor FID %.3f KID %.5f P %.3f R %.3f", names[s],
                   a->fid, a->kid, a->prdc.precision, a->prdc.recall, f->fid, f->kid, f->prdc.precision, f->prdc.recall);
            EXPECT(a->alignment > 0.85 && fabs(a->alignment - f->alignment) < 0.05, "%s: alignment %.3f, floor %.3f", names[s],
                   a->alignment, f->alignment);
            // ... noise far from it in both spaces (its precision can stay high: a few real outliers have
            // balls wide enough to hold it, hence coverage and recall); grain far in the CNN's space only
            // (the MLP barely sees it: that is what the pixel statistics are for)
            printf(" [%s grain KID %.4f +- %.4f P %.3f R %.3f D %.3f C %.3f; noise P %.3f R %.3f D %.3f C %.3f]", names[s],
                   g->kid, g->kid_se, g->prdc.precision, g->prdc.recall, g->prdc.density, g->prdc.coverage,
                   n->prdc.precision, n->prdc.recall, n->prdc.density, n->prdc.coverage);
            EXPECT(n->fid > 50 * f->fid && n->kid > 10 * g->kid && n->prdc.recall < 0.05 && n->prdc.coverage < 0.05,
                   "%s: noise FID %.3f KID %.5f recall %.3f coverage %.3f", names[s], n->fid, n->kid, n->prdc.recall,
                   n->prdc.coverage);
            if (s == 0)
                EXPECT(g->fid > 2 * a->fid && g->kid > a->kid + 3 * g->kid_se && g->prdc.coverage < a->prdc.coverage - 0.05,
                       "cnn: grain FID %.3f KID %.5f +- %.5f coverage %.3f (real %.3f)", g->fid, g->kid, g->kid_se,
                       g->prdc.coverage, a->prdc.coverage);
            EXPECT(isnan(n->alignment), "%s: alignment without prompts", names[s]);
            printf(" [%s FID real/floor/grain/noise %.2f/%.2f/%.2f/%.1f]", names[s], a->fid, f->fid, g->fid, n->fid);
        }
        // pixel statistics: real images as the test set, grain raises the high-frequency share
        EXPECT(fabs(pr.pix_gen.mean - pr.pix_test.mean) < 0.02 && fabs(pr.pix_gen.contrast - pr.pix_test.contrast) < 0.02 &&
                   fabs(pr.pix_gen.hf_share - pr.pix_test.hf_share) < 0.01 && pg.pix_gen.hf_share > pr.pix_gen.hf_share + 0.015,
               "pixels: real mean %.4f contrast %.4f hf %.4f, test %.4f %.4f %.4f, grain hf %.4f", pr.pix_gen.mean,
               pr.pix_gen.contrast, pr.pix_gen.hf_share, pr.pix_test.mean, pr.pix_test.contrast, pr.pix_test.hf_share,
               pg.pix_gen.hf_share);
        cJSON *j = sid_panel_json(&pr);
        EXPECT(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "mlp"), "kid_se_floor") &&
                   cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pixels"), "test"), "hf_share"),
               "the panel's JSON lacks keys");
        cJSON_Delete(j);
    }
    EXPECT(sid_panel_eval(&ref, real, cls, 2 * N + 1, &pr) == -1, "more images than the floor accepted");
    free(cls), free(grain), free(noise);
    sid_panel_ref_free(&ref);
    sid_classifier_free(&cnn), sid_classifier_free(&mlp);
}

TEST_LIST(T(test_kid_vs_naive), T(test_kid_known_answers), T(test_prdc_vs_naive), T(test_prdc_known_answers),
          T(test_pixel_stats_known_answers), T(test_mlp_save_load), T(test_panel_on_real_and_broken_images))
TEST_MAIN("panel")
