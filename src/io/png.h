// 8-bit PNG images via libpng: sample grids for training logs, and reading
// back for tests and tools.
#ifndef SID_IO_PNG_H
#define SID_IO_PNG_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// pix: h rows of w*channels bytes, channels 1 (gray) or 3 (RGB). Atomic.
int sid_png_write(const char *path, const uint8_t *pix, int w, int h, int channels);
// Any PNG, reduced to 8-bit gray (channels 1) or RGB (channels 3): palettes are
// expanded, 16-bit samples and alpha dropped. *pix is malloc'd, row-major HWC.
int sid_png_read(const char *path, uint8_t **pix, int *w, int *h, int *channels);
// imgs: n images NCHW (c = 1 or 3) with values in [-1, 1], mapped to 0..255
// with rounding and clamping (NaN -> 0). Laid out min(cols, n) per row, row
// after row, with pad black pixels between neighbouring cells (no outer
// border); cells past n stay black.
int sid_png_write_grid(const char *path, const float *imgs, int n, int c, int h, int w, int cols, int pad);

#ifdef __cplusplus
}
#endif

#endif
