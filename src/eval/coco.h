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

// Reference statistics of every image of a folder (.png / .jpg / .jpeg, sorted by name) through
// the FID preprocessing and network; cache_dir (or NULL) keeps feature shards for a resumable run.
int sid_coco_ref_stats(const char *images_dir, const char *inception, const char *cache_dir, int64_t kid_max,
                       const sid_backend *be, int batch, sid_fid_stats *out);

#ifdef __cplusplus
}
#endif

#endif
