// Pillow 13's Image.resize(size, filter) (no box, no reducing_gap) value for value, for uint8
// images of 1 to 4 independent bands (modes L, RGB; Pillow would premultiply an RGBA image by its
// alpha first, which this does not) and float32 planes (mode "F"):
// the same filter kernels and coefficient windows, the same 22-bit fixed-point coefficients and
// rounding for uint8, double accumulation stored as float for "F", and the same pass order, which
// changes uint8 results: Pillow runs the vertical pass first when the height shrinks by more than
// twice as many pixels as the width, else the horizontal pass first over only the rows the
// vertical pass reads. Same-size requests copy the image, as Pillow does.
#ifndef SID_EVAL_PIL_RESAMPLE_H
#define SID_EVAL_PIL_RESAMPLE_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The protocol's two filters (Pillow's BICUBIC, a = -0.5, and LANCZOS, a = 3).
typedef enum { SID_PIL_BICUBIC, SID_PIL_LANCZOS } sid_pil_filter;

// in: h rows of w pixels of `channels` (1..4) interleaved bytes, rows `stride` bytes apart (a
// crop is a pointer into a larger image and its stride). out: out_h rows of out_w pixels, packed.
int sid_pil_resize_u8(const uint8_t *in, int w, int h, int channels, size_t stride, int out_w, int out_h,
                      sid_pil_filter filter, uint8_t *out);
// in: one float plane, rows `stride` floats apart. out: out_h x out_w floats, packed.
int sid_pil_resize_f32(const float *in, int w, int h, size_t stride, int out_w, int out_h, sid_pil_filter filter,
                       float *out);

#ifdef __cplusplus
}
#endif

#endif
