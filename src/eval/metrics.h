// The distribution metrics of the evaluation panel beyond FID (eval/fid.h), each on two sets of
// feature rows (or, for the pixel statistics, of images):
//
//   KID        unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3 (Binkowski
//              et al. 2018) on the whole sets, not on subsets, with its standard error from the
//              two-sample delete-one jackknife (the variances of leaving out one row of either set,
//              summed). Unbiased, so it can be negative and needs no equal N.
//   precision  the fraction of generated rows inside the real manifold: the union of the balls
//              around each real row of radius its distance to its k-th nearest real neighbour
//              (Kynkaanniemi et al. 2019, k = 3); recall the same with the roles swapped.
//   density    mean over generated rows of how many real balls contain it, divided by k; coverage
//              the fraction of real rows whose ball contains a generated row (Naeem et al. 2020).
//              Both sets should have the same size (the k-NN radii shrink as a set grows).
//              Distances come from sgemm; a pair within that route's rounding of a radius is
//              decided on its distance in double, so a ball always holds the point defining it.
//   pixels     mean intensity and contrast (per-image standard deviation, averaged) on [0, 1], and
//              the high-frequency share of the power spectrum: the power of the 2-D DFT at spatial
//              frequencies above half the Nyquist frequency (|f| > H/4 cycles per image) over the
//              power at every frequency but 0, summed over the set. Grain raises it, blur lowers it.
//
// All sums in double; the pairwise products go through sgemm in blocks (no N x N matrix is held).
#ifndef SID_EVAL_METRICS_H
#define SID_EVAL_METRICS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// KID of a [na, d] against b [nb, d] (na, nb >= 3): *kid the estimate, *se its standard error.
int sid_kid(const float *a, int64_t na, const float *b, int64_t nb, int d, double *kid, double *se);

// A set's kernel sums within itself, kept for scoring many sets against the same reference (the
// 10k test images: 10^8 kernel values, computed once). x is not copied: it must outlive the set.
typedef struct {
    const float *x;
    int64_t n;
    int d;
    double *self;  // [n]: sum over the other rows j of k(x_i, x_j)
    double total;  // the sum of self
} sid_kid_set;
int sid_kid_set_init(sid_kid_set *s, const float *x, int64_t n, int d);
void sid_kid_set_free(sid_kid_set *s);
int sid_kid_between(const sid_kid_set *a, const sid_kid_set *b, double *kid, double *se);

typedef struct {
    double precision, recall, density, coverage;
} sid_prdc;
// real [nr, d] and generated [ng, d], k nearest neighbours (1 <= k < nr, ng).
int sid_prdc_compute(const float *real, int64_t nr, const float *gen, int64_t ng, int d, int k, sid_prdc *out);

typedef struct {
    double mean, contrast, hf_share;
} sid_pixel_stats;
// n grey images [n, H, W] with values in [-1, 1] (mapped to [0, 1]); H and W even, at most 256.
int sid_pixel_stats_compute(const float *imgs, int64_t n, int H, int W, sid_pixel_stats *out);

#ifdef __cplusplus
}
#endif

#endif
