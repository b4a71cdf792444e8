// PNG grids: the first 12 bytes are n, c, h, w, cols, pad as signed 16-bit little-endian
// numbers (negative and zero ones test the argument checks), the rest the pixel values, as
// many floats as the images need (cycled; NaN and infinities included).
#include "fuzz/fuzz.h"
#include "io/png.h"

static int arg16(const uint8_t *p) { return (int16_t)(uint16_t)(p[0] | p[1] << 8); }

SID_FUZZ_TARGET(png) {
    if (size < 12) return 0;
    const int n = arg16(data), c = arg16(data + 2), h = arg16(data + 4), w = arg16(data + 6),
              cols = arg16(data + 8), pad = arg16(data + 10);
    // The caller's side of the contract is n*c*h*w floats; only sizes the function accepts or
    // refuses quickly are run (a valid 10^12-pixel grid would only test the disk).
    const int64_t values = (int64_t)(n > 0 ? n : 1) * (c > 0 ? c : 1) * (h > 0 ? h : 1) * (w > 0 ? w : 1);
    if (values > (1 << 20)) return 0;
    const int k = cols < 1 ? 1 : cols > n ? (n > 0 ? n : 1) : cols, rows = n > 0 ? (n + k - 1) / k : 1;
    const int64_t gw = (int64_t)k * (w > 0 ? w : 1) + (int64_t)(k - 1) * (pad > 0 ? pad : 0),
                  gh = (int64_t)rows * (h > 0 ? h : 1) + (int64_t)(rows - 1) * (pad > 0 ? pad : 0);
    if (gw * gh > (1 << 22) && gw <= 1000000 && gh <= 1000000) return 0;
    float *imgs = malloc((size_t)values * sizeof *imgs);
    if (!imgs) abort();
    const size_t nb = (size - 12) / 4;
    for (int64_t i = 0; i < values; i++) {
        if (nb) memcpy(&imgs[i], data + 12 + 4 * (size_t)(i % (int64_t)nb), 4);
        else imgs[i] = (float)(i % 7) / 3.0f - 1.0f;
    }
    char path[128];
    snprintf(path, sizeof path, "%s/grid.png", fuzz_tmp_dir());
    if (sid_png_write_grid(path, imgs, n, c, h, w, cols, pad) == 0) {
        uint8_t *pix;
        int rw, rh, rc;
        if (sid_png_read(path, &pix, &rw, &rh, &rc) != 0 || rw != gw || rh != gh || rc != c) abort();
        free(pix);
    }
    unlink(path);
    free(imgs);
    return 0;
}
