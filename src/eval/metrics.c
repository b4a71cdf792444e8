#include "eval/metrics.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

enum { BLOCK = 256 };  // rows per sgemm block: BLOCK x n floats of products at a time
static const double PI = 3.14159265358979323846;

// ---------------------------------------------------------------- KID

// ra[i] += sum_j k(a_i, b_j), rb[j] += the same by column (rb NULL: not needed, as for a set with
// itself, whose column sums are its row sums); the diagonal is left out when same.
static void kernel_sums(const float *a, int64_t na, const float *b, int64_t nb, int d, int same, double *ra,
                        double *rb) {
    float *prod = sid_malloc((size_t)BLOCK * nb * sizeof(float));
    const double inv_d = 1.0 / d;
    for (int64_t i0 = 0; i0 < na; i0 += BLOCK) {
        const int bi = (int)(na - i0 < BLOCK ? na - i0 : BLOCK);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bi, (int)nb, d, 1.0f, a + (size_t)i0 * d, d, b, d, 0.0f,
                    prod, (int)nb);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < bi; i++) {
            const float *p = prod + (size_t)i * nb;
            double s = 0;
            for (int64_t j = 0; j < nb; j++) {
                if (same && j == i0 + i) continue;
                const double v = p[j] * inv_d + 1.0;
                s += v * v * v;
            }
            ra[i0 + i] += s;
        }
        if (!rb) continue;
#pragma omp parallel for schedule(static)
        for (int64_t j = 0; j < nb; j++) {
            double s = 0;
            for (int i = 0; i < bi; i++) {
                if (same && j == i0 + i) continue;
                const double v = prod[(size_t)i * nb + j] * inv_d + 1.0;
                s += v * v * v;
            }
            rb[j] += s;
        }
    }
    free(prod);
}

static double sum_of(const double *v, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += v[i];
    return s;
}

// The jackknife variance of leaving out each row of one set: self[i] its kernel sum within the set
// (diagonal out), cross[i] with the other set; sxx, sxy the totals; m this set's size, n the other's.
static double jackknife_var(const double *self, const double *cross, int64_t m, int64_t n, double sxx, double syy,
                            double sxy) {
    const double tyy = syy / ((double)n * (n - 1));
    double mean = 0, sq = 0;
    for (int64_t i = 0; i < m; i++) {
        const double t = (sxx - 2 * self[i]) / ((double)(m - 1) * (m - 2)) + tyy - 2 * (sxy - cross[i]) / ((double)(m - 1) * n);
        // Welford's update: the leave-one-out values differ from each other by little
        const double dlt = t - mean;
        mean += dlt / (double)(i + 1);
        sq += dlt * (t - mean);
    }
    return (double)(m - 1) / m * sq;
}

int sid_kid_set_init(sid_kid_set *s, const float *x, int64_t n, int d) {
    memset(s, 0, sizeof *s);
    if (n < 3 || d < 1) {
        sid_set_error("KID needs at least 3 rows in each set (got %lld)", (long long)n);
        return -1;
    }
    s->x = x, s->n = n, s->d = d;
    s->self = sid_calloc((size_t)n * sizeof(double));
    kernel_sums(x, n, x, n, d, 1, s->self, NULL);
    s->total = sum_of(s->self, n);
    return 0;
}

void sid_kid_set_free(sid_kid_set *s) {
    free(s->self);
    memset(s, 0, sizeof *s);
}

int sid_kid_between(const sid_kid_set *a, const sid_kid_set *b, double *kid, double *se) {
    if (a->d != b->d) {
        sid_set_error("KID between features of width %d and %d", a->d, b->d);
        return -1;
    }
    const int64_t na = a->n, nb = b->n;
    double *rab = sid_calloc((size_t)na * sizeof(double)), *rba = sid_calloc((size_t)nb * sizeof(double));
    kernel_sums(a->x, na, b->x, nb, a->d, 0, rab, rba);
    const double saa = a->total, sbb = b->total, sab = sum_of(rab, na);
    *kid = saa / ((double)na * (na - 1)) + sbb / ((double)nb * (nb - 1)) - 2 * sab / ((double)na * nb);
    const double var = jackknife_var(a->self, rab, na, nb, saa, sbb, sab) + jackknife_var(b->self, rba, nb, na, sbb, saa, sab);
    *se = sqrt(var);
    free(rab), free(rba);
    return 0;
}

int sid_kid(const float *a, int64_t na, const float *b, int64_t nb, int d, double *kid, double *se) {
    sid_kid_set sa, sb;
    if (sid_kid_set_init(&sa, a, na, d)) return -1;
    if (sid_kid_set_init(&sb, b, nb, d)) return sid_kid_set_free(&sa), -1;
    const int rc = sid_kid_between(&sa, &sb, kid, se);
    sid_kid_set_free(&sa), sid_kid_set_free(&sb);
    return rc;
}

// ---------------------------------------------------------------- precision, recall, density, coverage

static double *squared_norms(const float *x, int64_t n, int d) {
    double *r = sid_malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int c = 0; c < d; c++) s += (double)x[(size_t)i * d + c] * x[(size_t)i * d + c];
        r[i] = s;
    }
    return r;
}

// Squared distances of rows [i0, i0 + bi) of a to every row of b, into dist [bi, nb].
static void block_distances(const float *a, const double *na2, int64_t i0, int bi, const float *b, const double *nb2,
                            int64_t nb, int d, float *dist) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bi, (int)nb, d, -2.0f, a + (size_t)i0 * d, d, b, d, 0.0f,
                dist, (int)nb);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < bi; i++)
        for (int64_t j = 0; j < nb; j++) {
            const double v = dist[(size_t)i * nb + j] + na2[i0 + i] + nb2[j];
            dist[(size_t)i * nb + j] = v > 0 ? (float)v : 0.0f;
        }
}

// A pair's squared distance in double, summed in one fixed order: the same for (a, b) and (b, a).
// The sgemm route's rounding depends on where a pair sits in the product (OpenBLAS's edge
// kernels), so a ball's boundary point could fall either side of the radius it defines.
static double exact_d2(const float *a, const float *b, int d) {
    double s = 0;
    for (int c = 0; c < d; c++) {
        const double e = (double)a[c] - b[c];
        s += e * e;
    }
    return s;
}

// Is a point at sgemm distance v (pair norms na2, nb2) inside a ball of sgemm radius r and exact
// radius r_exact? Decided on v unless it lies within the sgemm route's error of r; then exactly.
static int in_ball(float v, float r, double r_exact, double na2, double nb2, const float *p, const float *q, int d) {
    const double tol = 1e-4 * (na2 + nb2) + 1e-30;
    if (v < r - tol) return 1;
    if (v > r + tol) return 0;
    return exact_d2(p, q, d) <= r_exact;
}

// The squared distance of each row of x to its k-th nearest other row (exact[i]: the same in double).
static float *knn_radii2(const float *x, const double *n2, int64_t n, int d, int k, double **exact) {
    float *r = sid_malloc((size_t)n * sizeof(float)), *dist = sid_malloc((size_t)BLOCK * n * sizeof(float));
    *exact = sid_malloc((size_t)n * sizeof(double));
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        const int bi = (int)(n - i0 < BLOCK ? n - i0 : BLOCK);
        block_distances(x, n2, i0, bi, x, n2, n, d, dist);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < bi; i++) {
            float best[64];  // the k smallest so far, ascending (k <= 63 is checked by the caller)
            int64_t who[64];
            int have = 0;
            for (int64_t j = 0; j < n; j++) {
                if (j == i0 + i) continue;
                const float v = dist[(size_t)i * n + j];
                if (have == k && v >= best[k - 1]) continue;
                int p = have < k ? have++ : k - 1;
                while (p > 0 && best[p - 1] > v) best[p] = best[p - 1], who[p] = who[p - 1], p--;
                best[p] = v, who[p] = j;
            }
            r[i0 + i] = best[k - 1];
            (*exact)[i0 + i] = exact_d2(x + (size_t)(i0 + i) * d, x + (size_t)who[k - 1] * d, d);
        }
    }
    free(dist);
    return r;
}

int sid_prdc_compute(const float *real, int64_t nr, const float *gen, int64_t ng, int d, int k, sid_prdc *out) {
    memset(out, 0, sizeof *out);
    if (k < 1 || k > 63 || nr <= k || ng <= k) {
        sid_set_error("precision/recall with k = %d needs more than k rows in each set (got %lld and %lld)", k,
                      (long long)nr, (long long)ng);
        return -1;
    }
    double *r2 = squared_norms(real, nr, d), *g2 = squared_norms(gen, ng, d);
    double *ex_r, *ex_g;
    float *rad_r = knn_radii2(real, r2, nr, d, k, &ex_r), *rad_g = knn_radii2(gen, g2, ng, d, k, &ex_g);
    unsigned char *covered = sid_calloc((size_t)nr), *recalled = sid_calloc((size_t)nr);
    float *dist = sid_malloc((size_t)BLOCK * nr * sizeof(float));
    int64_t inside = 0, balls = 0;
    for (int64_t j0 = 0; j0 < ng; j0 += BLOCK) {
        const int bj = (int)(ng - j0 < BLOCK ? ng - j0 : BLOCK);
        block_distances(gen, g2, j0, bj, real, r2, nr, d, dist);
#pragma omp parallel for schedule(static) reduction(+ : inside, balls)
        for (int j = 0; j < bj; j++) {
            int64_t in_balls = 0;
            const float *g = gen + (size_t)(j0 + j) * d;
            for (int64_t i = 0; i < nr; i++)
                in_balls += in_ball(dist[(size_t)j * nr + i], rad_r[i], ex_r[i], g2[j0 + j], r2[i], g, real + (size_t)i * d, d);
            inside += in_balls > 0, balls += in_balls;
        }
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < nr; i++)
            for (int j = 0; j < bj && !(covered[i] && recalled[i]); j++) {
                const float v = dist[(size_t)j * nr + i], *g = gen + (size_t)(j0 + j) * d, *x = real + (size_t)i * d;
                if (in_ball(v, rad_r[i], ex_r[i], g2[j0 + j], r2[i], g, x, d)) covered[i] = 1;
                if (in_ball(v, rad_g[j0 + j], ex_g[j0 + j], g2[j0 + j], r2[i], g, x, d)) recalled[i] = 1;
            }
    }
    int64_t ncov = 0, nrec = 0;
    for (int64_t i = 0; i < nr; i++) ncov += covered[i], nrec += recalled[i];
    out->precision = (double)inside / ng;
    out->recall = (double)nrec / nr;
    out->density = (double)balls / ((double)k * ng);
    out->coverage = (double)ncov / nr;
    free(r2), free(g2), free(rad_r), free(rad_g), free(ex_r), free(ex_g), free(covered), free(recalled), free(dist);
    return 0;
}

// ---------------------------------------------------------------- pixel statistics

int sid_pixel_stats_compute(const float *imgs, int64_t n, int H, int W, sid_pixel_stats *out) {
    memset(out, 0, sizeof *out);
    if (n < 1 || H < 2 || W < 2 || H > 256 || W > 256 || H % 2 || W % 2) {
        sid_set_error("pixel statistics: need n >= 1 images of even H, W in 2..256 (got %lld of %dx%d)", (long long)n, H, W);
        return -1;
    }
    // DFT twiddles: cw[u * W + x] = cos(2 pi u x / W) and likewise sin, and the same for H
    double *cw = sid_malloc((size_t)W * W * sizeof(double)), *sw = sid_malloc((size_t)W * W * sizeof(double));
    double *ch = sid_malloc((size_t)H * H * sizeof(double)), *sh = sid_malloc((size_t)H * H * sizeof(double));
    for (int u = 0; u < W; u++)
        for (int x = 0; x < W; x++) {
            const double t = 2 * PI * (double)((u * x) % W) / W;
            cw[u * W + x] = cos(t), sw[u * W + x] = sin(t);
        }
    for (int v = 0; v < H; v++)
        for (int y = 0; y < H; y++) {
            const double t = 2 * PI * (double)((v * y) % H) / H;
            ch[v * H + y] = cos(t), sh[v * H + y] = sin(t);
        }
    const size_t HW = (size_t)H * W;
    double sum = 0, sum_std = 0, hf = 0, total = 0;
#pragma omp parallel reduction(+ : sum, sum_std, hf, total)
    {
        double *x = sid_malloc(HW * sizeof(double)), *re = sid_malloc(HW * sizeof(double)), *im = sid_malloc(HW * sizeof(double));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            const float *img = imgs + (size_t)i * HW;
            double m = 0;
            for (size_t p = 0; p < HW; p++) x[p] = (img[p] + 1.0) * 0.5, m += x[p];
            m /= (double)HW;
            double var = 0;
            for (size_t p = 0; p < HW; p++) x[p] -= m, var += x[p] * x[p];
            sum += m * (double)HW, sum_std += sqrt(var / (double)HW);
            // rows: re/im[y][u] = sum_x x[y][x] e^{-2 pi i u x / W}
            for (int y = 0; y < H; y++)
                for (int u = 0; u < W; u++) {
                    double a = 0, b = 0;
                    for (int xx = 0; xx < W; xx++) a += x[y * W + xx] * cw[u * W + xx], b -= x[y * W + xx] * sw[u * W + xx];
                    re[y * W + u] = a, im[y * W + u] = b;
                }
            // columns, then the power by radial frequency
            for (int v = 0; v < H; v++) {
                const int fv = v <= H / 2 ? v : v - H;
                for (int u = 0; u < W; u++) {
                    double a = 0, b = 0;
                    for (int y = 0; y < H; y++) {
                        const double c = ch[v * H + y], s = sh[v * H + y];
                        a += re[y * W + u] * c + im[y * W + u] * s;
                        b += im[y * W + u] * c - re[y * W + u] * s;
                    }
                    const int fu = u <= W / 2 ? u : u - W;
                    if (fu == 0 && fv == 0) continue;
                    const double pw = a * a + b * b, fr = sqrt((double)fu * fu / ((double)W * W) + (double)fv * fv / ((double)H * H));
                    total += pw;
                    if (fr > 0.25) hf += pw;
                }
            }
        }
        free(x), free(re), free(im);
    }
    out->mean = sum / ((double)n * (double)HW);
    out->contrast = sum_std / (double)n;
    out->hf_share = total > 0 ? hf / total : 0;
    free(cw), free(sw), free(ch), free(sh);
    return 0;
}
