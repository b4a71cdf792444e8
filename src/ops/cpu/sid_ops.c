// SiD-LSG arithmetic on the CPU (ops.h, "SiD-LSG arithmetic"): CFG combination, the
// per-sample noise/x0 maps, the clamp, the two distillation losses, NaN detection and
// sanitising, Adam, EMA and row gathers. Each expression is written as the code it replaces
// (src/diffusion, src/sid/distill.c, src/train/optim.c), so the roundings happen in the same
// order and the results agree bit for bit. Reductions over samples run serially in sample
// order (the losses are summed as distill.c sums them); element loops parallelise.
#include <math.h>
#include <string.h>

#include "ops/ops.h"

#define PAR_IF(n) if ((n) > 65536)

void sid_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t k = 0; k < n; k++) {
        const float u = uncond[k], d = cond[k] - u;
        out[k] = u + kappa * d;
    }
}

void sid_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n) {
    const float ku = 1.0f - kappa;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t k = 0; k < n; k++) {
        if (duncond) duncond[k] += ku * dout[k];
        if (dcond) dcond[k] += kappa * dout[k];
    }
}

void sid_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        const float ai = a[i], si = s[i];
        const size_t o = (size_t)i * D;
        for (size_t k = 0; k < D; k++) xt[o + k] = ai * x0[o + k] + si * eps[o + k];
    }
}

void sid_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        const float ai = a[i], si = s[i];
        const size_t o = (size_t)i * D;
        for (size_t k = 0; k < D; k++) {
            if (dx0) dx0[o + k] += ai * dxt[o + k];
            if (deps) deps[o + k] += si * dxt[o + k];
        }
    }
}

void sid_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        const float ai = a[i], si = s[i];
        const size_t o = (size_t)i * D;
        for (size_t k = 0; k < D; k++) x0[o + k] = (xt[o + k] - si * eps[o + k]) / ai;
    }
}

void sid_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        const float ai = a[i], ce = -(s[i] / ai);
        const size_t o = (size_t)i * D;
        for (size_t k = 0; k < D; k++) {
            if (dxt) dxt[o + k] += dx0[o + k] / ai;
            if (deps) deps[o + k] += ce * dx0[o + k];
        }
    }
}

// comparisons, not fminf/fmaxf, which would turn a NaN into a bound (as sid_clip_x0)
void sid_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t k = 0; k < n; k++) {
        const float x = in[k];
        out[k] = x < lo ? lo : x > hi ? hi : x;
    }
}

void sid_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n) {
    if (!din) return;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t k = 0; k < n; k++)
        if (in[k] > lo && in[k] < hi) din[k] += dout[k];
}

void sid_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    double tot = 0;
    for (int i = 0; i < N; i++) {
        const float *e = eps_hat + (size_t)i * D, *t = eps + (size_t)i * D;
        double l = 0;
        for (size_t k = 0; k < D; k++) {
            const float r = e[k] - t[k];
            l += (double)r * r;
        }
        tot += l;
    }
    *loss += tot * scale;
}

void sid_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    if (!deps_hat || N <= 0) return;
    const size_t n = (size_t)N * D;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t k = 0; k < n; k++) {
        const float r = eps_hat[k] - eps[k];
        deps_hat[k] += 2 * scale * r;
    }
}

// w_i of sid_distill_gen_round: the mean absolute difference in double, floored at 1e-5.
static double sid_loss_weight(const float *xg, const float *yr, size_t D) {
    double w = 0;
    for (size_t k = 0; k < D; k++) w += fabs((double)xg[k] - yr[k]);
    return w / D > 1e-5 ? w / D : 1e-5;
}

void sid_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale, int N,
                      size_t D) {
    double tot = 0;
    for (int i = 0; i < N; i++) {
        const size_t o = (size_t)i * D;
        const double w = sid_loss_weight(xg + o, yr + o, D);
        double l = 0;
        for (size_t k = 0; k < D; k++) {
            const float dd = yr[o + k] - yf[o + k], e = (yr[o + k] - xg[o + k]) - alpha * dd;
            l += (double)dd * e;
        }
        tot += l / w;
    }
    *loss += tot * scale;
}

void sid_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf, float alpha,
                      float scale, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        const size_t o = (size_t)i * D;
        const float kw = (float)(scale / sid_loss_weight(xg + o, yr + o, D));
        for (size_t k = 0; k < D; k++) {
            const float dd = yr[o + k] - yf[o + k], e = (yr[o + k] - xg[o + k]) - alpha * dd;
            if (dxg) dxg[o + k] += -kw * dd;
            if (dyr) dyr[o + k] += kw * (e + (1 - alpha) * dd);
            if (dyf) dyf[o + k] += kw * (alpha * dd - e);
        }
    }
}

void sid_nan_rows(float *flags, const float *x, int N, size_t D) {
#pragma omp parallel for schedule(static) PAR_IF((size_t)(N > 0 ? N : 0) * D)
    for (int i = 0; i < N; i++) {
        int bad = flags[i] != 0;
        for (size_t k = 0; k < D && !bad; k++) bad = isnan(x[(size_t)i * D + k]);
        flags[i] = bad ? 1.0f : 0.0f;
    }
}

void sid_sanitize(float *x, size_t n, float posinf, float neginf, double *count) {
    size_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) x[i] = 0, bad++;
        else if (isinf(x[i])) x[i] = x[i] > 0 ? posinf : neginf, bad++;
    }
    if (count) *count += (double)bad;
}

// PyTorch Adam/AdamW (non-amsgrad), as torch's single-tensor path rounds it.
void sid_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2, float eps,
              float weight_decay, int decoupled, int64_t step) {
    const double bc1 = 1.0 - pow(beta1, (double)step), bc2 = 1.0 - pow(beta2, (double)step);
    const float step_size = (float)(lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    const float b1 = beta1, b2 = beta2, wd = weight_decay;
    const float decay = decoupled ? 1.0f - lr * wd : 1.0f, l2 = decoupled ? 0.0f : wd;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + l2 * w[i];
        float mi = gi;
        if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] = w[i] * decay - step_size * mi / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

void sid_ema(float *ema, const float *w, size_t n, float beta) {
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++) ema[i] += (1.0f - beta) * (w[i] - ema[i]);
}

void sid_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row) {
    for (int i = 0; i < m; i++) memcpy(out + (size_t)i * row, table + (size_t)idx[i] * row, row * sizeof(float));
}
