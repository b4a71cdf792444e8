#include "models/init.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static size_t fan_in(const sid_param *p) {
    size_t f = 1;
    for (int i = 1; i < p->ndim; i++) f *= (size_t)p->shape[i];
    return f;
}

static void fill_uniform(float *x, size_t n, float bound, sid_rng *rng) {
    sid_rng_uniform(rng, x, n);
    for (size_t i = 0; i < n; i++) x[i] = (2 * x[i] - 1) * bound;
}

void sid_params_init_default(sid_params *ps, sid_rng *rng) {
    for (int i = 0; i < ps->n; i++) {
        const sid_param *p = &ps->items[i];
        float *x = sid_p(ps, i);
        if (strstr(p->name, "position_embedding")) {
            sid_rng_normal(rng, x, p->numel);
            for (size_t k = 0; k < p->numel; k++) x[k] *= 0.01f;
        } else if (strstr(p->name, "embedding.weight")) {
            sid_rng_normal(rng, x, p->numel);
            for (size_t k = 0; k < p->numel; k++) x[k] *= 0.02f;
        } else if (ends_with(p->name, ".weight") && p->ndim >= 2) {
            fill_uniform(x, p->numel, 1.0f / sqrtf((float)fan_in(p)), rng);
        } else if (ends_with(p->name, ".weight")) {
            for (size_t k = 0; k < p->numel; k++) x[k] = 1.0f;  // a norm's scale
        } else if (ends_with(p->name, ".bias")) {
            // the bias of a Linear/Conv takes its weight's fan-in; a norm's shift is 0
            char wname[320];
            snprintf(wname, sizeof wname, "%.*s.weight", (int)(strlen(p->name) - 5), p->name);
            const int w = sid_params_find(ps, wname);
            if (w >= 0 && ps->items[w].ndim >= 2) fill_uniform(x, p->numel, 1.0f / sqrtf((float)fan_in(&ps->items[w])), rng);
            else memset(x, 0, p->numel * sizeof(float));
        } else {
            memset(x, 0, p->numel * sizeof(float));
        }
    }
}
