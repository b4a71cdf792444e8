// Reference statistics for FID and KID, computed once from a folder of reference images and kept
// in a small safetensors file, so that an evaluation needs prompts and this file only:
//   "mu"           F64 [d]      mean of the features
//   "sigma"        F64 [d, d]   unbiased covariance (divided by n - 1)
//   "kid_features" F32 [m, d]   an evenly spaced subset of the features, for KID (m may be 0)
// metadata: "format" = "sid-fid-stats-1", "n" = images, "features" (what the features are), and
// "source" (the folder they came from, for the record).
#ifndef SID_EVAL_FID_STATS_H
#define SID_EVAL_FID_STATS_H
#include <stdint.h>

#include "eval/fid.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    sid_gauss g;
    float *kid;      // [m, d] or NULL
    int64_t kid_n;   // m
    char features[96], source[256];
} sid_fid_stats;

// From n feature rows of width d (all kept for the fit; kid_max rows kept for KID, evenly spaced).
int sid_fid_stats_from_features(sid_fid_stats *s, const float *feat, int64_t n, int d, int64_t kid_max,
                                const char *features, const char *source);
int sid_fid_stats_save(const sid_fid_stats *s, const char *path);
// -1 with one line naming the file: not a stats file, wrong shapes, non-finite values, or width
// other than want_d (0: any).
int sid_fid_stats_load(sid_fid_stats *s, const char *path, int want_d);
void sid_fid_stats_free(sid_fid_stats *s);

// The evenly spaced subset: row i of the m kept is row floor(i * n / m) (m = min(n, kid_max)).
int64_t sid_fid_stats_kid_row(int64_t i, int64_t n, int64_t m);

#ifdef __cplusplus
}
#endif

#endif
