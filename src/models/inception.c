// Inception-v3 for FID (inception.h). The architecture is written once, as the sequence of its
// BasicConv2d layers in forward order (declare_all); the forward walks the same sequence with a
// cursor, so the two cannot drift apart without the cursor check failing.
#include "models/inception.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"

enum { N_CONVS = 94 };
static const float BN_EPS = 1e-3f;

struct sid_inception {
    sid_params ps;  // folded: "<conv>.weight" [cout, cin, kh, kw], "<conv>.bias" [cout]
    sid_conv conv[N_CONVS];
    int n;
};

// ---------------------------------------------------------------- the architecture
typedef struct {
    void (*add)(void *ctx, const char *name, int cin, int cout, int kh, int kw, int stride, int ph, int pw);
    void *ctx;
    char prefix[32];
} builder;

static void conv(builder *b, const char *name, int cin, int cout, int kh, int kw, int stride, int ph, int pw) {
    char full[96];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    b->add(b->ctx, full, cin, cout, kh, kw, stride, ph, pw);
}
static void conv_sq(builder *b, const char *name, int cin, int cout, int k, int stride, int pad) {
    conv(b, name, cin, cout, k, k, stride, pad, pad);
}
static void block(builder *b, const char *name) { snprintf(b->prefix, sizeof b->prefix, "%s.", name); }

static void declare_a(builder *b, const char *name, int cin, int pool_features) {
    block(b, name);
    conv_sq(b, "branch1x1", cin, 64, 1, 1, 0);
    conv_sq(b, "branch5x5_1", cin, 48, 1, 1, 0);
    conv_sq(b, "branch5x5_2", 48, 64, 5, 1, 2);
    conv_sq(b, "branch3x3dbl_1", cin, 64, 1, 1, 0);
    conv_sq(b, "branch3x3dbl_2", 64, 96, 3, 1, 1);
    conv_sq(b, "branch3x3dbl_3", 96, 96, 3, 1, 1);
    conv_sq(b, "branch_pool", cin, pool_features, 1, 1, 0);
}
static void declare_b(builder *b, const char *name, int cin) {
    block(b, name);
    conv_sq(b, "branch3x3", cin, 384, 3, 2, 0);
    conv_sq(b, "branch3x3dbl_1", cin, 64, 1, 1, 0);
    conv_sq(b, "branch3x3dbl_2", 64, 96, 3, 1, 1);
    conv_sq(b, "branch3x3dbl_3", 96, 96, 3, 2, 0);
}
static void declare_c(builder *b, const char *name, int cin, int c7) {
    block(b, name);
    conv_sq(b, "branch1x1", cin, 192, 1, 1, 0);
    conv_sq(b, "branch7x7_1", cin, c7, 1, 1, 0);
    conv(b, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    conv(b, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    conv_sq(b, "branch7x7dbl_1", cin, c7, 1, 1, 0);
    conv(b, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    conv(b, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    conv(b, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    conv(b, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    conv_sq(b, "branch_pool", cin, 192, 1, 1, 0);
}
static void declare_d(builder *b, const char *name, int cin) {
    block(b, name);
    conv_sq(b, "branch3x3_1", cin, 192, 1, 1, 0);
    conv_sq(b, "branch3x3_2", 192, 320, 3, 2, 0);
    conv_sq(b, "branch7x7x3_1", cin, 192, 1, 1, 0);
    conv(b, "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    conv(b, "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    conv_sq(b, "branch7x7x3_4", 192, 192, 3, 2, 0);
}
static void declare_e(builder *b, const char *name, int cin) {
    block(b, name);
    conv_sq(b, "branch1x1", cin, 320, 1, 1, 0);
    conv_sq(b, "branch3x3_1", cin, 384, 1, 1, 0);
    conv(b, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    conv(b, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    conv_sq(b, "branch3x3dbl_1", cin, 448, 1, 1, 0);
    conv_sq(b, "branch3x3dbl_2", 448, 384, 3, 1, 1);
    conv(b, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    conv(b, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    conv_sq(b, "branch_pool", cin, 192, 1, 1, 0);
}

static void declare_all(builder *b) {
    b->prefix[0] = 0;
    conv_sq(b, "Conv2d_1a_3x3", 3, 32, 3, 2, 0);
    conv_sq(b, "Conv2d_2a_3x3", 32, 32, 3, 1, 0);
    conv_sq(b, "Conv2d_2b_3x3", 32, 64, 3, 1, 1);
    conv_sq(b, "Conv2d_3b_1x1", 64, 80, 1, 1, 0);
    conv_sq(b, "Conv2d_4a_3x3", 80, 192, 3, 1, 0);
    declare_a(b, "Mixed_5b", 192, 32);
    declare_a(b, "Mixed_5c", 256, 64);
    declare_a(b, "Mixed_5d", 288, 64);
    declare_b(b, "Mixed_6a", 288);
    declare_c(b, "Mixed_6b", 768, 128);
    declare_c(b, "Mixed_6c", 768, 160);
    declare_c(b, "Mixed_6d", 768, 160);
    declare_c(b, "Mixed_6e", 768, 192);
    declare_d(b, "Mixed_7a", 768);
    declare_e(b, "Mixed_7b", 1280);
    declare_e(b, "Mixed_7c", 2048);
}

// The file's layout: per BasicConv2d a bias-free conv and a batch norm.
static void add_file(void *ctx, const char *name, int cin, int cout, int kh, int kw, int stride, int ph, int pw) {
    sid_params *ps = ctx;
    sid_params_add(ps, 4, (int64_t[]){cout, cin, kh, kw}, "%s.conv.weight", name);
    static const char *const bn[] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) sid_params_add(ps, 1, (int64_t[]){cout}, "%s.bn.%s", name, bn[i]);
}

void sid_inception_decl_file(sid_params *ps) {
    builder b = {add_file, ps, ""};
    declare_all(&b);
}

static void add_folded(void *ctx, const char *name, int cin, int cout, int kh, int kw, int stride, int ph, int pw) {
    sid_inception *m = ctx;
    if (m->n >= N_CONVS) sid_die("inception: more than %d convolutions declared", N_CONVS);
    sid_conv_decl_rect(&m->conv[m->n++], &m->ps, cin, cout, kh, kw, stride, ph, pw, name);
}

// ---------------------------------------------------------------- folding
// conv then eval-mode batch norm = one conv with w * g / sqrt(v + eps) and bias b - m * g / sqrt(v + eps).
// The first conv also takes (x - 128) / 128: its weights are divided by 128 and each output
// channel's bias loses the sum of its (folded) weights. Sums in double.
static void fold(sid_inception *m, const sid_params *file) {
    for (int i = 0; i < m->n; i++) {
        const sid_conv *l = &m->conv[i];
        const char *name = m->ps.items[l->w].name;  // "<conv>.weight"
        char base[96], fname[128];
        snprintf(base, sizeof base, "%.*s", (int)(strlen(name) - strlen(".weight")), name);
        int idx[5];
        static const char *const parts[] = {"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"};
        for (int k = 0; k < 5; k++) {
            snprintf(fname, sizeof fname, "%s.%s", base, parts[k]);
            if ((idx[k] = sid_params_find(file, fname)) < 0) sid_die("inception: no parameter %s", fname);
        }
        const float *w = sid_p(file, idx[0]), *g = sid_p(file, idx[1]), *beta = sid_p(file, idx[2]);
        const float *mean = sid_p(file, idx[3]), *var = sid_p(file, idx[4]);
        const size_t per = (size_t)l->cin * l->k * (l->kw ? l->kw : l->k);
        const double in_scale = i == 0 ? 1.0 / 128.0 : 1.0;
        float *fw = sid_p(&m->ps, l->w), *fb = sid_p(&m->ps, l->b);
        for (int co = 0; co < l->cout; co++) {
            const double s = g[co] / sqrt((double)var[co] + BN_EPS);
            double bias = beta[co] - mean[co] * s, wsum = 0;
            for (size_t t = 0; t < per; t++) {
                const double v = w[co * per + t] * s;
                fw[co * per + t] = (float)(v * in_scale);
                wsum += v * in_scale;
            }
            if (i == 0) bias -= 128.0 * wsum;
            fb[co] = (float)bias;
        }
    }
}

static int check_var(const sid_params *file, const char *what) {
    for (int i = 0; i < file->n; i++) {
        const char *nm = file->items[i].name;
        const size_t len = strlen(nm), suf = strlen("running_var");
        if (len < suf || strcmp(nm + len - suf, "running_var") != 0) continue;
        const float *v = sid_p(file, i);
        for (size_t j = 0; j < file->items[i].numel; j++)
            if (!(v[j] >= 0)) return sid_set_error("%s: tensor '%s' has a negative variance %g", what, nm, v[j]), -1;
    }
    return 0;
}

sid_inception *sid_inception_from_params(sid_params *file, const sid_backend *be, const char *what) {
    if (check_var(file, what)) {
        sid_params_free(file);
        return NULL;
    }
    sid_inception *m = calloc(1, sizeof *m);
    builder b = {add_folded, m, ""};
    declare_all(&b);
    if (m->n != N_CONVS) sid_die("inception: %d convolutions declared, want %d", m->n, N_CONVS);
    sid_params_alloc(&m->ps, 0);
    fold(m, file);
    sid_params_free(file);
    sid_params_to_backend(&m->ps, be);
    return m;
}

sid_inception *sid_inception_load(const char *path, const sid_backend *be) {
    sid_params file = {0};
    sid_inception_decl_file(&file);
    sid_params_alloc(&file, 0);
    static const char *const ignore[] = {"num_batches_tracked", "fc.weight", "fc.bias", NULL};
    if (sid_params_load(&file, path, NULL, NULL, 1, ignore)) {
        sid_params_free(&file);
        return NULL;
    }
    return sid_inception_from_params(&file, be, path);
}

sid_inception *sid_inception_random(uint64_t seed, const sid_backend *be) {
    sid_params file = {0};
    sid_inception_decl_file(&file);
    sid_params_alloc(&file, 0);
    sid_rng r = sid_rng_new(seed);
    for (int i = 0; i < file.n; i++) {
        sid_param *p = &file.items[i];
        float *x = sid_p(&file, i);
        const size_t n = p->numel + (p->numel & 1);  // normal draws in pairs
        float *tmp = malloc(n * sizeof(float));
        sid_rng_normal(&r, tmp, n);
        const char *nm = p->name;
        const size_t len = strlen(nm);
        const int is_conv = strstr(nm, ".conv.weight") != NULL, is_var = len > 3 && !strcmp(nm + len - 3, "var");
        const int is_gamma = len > 9 && !strcmp(nm + len - 9, "bn.weight");
        const double fan_in = is_conv ? (double)p->shape[1] * p->shape[2] * p->shape[3] : 1;
        for (size_t j = 0; j < p->numel; j++)
            x[j] = is_conv    ? (float)(tmp[j] * sqrt(2.0 / fan_in))
                   : is_var   ? 1.0f + 0.2f * fabsf(tmp[j])
                   : is_gamma ? 1.0f + 0.1f * tmp[j]
                              : 0.1f * tmp[j];
        free(tmp);
    }
    return sid_inception_from_params(&file, be, "random weights");
}

void sid_inception_free(sid_inception *m) {
    if (!m) return;
    sid_params_free(&m->ps);
    free(m);
}

// ---------------------------------------------------------------- forward
// A walk of the network. With c == NULL it only counts the bytes it would allocate.
typedef struct {
    const sid_ctx *c;
    const sid_inception *m;
    int N, next;
    size_t bytes;
} run;

typedef struct {
    float *x;
    int C, H, W;
} act;

static float *alloc(run *r, size_t n) {
    r->bytes += (n * sizeof(float) + 63) & ~(size_t)63;
    return r->c ? sid_ctx_out(r->c, n) : NULL;
}

// The next BasicConv2d of the walk: conv (batch norm folded in), then ReLU, in place.
static act basic(run *r, act in) {
    if (r->next >= r->m->n) sid_die("inception: forward walks past the %d declared convolutions", r->m->n);
    const sid_conv *l = &r->m->conv[r->next++];
    if (l->cin != in.C) sid_die("inception: %s takes %d channels, gets %d", r->m->ps.items[l->w].name, l->cin, in.C);
    const sid_conv2d_shape s = {r->N, l->cin, in.H, in.W, l->cout, l->k, l->stride, l->pad, l->kw, l->pad_w};
    act out = {NULL, l->cout, sid_conv2d_hout(&s), sid_conv2d_wout(&s)};
    const size_t n = (size_t)r->N * out.C * out.H * out.W;
    out.x = alloc(r, n);
    if (r->c) {
        sid_conv_f(r->c, l, out.x, in.x, r->N, in.H, in.W);
        sid_be(r->c)->clamp_fwd(out.x, out.x, 0.0f, INFINITY, n);
    }
    return out;
}

static act pool(run *r, act in, int k, int stride, int pad, sid_pool_kind kind) {
    // count_pad 0: FID's blocks average over the cells inside the image only
    const sid_pool2d_shape s = {r->N * in.C, in.H, in.W, k, stride, pad, kind, 0};
    act out = {NULL, in.C, sid_pool2d_hout(&s), sid_pool2d_wout(&s)};
    out.x = alloc(r, (size_t)r->N * out.C * out.H * out.W);
    if (r->c) sid_be(r->c)->pool2d_fwd(out.x, in.x, &s);
    return out;
}

// Channel concatenation of n parts (same H, W), as a chain of two-way concats.
static act cat(run *r, const act *parts, int n) {
    act acc = parts[0];
    for (int i = 1; i < n; i++) {
        act out = {NULL, acc.C + parts[i].C, acc.H, acc.W};
        out.x = alloc(r, (size_t)r->N * out.C * out.H * out.W);
        if (r->c) sid_be(r->c)->concat_fwd(out.x, acc.x, parts[i].x, r->N, acc.C, parts[i].C, acc.H * acc.W);
        acc = out;
    }
    return acc;
}

static act block_a(run *r, act x) {
    act b[4];
    b[0] = basic(r, x);
    b[1] = basic(r, basic(r, x));
    b[2] = basic(r, basic(r, basic(r, x)));
    b[3] = basic(r, pool(r, x, 3, 1, 1, SID_POOL_AVG));
    return cat(r, b, 4);
}
static act block_b(run *r, act x) {
    act b[3];
    b[0] = basic(r, x);
    b[1] = basic(r, basic(r, basic(r, x)));
    b[2] = pool(r, x, 3, 2, 0, SID_POOL_MAX);
    return cat(r, b, 3);
}
static act block_c(run *r, act x) {
    act b[4];
    b[0] = basic(r, x);
    b[1] = basic(r, basic(r, basic(r, x)));
    b[2] = basic(r, basic(r, basic(r, basic(r, basic(r, x)))));
    b[3] = basic(r, pool(r, x, 3, 1, 1, SID_POOL_AVG));
    return cat(r, b, 4);
}
static act block_d(run *r, act x) {
    act b[3];
    b[0] = basic(r, basic(r, x));
    b[1] = basic(r, basic(r, basic(r, basic(r, x))));
    b[2] = pool(r, x, 3, 2, 0, SID_POOL_MAX);
    return cat(r, b, 3);
}
// Mixed_7b pools by average (FIDInceptionE_1), Mixed_7c by max (FIDInceptionE_2).
static act block_e(run *r, act x, sid_pool_kind pool_kind) {
    act b[4], split[2];
    b[0] = basic(r, x);
    const act t = basic(r, x);
    split[0] = basic(r, t);
    split[1] = basic(r, t);
    b[1] = cat(r, split, 2);
    const act u = basic(r, basic(r, x));
    split[0] = basic(r, u);
    split[1] = basic(r, u);
    b[2] = cat(r, split, 2);
    b[3] = basic(r, pool(r, x, 3, 1, 1, pool_kind));
    return cat(r, b, 4);
}

// The whole network up to the 8x8x2048 map (at 299 px) before the global pool.
static act trunk(run *r, act x) {
    for (int i = 0; i < 3; i++) x = basic(r, x);
    x = pool(r, x, 3, 2, 0, SID_POOL_MAX);
    x = basic(r, basic(r, x));
    x = pool(r, x, 3, 2, 0, SID_POOL_MAX);
    for (int i = 0; i < 3; i++) x = block_a(r, x);
    x = block_b(r, x);
    for (int i = 0; i < 4; i++) x = block_c(r, x);
    x = block_d(r, x);
    x = block_e(r, x, SID_POOL_AVG);
    return block_e(r, x, SID_POOL_MAX);
}

size_t sid_inception_act_bytes(int S) {
    sid_inception shape_only = {0};  // declared, never allocated: the walk reads shapes only
    builder b = {add_folded, &shape_only, ""};
    declare_all(&b);
    run r = {NULL, &shape_only, 1, 0, 0};
    trunk(&r, (act){NULL, 3, S, S});
    sid_params_free(&shape_only.ps);
    return r.bytes;
}

int sid_inception_forward(const sid_ctx *c, const sid_inception *m, float *features, const float *pixels, int N,
                          int S) {
    if (S < 75) return sid_set_error("inception: images of %d px are below the network's minimum of 75", S), -1;
    if (N <= 0) return 0;
    sid_ctx mine = *c;  // the layers read their weights from the context's parameter set
    mine.ps = (sid_params *)&m->ps;
    run r = {&mine, m, N, 0, 0};
    const act top = trunk(&r, (act){(float *)pixels, 3, S, S});
    if (r.next != m->n) sid_die("inception: forward used %d of %d convolutions", r.next, m->n);
    if (top.C != SID_INCEPTION_FEATURES || top.H != top.W)
        sid_die("inception: top map %dx%dx%d, want %d square", top.C, top.H, top.W, SID_INCEPTION_FEATURES);
    const sid_pool2d_shape s = {N * top.C, top.H, top.W, top.H, 1, 0, SID_POOL_AVG, 1};
    sid_be(c)->pool2d_fwd(features, top.x, &s);
    return 0;
}
