// Reading an image file of either format the evaluation meets (PNG: generated images and
// prepared folders; JPEG: the COCO reference images) as 8-bit RGB.
#ifndef SID_IO_IMAGE_H
#define SID_IO_IMAGE_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The format is told by the file's first bytes, not its name. Gray images are replicated into
// three channels, alpha is dropped (PIL's convert("RGB") for these modes). *pix malloc'd, h rows
// of 3 * w bytes. -1 with one line naming the file otherwise.
int sid_image_read_rgb(const char *path, uint8_t **pix, int *w, int *h);
// Whether a file name looks like an image this reads (.png, .jpg, .jpeg, any case).
int sid_image_name_ok(const char *name);

#ifdef __cplusplus
}
#endif

#endif
