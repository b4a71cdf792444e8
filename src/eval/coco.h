// Zero-shot COCO-2014 evaluation under the protocol of the SiD-LSG paper (docs/coco.md):
// caption i of the captions file generated with seed i, FID and KID of the Inception pool3
// features against reference statistics of the COCO val2014 images (GigaGAN's crop + Lanczos 256,
// clean-fid's bicubic 299), and the CLIP score (GigaGAN's "A photo depicts" prompt, mean cosine).
//
// The work folder keeps what is done: images/NNNNNN.png as they are generated, and per 100
// images a shard of their features (shards/NNNNNN.safetensors: "inception" [k, 2048] and, with
// CLIP, "clip_cos" [k]); manifest.json records the model, captions and networks it was made with.
// A rerun skips finished shards, reuses written images, and refuses a folder made with other
// inputs. Reference statistics computed from a folder are cached in the same way.
#ifndef SID_EVAL_COCO_H
#define SID_EVAL_COCO_H
#include <stdint.h>

#include "eval/fid_stats.h"
#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SID_COCO_SHARD = 100 };

typedef struct {
    const char *model;      // a generator folder (one step) or a pipeline (DDIM, steps / cfg below)
    const char *captions;   // one caption per line, stripped, empty lines skipped
    const char *coco_val;   // reference images folder, or NULL when ref_stats is given
    const char *ref_stats;  // a sid-fid-stats file (sid fid-ref-stats), or NULL
    const char *inception;  // FID Inception safetensors, or "random" / "random:SEED" (pipeline tests only)
    const char *clip;       // a transformers CLIP folder, or NULL: no CLIP score
    const char *work;       // the work folder
    int64_t n;              // images (first n captions)
    int64_t kid_ref;        // reference features kept for KID when stats are made from coco_val
    int batch;              // images per network call
    int steps;              // DDIM steps for a pipeline (ignored for a generator)
    float cfg;              // guidance for a pipeline
    const sid_backend *be;  // NULL: the CPU
} sid_coco_opts;

typedef struct {
    int64_t n, ref_n, kid_ref_n;
    double fid, kid, kid_se, clip_score;
    int has_kid, has_clip;
    double gen_seconds, feature_seconds;  // this run's time generating, and computing features
    int64_t generated, reused;            // images generated in this run, images found on disk
} sid_coco_result;

int sid_coco_eval(const sid_coco_opts *o, sid_coco_result *r);

// The captions file as the protocol reads it: each line stripped of surrounding whitespace, empty
// lines skipped. *lines (malloc'd, free with sid_coco_captions_free) holds *n strings.
int sid_coco_captions_load(const char *path, char ***lines, int64_t *n);
void sid_coco_captions_free(char **lines, int64_t n);
// Generated pixels [C, H, W] in [-1, 1] (C = 1 or 3) as the protocol saves them: HWC RGB bytes
// trunc(clamp(x * 127.5 + 128, 0, 255)) in float32, grey replicated; NaN becomes 0.
void sid_coco_quantize(const float *chw, int C, int H, int W, uint8_t *rgb);
// The features of one image for the protocol: FID Inception input [3, 299, 299] (0..255) and, when
// clip_size > 0, CLIP input [3, clip_size, clip_size] normalised with mean / std.
int sid_coco_prep_image(const uint8_t *rgb, int w, int h, float *fid_chw, int clip_size, const float *mean,
                        const float *std, float *clip_chw);

// Reference statistics of every image of a folder (.png / .jpg / .jpeg, sorted by name) through
// the FID preprocessing and network; cache_dir (or NULL) keeps feature shards for a resumable run.
int sid_coco_ref_stats(const char *images_dir, const char *inception, const char *cache_dir, int64_t kid_max,
                       const sid_backend *be, int batch, sid_fid_stats *out);

#ifdef __cplusplus
}
#endif

#endif
