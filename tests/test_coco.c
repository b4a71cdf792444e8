// The COCO protocol's own parts (src/eval/coco.c, fid_stats.c): the captions file as the protocol
// reads it, the uint8 quantisation, reference statistics files, and reference statistics of a
// folder, equal to the features computed image by image, resumable and refusing a cache made with
// another network. The networks and the resizes have their own parity tests (test_inception,
// test_image_prep, test_clip_score); the whole command runs in tests/cli.sh.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/rng.h"
#include "eval/coco.h"
#include "eval/fid_stats.h"
#include "harness.h"
#include "io/image.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "models/inception.h"

static void test_captions_as_the_protocol_reads_them(void) {
    char dir[] = "/tmp/sid_coco_XXXXXX", path[64];
    if (!mkdtemp(dir)) return test_fail(__FILE__, __LINE__, "mkdtemp");
    snprintf(path, sizeof path, "%s/captions.txt", dir);
    test_write_text(path, "  A cat on a mat. \n\n\t \nTwo dogs\r\n   \nlast line, no newline");
    char **lines;
    int64_t n;
    EXPECT(sid_coco_captions_load(path, &lines, &n) == 0, "%s", sid_error());
    EXPECT(n == 3, "%lld captions, want 3 (empty lines skipped)", (long long)n);
    if (n == 3) {
        EXPECT(strcmp(lines[0], "A cat on a mat.") == 0, "caption 0 '%s'", lines[0]);
        EXPECT(strcmp(lines[1], "Two dogs") == 0, "caption 1 '%s' (the \\r is stripped)", lines[1]);
        EXPECT(strcmp(lines[2], "last line, no newline") == 0, "caption 2 '%s'", lines[2]);
    }
    sid_coco_captions_free(lines, n);
    test_write_text(path, "\n  \n\t\n");
    EXPECT(sid_coco_captions_load(path, &lines, &n) != 0 && strstr(sid_error(), path) && strstr(sid_error(), "no captions"),
           "a file of empty lines: '%s'", sid_error());
    EXPECT(sid_coco_captions_load("/nonexistent/captions.txt", &lines, &n) != 0 &&
               strstr(sid_error(), "/nonexistent/captions.txt"),
           "a missing file: '%s'", sid_error());
    test_remove_tree(dir);
}

static void test_quantisation(void) {
    // trunc(clamp(x * 127.5 + 128, 0, 255)): round half up of 127.5 (x + 1), NaN -> 0
    const float x[] = {-1.0f, 1.0f, 0.0f, -2.0f, 3.0f, 0.003f, -0.0039f, NAN, 0.99f, -0.996f};
    const int want[] = {0, 255, 128, 0, 255, 128, 127, 0, 254, 1};
    enum { N = sizeof x / sizeof x[0] };
    float chw[3 * N];
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < N; i++) chw[c * N + i] = c == 1 ? x[i] : -1.0f;
    uint8_t rgb[3 * N], grey[3 * N];
    sid_coco_quantize(chw, 3, 1, N, rgb);
    sid_coco_quantize(x, 1, 1, N, grey);
    for (int i = 0; i < N; i++) {
        EXPECT(rgb[3 * i + 1] == want[i] && rgb[3 * i] == 0 && rgb[3 * i + 2] == 0, "x = %g: (%d %d %d), want (0 %d 0)",
               x[i], rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], want[i]);
        EXPECT(grey[3 * i] == want[i] && grey[3 * i + 1] == want[i] && grey[3 * i + 2] == want[i],
               "grey x = %g: replicated %d %d %d, want %d", x[i], grey[3 * i], grey[3 * i + 1], grey[3 * i + 2], want[i]);
    }
}

static void test_stats_file_roundtrip_and_refusals(void) {
    enum { N = 40, D = 16, M = 7 };
    float *f = malloc(sizeof(float) * N * D);
    sid_rng r = sid_rng_new(test_seed ^ 0xc0c0);
    sid_rng_normal(&r, f, N * D);
    sid_fid_stats s, t;
    EXPECT(sid_fid_stats_from_features(&s, f, N, D, M, "test features", "a folder") == 0, "%s", sid_error());
    EXPECT(s.kid_n == M, "kid rows %lld, want %d", (long long)s.kid_n, M);
    for (int i = 0; i < M; i++)
        EXPECT(memcmp(s.kid + i * D, f + (size_t)sid_fid_stats_kid_row(i, N, M) * D, D * sizeof(float)) == 0 &&
                   sid_fid_stats_kid_row(i, N, M) == i * N / M,
               "kid row %d is not row floor(%d * %d / %d) of the features", i, i, N, M);
    char dir[] = "/tmp/sid_coco_XXXXXX", path[64], bad[64];
    if (!mkdtemp(dir)) return test_fail(__FILE__, __LINE__, "mkdtemp");
    snprintf(path, sizeof path, "%s/stats.safetensors", dir);
    EXPECT(sid_fid_stats_save(&s, path) == 0, "%s", sid_error());
    EXPECT(sid_fid_stats_load(&t, path, D) == 0, "%s", sid_error());
    EXPECT(t.g.n == N && t.g.d == D && t.kid_n == M && strcmp(t.source, "a folder") == 0 &&
               strcmp(t.features, "test features") == 0,
           "reloaded n %lld d %d kid %lld source '%s'", (long long)t.g.n, t.g.d, (long long)t.kid_n, t.source);
    EXPECT(t.g.mu && memcmp(t.g.mu, s.g.mu, D * sizeof(double)) == 0 && memcmp(t.g.cov, s.g.cov, D * D * sizeof(double)) == 0 &&
               memcmp(t.kid, s.kid, (size_t)M * D * sizeof(float)) == 0,
           "the statistics do not come back bit for bit");
    double fid = -1;
    EXPECT(sid_frechet_distance(&s.g, &t.g, &fid) == 0 && fabs(fid) < 1e-9, "FID of a file with itself %g", fid);
    sid_fid_stats_free(&t);
    EXPECT(sid_fid_stats_load(&t, path, 2048) != 0 && strstr(sid_error(), path) && strstr(sid_error(), "2048"),
           "wrong width: '%s'", sid_error());
    snprintf(bad, sizeof bad, "%s/not_stats.safetensors", dir);
    sid_st_entry e = {"mu", SID_F32, 1, {D}, f};
    EXPECT(sid_st_write(bad, &e, 1, NULL, 0) == 0, "%s", sid_error());
    EXPECT(sid_fid_stats_load(&t, bad, 0) != 0 && strstr(sid_error(), bad) && strstr(sid_error(), "fid-ref-stats"),
           "a safetensors file that is no stats file: '%s'", sid_error());
    sid_fid_stats_free(&s);
    free(f);
    test_remove_tree(dir);
}

// A folder of small images of varied sizes (both formats); n written.
static int write_image_folder(const char *dir) {
    sid_rng r = sid_rng_new(test_seed ^ 0x1ae);
    static const int wh[][2] = {{48, 36}, {40, 40}, {33, 57}, {64, 48}, {50, 50}};
    char path[128];
    int n = 0;
    for (size_t k = 0; k < sizeof wh / sizeof wh[0]; k++, n++) {
        const int w = wh[k][0], h = wh[k][1];
        uint8_t *pix = malloc((size_t)w * h * 3);
        float *u = malloc(sizeof(float) * w * h * 3);
        sid_rng_uniform(&r, u, (size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++) pix[i] = (uint8_t)(u[i] * 255.999f);
        free(u);
        snprintf(path, sizeof path, "%s/img_%02zu.png", dir, k);
        if (sid_png_write(path, pix, w, h, 3)) test_fail(__FILE__, __LINE__, "%s", sid_error());
        free(pix);
    }
    snprintf(path, sizeof path, "%s/notes.txt", dir);  // not an image: skipped
    test_write_text(path, "skipped");
    return n;
}

static void test_reference_stats_of_a_folder(void) {
    char dir[] = "/tmp/sid_coco_XXXXXX", imgs[64], cache[64];
    if (!mkdtemp(dir)) return test_fail(__FILE__, __LINE__, "mkdtemp");
    snprintf(imgs, sizeof imgs, "%s/images", dir);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    mkdir(imgs, 0755), mkdir(cache, 0755);
    const int n = write_image_folder(imgs);
    // the features one by one, in name order, through the protocol's preprocessing
    sid_inception *m = sid_inception_random(5, NULL);
    float *feat = malloc(sizeof(float) * n * SID_INCEPTION_FEATURES);
    float *px = malloc(sizeof(float) * 3 * SID_INCEPTION_SIZE * SID_INCEPTION_SIZE);
    sid_arena act;
    sid_arena_init(&act, "act", sid_inception_act_bytes(SID_INCEPTION_SIZE) + (1u << 20));
    const sid_ctx c = {.act = &act};
    for (int k = 0; k < n; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/img_%02d.png", imgs, k);
        uint8_t *rgb;
        int w, h;
        EXPECT(sid_image_read_rgb(path, &rgb, &w, &h) == 0, "%s", sid_error());
        EXPECT(sid_coco_prep_image(rgb, w, h, px, 0, NULL, NULL, NULL) == 0, "%s", sid_error());
        EXPECT(sid_inception_forward(&c, m, feat + (size_t)k * SID_INCEPTION_FEATURES, px, 1, SID_INCEPTION_SIZE) == 0,
               "%s", sid_error());
        sid_arena_reset(&act, 0);
        free(rgb);
    }
    sid_fid_stats want, got, again;
    EXPECT(sid_fid_stats_from_features(&want, feat, n, SID_INCEPTION_FEATURES, 3, "", "") == 0, "%s", sid_error());
    EXPECT(sid_coco_ref_stats(imgs, "random:5", cache, 3, NULL, 2, &got) == 0, "%s", sid_error());
    EXPECT(got.g.n == n && got.kid_n == 3, "n %lld kid %lld, want %d and 3", (long long)got.g.n, (long long)got.kid_n, n);
    double dmu = 0, dcov = 0;
    for (int i = 0; i < SID_INCEPTION_FEATURES && got.g.mu; i++) dmu = fmax(dmu, fabs(got.g.mu[i] - want.g.mu[i]));
    for (size_t i = 0; i < (size_t)SID_INCEPTION_FEATURES * SID_INCEPTION_FEATURES && got.g.cov; i++)
        dcov = fmax(dcov, fabs(got.g.cov[i] - want.g.cov[i]));
    // batches of 2 against batches of 1: the same arithmetic per image
    EXPECT(dmu < 1e-5 && dcov < 1e-5, "folder statistics differ from the image-by-image ones: mu %g, sigma %g", dmu, dcov);
    // a rerun reads the cached feature shards: the same statistics bit for bit
    EXPECT(sid_coco_ref_stats(imgs, "random:5", cache, 3, NULL, 3, &again) == 0, "%s", sid_error());
    EXPECT(again.g.mu && got.g.mu && memcmp(again.g.mu, got.g.mu, SID_INCEPTION_FEATURES * sizeof(double)) == 0,
           "the cached rerun changed the statistics");
    sid_fid_stats_free(&again);
    // the cache was made with another network: refused, naming the manifest and the key
    sid_fid_stats other;
    EXPECT(sid_coco_ref_stats(imgs, "random:6", cache, 3, NULL, 2, &other) != 0 && strstr(sid_error(), "manifest.json") &&
               strstr(sid_error(), "inception"),
           "a cache of another network: '%s'", sid_error());
    EXPECT(sid_coco_ref_stats(dir, "random:5", NULL, 3, NULL, 2, &other) != 0 && strstr(sid_error(), dir),
           "a folder without images: '%s'", sid_error());
    EXPECT(sid_coco_ref_stats(imgs, "/nonexistent/inception.safetensors", NULL, 3, NULL, 2, &other) != 0 &&
               strstr(sid_error(), "/nonexistent/inception.safetensors") && strstr(sid_error(), "convert_fid_inception"),
           "missing Inception weights: '%s'", sid_error());
    sid_fid_stats_free(&want), sid_fid_stats_free(&got);
    sid_arena_free(&act);
    sid_inception_free(m);
    free(feat), free(px);
    test_remove_tree(dir);
}

TEST_LIST(T(test_captions_as_the_protocol_reads_them), T(test_quantisation), T(test_stats_file_roundtrip_and_refusals),
          T(test_reference_stats_of_a_folder))
TEST_MAIN("coco")
