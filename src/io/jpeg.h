// JPEG decoding via libjpeg(-turbo), with the decoder settings Pillow uses (the accurate integer
// IDCT, fancy chroma upsampling), so that the pixels equal what PIL's Image.open(...).convert("RGB")
// gives: the reference images of the COCO protocol are JPEGs decoded by PIL.
#ifndef SID_IO_JPEG_H
#define SID_IO_JPEG_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Any baseline or progressive JPEG with 1 (gray) or 3 (YCbCr / RGB) components -> RGB, *pix
// malloc'd, h rows of 3 * w bytes; gray is replicated into the three channels, as PIL's
// convert("RGB") does. CMYK/YCCK files are refused (PIL's inverted-CMYK conversion is not
// reproduced). -1 with one line naming the file on any failure.
int sid_jpeg_read_rgb(const char *path, uint8_t **pix, int *w, int *h);

#ifdef __cplusplus
}
#endif

#endif
