#include "io/png.h"

#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"

// Larger images are refused rather than allocated: a PNG header can claim any
// size, and sid never makes pictures anywhere near this big.
#define PNG_MAX_BYTES ((size_t)1 << 30)

typedef struct {
    char msg[256];
} png_failure;

static void on_error(png_structp png, png_const_charp msg) {
    png_failure *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

// libpng prints warnings (e.g. about colour profiles) to stderr by default;
// they never affect the pixels sid uses.
static void on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static int encode(FILE *f, const uint8_t *pix, int w, int h, int channels, png_failure *err) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) sid_die("out of memory creating a PNG writer");
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, pix + (size_t)y * (size_t)w * (size_t)channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int sid_png_write(const char *path, const uint8_t *pix, int w, int h, int channels) {
    if (w < 1 || h < 1 || (channels != 1 && channels != 3) || !pix) {
        sid_set_error("%s: cannot write a %dx%d PNG with %d channels", path, w, h, channels);
        return -1;
    }
    char tmp[4096];
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) return -1;
    png_failure err = {{0}};
    if (encode(f, pix, w, h, channels, &err) != 0) {
        sid_atomic_abort(f, tmp);
        sid_set_error("%s: PNG encoding failed: %s", path, err.msg);
        return -1;
    }
    return sid_atomic_commit(f, tmp, path);
}

// Asks libpng for 8-bit gray or RGB whatever the stored format.
static void request_8bit_gray_or_rgb(png_structp png, png_infop info) {
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

static int decode(FILE *f, png_failure *err, uint8_t **pix, int *w, int *h, int *channels) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) sid_die("out of memory creating a PNG reader");
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(buf);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    request_8bit_gray_or_rgb(png, info);
    size_t pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
    size_t ch = png_get_channels(png, info), row = png_get_rowbytes(png, info);
    if ((ch != 1 && ch != 3) || row != pw * ch)
        png_error(png, "unexpected pixel layout after conversion to 8-bit gray/RGB");
    if (pw * ch > PNG_MAX_BYTES / ph) png_error(png, "image too large");
    buf = sid_malloc(row * ph);
    rows = sid_malloc(ph * sizeof *rows);
    for (size_t y = 0; y < ph; y++) rows[y] = buf + y * row;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *pix = buf;
    *w = (int)pw;
    *h = (int)ph;
    *channels = (int)ch;
    return 0;
}

int sid_png_read(const char *path, uint8_t **pix, int *w, int *h, int *channels) {
    *pix = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            sid_set_error("%s: no such file", path);
        else
            sid_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    uint8_t sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        sid_set_error("%s: not a PNG file", path);
        return -1;
    }
    png_failure err = {{0}};
    int rc = decode(f, &err, pix, w, h, channels);
    fclose(f);
    if (rc != 0) sid_set_error("%s: cannot decode PNG: %s", path, err.msg);
    return rc;
}

static uint8_t to_byte(float v) {
    float x = (v + 1.0f) * 127.5f;
    if (!(x > 0.0f)) return 0;  // also NaN
    if (x >= 255.0f) return 255;
    return (uint8_t)(x + 0.5f);
}

int sid_png_write_grid(const char *path, const float *imgs, int n, int c, int h, int w, int cols, int pad) {
    if (n < 1 || (c != 1 && c != 3) || h < 1 || w < 1 || cols < 1 || pad < 0 || !imgs) {
        sid_set_error("%s: invalid image grid (n=%d c=%d h=%d w=%d cols=%d pad=%d)", path, n, c, h, w, cols, pad);
        return -1;
    }
    if (cols > n) cols = n;
    int rows = (n + cols - 1) / cols;
    int64_t gw = (int64_t)cols * w + (int64_t)(cols - 1) * pad;
    int64_t gh = (int64_t)rows * h + (int64_t)(rows - 1) * pad;
    if (gw > 1000000 || gh > 1000000 || (uint64_t)(gw * gh * c) > PNG_MAX_BYTES) {
        sid_set_error("%s: image grid of %lldx%lld pixels is too large", path, (long long)gw, (long long)gh);
        return -1;
    }
    uint8_t *pix = sid_calloc((size_t)(gw * gh * c));
    size_t plane = (size_t)h * (size_t)w;
    for (int i = 0; i < n; i++) {
        const float *img = imgs + (size_t)i * (size_t)c * plane;
        int64_t x0 = (int64_t)(i % cols) * (w + pad), y0 = (int64_t)(i / cols) * (h + pad);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++)
                    pix[((y0 + y) * gw + x0 + x) * c + k] = to_byte(img[(size_t)k * plane + (size_t)y * w + x]);
    }
    int rc = sid_png_write(path, pix, (int)gw, (int)gh, c);
    free(pix);
    return rc;
}
