// A ResNet block and a transformer block of the SD UNet, composed from the ops
// the way the model code composes them (forward saves what backward reads,
// backward zeroes each intermediate gradient because ops accumulate).
// Included once by bench_ops.c.

#define Z(p, n) memset((p), 0, (size_t)(n) * sizeof(float))

// ---- ResnetBlock2D, C -> C channels, time embedding width T
typedef struct {
    int N, C, HW, T, G;
    float *x, *temb, *g1, *b1, *w1, *c1b, *g2, *b2, *w2, *c2b, *wt, *bt;  // inputs and weights
    float *h1, *m1, *r1, *a1, *c1, *ts, *tp, *h2, *m2, *r2, *a2, *out;  // saved activations
    float *dout, *dx, *dtemb, *da2, *dh2, *dc1, *dtp, *dts, *da1, *dh1;  // gradients
    float *dg1, *db1, *dw1, *dc1b, *dg2, *db2, *dw2, *dc2b, *dwt, *dbt;
} resblock;

static void resblock_fwd(void *p) {
    resblock *r = p;
    const int N = r->N, C = r->C, HW = r->HW, side = (int)(sqrt((double)HW) + 0.5);
    const size_t n = (size_t)N * C * HW;
    sid_conv2d_shape s = {N, C, side, side, C, 3, 1, 1};
    sid_groupnorm_fwd(r->h1, r->m1, r->r1, r->x, r->g1, r->b1, N, C, HW, r->G, 1e-5f);
    sid_act_fwd(SID_ACT_SILU, r->a1, r->h1, n);
    sid_conv2d_fwd(r->c1, r->a1, r->w1, r->c1b, &s);
    sid_act_fwd(SID_ACT_SILU, r->ts, r->temb, (size_t)N * r->T);
    sid_linear_fwd(r->tp, r->ts, r->wt, r->bt, N, r->T, C);
    sid_add_channel_bias_fwd(r->c1, r->c1, r->tp, N, C, HW);
    sid_groupnorm_fwd(r->h2, r->m2, r->r2, r->c1, r->g2, r->b2, N, C, HW, r->G, 1e-5f);
    sid_act_fwd(SID_ACT_SILU, r->a2, r->h2, n);
    sid_conv2d_fwd(r->out, r->a2, r->w2, r->c2b, &s);
    sid_add_fwd(r->out, r->out, r->x, n);
}

static void resblock_bwd(void *p) {
    resblock *r = p;
    const int N = r->N, C = r->C, HW = r->HW, side = (int)(sqrt((double)HW) + 0.5);
    const size_t n = (size_t)N * C * HW;
    sid_conv2d_shape s = {N, C, side, side, C, 3, 1, 1};
    Z(r->dx, n), Z(r->da2, n), Z(r->dh2, n), Z(r->dc1, n), Z(r->da1, n), Z(r->dh1, n);
    Z(r->dtp, N * C), Z(r->dts, N * r->T), Z(r->dtemb, N * r->T);
    sid_add_bwd(r->dx, NULL, r->dout, n);  // residual
    sid_conv2d_bwd(r->da2, r->dw2, r->dc2b, r->dout, r->a2, r->w2, &s);
    sid_act_bwd(SID_ACT_SILU, r->dh2, r->da2, r->h2, n);
    sid_groupnorm_bwd(r->dc1, r->dg2, r->db2, r->dh2, r->c1, r->g2, r->m2, r->r2, N, C, HW, r->G);
    sid_add_channel_bias_bwd(NULL, r->dtp, r->dc1, N, C, HW);
    sid_linear_bwd(r->dts, r->dwt, r->dbt, r->dtp, r->ts, r->wt, N, r->T, C);
    sid_act_bwd(SID_ACT_SILU, r->dtemb, r->dts, r->temb, (size_t)N * r->T);
    sid_conv2d_bwd(r->da1, r->dw1, r->dc1b, r->dc1, r->a1, r->w1, &s);
    sid_act_bwd(SID_ACT_SILU, r->dh1, r->da1, r->h1, n);
    sid_groupnorm_bwd(r->dx, r->dg1, r->db1, r->dh1, r->x, r->g1, r->m1, r->r1, N, C, HW, r->G);
}
static void resblock_both(void *p) { resblock_fwd(p), resblock_bwd(p); }

static void bench_resblock(int N, int C, int side, int T, const char *what) {
    const int HW = side * side;
    const size_t n = (size_t)N * C * HW, w = (size_t)C * C * 9;
    resblock r = {.N = N, .C = C, .HW = HW, .T = T, .G = 32 < C ? 32 : C};
    r.x = randn(n), r.temb = randn((size_t)N * T), r.g1 = randn(C), r.b1 = randn(C), r.w1 = randn(w), r.c1b = randn(C);
    r.g2 = randn(C), r.b2 = randn(C), r.w2 = randn(w), r.c2b = randn(C), r.wt = randn((size_t)C * T), r.bt = randn(C);
    r.h1 = zeros(n), r.m1 = zeros(N * 32), r.r1 = zeros(N * 32), r.a1 = zeros(n), r.c1 = zeros(n), r.ts = zeros((size_t)N * T);
    r.tp = zeros(N * C), r.h2 = zeros(n), r.m2 = zeros(N * 32), r.r2 = zeros(N * 32), r.a2 = zeros(n), r.out = zeros(n);
    r.dout = randn(n), r.dx = zeros(n), r.dtemb = zeros((size_t)N * T), r.da2 = zeros(n), r.dh2 = zeros(n), r.dc1 = zeros(n);
    r.dtp = zeros(N * C), r.dts = zeros((size_t)N * T), r.da1 = zeros(n), r.dh1 = zeros(n);
    r.dg1 = zeros(C), r.db1 = zeros(C), r.dw1 = zeros(w), r.dc1b = zeros(C), r.dg2 = zeros(C), r.db2 = zeros(C);
    r.dw2 = zeros(w), r.dc2b = zeros(C), r.dwt = zeros((size_t)C * T), r.dbt = zeros(C);
    char shape[80];
    snprintf(shape, sizeof shape, "%s n%d C%d %dx%d", what, N, C, side, side);
    const double f = 2 * 2.0 * N * C * HW * C * 9;  // two convs; norms and activations are not counted
    row("ResNet block fwd", shape, time_it(resblock_fwd, &r), f, 0);
    row("ResNet block fwd+bwd", shape, time_it(resblock_both, &r), 3 * f, 0);
    // (buffers are left to the OS: the benchmark exits right after)
}

// ---- BasicTransformerBlock on tokens [B, N, C] with context [B, M, Cc], H heads
typedef struct {
    int B, N, M, C, Cc, H;
    float *x, *ctx;
    float *ln_g[3], *ln_b[3], *wq1, *wk1, *wv1, *wo1, *bo1, *wq2, *wk2, *wv2, *wo2, *bo2, *wf1, *bf1, *wf2, *bf2;
    float *n[3], *mean[3], *rstd[3], *q1, *k1, *v1, *a1, *lse1, *x1, *q2, *k2, *v2, *a2, *lse2, *x2, *f1, *g, *out;
    float *dout, *dx, *dctx, *dn, *dq, *dk, *dv, *da, *dk2, *dv2, *dx1, *dx2, *df1, *dg;
    float *dw[16];  // weight gradients, in the order of the weights above
} tblock;

static void tblock_fwd(void *p) {
    tblock *t = p;
    const int T = t->B * t->N, C = t->C, dh = C / t->H;
    sid_layernorm_fwd(t->n[0], t->mean[0], t->rstd[0], t->x, t->ln_g[0], t->ln_b[0], T, C, 1e-5f);
    sid_linear_fwd(t->q1, t->n[0], t->wq1, NULL, T, C, C);
    sid_linear_fwd(t->k1, t->n[0], t->wk1, NULL, T, C, C);
    sid_linear_fwd(t->v1, t->n[0], t->wv1, NULL, T, C, C);
    sid_attention_fwd(t->a1, t->lse1, t->q1, t->k1, t->v1, t->B, t->N, t->N, t->H, dh, 0);
    sid_linear_fwd(t->x1, t->a1, t->wo1, t->bo1, T, C, C);
    sid_add_fwd(t->x1, t->x1, t->x, (size_t)T * C);
    sid_layernorm_fwd(t->n[1], t->mean[1], t->rstd[1], t->x1, t->ln_g[1], t->ln_b[1], T, C, 1e-5f);
    sid_linear_fwd(t->q2, t->n[1], t->wq2, NULL, T, C, C);
    sid_linear_fwd(t->k2, t->ctx, t->wk2, NULL, t->B * t->M, t->Cc, C);
    sid_linear_fwd(t->v2, t->ctx, t->wv2, NULL, t->B * t->M, t->Cc, C);
    sid_attention_fwd(t->a2, t->lse2, t->q2, t->k2, t->v2, t->B, t->N, t->M, t->H, dh, 0);
    sid_linear_fwd(t->x2, t->a2, t->wo2, t->bo2, T, C, C);
    sid_add_fwd(t->x2, t->x2, t->x1, (size_t)T * C);
    sid_layernorm_fwd(t->n[2], t->mean[2], t->rstd[2], t->x2, t->ln_g[2], t->ln_b[2], T, C, 1e-5f);
    sid_linear_fwd(t->f1, t->n[2], t->wf1, t->bf1, T, C, 8 * C);
    sid_geglu_fwd(t->g, t->f1, T, 4 * C);
    sid_linear_fwd(t->out, t->g, t->wf2, t->bf2, T, 4 * C, C);
    sid_add_fwd(t->out, t->out, t->x2, (size_t)T * C);
}

static void tblock_bwd(void *p) {
    tblock *t = p;
    const int T = t->B * t->N, C = t->C, dh = C / t->H, TM = t->B * t->M;
    const size_t tc = (size_t)T * C;
    float **dw = t->dw;
    Z(t->dx2, tc), Z(t->dg, tc * 4), Z(t->df1, tc * 8), Z(t->dn, tc);
    // feed-forward
    sid_add_bwd(t->dx2, NULL, t->dout, tc);
    sid_linear_bwd(t->dg, dw[12], dw[13], t->dout, t->g, t->wf2, T, 4 * C, C);
    sid_geglu_bwd(t->df1, t->dg, t->f1, T, 4 * C);
    sid_linear_bwd(t->dn, dw[10], dw[11], t->df1, t->n[2], t->wf1, T, C, 8 * C);
    sid_layernorm_bwd(t->dx2, dw[14], dw[15], t->dn, t->x2, t->ln_g[2], t->mean[2], t->rstd[2], T, C);
    // cross-attention
    Z(t->dx1, tc), Z(t->da, tc), Z(t->dq, tc), Z(t->dk2, (size_t)TM * C), Z(t->dv2, (size_t)TM * C), Z(t->dn, tc);
    Z(t->dctx, (size_t)TM * t->Cc);
    sid_add_bwd(t->dx1, NULL, t->dx2, tc);
    sid_linear_bwd(t->da, dw[8], dw[9], t->dx2, t->a2, t->wo2, T, C, C);
    sid_attention_bwd(t->dq, t->dk2, t->dv2, t->da, t->q2, t->k2, t->v2, t->a2, t->lse2, t->B, t->N, t->M, t->H, dh, 0);
    sid_linear_bwd(t->dn, dw[5], NULL, t->dq, t->n[1], t->wq2, T, C, C);
    sid_linear_bwd(t->dctx, dw[6], NULL, t->dk2, t->ctx, t->wk2, TM, t->Cc, C);
    sid_linear_bwd(t->dctx, dw[7], NULL, t->dv2, t->ctx, t->wv2, TM, t->Cc, C);
    sid_layernorm_bwd(t->dx1, dw[14], dw[15], t->dn, t->x1, t->ln_g[1], t->mean[1], t->rstd[1], T, C);
    // self-attention
    Z(t->dx, tc), Z(t->da, tc), Z(t->dq, tc), Z(t->dk, tc), Z(t->dv, tc), Z(t->dn, tc);
    sid_add_bwd(t->dx, NULL, t->dx1, tc);
    sid_linear_bwd(t->da, dw[3], dw[4], t->dx1, t->a1, t->wo1, T, C, C);
    sid_attention_bwd(t->dq, t->dk, t->dv, t->da, t->q1, t->k1, t->v1, t->a1, t->lse1, t->B, t->N, t->N, t->H, dh, 0);
    sid_linear_bwd(t->dn, dw[0], NULL, t->dq, t->n[0], t->wq1, T, C, C);
    sid_linear_bwd(t->dn, dw[1], NULL, t->dk, t->n[0], t->wk1, T, C, C);
    sid_linear_bwd(t->dn, dw[2], NULL, t->dv, t->n[0], t->wv1, T, C, C);
    sid_layernorm_bwd(t->dx, dw[14], dw[15], t->dn, t->x, t->ln_g[0], t->mean[0], t->rstd[0], T, C);
}
static void tblock_both(void *p) { tblock_fwd(p), tblock_bwd(p); }

static void bench_tblock(int B, int side, int C, int M, int Cc, int H, const char *what) {
    const int N = side * side, T = B * N;
    const size_t tc = (size_t)T * C, cc = (size_t)C * C;
    tblock t = {.B = B, .N = N, .M = M, .C = C, .Cc = Cc, .H = H};
    t.x = randn(tc), t.ctx = randn((size_t)B * M * Cc);
    for (int i = 0; i < 3; i++) t.ln_g[i] = randn(C), t.ln_b[i] = randn(C), t.n[i] = zeros(tc), t.mean[i] = zeros(T), t.rstd[i] = zeros(T);
    t.wq1 = randn(cc), t.wk1 = randn(cc), t.wv1 = randn(cc), t.wo1 = randn(cc), t.bo1 = randn(C);
    t.wq2 = randn(cc), t.wk2 = randn((size_t)C * Cc), t.wv2 = randn((size_t)C * Cc), t.wo2 = randn(cc), t.bo2 = randn(C);
    t.wf1 = randn(8 * cc), t.bf1 = randn(8 * C), t.wf2 = randn(4 * cc), t.bf2 = randn(C);
    t.q1 = zeros(tc), t.k1 = zeros(tc), t.v1 = zeros(tc), t.a1 = zeros(tc), t.lse1 = zeros((size_t)B * H * N), t.x1 = zeros(tc);
    t.q2 = zeros(tc), t.k2 = zeros((size_t)B * M * C), t.v2 = zeros((size_t)B * M * C), t.a2 = zeros(tc);
    t.lse2 = zeros((size_t)B * H * N), t.x2 = zeros(tc), t.f1 = zeros(8 * tc), t.g = zeros(4 * tc), t.out = zeros(tc);
    t.dout = randn(tc), t.dx = zeros(tc), t.dctx = zeros((size_t)B * M * Cc), t.dn = zeros(tc), t.dq = zeros(tc);
    t.dk = zeros(tc), t.dv = zeros(tc), t.da = zeros(tc), t.dk2 = zeros((size_t)B * M * C), t.dv2 = zeros((size_t)B * M * C);
    t.dx1 = zeros(tc), t.dx2 = zeros(tc), t.df1 = zeros(8 * tc), t.dg = zeros(4 * tc);
    const size_t wsz[16] = {cc, cc, cc, cc, C, cc, (size_t)C * Cc, (size_t)C * Cc, cc, C, 8 * cc, 8 * C, 4 * cc, C, C, C};
    for (int i = 0; i < 16; i++) t.dw[i] = zeros(wsz[i]);
    char shape[80];
    snprintf(shape, sizeof shape, "%s B%d %dx%d C%d ctx%dx%d H%d", what, B, side, side, C, M, Cc, H);
    const double f = 2.0 * T * C * C * 4 + 2.0 * T * C * C * 2 + 2.0 * B * M * Cc * C * 2 + 2.0 * T * C * 12 * C +
                     4.0 * B * N * N * C + 4.0 * B * N * M * C;
    row("transformer block fwd", shape, time_it(tblock_fwd, &t), f, 0);
    row("transformer block fwd+bwd", shape, time_it(tblock_both, &t), 3 * f, 0);
}

static void bench_blocks(void) {
    bench_resblock(16, 64, 16, 256, "small UNet");
    bench_resblock(1, 320, 64, 1280, "SD1.5 64x64");
    bench_tblock(16, 8, 64, 8, 64, 2, "small UNet 8x8");
    bench_tblock(16, 16, 64, 8, 64, 2, "small UNet 16x16");
    bench_tblock(1, 32, 320, 77, 768, 8, "SD1.5 32x32");
}
