#include "eval/fid.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { FIT_CHUNK = 4096 };  // rows centred and multiplied at a time

int sid_gauss_fit(sid_gauss *g, const float *feat, int64_t n, int d) {
    memset(g, 0, sizeof *g);
    if (n < 2 || d < 1) {
        sid_set_error("feature statistics need at least 2 samples of width >= 1 (got %lld of width %d)", (long long)n,
                      d);
        return -1;
    }
    g->d = d, g->n = n;
    g->mu = sid_calloc((size_t)d * sizeof(double));
    g->cov = sid_calloc((size_t)d * d * sizeof(double));
    // two passes: the mean, then the centred cross products (no cancellation from E[xx] - E[x]^2)
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++) g->mu[j] += feat[i * d + j];
    for (int j = 0; j < d; j++) g->mu[j] /= (double)n;
    double *xc = sid_malloc((size_t)FIT_CHUNK * d * sizeof(double));
    for (int64_t i0 = 0; i0 < n; i0 += FIT_CHUNK) {
        const int rows = (int)(n - i0 < FIT_CHUNK ? n - i0 : FIT_CHUNK);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < d; j++) xc[(size_t)r * d + j] = (double)feat[(i0 + r) * d + j] - g->mu[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, rows, 1.0, xc, d, i0 ? 1.0 : 0.0, g->cov, d);
    }
    free(xc);
    const double s = 1.0 / (double)(n - 1);
    for (int i = 0; i < d; i++)
        for (int j = i; j < d; j++) g->cov[(size_t)j * d + i] = g->cov[(size_t)i * d + j] *= s;
    return 0;
}

void sid_gauss_free(sid_gauss *g) {
    free(g->mu);
    free(g->cov);
    memset(g, 0, sizeof *g);
}

// Eigenvalues (ascending) and, when vecs, eigenvectors as the columns of w, of the symmetric a.
static int sym_eig(const double *a, int n, double *w, double *lambda, int vecs) {
    memcpy(w, a, (size_t)n * n * sizeof(double));
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, vecs ? 'V' : 'N', 'U', n, w, n, lambda);
    if (info != 0) {
        sid_set_error("symmetric eigensolver (LAPACKE_dsyevd) failed on a %dx%d matrix: info %d", n, n, (int)info);
        return -1;
    }
    return 0;
}

int sid_sqrtm_psd(const double *a, int n, double *out) {
    double *v = sid_malloc((size_t)n * n * sizeof(double)), *vs = sid_malloc((size_t)n * n * sizeof(double));
    double *lambda = sid_malloc((size_t)n * sizeof(double));
    int rc = sym_eig(a, n, v, lambda, 1);
    if (rc == 0) {
        for (int j = 0; j < n; j++) lambda[j] = lambda[j] > 0 ? sqrt(lambda[j]) : 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) vs[(size_t)i * n + j] = v[(size_t)i * n + j] * lambda[j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, vs, n, v, n, 0.0, out, n);
        for (int i = 0; i < n; i++)  // exact symmetry
            for (int j = i + 1; j < n; j++) {
                const double m = 0.5 * (out[(size_t)i * n + j] + out[(size_t)j * n + i]);
                out[(size_t)i * n + j] = out[(size_t)j * n + i] = m;
            }
    }
    free(v), free(vs), free(lambda);
    return rc;
}

int sid_trace_sqrt_product(const double *a, const double *b, int n, double *out) {
    const size_t nn = (size_t)n * n;
    double *s = sid_malloc(nn * sizeof(double)), *t = sid_malloc(nn * sizeof(double));
    double *m = sid_malloc(nn * sizeof(double)), *lambda = sid_malloc((size_t)n * sizeof(double));
    int rc = sid_sqrtm_psd(a, n, s);
    if (rc == 0) {
        cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, n, n, 1.0, b, n, s, n, 0.0, t, n);  // b s
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, s, n, t, n, 0.0, m, n);  // s b s
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++) m[(size_t)i * n + j] = m[(size_t)j * n + i] =
                                                 0.5 * (m[(size_t)i * n + j] + m[(size_t)j * n + i]);
        rc = sym_eig(m, n, t, lambda, 0);
    }
    if (rc == 0) {
        double tr = 0;
        for (int j = 0; j < n; j++) tr += lambda[j] > 0 ? sqrt(lambda[j]) : 0;
        *out = tr;
    }
    free(s), free(t), free(m), free(lambda);
    return rc;
}

static int check_pair(const sid_gauss *a, const sid_gauss *b) {
    if (!a->mu || !b->mu || a->d != b->d) {
        sid_set_error("Frechet distance: feature statistics of widths %d and %d do not match", a->d, b->d);
        return -1;
    }
    return 0;
}

static double mean_term_and_traces(const sid_gauss *a, const sid_gauss *b) {
    const int d = a->d;
    double s = 0;
    for (int j = 0; j < d; j++) {
        const double e = a->mu[j] - b->mu[j];
        s += e * e;
    }
    for (int j = 0; j < d; j++) s += a->cov[(size_t)j * d + j] + b->cov[(size_t)j * d + j];
    return s;
}

int sid_frechet_distance(const sid_gauss *a, const sid_gauss *b, double *out) {
    if (check_pair(a, b)) return -1;
    double tr;
    if (sid_trace_sqrt_product(a->cov, b->cov, a->d, &tr)) return -1;
    const double dist = mean_term_and_traces(a, b) - 2 * tr;
    *out = dist > 0 ? dist : 0;
    return 0;
}

int sid_frechet_distance_rows(const float *feat, int64_t n, int d, const sid_gauss *b, double *out) {
    sid_gauss a;
    if (sid_gauss_fit(&a, feat, n, d)) return -1;
    int rc = check_pair(&a, b);
    if (!rc && n - 1 >= d) rc = sid_frechet_distance(&a, b, out);
    if (!rc && n - 1 < d) {
        const int m = (int)n;
        double *x = sid_malloc((size_t)m * d * sizeof(double)), *t = sid_malloc((size_t)m * d * sizeof(double));
        double *g = sid_malloc((size_t)m * m * sizeof(double)), *w = sid_malloc((size_t)m * m * sizeof(double));
        double *lambda = sid_malloc((size_t)m * sizeof(double));
        for (int i = 0; i < m; i++)
            for (int j = 0; j < d; j++) x[(size_t)i * d + j] = (double)feat[(size_t)i * d + j] - a.mu[j];
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, m, d, 1.0, b->cov, d, x, d, 0.0, t, d);  // X S
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, d, 1.0 / (double)(n - 1), t, d, x, d, 0.0, g, m);
        for (int i = 0; i < m; i++)
            for (int j = i + 1; j < m; j++) g[(size_t)i * m + j] = g[(size_t)j * m + i] =
                                                 0.5 * (g[(size_t)i * m + j] + g[(size_t)j * m + i]);
        rc = sym_eig(g, m, w, lambda, 0);
        if (!rc) {
            double tr = 0;
            for (int j = 0; j < m; j++) tr += lambda[j] > 0 ? sqrt(lambda[j]) : 0;
            const double dist = mean_term_and_traces(&a, b) - 2 * tr;
            *out = dist > 0 ? dist : 0;
        }
        free(x), free(t), free(g), free(w), free(lambda);
    }
    sid_gauss_free(&a);
    return rc;
}

int sid_fid_features(const float *fa, int64_t na, const float *fb, int64_t nb, int d, double *out) {
    sid_gauss a, b;
    if (sid_gauss_fit(&a, fa, na, d)) return -1;
    if (sid_gauss_fit(&b, fb, nb, d)) {
        sid_gauss_free(&a);
        return -1;
    }
    int rc = sid_frechet_distance(&a, &b, out);
    sid_gauss_free(&a), sid_gauss_free(&b);
    return rc;
}

// ---------------------------------------------------------------- naive references

// Gauss-Jordan with partial pivoting: out = a^-1; -1 when a is (numerically) singular.
static int invert(const double *a, int n, double *out) {
    const int w = 2 * n;
    double *m = sid_malloc((size_t)n * w * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < w; j++) m[(size_t)i * w + j] = j < n ? a[(size_t)i * n + j] : (j - n == i);
    int rc = 0;
    for (int col = 0; col < n && rc == 0; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(m[(size_t)r * w + col]) > fabs(m[(size_t)piv * w + col])) piv = r;
        if (!(fabs(m[(size_t)piv * w + col]) > 1e-300)) {
            rc = -1;
            break;
        }
        if (piv != col)
            for (int j = 0; j < w; j++) {
                double t = m[(size_t)piv * w + j];
                m[(size_t)piv * w + j] = m[(size_t)col * w + j];
                m[(size_t)col * w + j] = t;
            }
        const double inv = 1.0 / m[(size_t)col * w + col];
        for (int j = 0; j < w; j++) m[(size_t)col * w + j] *= inv;
        for (int r = 0; r < n; r++) {
            if (r == col) continue;
            const double f = m[(size_t)r * w + col];
            if (f == 0) continue;
            for (int j = 0; j < w; j++) m[(size_t)r * w + j] -= f * m[(size_t)col * w + j];
        }
    }
    if (rc == 0)
        for (int i = 0; i < n; i++) memcpy(out + (size_t)i * n, m + (size_t)i * w + n, (size_t)n * sizeof(double));
    free(m);
    return rc;
}

int sid_sqrtm_denman_beavers(const double *a, int n, double *out, int max_iter) {
    const size_t nn = (size_t)n * n;
    double *y = sid_malloc(nn * sizeof(double)), *z = sid_malloc(nn * sizeof(double));
    double *yi = sid_malloc(nn * sizeof(double)), *zi = sid_malloc(nn * sizeof(double));
    memcpy(y, a, nn * sizeof(double));
    for (size_t i = 0; i < nn; i++) z[i] = 0;
    for (int i = 0; i < n; i++) z[(size_t)i * n + i] = 1;
    int it = 0, done = 0;
    while (!done && it < max_iter) {
        it++;
        if (invert(y, n, yi) || invert(z, n, zi)) break;
        double change = 0, norm = 0;
        for (size_t i = 0; i < nn; i++) {
            const double yn = 0.5 * (y[i] + zi[i]);
            change += (yn - y[i]) * (yn - y[i]);
            norm += yn * yn;
            y[i] = yn;
            z[i] = 0.5 * (z[i] + yi[i]);
        }
        // quadratic convergence: a step that changed less than 1e-12 left an error near round-off
        done = change <= 1e-24 * norm;
    }
    if (done) memcpy(out, y, nn * sizeof(double));
    free(y), free(z), free(yi), free(zi);
    if (!done) {
        sid_set_error("Denman-Beavers square root did not converge in %d iterations", max_iter);
        return -1;
    }
    return it;
}

int sid_frechet_distance_naive(const sid_gauss *a, const sid_gauss *b, double *out) {
    if (check_pair(a, b)) return -1;
    const int d = a->d;
    double *p = sid_malloc((size_t)d * d * sizeof(double)), *r = sid_malloc((size_t)d * d * sizeof(double));
    for (int i = 0; i < d; i++)  // plain triple loop: nothing shared with the LAPACK path
        for (int j = 0; j < d; j++) {
            double s = 0;
            for (int k = 0; k < d; k++) s += a->cov[(size_t)i * d + k] * b->cov[(size_t)k * d + j];
            p[(size_t)i * d + j] = s;
        }
    int rc = sid_sqrtm_denman_beavers(p, d, r, 200) < 0 ? -1 : 0;
    if (rc == 0) {
        double tr = 0;
        for (int i = 0; i < d; i++) tr += r[(size_t)i * d + i];
        *out = mean_term_and_traces(a, b) - 2 * tr;
    }
    free(p), free(r);
    return rc;
}
