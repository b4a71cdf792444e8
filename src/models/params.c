#define _GNU_SOURCE
#include "models/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "ops/backend.h"

int sid_params_add(sid_params *ps, int ndim, const int64_t *shape, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (sid_params_find(ps, name) >= 0) sid_die("parameter '%s' declared twice", name);
    if (ps->data) sid_die("parameter '%s' declared after the block was allocated", name);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        sid_param *items = realloc(ps->items, (size_t)ps->cap * sizeof *items);
        if (!items) sid_die("out of memory declaring parameters");
        ps->items = items;
    }
    sid_param *p = &ps->items[ps->n];
    memset(p, 0, sizeof *p);
    p->name = strdup(name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->numel *= (size_t)shape[i];
    // 16-float alignment keeps every tensor on its own cache lines for vector loads
    p->offset = ps->total;
    ps->total += (p->numel + 15) / 16 * 16;
    return ps->n++;
}

void sid_params_alloc(sid_params *ps, int with_grad) {
    ps->data = sid_aligned_alloc(ps->total * sizeof(float) + 64);
    memset(ps->data, 0, ps->total * sizeof(float));
    if (with_grad) {
        ps->grad = sid_aligned_alloc(ps->total * sizeof(float) + 64);
        memset(ps->grad, 0, ps->total * sizeof(float));
    }
}

void sid_params_free(sid_params *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->items[i].name);
    free(ps->items);
    if (ps->be) {
        if (ps->data) ps->be->free(ps->data);
        if (ps->grad) ps->be->free(ps->grad);
    } else {
        free(ps->data);
        free(ps->grad);
    }
    memset(ps, 0, sizeof *ps);
}

void sid_params_to_backend(sid_params *ps, const sid_backend *be) {
    if (!be || be == &sid_backend_cpu || ps->be == be || !ps->data) return;
    const size_t bytes = ps->total * sizeof(float) + 64;
    float *d = be->alloc(bytes), *g = ps->grad ? be->alloc(bytes) : NULL;  // alloc is zero-filled
    if (!d || (ps->grad && !g)) sid_die("parameters: cannot allocate %zu bytes on the %s device", bytes, be->name);
    be->upload(d, ps->data, ps->total * sizeof(float));
    free(ps->data), free(ps->grad);
    ps->data = d, ps->grad = g, ps->be = be;
}

int sid_params_find(const sid_params *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0) return i;
    return -1;
}

size_t sid_params_count(const sid_params *ps) {
    size_t n = 0;
    for (int i = 0; i < ps->n; i++) n += ps->items[i].numel;
    return n;
}

int sid_weights_check(const float *w, size_t n, const char *what, const char *tensor) {
    // one comparison per value catches all three (NaN compares false); count them only on failure
    size_t bad = 0;
    for (size_t k = 0; k < n; k++) bad += !(fabsf(w[k]) <= SID_WEIGHT_ABS_MAX);
    if (!bad) return 0;
    size_t nan = 0, inf = 0, big = 0;
    float largest = 0;
    for (size_t k = 0; k < n; k++) {
        const float v = w[k];
        if (isnan(v)) nan++;
        else if (isinf(v)) inf++;
        else if (fabsf(v) > SID_WEIGHT_ABS_MAX) big++, largest = fabsf(v) > largest ? fabsf(v) : largest;
    }
    if (nan && inf)
        sid_set_error("%s: tensor '%s' has %zu NaN and %zu infinite values", what, tensor, nan, inf);
    else if (nan)
        sid_set_error("%s: tensor '%s' has %zu NaN value%s", what, tensor, nan, nan == 1 ? "" : "s");
    else if (inf)
        sid_set_error("%s: tensor '%s' has %zu infinite value%s", what, tensor, inf, inf == 1 ? "" : "s");
    else
        sid_set_error("%s: tensor '%s' has %zu value%s of magnitude above %g (largest %g): corrupt, not trained weights",
                      what, tensor, big, big == 1 ? "" : "s", (double)SID_WEIGHT_ABS_MAX, (double)largest);
    return -1;
}

int sid_params_check_finite(const sid_params *ps, const char *what) {
    if (!ps->data) return 0;
    for (int i = 0; i < ps->n; i++)
        if (sid_weights_check(sid_p(ps, i), ps->items[i].numel, what, ps->items[i].name)) return -1;
    return 0;
}

// Shapes agree, or differ only by trailing 1x1 kernel dims ([C, C] vs [C, C, 1, 1]).
static int shapes_compatible(const sid_param *p, const sid_st_tensor *t) {
    int a = p->ndim, b = t->ndim;
    while (a > 2 && p->shape[a - 1] == 1) a--;
    while (b > 2 && t->shape[b - 1] == 1) b--;
    if (a != b) return 0;
    for (int i = 0; i < a; i++)
        if (p->shape[i] != t->shape[i]) return 0;
    return 1;
}

static int has_suffix(const char *s, const char *const *suffixes) {
    if (!suffixes) return 0;
    size_t n = strlen(s);
    for (int i = 0; suffixes[i]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(s + n - k, suffixes[i]) == 0) return 1;
    }
    return 0;
}

typedef struct {
    sid_rename_fn fn;
} plain_rename;

static int call_plain(const void *ctx, const char *ours, char *buf, size_t cap) {
    return ((const plain_rename *)ctx)->fn(ours, buf, cap);
}

int sid_params_load(sid_params *ps, const char *path, const char *prefix, sid_rename_fn rename, int strict,
                    const char *const *ignore) {
    plain_rename w = {rename};
    return sid_params_load_mapped(ps, path, prefix, rename ? call_plain : NULL, &w, strict, ignore);
}

int sid_params_load_mapped(sid_params *ps, const char *path, const char *prefix, sid_rename_ctx_fn rename,
                           const void *rename_ctx, int strict, const char *const *ignore) {
    if (!ps->data) sid_die("sid_params_load before sid_params_alloc");
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    const size_t plen = prefix ? strlen(prefix) : 0;
    char *claimed = calloc((size_t)st.n + 1, 1);
    char fname[512], shp[2][96];
    int rc = 0;
    for (int i = 0; i < ps->n && rc == 0; i++) {
        const sid_param *p = &ps->items[i];
        if (rename) {
            char base[448];
            if (rename(rename_ctx, p->name, base, sizeof base)) {
                sid_set_error("%s: no checkpoint name for parameter '%s'", path, p->name);
                rc = -1;
                break;
            }
            snprintf(fname, sizeof fname, "%s%s", prefix ? prefix : "", base);
        } else {
            snprintf(fname, sizeof fname, "%s%s", prefix ? prefix : "", p->name);
        }
        const sid_st_tensor *t = sid_st_find(&st, fname);
        if (!t) {
            sid_set_error("%s: missing tensor '%s'", path, fname);
            rc = -1;
        } else if (!shapes_compatible(p, t)) {
            sid_set_error("%s: tensor '%s' has shape %s, the model config expects %s", path, fname,
                          sid_shape_str(t->ndim, t->shape, shp[0], sizeof shp[0]),
                          sid_shape_str(p->ndim, p->shape, shp[1], sizeof shp[1]));
            rc = -1;
        } else if (sid_st_read_f32(&st, t, sid_p(ps, i)) || sid_weights_check(sid_p(ps, i), p->numel, path, fname)) {
            rc = -1;
        } else {
            claimed[t - st.tensors] = 1;
        }
    }
    if (rc == 0 && strict)
        for (int j = 0; j < st.n; j++) {
            const char *nm = st.tensors[j].name;
            if (claimed[j] || (plen && strncmp(nm, prefix, plen) != 0) || has_suffix(nm, ignore)) continue;
            sid_set_error("%s: unexpected tensor '%s' (not part of the configured model)", path, nm);
            rc = -1;
            break;
        }
    free(claimed);
    sid_st_close(&st);
    return rc;
}

int sid_params_save(const sid_params *ps, const char *path, sid_dtype dtype) {
    sid_st_entry *e = sid_calloc((size_t)ps->n * sizeof *e);
    void *conv = NULL;
    if (dtype != SID_F32) {
        conv = sid_malloc(ps->total * sid_dtype_size(dtype) + 64);
        sid_convert_from_f32(conv, dtype, ps->data, ps->total);
    }
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        e[i].name = p->name;
        e[i].dtype = dtype;
        e[i].ndim = p->ndim;
        memcpy(e[i].shape, p->shape, sizeof p->shape);
        e[i].data = conv ? (const char *)conv + p->offset * sid_dtype_size(dtype) : (const void *)sid_p(ps, i);
    }
    const char *meta[2] = {"format", "pt"};
    int rc = sid_st_write(path, e, ps->n, meta, 1);
    free(conv);
    free(e);
    return rc;
}
