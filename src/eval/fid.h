// Frechet distance between Gaussians fitted to two feature sets (FID when the
// features are a classifier's penultimate activations):
//   d^2 = |mu1 - mu2|^2 + Tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)
// All in double. The square roots are symmetric (LAPACKE_dsyevd eigen-
// decompositions, negative round-off eigenvalues clamped to 0), so a singular
// covariance (fewer samples than features) is handled. Covariances are the
// unbiased ones (divided by n - 1), as numpy.cov and pytorch-fid use.
#ifndef SID_EVAL_FID_H
#define SID_EVAL_FID_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int d;         // feature width
    int64_t n;     // samples the statistics came from
    double *mu;    // [d]
    double *cov;   // [d, d], symmetric
} sid_gauss;

// Fits mean and covariance of n >= 2 rows of d floats. Returns -1 (with an error) when n < 2.
int sid_gauss_fit(sid_gauss *g, const float *feat, int64_t n, int d);
void sid_gauss_free(sid_gauss *g);

// Symmetric square root of a symmetric positive semi-definite n x n matrix a (row-major) into out
// (may alias a): V diag(sqrt(max(lambda, 0))) V^T. -1 when the eigensolver fails.
int sid_sqrtm_psd(const double *a, int n, double *out);
// Tr((a^1/2 b a^1/2)^1/2) for symmetric PSD a and b; -1 when the eigensolver fails.
int sid_trace_sqrt_product(const double *a, const double *b, int n, double *out);

// The Frechet distance between two fits of the same width (clamped at 0 against round-off).
int sid_frechet_distance(const sid_gauss *a, const sid_gauss *b, double *out);
// The distance of n feature rows [n, d] to a fit: the same number as fitting the rows and calling
// sid_frechet_distance, but with fewer rows than features (a smoke run, a small subset) the trace
// term comes from the n x n matrix X S X^T / (n - 1) of the centred rows X (the non-zero
// eigenvalues of S_rows S are its eigenvalues) instead of two d x d eigendecompositions.
int sid_frechet_distance_rows(const float *feat, int64_t n, int d, const sid_gauss *b, double *out);
// Both steps at once: fits the two feature sets and returns their distance.
int sid_fid_features(const float *fa, int64_t na, const float *fb, int64_t nb, int d, double *out);

// ---- naive references, no LAPACK (tests only): Denman-Beavers iteration with Gauss-Jordan
// inverses, for a matrix with no eigenvalues on the closed negative real axis (an SPD matrix, or a
// product of two SPD matrices). Returns the iterations used, or -1 if it did not converge.
int sid_sqrtm_denman_beavers(const double *a, int n, double *out, int max_iter);
// The distance as pytorch-fid writes it: |dmu|^2 + Tr C1 + Tr C2 - 2 Tr sqrtm(C1 C2), the square
// root of the (non-symmetric) product by Denman-Beavers. Needs positive definite covariances.
int sid_frechet_distance_naive(const sid_gauss *a, const sid_gauss *b, double *out);

#ifdef __cplusplus
}
#endif

#endif
