// The evaluation protocol's image preprocessing against Pillow 13.0.0 / torchvision / clean-fid /
// OpenCLIP / GigaGAN (tests/data/image_prep, tools/reference/image_prep_reference.py): uint8
// results equal value for value, float results within 1e-4 (the worst difference is printed), and
// checks that a wrong filter or a wrong pass order would be caught.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "eval/image_prep.h"
#include "eval/pil_resample.h"
#include "harness.h"
#include "io/safetensors.h"

typedef struct {
    const char *name;
    int w, h, seed;
    int square, fid, clip;  // output sides the reference wrote, 0: none
} prep_case;

// The same table as CASES / SQUARE / FID / CLIP in the reference script.
static const prep_case cases[] = {
    {"a", 640, 480, 1, 64, 72, 64},  {"b", 480, 640, 2, 64, 72, 64},  {"c", 333, 517, 3, 80, 90, 72},
    {"d", 100, 77, 4, 96, 88, 80},   {"e", 256, 256, 5, 64, 299, 0},  {"f", 512, 512, 6, 96, 299, 224},
    {"g", 1, 300, 7, 16, 41, 16},    {"h", 300, 1, 8, 16, 41, 16},    {"i", 299, 400, 9, 80, 0, 50},
    {"j", 64, 90, 10, 48, 64, 64},   {"k", 150, 500, 11, 0, 48, 48},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// The reference script's image(): bands of hash noise, a sawtooth ramp and a 0/255 checkerboard.
static uint8_t *make_image(int w, int h, int seed) {
    uint8_t *img = sid_malloc((size_t)w * h * 3);
    for (uint32_t y = 0; y < (uint32_t)h; y++)
        for (uint32_t x = 0; x < (uint32_t)w; x++)
            for (uint32_t c = 0; c < 3; c++) {
                uint32_t v = (x * 0x9E3779B1u) ^ (y * 0x85EBCA77u) ^ (c * 0xC2B2AE3Du) ^ ((uint32_t)seed * 0x27D4EB2Fu);
                v ^= v >> 15;
                v *= 0x2C1B3C6Du;
                v ^= v >> 12;
                v *= 0x297A2D39u;
                v ^= v >> 15;
                const uint32_t band = (x / 23 + y / 17) % 3;
                const uint32_t px = band == 0 ? (v & 255) : band == 1 ? ((x * 7 + y * 3 + c * 50) & 255)
                                                                      : (((x >> 3) ^ (y >> 3)) & 1 ? 255 : 0);
                img[((size_t)y * w + x) * 3 + c] = (uint8_t)px;
            }
    return img;
}

static sid_safetensors golden;
static int golden_open;

static const sid_safetensors *gold(void) {
    if (!golden_open) {
        char path[512];
        snprintf(path, sizeof path, "%s/image_prep/golden.safetensors", test_data_dir());
        if (sid_st_open(&golden, path)) {
            test_fail(__FILE__, __LINE__, "%s", sid_error());
            return NULL;
        }
        golden_open = 1;
    }
    return &golden;
}

// The reference tensor `prefix_name` as floats, its element count in *n; NULL (a failure) if absent.
static float *load(const char *prefix, const char *name, size_t *n, const sid_st_tensor **out) {
    const sid_safetensors *st = gold();
    if (!st) return NULL;
    char key[64];
    snprintf(key, sizeof key, "%s%s%s", prefix, name ? "_" : "", name ? name : "");
    const sid_st_tensor *t = sid_st_find(st, key);
    EXPECT(t, "golden has no tensor %s", key);
    if (!t) return NULL;
    *n = 1;
    for (int d = 0; d < t->ndim; d++) *n *= (size_t)t->shape[d];
    float *v = sid_malloc(*n * sizeof(float));
    if (sid_st_read_f32(st, t, v)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        free(v);
        return NULL;
    }
    if (out) *out = t;
    return v;
}

// Bytes that differ from a uint8 reference, the first one reported.
static size_t count_u8_diff(const char *what, const uint8_t *got, const float *want, size_t n) {
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != (uint8_t)want[i] && !diff++) first = i;
    if (diff)
        printf("\n  %s: %zu of %zu bytes differ (first at %zu: %d, reference %d)", what, diff, n, first, got[first],
               (int)want[first]);
    return diff;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d;  // NaN-safe: a NaN becomes the worst
    }
    return worst;
}

static void test_inputs_match_reference(void) {
    const sid_safetensors *st = gold();
    if (!st) return;
    for (int k = 0; k < N_CASES; k++) {
        char key[32];
        snprintf(key, sizeof key, "input_%s", cases[k].name);
        const sid_st_tensor *t = sid_st_find(st, key);
        EXPECT(t, "golden has no tensor %s", key);
        if (!t) continue;
        double want = 0;
        sid_st_read_f64(st, t, &want);
        uint8_t *img = make_image(cases[k].w, cases[k].h, cases[k].seed);
        const size_t n = (size_t)cases[k].w * cases[k].h * 3;
        double sum = 0;  // every partial sum an integer below 2^53: exact in any order
        for (size_t i = 0; i < n; i++) sum += (double)img[i] * (double)(i % 251 + 1);
        EXPECT(sum == want, "case %s: generated image checksum %.0f, reference %.0f", cases[k].name, sum, want);
        free(img);
    }
}

static void test_square_equals_pillow(void) {
    for (int k = 0; k < N_CASES; k++) {
        const prep_case *p = &cases[k];
        if (!p->square) continue;
        size_t n;
        float *want = load("square", p->name, &n, NULL);
        if (!want) continue;
        EXPECT(n == (size_t)p->square * p->square * 3, "square_%s: %zu values", p->name, n);
        uint8_t *img = make_image(p->w, p->h, p->seed), *out = sid_malloc((size_t)p->square * p->square * 3);
        EXPECT(sid_eval_square_u8(img, p->w, p->h, p->square, out) == 0, "%s", sid_error());
        if (n == (size_t)p->square * p->square * 3) {
            char what[64];
            snprintf(what, sizeof what, "square_%s (%dx%d to %d)", p->name, p->w, p->h, p->square);
            EXPECT(count_u8_diff(what, out, want, n) == 0, "%s differs from Pillow", what);
        }
        free(img);
        free(out);
        free(want);
    }
}

// A crop already of the requested side is returned as it is, as Pillow's resize copies it.
static void test_square_without_resize_is_the_crop(void) {
    const int w = 299, h = 400, top = 50;  // (400 - 299) / 2 = 50.5, which Python rounds to 50
    uint8_t *img = make_image(w, h, 9), *out = sid_malloc((size_t)w * w * 3);
    EXPECT(sid_eval_square_u8(img, w, h, w, out) == 0, "%s", sid_error());
    EXPECT(memcmp(out, img + (size_t)top * w * 3, (size_t)w * w * 3) == 0, "299x400 at 299 is not rows 50..348");
    free(img);
    free(out);
}

static void test_fid_prep_equals_clean_fid(void) {
    char line[512];
    int len = snprintf(line, sizeof line, "\n  fid max |diff|:");
    for (int k = 0; k < N_CASES; k++) {
        const prep_case *p = &cases[k];
        if (!p->fid) continue;
        size_t n;
        const sid_st_tensor *t = NULL;
        float *want = load("fid", p->name, &n, &t);
        if (!want) continue;
        const size_t m = (size_t)p->fid * p->fid;
        EXPECT(n == m || n == 3 * m, "fid_%s: %zu values", p->name, n);
        uint8_t *img = make_image(p->w, p->h, p->seed);
        float *out = sid_malloc(3 * m * sizeof(float));
        EXPECT(sid_fid_prep(img, p->w, p->h, p->fid, out) == 0, "%s", sid_error());
        if (n == m || n == 3 * m) {
            const double d = max_abs_diff(out, want, n);  // n == m: the reference kept channel 0 only
            len += snprintf(line + len, sizeof line - len, " %s %.3g", p->name, d);
            EXPECT(d <= 1e-4, "fid_%s (%dx%d to %d): max |diff| %.3g from clean-fid", p->name, p->w, p->h, p->fid, d);
        }
        free(img);
        free(out);
        free(want);
    }
    printf("%s ", line);
}

static void test_clip_prep_equals_open_clip(void) {
    char line[512];
    int len = snprintf(line, sizeof line, "\n  clip max |diff|:");
    for (int k = 0; k < N_CASES; k++) {
        const prep_case *p = &cases[k];
        if (!p->clip) continue;
        size_t n;
        float *want = load("clip", p->name, &n, NULL);
        if (!want) continue;
        const size_t m = (size_t)p->clip * p->clip;
        EXPECT(n == m || n == 3 * m, "clip_%s: %zu values", p->name, n);
        uint8_t *img = make_image(p->w, p->h, p->seed);
        float *out = sid_malloc(3 * m * sizeof(float));
        EXPECT(sid_clip_prep(img, p->w, p->h, p->clip, clip_mean, clip_std, out) == 0, "%s", sid_error());
        if (n == m || n == 3 * m) {
            const double d = max_abs_diff(out, want, n);
            len += snprintf(line + len, sizeof line - len, " %s %.3g", p->name, d);
            EXPECT(d <= 1e-4, "clip_%s (%dx%d to %d): max |diff| %.3g from OpenCLIP", p->name, p->w, p->h, p->clip, d);
        }
        free(img);
        free(out);
        free(want);
    }
    printf("%s ", line);
}

// 150x500 to 40x60 loses 440 rows and 110 columns, more than twice as many: Pillow 13 resizes
// vertically first, and the horizontal-first order (two one-axis resizes) gives other bytes.
static void test_pass_order_matters(void) {
    size_t n;
    float *want = load("resize", "k", &n, NULL);
    if (!want) return;
    const int w = 150, h = 500, ow = 40, oh = 60;
    EXPECT(n == (size_t)ow * oh * 3, "resize_k: %zu values", n);
    uint8_t *img = make_image(w, h, 11), *out = sid_malloc((size_t)ow * oh * 3), *mid = sid_malloc((size_t)ow * h * 3);
    EXPECT(sid_pil_resize_u8(img, w, h, 3, (size_t)w * 3, ow, oh, SID_PIL_BICUBIC, out) == 0, "%s", sid_error());
    if (n == (size_t)ow * oh * 3) {
        EXPECT(count_u8_diff("resize_k", out, want, n) == 0, "150x500 to 40x60 differs from Pillow");
        EXPECT(sid_pil_resize_u8(img, w, h, 3, (size_t)w * 3, ow, h, SID_PIL_BICUBIC, mid) == 0, "%s", sid_error());
        EXPECT(sid_pil_resize_u8(mid, ow, h, 3, (size_t)ow * 3, ow, oh, SID_PIL_BICUBIC, out) == 0, "%s", sid_error());
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += out[i] != (uint8_t)want[i];
        printf("\n  horizontal-first would differ in %zu of %zu bytes ", diff, n);
        EXPECT(diff > 0, "horizontal-first gives Pillow's bytes too: the reference cannot tell the orders apart");
    }
    free(img);
    free(out);
    free(mid);
    free(want);
}

// Bicubic where the protocol uses Lanczos must not pass the square check.
static void test_wrong_filter_is_caught(void) {
    size_t n;
    float *want = load("square", "a", &n, NULL);
    if (!want) return;
    uint8_t *img = make_image(640, 480, 1), *out = sid_malloc(64 * 64 * 3);
    EXPECT(sid_pil_resize_u8(img + 80 * 3, 480, 480, 3, 640 * 3, 64, 64, SID_PIL_BICUBIC, out) == 0, "%s", sid_error());
    size_t diff = 0;
    for (size_t i = 0; i < n && i < 64 * 64 * 3; i++) diff += out[i] != (uint8_t)want[i];
    EXPECT(diff > 0, "bicubic gives the Lanczos reference's bytes: the check cannot catch a wrong filter");
    EXPECT(sid_pil_resize_u8(img + 80 * 3, 480, 480, 3, 640 * 3, 64, 64, SID_PIL_LANCZOS, out) == 0, "%s", sid_error());
    EXPECT(count_u8_diff("square_a via resize", out, want, n) == 0,
           "the 480x480 crop at column 80 resized with Lanczos is not square_a");
    free(img);
    free(out);
    free(want);
}

static void test_gigagan_roundtrip_equals_torch(void) {
    size_t n;
    float *want = load("gigagan", NULL, &n, NULL);
    if (!want) return;
    EXPECT(n == 256, "gigagan: %zu values", n);
    uint8_t v[512];
    for (int i = 0; i < 512; i++) v[i] = (uint8_t)(i * 7);  // every byte, twice, out of order
    sid_gigagan_u8_roundtrip(v, sizeof v);
    int lower = 0;
    for (int i = 0; i < 512 && n == 256; i++) {
        const uint8_t x = (uint8_t)(i * 7);
        EXPECT(v[i] == (uint8_t)want[x], "byte %d comes back %d, torch %d", x, v[i], (int)want[x]);
        lower += i < 256 && v[i] != x;
    }
    EXPECT(lower == 63, "%d bytes come back changed (torch: 63, 1..63 one lower)", lower);
    free(want);
}

static int refused(const char *what, int rc) {
    const char *e = sid_error();
    EXPECT(rc == -1, "%s: rc %d, want -1", what, rc);
    EXPECT(rc != -1 || (e && *e && !strchr(e, '\n')), "%s: error '%s' is not one line", what, e ? e : "");
    return rc;
}

static void test_bad_input_refused(void) {
    uint8_t px[12] = {0}, out[48];
    float f[48];
    refused("square w=0", sid_eval_square_u8(px, 0, 2, 2, out));
    refused("square h<0", sid_eval_square_u8(px, 2, -1, 2, out));
    refused("square side=0", sid_eval_square_u8(px, 2, 2, 0, out));
    refused("fid w=0", sid_fid_prep(px, 0, 2, 2, f));
    refused("fid side<0", sid_fid_prep(px, 2, 2, -3, f));
    refused("clip h=0", sid_clip_prep(px, 2, 0, 2, clip_mean, clip_std, f));
    refused("clip size=0", sid_clip_prep(px, 2, 2, 0, clip_mean, clip_std, f));
    refused("clip no mean", sid_clip_prep(px, 2, 2, 2, NULL, clip_std, f));
    refused("resize 5 channels", sid_pil_resize_u8(px, 1, 1, 5, 5, 2, 2, SID_PIL_BICUBIC, out));
    refused("resize short stride", sid_pil_resize_u8(px, 2, 2, 3, 5, 1, 1, SID_PIL_BICUBIC, out));
    refused("resize huge", sid_pil_resize_f32(f, 1, 1, 1, 1 << 21, 1, SID_PIL_BICUBIC, f));
    EXPECT(strstr(sid_error(), "resize"), "error '%s' does not say what refused", sid_error());
}

TEST_LIST(T(test_inputs_match_reference), T(test_square_equals_pillow), T(test_square_without_resize_is_the_crop),
          T(test_fid_prep_equals_clean_fid), T(test_clip_prep_equals_open_clip), T(test_pass_order_matters),
          T(test_wrong_filter_is_caught), T(test_gigagan_roundtrip_equals_torch), T(test_bad_input_refused))
TEST_MAIN("image_prep")
