// `sid selftest`: a small end-to-end run of the engine. A two-layer conv net
// learns a 3x3 box blur with Adam; its weights go through safetensors and back,
// and a PNG grid shows input, target and prediction. Fails (exit 1) unless the
// loss falls tenfold and the reloaded weights predict identically.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "io/file.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "ops/ops.h"
#include "train/optim.h"

enum { N = 16, S = 16, C = 8, G = 4, HW = S * S, STEPS = 300 };

typedef struct {
    float *w1, *b1, *gn_g, *gn_b, *w2, *b2;
} net_params;
enum { P_W1 = C * 9, P_B1 = C, P_G = C, P_B = C, P_W2 = C * 9, P_B2 = 1, P_TOTAL = P_W1 + P_B1 + P_G + P_B + P_W2 + P_B2 };

static net_params carve(float *block) {
    net_params p = {block, block + P_W1, block + P_W1 + P_B1, block + P_W1 + P_B1 + P_G,
                    block + P_W1 + P_B1 + P_G + P_B, block + P_W1 + P_B1 + P_G + P_B + P_W2};
    return p;
}

typedef struct {
    float h[N * C * HW], mean[N * G], rstd[N * G], n[N * C * HW], a[N * C * HW], y[N * HW];
} acts;

static const sid_conv2d_shape conv1 = {N, 1, S, S, C, 3, 1, 1}, conv2 = {N, C, S, S, 1, 3, 1, 1};

static void forward(const net_params *p, const float *x, acts *t) {
    sid_conv2d_fwd(t->h, x, p->w1, p->b1, &conv1);
    sid_groupnorm_fwd(t->n, t->mean, t->rstd, t->h, p->gn_g, p->gn_b, N, C, HW, G, 1e-5f);
    sid_act_fwd(SID_ACT_SILU, t->a, t->n, (size_t)N * C * HW);
    sid_conv2d_fwd(t->y, t->a, p->w2, p->b2, &conv2);
}

static float train_step(const net_params *p, const net_params *g, const float *x, const float *target, acts *t) {
    static float dy[N * HW], da[N * C * HW], dn[N * C * HW], dh[N * C * HW], loss[N], dloss[N];
    forward(p, x, t);
    sid_mse_fwd(loss, t->y, target, N, HW);
    float mean = 0;
    for (int i = 0; i < N; i++) mean += loss[i] / N, dloss[i] = 1.0f / N;
    memset(dy, 0, sizeof dy), memset(da, 0, sizeof da), memset(dn, 0, sizeof dn), memset(dh, 0, sizeof dh);
    sid_mse_bwd(dy, NULL, dloss, t->y, target, N, HW);
    sid_conv2d_bwd(da, g->w2, g->b2, dy, t->a, p->w2, &conv2);
    sid_act_bwd(SID_ACT_SILU, dn, da, t->n, (size_t)N * C * HW);
    sid_groupnorm_bwd(dh, g->gn_g, g->gn_b, dn, t->h, p->gn_g, t->mean, t->rstd, N, C, HW, G);
    sid_conv2d_bwd(NULL, g->w1, g->b1, dh, x, p->w1, &conv1);
    return mean;
}

int cmd_selftest(int argc, char **argv) {
    const char *out = argc > 0 ? argv[0] : "out/selftest";
    static float x[N * HW], target[N * HW], block[P_TOTAL], grad[P_TOTAL], v[P_TOTAL];
    static acts t;
    if (sid_mkdir_p(out)) sid_die("%s", sid_error());  // before any work, so a bad path costs nothing
    sid_rng rng = sid_rng_new(1);
    sid_rng_uniform(&rng, x, N * HW);
    for (int i = 0; i < N * HW; i++) x[i] = x[i] > 0.7f ? 1.0f : -1.0f;  // sparse dots blur visibly
    for (int n = 0; n < N; n++)
        for (int i = 0; i < S; i++)
            for (int j = 0; j < S; j++) {
                float s = 0;
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++)
                        if (i + di >= 0 && i + di < S && j + dj >= 0 && j + dj < S) s += x[(n * S + i + di) * S + j + dj];
                target[(n * S + i) * S + j] = s / 9;
            }
    net_params p = carve(block), g = carve(grad);
    sid_rng_normal(&rng, block, P_TOTAL);
    for (int i = 0; i < P_TOTAL; i++) block[i] *= 0.3f;
    for (int c = 0; c < C; c++) p.gn_g[c] = 1, p.gn_b[c] = 0;
    const sid_adam_cfg adam = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    static float m[P_TOTAL];
    sid_progress bar;
    sid_progress_start(&bar, "selftest", STEPS);
    double t0 = sid_now();
    float first = 0, last = 0;
    for (int step = 1; step <= STEPS; step++) {
        memset(grad, 0, sizeof grad);
        last = train_step(&p, &g, x, target, &t);
        if (step == 1) first = last;
        sid_nan_to_num(grad, P_TOTAL, 1e5f, -1e5f);
        sid_adam_step(block, grad, m, v, P_TOTAL, &adam, step);
        sid_progress_update(&bar, step);
    }
    sid_progress_finish(&bar);
    double dt = sid_now() - t0;
    printf("selftest: conv net learns a 3x3 blur: loss %.4f -> %.4f in %d Adam steps (%.1f ms/step)\n", first, last,
           STEPS, 1e3 * dt / STEPS);

    // weights -> safetensors -> weights must predict the same
    char path[1024];
    snprintf(path, sizeof path, "%s/weights.safetensors", out);
    sid_st_entry e[6] = {{"conv1.weight", SID_F32, 4, {C, 1, 3, 3}, p.w1}, {"conv1.bias", SID_F32, 1, {C}, p.b1},
                         {"norm.weight", SID_F32, 1, {C}, p.gn_g},         {"norm.bias", SID_F32, 1, {C}, p.gn_b},
                         {"conv2.weight", SID_F32, 4, {1, C, 3, 3}, p.w2}, {"conv2.bias", SID_F32, 1, {1}, p.b2}};
    const char *meta[2] = {"format", "pt"};
    if (sid_st_write(path, e, 6, meta, 1)) sid_die("%s", sid_error());
    sid_safetensors st;
    if (sid_st_open(&st, path)) sid_die("%s", sid_error());
    static float reloaded[P_TOTAL];
    net_params r = carve(reloaded);
    float *dst[6] = {r.w1, r.b1, r.gn_g, r.gn_b, r.w2, r.b2};
    for (int i = 0; i < 6; i++) {
        const sid_st_tensor *tt = sid_st_find(&st, e[i].name);
        if (!tt || sid_st_read_f32(&st, tt, dst[i])) sid_die("%s: tensor %s did not load back", path, e[i].name);
    }
    sid_st_close(&st);
    static float y1[N * HW];
    forward(&p, x, &t);
    memcpy(y1, t.y, sizeof y1);
    forward(&r, x, &t);
    int same = memcmp(y1, t.y, sizeof y1) == 0;

    static float grid[3 * 4 * HW];  // rows: input, target, prediction for 4 samples
    for (int k = 0; k < 4; k++) {
        memcpy(grid + (0 * 4 + k) * HW, x + k * HW, HW * sizeof(float));
        memcpy(grid + (1 * 4 + k) * HW, target + k * HW, HW * sizeof(float));
        memcpy(grid + (2 * 4 + k) * HW, y1 + k * HW, HW * sizeof(float));
    }
    snprintf(path, sizeof path, "%s/blur.png", out);
    if (sid_png_write_grid(path, grid, 12, 1, S, S, 4, 2)) sid_die("%s", sid_error());
    printf("selftest: weights round-trip through %s/weights.safetensors: %s; grid in %s\n", out,
           same ? "identical predictions" : "PREDICTIONS DIFFER", path);
    if (!(last < 0.1f * first) || !same) {
        fprintf(stderr, "sid: selftest failed: %s\n", same ? "the loss did not fall tenfold" : "weights did not round-trip");
        return 1;
    }
    printf("selftest: ok\n");
    return 0;
}
