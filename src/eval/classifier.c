#include "eval/classifier.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/fmnist.h"
#include "io/file.h"
#include "io/json.h"

// Stage geometry: input channels, output channels, stride, input side.
static const int st_cin[SID_CLS_STAGES] = {1, 32, 64, 64, 128};
static const int st_cout[SID_CLS_STAGES] = {32, 64, 64, 128, 128};
static const int st_stride[SID_CLS_STAGES] = {1, 2, 1, 2, 2};
static const int st_hin[SID_CLS_STAGES] = {32, 32, 16, 16, 8};
enum { LAST = SID_CLS_STAGES - 1, FLAT = 128 * 4 * 4, RUN_BATCH = 64 };
static const int mlp_width[3] = {SID_CLS_RES * SID_CLS_RES, 512, 256};  // hid0, hid1 inputs; fc1's input

static int st_hout(int i) { return (st_hin[i] + 2 - 3) / st_stride[i] + 1; }
static size_t st_numel(int i) { return (size_t)st_cout[i] * st_hout(i) * st_hout(i); }  // per image

static sid_ctx ctx_of(const sid_classifier *c, sid_arena *act) { return (sid_ctx){(sid_params *)&c->ps, act, NULL}; }

const char *sid_classifier_arch_name(sid_cls_arch arch) { return arch == SID_CLS_MLP ? SID_CLS_ARCH_MLP : SID_CLS_ARCH; }

int sid_classifier_arch_parse(const char *name, sid_cls_arch *arch) {
    if (strcmp(name, "cnn") == 0 || strcmp(name, SID_CLS_ARCH) == 0) return *arch = SID_CLS_CNN, 0;
    if (strcmp(name, "mlp") == 0 || strcmp(name, SID_CLS_ARCH_MLP) == 0) return *arch = SID_CLS_MLP, 0;
    sid_set_error("classifier architecture '%s' is not one of cnn (%s), mlp (%s)", name, SID_CLS_ARCH, SID_CLS_ARCH_MLP);
    return -1;
}

void sid_classifier_init(sid_classifier *c, int with_grad) { sid_classifier_init_arch(c, SID_CLS_CNN, with_grad); }

void sid_classifier_init_arch(sid_classifier *c, sid_cls_arch arch, int with_grad) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    if (arch == SID_CLS_MLP) {
        sid_linear_decl(&c->hid[0], &c->ps, mlp_width[0], mlp_width[1], 1, "hid0");
        sid_linear_decl(&c->hid[1], &c->ps, mlp_width[1], mlp_width[2], 1, "hid1");
        sid_linear_decl(&c->fc1, &c->ps, mlp_width[2], SID_CLS_FEATURES, 1, "fc1");
        sid_linear_decl(&c->fc2, &c->ps, SID_CLS_FEATURES, SID_CLS_CLASSES, 1, "fc2");
        sid_params_alloc(&c->ps, with_grad);
        return;
    }
    char name[32];
    for (int i = 0; i < SID_CLS_STAGES; i++) {
        snprintf(name, sizeof name, "conv%d", i);
        sid_conv_decl(&c->conv[i], &c->ps, st_cin[i], st_cout[i], 3, st_stride[i], 1, name);
        snprintf(name, sizeof name, "norm%d", i);
        sid_norm_decl(&c->norm[i], &c->ps, st_cout[i], SID_CLS_GROUPS, 1e-5f, name);
    }
    sid_linear_decl(&c->fc1, &c->ps, FLAT, SID_CLS_FEATURES, 1, "fc1");
    sid_linear_decl(&c->fc2, &c->ps, SID_CLS_FEATURES, SID_CLS_CLASSES, 1, "fc2");
    sid_params_alloc(&c->ps, with_grad);
}

static void uniform_fill(sid_rng *r, float *dst, size_t n, float bound) {
    sid_rng_uniform(r, dst, n);
    for (size_t i = 0; i < n; i++) dst[i] = (2.0f * dst[i] - 1.0f) * bound;
}

void sid_classifier_init_random(sid_classifier *c, uint64_t seed) {
    sid_rng r = sid_rng_new(seed);
    for (int i = 0; i < (c->arch == SID_CLS_CNN ? SID_CLS_STAGES : 0); i++) {
        const float bound = 1.0f / sqrtf((float)(st_cin[i] * 9));
        uniform_fill(&r, sid_p(&c->ps, c->conv[i].w), c->ps.items[c->conv[i].w].numel, bound);
        uniform_fill(&r, sid_p(&c->ps, c->conv[i].b), (size_t)st_cout[i], bound);
        for (int k = 0; k < st_cout[i]; k++) sid_p(&c->ps, c->norm[i].w)[k] = 1, sid_p(&c->ps, c->norm[i].b)[k] = 0;
    }
    const sid_linear *fc[4] = {&c->fc1, &c->fc2, &c->hid[0], &c->hid[1]};
    for (int j = 0; j < (c->arch == SID_CLS_MLP ? 4 : 2); j++) {
        const float bound = 1.0f / sqrtf((float)fc[j]->in);
        uniform_fill(&r, sid_p(&c->ps, fc[j]->w), (size_t)fc[j]->in * fc[j]->out, bound);
        uniform_fill(&r, sid_p(&c->ps, fc[j]->b), (size_t)fc[j]->out, bound);
    }
}

void sid_classifier_free(sid_classifier *c) {
    sid_params_free(&c->ps);
    memset(c, 0, sizeof *c);
}

// ---------------------------------------------------------------- files

int sid_classifier_load(sid_classifier *c, const char *dir) {
    char path[1024];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *cfg = sid_json_load(path);
    if (!cfg) {
        if (!sid_file_exists(path))
            sid_set_error("%s: no such file; train the classifier with `sid train-classifier --out %s`", path, dir);
        return -1;
    }
    const char *arch = NULL;
    sid_cls_arch kind = SID_CLS_CNN;
    int rc = sid_json_string(cfg, "architecture", &arch, NULL, 1, path);
    if (rc == 0 && strcmp(arch, SID_CLS_ARCH) != 0 && strcmp(arch, SID_CLS_ARCH_MLP) != 0) {
        sid_set_error("%s: architecture '%s' is not one this build knows (%s, %s)", path, arch, SID_CLS_ARCH, SID_CLS_ARCH_MLP);
        rc = -1;
    }
    if (rc == 0 && strcmp(arch, SID_CLS_ARCH_MLP) == 0) kind = SID_CLS_MLP;
    cJSON_Delete(cfg);
    if (rc) return -1;
    sid_classifier_init_arch(c, kind, 0);
    snprintf(path, sizeof path, "%s/classifier.safetensors", dir);
    if (sid_params_load(&c->ps, path, NULL, NULL, 1, NULL)) {
        sid_classifier_free(c);
        return -1;
    }
    return 0;
}

int sid_classifier_save(const sid_classifier *c, const char *dir, sid_dtype dtype, const cJSON *info) {
    char path[1024];
    if (sid_mkdir_p(dir)) return -1;
    snprintf(path, sizeof path, "%s/classifier.safetensors", dir);
    if (sid_params_save(&c->ps, path, dtype)) return -1;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "architecture", sid_classifier_arch_name(c->arch));
    cJSON_AddNumberToObject(j, "resolution", SID_CLS_RES);
    cJSON_AddNumberToObject(j, "in_channels", 1);
    if (c->arch == SID_CLS_MLP) {
        cJSON_AddItemToObject(j, "hidden_widths", cJSON_CreateIntArray(mlp_width + 1, 2));
    } else {
        cJSON_AddItemToObject(j, "stage_channels", cJSON_CreateIntArray(st_cout, SID_CLS_STAGES));
        cJSON_AddItemToObject(j, "stage_strides", cJSON_CreateIntArray(st_stride, SID_CLS_STAGES));
        cJSON_AddNumberToObject(j, "norm_groups", SID_CLS_GROUPS);
    }
    cJSON_AddNumberToObject(j, "features", SID_CLS_FEATURES);
    cJSON_AddNumberToObject(j, "classes", SID_CLS_CLASSES);
    cJSON *names = cJSON_AddArrayToObject(j, "class_names");
    for (int k = 0; k < SID_CLS_CLASSES; k++) cJSON_AddItemToArray(names, cJSON_CreateString(sid_fmnist_class_name(k)));
    cJSON_AddStringToObject(j, "dtype", sid_dtype_name(dtype));
    cJSON_AddNumberToObject(j, "parameters", (double)sid_params_count(&c->ps));
    if (info)
        for (const cJSON *it = info->child; it; it = it->next)
            if (it->string) cJSON_AddItemToObject(j, it->string, cJSON_Duplicate(it, 1));
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = sid_json_save(path, j);
    cJSON_Delete(j);
    return rc;
}

// ---------------------------------------------------------------- forward / backward

size_t sid_classifier_arena_bytes(int B) {
    size_t per_image = 0;
    for (int i = 0; i < SID_CLS_STAGES; i++) per_image += 3 * st_numel(i);
    per_image += 2 * SID_CLS_FEATURES + SID_CLS_CLASSES;
    const size_t fwd = (size_t)B * per_image * sizeof(float) + (3 * SID_CLS_STAGES + 3) * 64 +
                       2 * SID_CLS_STAGES * ((size_t)B * SID_CLS_GROUPS * sizeof(float) + 64);
    // backward: the fc gradients, every stage's input gradient, and two buffers of the largest stage
    size_t bwd_per_image = 2 * SID_CLS_FEATURES + FLAT + 2 * st_numel(0);
    for (int i = 1; i < SID_CLS_STAGES; i++) bwd_per_image += st_numel(i - 1);
    const size_t bwd = (size_t)B * bwd_per_image * sizeof(float) + 16 * 64;
    const size_t loss = (size_t)B * SID_CLS_CLASSES * sizeof(float) + 64;  // dlogits of a training step
    return fwd + loss + bwd + 4096;
}

void sid_classifier_forward(const sid_classifier *c, sid_arena *act, const float *x, int B, sid_classifier_acts *a) {
    const sid_ctx ctx = ctx_of(c, act);
    memset(a, 0, sizeof *a);
    a->B = B, a->x = x;
    const float *in = x;
    for (int i = 0; i < (c->arch == SID_CLS_MLP ? 2 : 0); i++) {  // the MLP's hidden layers
        const size_t n = (size_t)B * mlp_width[i + 1];
        a->h[i] = sid_ctx_out(&ctx, n);
        a->a[i] = sid_ctx_out(&ctx, n);
        sid_linear_f(&ctx, &c->hid[i], a->h[i], in, B);
        sid_act_fwd(SID_ACT_SILU, a->a[i], a->h[i], n);
        in = a->a[i];
    }
    for (int i = 0; i < (c->arch == SID_CLS_CNN ? SID_CLS_STAGES : 0); i++) {
        const size_t n = (size_t)B * st_numel(i);
        const int hw = st_hout(i) * st_hout(i);
        a->h[i] = sid_ctx_out(&ctx, n);
        a->n[i] = sid_ctx_out(&ctx, n);
        a->a[i] = sid_ctx_out(&ctx, n);
        sid_conv_f(&ctx, &c->conv[i], a->h[i], in, B, st_hin[i], st_hin[i]);
        a->s[i] = sid_groupnorm_f(&ctx, &c->norm[i], a->n[i], a->h[i], B, hw);
        sid_act_fwd(SID_ACT_SILU, a->a[i], a->n[i], n);
        in = a->a[i];
    }
    a->pre = sid_ctx_out(&ctx, (size_t)B * SID_CLS_FEATURES);
    a->feat = sid_ctx_out(&ctx, (size_t)B * SID_CLS_FEATURES);
    a->logits = sid_ctx_out(&ctx, (size_t)B * SID_CLS_CLASSES);
    sid_linear_f(&ctx, &c->fc1, a->pre, in, B);
    sid_act_fwd(SID_ACT_SILU, a->feat, a->pre, (size_t)B * SID_CLS_FEATURES);
    sid_linear_f(&ctx, &c->fc2, a->logits, a->feat, B);
}

void sid_classifier_backward(const sid_classifier *c, sid_arena *act, const sid_classifier_acts *a,
                             const float *dlogits, float *dx) {
    if (!c->ps.grad && !dx) return;
    const sid_ctx ctx = ctx_of(c, act);
    const int B = a->B;
    const size_t mark = sid_arena_mark(act);
    float *dfeat = sid_ctx_floats(&ctx, (size_t)B * SID_CLS_FEATURES);
    float *dpre = sid_ctx_floats(&ctx, (size_t)B * SID_CLS_FEATURES);
    const int mlp = c->arch == SID_CLS_MLP;
    float *da = sid_ctx_floats(&ctx, (size_t)B * (mlp ? mlp_width[2] : FLAT));
    sid_linear_b(&ctx, &c->fc2, dfeat, dlogits, a->feat, B);
    sid_act_bwd(SID_ACT_SILU, dpre, dfeat, a->pre, (size_t)B * SID_CLS_FEATURES);
    sid_linear_b(&ctx, &c->fc1, da, dpre, mlp ? a->a[1] : a->a[LAST], B);
    for (int i = mlp ? 1 : -1; i >= 0; i--) {  // the MLP's hidden layers
        float *din = i > 0 ? sid_ctx_floats(&ctx, (size_t)B * mlp_width[i]) : dx;
        const size_t layer_mark = sid_arena_mark(act);
        float *dh = sid_ctx_floats(&ctx, (size_t)B * mlp_width[i + 1]);
        sid_act_bwd(SID_ACT_SILU, dh, da, a->h[i], (size_t)B * mlp_width[i + 1]);
        sid_linear_b(&ctx, &c->hid[i], din, dh, i > 0 ? a->a[i - 1] : a->x, B);
        sid_arena_reset(act, layer_mark);
        da = din;
    }
    for (int i = mlp ? -1 : LAST; i >= 0; i--) {
        const size_t n = (size_t)B * st_numel(i);
        const int hw = st_hout(i) * st_hout(i);
        // the input gradient first, so the stage's temporaries above it go back on return
        float *din = i > 0 ? sid_ctx_floats(&ctx, (size_t)B * st_numel(i - 1)) : dx;
        const size_t stage_mark = sid_arena_mark(act);
        float *dn = sid_ctx_floats(&ctx, n), *dh = sid_ctx_floats(&ctx, n);
        sid_act_bwd(SID_ACT_SILU, dn, da, a->n[i], n);
        sid_groupnorm_b(&ctx, &c->norm[i], dh, dn, a->h[i], a->s[i], B, hw);
        sid_conv_b(&ctx, &c->conv[i], din, dh, i > 0 ? a->a[i - 1] : a->x, B, st_hin[i], st_hin[i]);
        sid_arena_reset(act, stage_mark);
        da = din;
    }
    sid_arena_reset(act, mark);
}

double sid_softmax_xent(float *dlogits, const float *logits, const int32_t *labels, int B, int C, int *correct) {
    double total = 0;
    int right = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * C;
        int best = 0;
        for (int k = 1; k < C; k++)
            if (z[k] > z[best]) best = k;
        right += best == labels[b];
        double sum = 0;
        for (int k = 0; k < C; k++) sum += exp((double)z[k] - z[best]);
        const double lse = z[best] + log(sum);
        total += lse - z[labels[b]];
        if (dlogits)
            for (int k = 0; k < C; k++)
                dlogits[(size_t)b * C + k] = (float)((exp(z[k] - lse) - (k == labels[b])) / B);
    }
    if (correct) *correct = right;
    return B ? total / B : 0;
}

// ---------------------------------------------------------------- training

void sid_classifier_trainer_init(sid_classifier_trainer *t, const sid_classifier *c, int max_batch,
                                 const sid_adam_cfg *adam) {
    memset(t, 0, sizeof *t);
    if (!c->ps.grad) sid_die("sid_classifier_trainer_init: the classifier has no gradient block");
    t->adam = *adam;
    t->max_batch = max_batch;
    t->m = sid_aligned_alloc(c->ps.total * sizeof(float));
    t->v = sid_aligned_alloc(c->ps.total * sizeof(float));
    memset(t->m, 0, c->ps.total * sizeof(float));
    memset(t->v, 0, c->ps.total * sizeof(float));
    sid_arena_init(&t->act, "classifier activations", sid_classifier_arena_bytes(max_batch));
}

void sid_classifier_trainer_free(sid_classifier_trainer *t) {
    free(t->m);
    free(t->v);
    sid_arena_free(&t->act);
    memset(t, 0, sizeof *t);
}

double sid_classifier_train_step(sid_classifier *c, sid_classifier_trainer *t, const float *x, const int32_t *labels,
                                 int B, float lr, int *correct) {
    if (B > t->max_batch) sid_die("sid_classifier_train_step: batch %d exceeds %d", B, t->max_batch);
    sid_arena_reset(&t->act, 0);
    memset(c->ps.grad, 0, c->ps.total * sizeof(float));
    sid_classifier_acts a;
    sid_classifier_forward(c, &t->act, x, B, &a);
    float *dlogits = sid_arena_floats(&t->act, (size_t)B * SID_CLS_CLASSES);
    const double loss = sid_softmax_xent(dlogits, a.logits, labels, B, SID_CLS_CLASSES, correct);
    sid_classifier_backward(c, &t->act, &a, dlogits, NULL);
    sid_nan_to_num(c->ps.grad, c->ps.total, 1e5f, -1e5f);
    sid_adam_cfg cfg = t->adam;
    cfg.lr = lr;
    sid_adam_step(c->ps.data, c->ps.grad, t->m, t->v, c->ps.total, &cfg, ++t->step);
    return loss;
}

// ---------------------------------------------------------------- inference

void sid_classifier_run(const sid_classifier *c, const float *x, int N, float *feat, float *logits, int32_t *pred) {
    sid_arena act;
    sid_arena_init(&act, "classifier inference", sid_classifier_arena_bytes(N < RUN_BATCH ? N : RUN_BATCH));
    const size_t img = (size_t)SID_CLS_RES * SID_CLS_RES;
    for (int i0 = 0; i0 < N; i0 += RUN_BATCH) {
        const int B = N - i0 < RUN_BATCH ? N - i0 : RUN_BATCH;
        sid_arena_reset(&act, 0);
        sid_classifier_acts a;
        sid_classifier_forward(c, &act, x + (size_t)i0 * img, B, &a);
        if (feat) memcpy(feat + (size_t)i0 * SID_CLS_FEATURES, a.feat, (size_t)B * SID_CLS_FEATURES * sizeof(float));
        if (logits)
            memcpy(logits + (size_t)i0 * SID_CLS_CLASSES, a.logits, (size_t)B * SID_CLS_CLASSES * sizeof(float));
        if (pred)
            for (int b = 0; b < B; b++) {
                const float *z = a.logits + (size_t)b * SID_CLS_CLASSES;
                int best = 0;
                for (int k = 1; k < SID_CLS_CLASSES; k++)
                    if (z[k] > z[best]) best = k;
                pred[i0 + b] = best;
            }
    }
    sid_arena_free(&act);
}

double sid_classifier_accuracy(const sid_classifier *c, const float *x, const int32_t *labels, int N) {
    if (N <= 0) return 0;
    int32_t *pred = sid_malloc((size_t)N * sizeof *pred);
    sid_classifier_run(c, x, N, NULL, NULL, pred);
    int right = 0;
    for (int i = 0; i < N; i++) right += pred[i] == labels[i];
    free(pred);
    return (double)right / N;
}
