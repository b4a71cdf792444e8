// Judging generated Fashion-MNIST images with the evaluation classifier
// (eval/classifier.h): FID of their penultimate features against the 10k test
// images' features (eval/fid.h), and alignment, the fraction of images the
// classifier assigns to the class their prompt named.
//
// Images are judged as they would be saved: each value is mapped to the 8-bit
// grid exactly as the PNG writer does (clamped to [-1, 1], NaN -> -1), so the
// generated and the real images (8-bit data) are measured alike. FID grows as
// N shrinks (its estimator is biased); compare numbers only at equal N, with
// N >= 5,000, and against the real-vs-real floor at the same N.
#ifndef SID_EVAL_EVAL_H
#define SID_EVAL_EVAL_H
#include <stdint.h>

#include "eval/classifier.h"
#include "eval/fid.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n;                                // images judged
    double fid;                           // against the reference features
    double alignment;                     // fraction classified as the prompted class (NAN without prompts)
    double confidence;                    // mean softmax probability of the prompted class (NAN without prompts)
    int class_count[SID_CLS_CLASSES];     // images prompted with each class
    double class_alignment[SID_CLS_CLASSES];  // alignment within each prompted class (NAN where none)
} sid_eval_result;

// The reference statistics: the classifier's features of the 10k test images of data_dir (NULL:
// the default). About 5 s on 2 cores; compute once and pass to every sid_eval_images.
int sid_eval_reference(const sid_classifier *c, const char *data_dir, sid_gauss *ref);

// FID and alignment of N >= 2 images [N, 1, 32, 32] (values in [-1, 1]) generated for the classes in
// prompted_class [N] (0..9; NULL: FID only). ref NULL fits the test set here (sid_eval_reference
// with the default folder) and frees it again.
int sid_eval_images(const sid_classifier *c, const sid_gauss *ref, const float *imgs, const int *prompted_class,
                    int N, sid_eval_result *out);

// The real-vs-real floor: FID between the features of the training images (all 60k, and the first
// n_small of them, typically the 5k of a generated set) and the test images, and the classifier's
// accuracy on both sets. About 30 s on 2 cores.
typedef struct {
    int n_train, n_test, n_small;
    double fid_train_test;   // all training images vs the test set
    double fid_small_test;   // the first n_small training images vs the test set
    double train_accuracy, test_accuracy;
} sid_eval_floor;
int sid_eval_real_floor(const sid_classifier *c, const char *data_dir, int n_small, sid_eval_floor *out);

// Images as the PNG writer stores them: round((x + 1) * 127.5) clamped to 0..255 (NaN -> 0), mapped
// back to [-1, 1]. dst may alias src.
void sid_eval_quantize(float *dst, const float *src, size_t n);
// An image [C, H, W] in [-1, 1] (C = 1, or 3 for RGB: Rec. 601 luminance) as the classifier's
// 32x32 grey input, each output pixel the area-weighted mean of the source pixels it covers.
void sid_image_to_grey32(const float *img, int C, int H, int W, float *out);

#ifdef __cplusplus
}
#endif

#endif
