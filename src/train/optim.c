#include "train/optim.h"

#include <math.h>

#include "ops/ops.h"

// The formulas live once, in the CPU ops (src/ops/cpu/sid_ops.c).
void sid_adam_step(float *p, const float *g, float *m, float *v, size_t n, const sid_adam_cfg *c, int64_t step) {
    sid_adam(p, g, m, v, n, c->lr, c->beta1, c->beta2, c->eps, c->weight_decay, c->decoupled, step);
}

size_t sid_nan_to_num(float *x, size_t n, float posinf, float neginf) {
    double bad = 0;
    sid_sanitize(x, n, posinf, neginf, &bad);
    return (size_t)bad;
}

void sid_ema_update(float *ema, const float *p, size_t n, float beta) { sid_ema(ema, p, n, beta); }

double sid_ema_beta(double batch, double halflife_img, double rampup, double nimg) {
    double h = halflife_img;
    if (rampup > 0 && rampup * nimg < h) h = rampup * nimg;
    return pow(0.5, batch / (h > 1e-8 ? h : 1e-8));
}
