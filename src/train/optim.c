#include "train/optim.h"

#include <math.h>

void sid_adam_step(float *p, const float *g, float *m, float *v, size_t n, const sid_adam_cfg *c, int64_t step) {
    const double bc1 = 1.0 - pow(c->beta1, (double)step), bc2 = 1.0 - pow(c->beta2, (double)step);
    const float step_size = (float)(c->lr / bc1), sqrt_bc2 = (float)sqrt(bc2);
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps, wd = c->weight_decay;
    const float decay = c->decoupled ? 1.0f - c->lr * wd : 1.0f, l2 = c->decoupled ? 0.0f : wd;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + l2 * p[i];
        float mi = gi;
        if (m) mi = m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] = p[i] * decay - step_size * mi / (sqrtf(v[i]) / sqrt_bc2 + eps);
    }
}

size_t sid_nan_to_num(float *x, size_t n, float posinf, float neginf) {
    size_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) x[i] = 0, bad++;
        else if (isinf(x[i])) x[i] = x[i] > 0 ? posinf : neginf, bad++;
    }
    return bad;
}

void sid_ema_update(float *ema, const float *p, size_t n, float beta) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) ema[i] += (1.0f - beta) * (p[i] - ema[i]);
}

double sid_ema_beta(double batch, double halflife_img, double rampup, double nimg) {
    double h = halflife_img;
    if (rampup > 0 && rampup * nimg < h) h = rampup * nimg;
    return pow(0.5, batch / (h > 1e-8 ? h : 1e-8));
}
