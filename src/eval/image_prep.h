// The image preprocessing of the zero-shot COCO evaluation protocol, equal value for value to the
// Python stack it comes from (Pillow 13.0.0, torchvision, clean-fid, OpenCLIP, GigaGAN's
// evaluation code; tools/reference/image_prep_reference.py writes the values tests/test_image_prep.c
// checks). Resampling is src/eval/pil_resample.h.
//
// All images are host memory, RGB, interleaved HWC uint8 unless said otherwise. Functions return 0,
// or -1 with a one-line error (sid_error()).
#ifndef SID_EVAL_IMAGE_PREP_H
#define SID_EVAL_IMAGE_PREP_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// torchvision center_crop to a square of side min(w, h) (offsets round((H - h) / 2) and
// round((W - w) / 2), Python's round: halves to even), then PIL Image.resize((side, side), LANCZOS)
// of the uint8 image. out: side * side * 3.
int sid_eval_square_u8(const uint8_t *rgb, int w, int h, int side, uint8_t *out);
// clean-fid "clean" mode: every channel as a float32 PIL "F" image resized to out_side x out_side
// with PIL BICUBIC, no re-quantisation, then clipped to [0, 255] as clean-fid's resizer does.
// out: planar CHW float [3, out_side, out_side] in the 0..255 scale.
int sid_fid_prep(const uint8_t *rgb, int w, int h, int out_side, float *out_chw);
// GigaGAN's round trip of a uint8 image through its [-1, 1] float32 tensor (EvalDataset's ToTensor
// and Normalize(0.5, 0.5): (x / 255 - 0.5) / 0.5) and back (tensor2pil: (t + 1) * 127.5, clamped,
// truncated to uint8), in place over n bytes. Values 1..63 come back one lower, as in torch.
void sid_gigagan_u8_roundtrip(uint8_t *rgb, size_t n);
// OpenCLIP's eval transform: torchvision Resize(size, BICUBIC) of the short side (the long side
// becomes int(size * long / short); PIL resize of the uint8 image, skipped when the size is already
// right), CenterCrop(size) with torchvision's offsets, ToTensor (x / 255 in float32), Normalize(mean,
// std) ((x - mean) / std in float32). out: planar CHW float [3, size, size].
int sid_clip_prep(const uint8_t *rgb, int w, int h, int size, const float mean[3], const float std[3], float *out_chw);

#ifdef __cplusplus
}
#endif

#endif
