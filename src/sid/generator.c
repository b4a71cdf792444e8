#include "sid/generator.h"

#include "models/layers.h"

// x0 = (x_in - s eps) / a as backend ops: out = x_in + (-s) eps, then x (1/a).
static void x0_from_eps(const sid_backend *be, float *x, const float *xin, const float *eps, float *tmp, float a, float s,
                        size_t n) {
    be->scale_fwd(tmp, eps, -s, n);
    be->add_fwd(tmp, xin, tmp, n);
    be->scale_fwd(x, tmp, 1.0f / a, n);
}

void sid_generator_forward(const sid_generator *g, const sid_params *ps, sid_arena *act, const float *ctx, int M,
                           const float *z, const float *z_extra, int N, float *x, sid_generator_saved *gs) {
    sid_ctx c = {(sid_params *)ps, act, g->be, g->meta};
    const sid_backend *be = sid_be(&c);
    const size_t D = (size_t)g->unet->cfg.in_channels * g->H * g->W, n = (size_t)N * D;
    const int K = g->steps;
    float *tf = sid_ctx_out(&c, (size_t)N), *eps = sid_ctx_out(&c, n), *tmp = sid_ctx_out(&c, n);
    if (gs) gs->K = K;
    for (int i = 0; i < K; i++) {
        const int t = (int)(g->t_init * (1.0 - (double)i / K));  // truncation: 625, 312 / 625, 468, 312, 156
        const float a = sid_schedule_sqrt_ab(g->sched, t), sg = sid_schedule_sqrt_1m_ab(g->sched, t);
        float *xin = sid_ctx_out(&c, n);
        const float *noise = i == 0 ? z : z_extra + (size_t)(i - 1) * n;
        be->scale_fwd(xin, noise, sg, n);  // x_in = s noise (+ a x of the previous step)
        if (i > 0) be->scale_fwd(tmp, x, a, n), be->add_fwd(xin, tmp, xin, n);
        be->fill(tf, (float)t, (size_t)N);
        sid_unet_saved *us = sid_unet_forward(&c, g->unet, eps, xin, tf, ctx, N, g->H, g->W, M);
        x0_from_eps(be, x, xin, eps, tmp, a, sg, n);
        float *x0 = NULL;
        if (g->clip_sample) {  // the scheduler's pred_original_sample, clamped
            if (gs) x0 = sid_ctx_out(&c, n), be->scale_fwd(x0, x, 1.0f, n);
            be->clamp_fwd(x, x, -g->clip_range, g->clip_range, n);
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
    sid_ctx c = {ps, act, g->be, g->meta};
    const sid_backend *be = sid_be(&c);
    const size_t n = (size_t)N * g->unet->cfg.in_channels * g->H * g->W;
    float *dD = sid_ctx_out(&c, n), *deps = sid_ctx_out(&c, n), *dx = gs->K > 1 ? sid_ctx_out(&c, n) : NULL;
    be->scale_fwd(dD, dx_in, 1.0f, n);
    for (int i = gs->K - 1; i >= 0; i--) {
        const float a = sid_schedule_sqrt_ab(g->sched, gs->t[i]), sg = sid_schedule_sqrt_1m_ab(g->sched, gs->t[i]);
        if (gs->x0[i]) {  // the clamp passes the gradient only where x0 was inside the range
            float *masked = sid_ctx_floats(&c, n);
            be->clamp_bwd(masked, dD, gs->x0[i], -g->clip_range, g->clip_range, n);
            dD = masked;
        }
        // D = (x_in - s eps) / a: d/d eps = -(s/a) dD, d/d x_in = dD / a (+ through the UNet)
        be->scale_fwd(deps, dD, -(sg / a), n);
        if (i > 0) be->scale_fwd(dx, dD, 1.0f / a, n);
        sid_unet_backward(&c, g->unet, i > 0 ? dx : NULL, NULL, deps, gs->s[i]);
        if (i > 0) be->scale_fwd(dD, dx, a, n);  // x_in = a_i D_{i-1} + s_i noise
    }
}
