#include "sid/generator.h"

#include <string.h>

#include "models/layers.h"

void sid_generator_forward(const sid_generator *g, const sid_params *ps, sid_arena *act, const float *ctx, int M,
                           const float *z, const float *z_extra, int N, float *x, sid_generator_saved *gs) {
    sid_ctx c = {(sid_params *)ps, act};
    const size_t D = (size_t)g->unet->cfg.in_channels * g->H * g->W, n = (size_t)N * D;
    const int K = g->steps;
    float *tf = sid_ctx_out(&c, (size_t)N), *eps = sid_ctx_out(&c, n);
    if (gs) gs->K = K;
    for (int i = 0; i < K; i++) {
        const int t = (int)(g->t_init * (1.0 - (double)i / K));  // truncation: 625, 312 / 625, 468, 312, 156
        const float a = sid_schedule_sqrt_ab(g->sched, t), sg = sid_schedule_sqrt_1m_ab(g->sched, t);
        float *xin = sid_ctx_out(&c, n);
        const float *noise = i == 0 ? z : z_extra + (size_t)(i - 1) * n;
        for (size_t k = 0; k < n; k++) xin[k] = (i == 0 ? 0.0f : a * x[k]) + sg * noise[k];
        for (int k = 0; k < N; k++) tf[k] = (float)t;
        sid_unet_saved *us = sid_unet_forward(&c, g->unet, eps, xin, tf, ctx, N, g->H, g->W, M);
        for (size_t k = 0; k < n; k++) x[k] = (xin[k] - sg * eps[k]) / a;
        float *x0 = NULL;
        if (g->clip_sample) {
            if (gs) x0 = sid_ctx_out(&c, n), memcpy(x0, x, n * sizeof(float));
            sid_clip_x0(x, n, g->clip_range);
        }
        if (gs) gs->t[i] = t, gs->x_in[i] = xin, gs->s[i] = us, gs->x0[i] = x0;
    }
}

void sid_generator_apply(const sid_generator *g, const sid_params *ps, sid_arena *act, const float *ctx, int M,
                         const float *z, const float *z_extra, int N, float *x) {
    const size_t mark = sid_arena_mark(act);
    sid_generator_forward(g, ps, act, ctx, M, z, z_extra, N, x, NULL);
    sid_arena_reset(act, mark);
}

void sid_generator_backward(const sid_generator *g, sid_params *ps, sid_arena *act, const sid_generator_saved *gs,
                            const float *dx_in, int N) {
    sid_ctx c = {ps, act};
    const size_t n = (size_t)N * g->unet->cfg.in_channels * g->H * g->W;
    float *dD = sid_ctx_out(&c, n), *deps = sid_ctx_out(&c, n), *dx = gs->K > 1 ? sid_ctx_out(&c, n) : NULL;
    memcpy(dD, dx_in, n * sizeof(float));
    for (int i = gs->K - 1; i >= 0; i--) {
        const float a = sid_schedule_sqrt_ab(g->sched, gs->t[i]), sg = sid_schedule_sqrt_1m_ab(g->sched, gs->t[i]);
        if (gs->x0[i]) sid_clip_x0_backward(dD, gs->x0[i], n, g->clip_range);
        // D = (x_in - s eps) / a: d/d eps = -(s/a) dD, d/d x_in = dD / a (+ through the UNet)
        for (size_t k = 0; k < n; k++) deps[k] = -(sg / a) * dD[k];
        if (i > 0)
            for (size_t k = 0; k < n; k++) dx[k] = dD[k] / a;
        sid_unet_backward(&c, g->unet, i > 0 ? dx : NULL, NULL, deps, gs->s[i]);
        if (i > 0)  // x_in = a_i D_{i-1} + s_i noise
            for (size_t k = 0; k < n; k++) dD[k] = a * dx[k];
    }
}
