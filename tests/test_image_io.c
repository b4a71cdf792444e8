// Image files as the evaluation reads them: JPEG decoding equal to Pillow's value for value
// (tests/data/jpeg, tools/reference/jpeg_reference.py), PNG through the same entry point, and
// one-line refusals of what cannot be read.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "harness.h"
#include "io/image.h"
#include "io/png.h"
#include "io/safetensors.h"

static void path_of(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/jpeg/%s", test_data_dir(), name); }

static void test_jpeg_equals_pillow(void) {
    char gold[512];
    path_of(gold, sizeof gold, "golden.safetensors");
    sid_safetensors st;
    if (sid_st_open(&st, gold)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    static const char *const names[] = {"c420", "c444", "c422", "prog", "gray"};
    for (int k = 0; k < 5; k++) {
        const sid_st_tensor *t = sid_st_find(&st, names[k]);
        EXPECT(t && t->ndim == 3 && t->shape[2] == 3, "%s: no [H, W, 3] tensor %s", gold, names[k]);
        if (!t) continue;
        char file[520];
        snprintf(file, sizeof file, "%s/jpeg/%s.jpg", test_data_dir(), names[k]);
        uint8_t *pix = NULL;
        int w = 0, h = 0;
        EXPECT(sid_image_read_rgb(file, &pix, &w, &h) == 0, "%s", sid_error());
        if (!pix) continue;
        EXPECT(w == t->shape[1] && h == t->shape[0], "%s: %dx%d, Pillow %lldx%lld", names[k], w, h,
               (long long)t->shape[1], (long long)t->shape[0]);
        if (w == t->shape[1] && h == t->shape[0]) {
            float *want = sid_malloc((size_t)w * h * 3 * sizeof(float));
            sid_st_read_f32(&st, t, want);
            size_t diff = 0, first = 0;
            for (size_t i = 0; i < (size_t)w * h * 3; i++)
                if (pix[i] != (uint8_t)want[i] && !diff++) first = i;
            EXPECT(diff == 0, "%s: %zu of %d values differ from Pillow's (first at %zu: %d vs %d)", names[k], diff,
                   w * h * 3, first, pix[first], (int)want[first]);
            free(want);
        }
        free(pix);
    }
    sid_st_close(&st);
}

static void expect_refused(const char *file, const char *needle) {
    uint8_t *pix = NULL;
    int w, h;
    const int rc = sid_image_read_rgb(file, &pix, &w, &h);
    EXPECT(rc != 0 && !pix && strstr(sid_error(), file) && strstr(sid_error(), needle),
           "%s: rc %d, error '%s' (want one naming the file and '%s')", file, rc, sid_error(), needle);
    free(pix);
}

static void test_unreadable_images_refused(void) {
    char p[512];
    path_of(p, sizeof p, "cmyk.jpg");
    expect_refused(p, "4 components");
    path_of(p, sizeof p, "truncated.jpg");
    expect_refused(p, "JPEG");
    expect_refused("/nonexistent/x.jpg", "cannot open");
    char tmp[] = "/tmp/sid_imgio_XXXXXX";
    EXPECT(mkdtemp(tmp), "mkdtemp");
    snprintf(p, sizeof p, "%s/notimage.png", tmp);
    test_write_text(p, "hello, not an image\n");
    expect_refused(p, "neither a PNG nor a JPEG");
    test_remove_tree(tmp);
}

static void test_png_gray_becomes_rgb(void) {
    char tmp[] = "/tmp/sid_imgio_XXXXXX";
    EXPECT(mkdtemp(tmp), "mkdtemp");
    char p[300];
    snprintf(p, sizeof p, "%s/g.jpg", tmp);  // the name lies: the bytes decide
    uint8_t gray[6] = {0, 50, 100, 150, 200, 255};
    EXPECT(sid_png_write(p, gray, 3, 2, 1) == 0, "%s", sid_error());
    uint8_t *pix = NULL;
    int w = 0, h = 0;
    EXPECT(sid_image_read_rgb(p, &pix, &w, &h) == 0 && w == 3 && h == 2, "%s", sid_error());
    for (int i = 0; pix && i < 6; i++)
        EXPECT(pix[3 * i] == gray[i] && pix[3 * i + 1] == gray[i] && pix[3 * i + 2] == gray[i], "pixel %d", i);
    free(pix);
    EXPECT(sid_image_name_ok("a.PNG") && sid_image_name_ok("COCO_val2014_000000000042.jpg") &&
               sid_image_name_ok("x.jpeg") && !sid_image_name_ok("x.txt") && !sid_image_name_ok("png"),
           "image names");
    test_remove_tree(tmp);
}

TEST_LIST(T(test_jpeg_equals_pillow), T(test_unreadable_images_refused), T(test_png_gray_becomes_rgb))
TEST_MAIN("image_io")
