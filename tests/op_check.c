#include "op_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

static double loss_of(const op_case *c, double **in, double **out, double *const *r) {
    c->ref(&c->p, in, out);
    double L = 0;
    for (int k = 0; k < c->n_out; k++)
        if (c->out_loss[k])
            for (size_t i = 0; i < c->out_size[k]; i++) L += r[k][i] * out[k][i];
    return L;
}

static float *to_backend(const sid_backend *be, const float *h, size_t n) {
    float *d = be->alloc(n * sizeof(float) + 4);
    if (n) be->upload(d, h, n * sizeof(float));
    return d;
}

int op_check(const sid_backend *be, const op_case *c, uint64_t seed, op_report *r) {
    memset(r, 0, sizeof *r);
    sid_rng rng = sid_rng_new(seed);
    const float lo = c->in_lo == c->in_hi ? -1.0f : c->in_lo, hi = c->in_lo == c->in_hi ? 1.0f : c->in_hi;
    const double fwd_tol = c->fwd_tol ? c->fwd_tol : 2e-5, grad_tol = c->grad_tol ? c->grad_tol : 1e-4;

    float *hin[MAX_IO] = {0}, *hout[MAX_IO] = {0}, *hr[MAX_IO] = {0}, *hpre[MAX_IO] = {0};
    float *din_full[MAX_IO] = {0};
    double *xd[MAX_IO] = {0}, *yd[MAX_IO] = {0}, *rd[MAX_IO] = {0};
    float *bin[MAX_IO] = {0}, *bout[MAX_IO] = {0}, *bdout[MAX_IO] = {0}, *bdin[MAX_IO] = {0};

    for (int k = 0; k < c->n_in; k++) {
        size_t n = c->in_size[k];
        hin[k] = sid_malloc(n * sizeof(float) + 4);
        sid_rng_uniform(&rng, hin[k], n);
        for (size_t i = 0; i < n; i++) hin[k][i] = lo + (hi - lo) * hin[k][i];
        xd[k] = sid_malloc(n * sizeof(double) + 8);
        for (size_t i = 0; i < n; i++) xd[k][i] = hin[k][i];
        bin[k] = to_backend(be, hin[k], n);
    }
    for (int k = 0; k < c->n_out; k++) {
        size_t n = c->out_size[k];
        hout[k] = sid_malloc(n * sizeof(float) + 4);
        hr[k] = sid_calloc(n * sizeof(float) + 4);
        if (c->out_loss[k]) {
            sid_rng_uniform(&rng, hr[k], n);
            for (size_t i = 0; i < n; i++) hr[k][i] = 2 * hr[k][i] - 1;
        }
        yd[k] = sid_malloc(n * sizeof(double) + 8);
        rd[k] = sid_malloc(n * sizeof(double) + 8);
        for (size_t i = 0; i < n; i++) rd[k][i] = hr[k][i];
        bout[k] = be->alloc(n * sizeof(float) + 4);
        bdout[k] = to_backend(be, hr[k], n);
    }

    // forward vs the double reference
    c->fwd(be, &c->p, bin, bout);
    be->sync();
    c->ref(&c->p, xd, yd);
    for (int k = 0; k < c->n_out; k++) {
        if (!c->out_loss[k]) continue;
        be->download(hout[k], bout[k], c->out_size[k] * sizeof(float));
        double scale = 1e-3, err = 0;
        size_t worst = 0;
        for (size_t i = 0; i < c->out_size[k]; i++) scale = fmax(scale, fabs(yd[k][i]));
        for (size_t i = 0; i < c->out_size[k]; i++) {
            double e = fabs(hout[k][i] - yd[k][i]);
            if (!(e <= err)) err = e, worst = i;  // NaN counts as worst
        }
        err /= scale;
        if (!(err <= r->fwd_err)) r->fwd_err = err;
        if (!(err <= fwd_tol)) {
            r->fwd_bad++;
            if (!r->where[0])
                snprintf(r->where, sizeof r->where, "forward output %d [%zu]: %.7g vs reference %.7g", k, worst,
                         hout[k][worst], yd[k][worst]);
        }
    }

    // backward: gradients are pre-filled with noise to check that the op accumulates
    for (int k = 0; k < c->n_in; k++) {
        if (!c->in_diff[k]) continue;
        size_t n = c->in_size[k];
        hpre[k] = sid_malloc(n * sizeof(float) + 4);
        sid_rng_uniform(&rng, hpre[k], n);
        bdin[k] = to_backend(be, hpre[k], n);
        din_full[k] = sid_malloc(n * sizeof(float) + 4);
    }
    c->bwd(be, &c->p, bin, bout, bdout, bdin);
    be->sync();
    for (int k = 0; k < c->n_in; k++) {
        if (!c->in_diff[k]) continue;
        size_t n = c->in_size[k];
        be->download(din_full[k], bdin[k], n * sizeof(float));
        for (size_t i = 0; i < n; i++) din_full[k][i] -= hpre[k][i];
        // all coordinates of small inputs, a random sample of large ones
        const size_t max_coords = 256;
        size_t ncoord = n <= max_coords ? n : max_coords;
        double scale = 1e-6, err = 0;
        double *fd = sid_malloc(ncoord * sizeof(double) + 8);
        size_t *idx = sid_malloc(ncoord * sizeof(size_t) + 8);
        for (size_t j = 0; j < ncoord; j++) {
            size_t i = j;
            if (n > max_coords) {
                uint32_t u;
                sid_rng_below(&rng, (uint32_t)n, &u, 1);
                i = u;
            }
            idx[j] = i;
            const double x = xd[k][i], h = 1e-6 * fmax(1.0, fabs(x));
            xd[k][i] = x + h;
            double lp = loss_of(c, xd, yd, rd);
            xd[k][i] = x - h;
            double lm = loss_of(c, xd, yd, rd);
            xd[k][i] = x;
            fd[j] = (lp - lm) / (2 * h);
            scale = fmax(scale, fabs(fd[j]));
        }
        size_t worst = 0;
        for (size_t j = 0; j < ncoord; j++) {
            double e = fabs(din_full[k][idx[j]] - fd[j]);
            if (!(e <= err)) err = e, worst = j;
        }
        err /= scale;
        if (!(err <= r->grad_err)) r->grad_err = err;
        if (!(err <= grad_tol)) {
            r->grad_bad++;
            if (!r->where[0])
                snprintf(r->where, sizeof r->where, "gradient of input %d [%zu]: %.7g vs finite difference %.7g", k,
                         idx[worst], din_full[k][idx[worst]], fd[worst]);
        }
        free(fd);
        free(idx);
    }

    // input-only backward (frozen weights) must give the same input gradients
    int any_frozen = 0;
    for (int k = 0; k < c->n_in; k++) any_frozen |= c->in_diff[k] && c->in_frozen[k];
    if (any_frozen) {
        float *bd2[MAX_IO] = {0};
        for (int k = 0; k < c->n_in; k++)
            if (c->in_diff[k] && !c->in_frozen[k]) bd2[k] = be->alloc(c->in_size[k] * sizeof(float) + 4);
        c->bwd(be, &c->p, bin, bout, bdout, bd2);
        be->sync();
        for (int k = 0; k < c->n_in; k++) {
            if (!bd2[k]) continue;
            float *h = sid_malloc(c->in_size[k] * sizeof(float) + 4);
            be->download(h, bd2[k], c->in_size[k] * sizeof(float));
            double scale = 1e-6, err = 0;
            for (size_t i = 0; i < c->in_size[k]; i++) scale = fmax(scale, fabs(din_full[k][i]));
            for (size_t i = 0; i < c->in_size[k]; i++) {
                double e = fabs(h[i] - din_full[k][i]);
                if (!(e <= err)) err = e;
            }
            err /= scale;
            if (!(err <= r->frozen_err)) r->frozen_err = err;
            if (!(err <= 1e-5)) {
                r->frozen_bad++;
                if (!r->where[0]) snprintf(r->where, sizeof r->where, "input-only backward differs for input %d", k);
            }
            free(h);
            be->free(bd2[k]);
        }
    }

    for (int k = 0; k < MAX_IO; k++) {
        free(hin[k]), free(hout[k]), free(hr[k]), free(hpre[k]), free(din_full[k]);
        free(xd[k]), free(yd[k]), free(rd[k]);
        if (bin[k]) be->free(bin[k]);
        if (bout[k]) be->free(bout[k]);
        if (bdout[k]) be->free(bdout[k]);
        if (bdin[k]) be->free(bdin[k]);
    }
    return r->fwd_bad + r->grad_bad + r->frozen_bad;
}
