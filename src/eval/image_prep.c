// The protocol's transforms around Pillow's resampling: crops placed as torchvision places them,
// torchvision's short-side rule, and the float32 conversions in torch's operation order (each
// step rounded to float32, as the tensors are).
#include "eval/image_prep.h"

#include <stdlib.h>

#include "core/error.h"
#include "eval/pil_resample.h"

// torchvision's int(round((in - crop) / 2.0)); Python rounds halves to even.
static int center_offset(int in, int crop) {
    const int d = in - crop, half = d / 2;
    return (d % 2 && half % 2) ? half + 1 : half;
}

static int check_image(const char *what, const void *rgb, int w, int h, int side, const void *out) {
    if (!rgb || !out) {
        sid_set_error("%s: no image buffer", what);
        return -1;
    }
    if (w <= 0 || h <= 0) {
        sid_set_error("%s: image size %dx%d is not positive", what, w, h);
        return -1;
    }
    if (side <= 0) {
        sid_set_error("%s: output side %d is not positive", what, side);
        return -1;
    }
    return 0;
}

int sid_eval_square_u8(const uint8_t *rgb, int w, int h, int side, uint8_t *out) {
    if (check_image("evaluation square", rgb, w, h, side, out)) return -1;
    const int crop = w < h ? w : h;
    const uint8_t *origin = rgb + ((size_t)center_offset(h, crop) * w + center_offset(w, crop)) * 3;
    return sid_pil_resize_u8(origin, crop, crop, 3, (size_t)w * 3, side, side, SID_PIL_LANCZOS, out);
}

int sid_fid_prep(const uint8_t *rgb, int w, int h, int out_side, float *out_chw) {
    if (check_image("FID preprocessing", rgb, w, h, out_side, out_chw)) return -1;
    const size_t n = (size_t)w * h, m = (size_t)out_side * out_side;
    float *plane = sid_malloc(n * sizeof(float));
    int rc = 0;
    for (int c = 0; c < 3 && !rc; c++) {
        for (size_t i = 0; i < n; i++) plane[i] = rgb[i * 3 + c];
        float *dst = out_chw + c * m;
        rc = sid_pil_resize_f32(plane, w, h, (size_t)w, out_side, out_side, SID_PIL_BICUBIC, dst);
        // The bicubic kernel overshoots; clean-fid clips the float result (np.clip(0, 255)).
        for (size_t i = 0; i < m && !rc; i++) dst[i] = dst[i] < 0.0f ? 0.0f : dst[i] > 255.0f ? 255.0f : dst[i];
    }
    free(plane);
    return rc;
}

void sid_gigagan_u8_roundtrip(uint8_t *rgb, size_t n) {
    uint8_t back[256];
    for (int v = 0; v < 256; v++) {
        // Below 0.25, x / 255 - 0.5 rounds in float32: that is what loses the one for 1..63.
        const float t = ((float)v / 255.0f - 0.5f) / 0.5f;
        float u = (t + 1.0f) * 127.5f;
        u = u < 0.0f ? 0.0f : u > 255.0f ? 255.0f : u;
        back[v] = (uint8_t)u;
    }
    for (size_t i = 0; i < n; i++) rgb[i] = back[rgb[i]];
}

int sid_clip_prep(const uint8_t *rgb, int w, int h, int size, const float mean[3], const float std[3], float *out_chw) {
    if (check_image("CLIP preprocessing", rgb, w, h, size, out_chw)) return -1;
    if (!mean || !std) {
        sid_set_error("CLIP preprocessing: no mean / std");
        return -1;
    }
    const int shorter = w <= h ? w : h, longer = w <= h ? h : w;
    // Python's int(size * long / short): an exact product, one correctly rounded division, truncation.
    const double long_side = (double)((int64_t)size * longer) / shorter;
    if (long_side >= (double)(1 << 30)) {
        sid_set_error("CLIP preprocessing: %dx%d resized to a short side of %d is too long", w, h, size);
        return -1;
    }
    const int rw = w <= h ? size : (int)long_side, rh = w <= h ? (int)long_side : size;
    const uint8_t *img = rgb;
    uint8_t *resized = NULL;
    if (rw != w || rh != h) {
        resized = sid_malloc((size_t)rw * rh * 3);
        if (sid_pil_resize_u8(rgb, w, h, 3, (size_t)w * 3, rw, rh, SID_PIL_BICUBIC, resized)) {
            free(resized);
            return -1;
        }
        img = resized;
    }
    const int top = center_offset(rh, size), left = center_offset(rw, size);
    const size_t m = (size_t)size * size;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++) {
            const uint8_t *row = img + ((size_t)(top + y) * rw + left) * 3 + c;
            float *dst = out_chw + c * m + (size_t)y * size;
            for (int x = 0; x < size; x++) dst[x] = ((float)row[x * 3] / 255.0f - mean[c]) / std[c];
        }
    free(resized);
    return 0;
}
