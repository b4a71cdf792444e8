#include "eval/fid_stats.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"

static const char FORMAT[] = "sid-fid-stats-1";

int64_t sid_fid_stats_kid_row(int64_t i, int64_t n, int64_t m) { return m > 0 ? (int64_t)((double)i * n / m) : 0; }

int sid_fid_stats_from_features(sid_fid_stats *s, const float *feat, int64_t n, int d, int64_t kid_max,
                                const char *features, const char *source) {
    memset(s, 0, sizeof *s);
    if (sid_gauss_fit(&s->g, feat, n, d)) return -1;
    s->kid_n = kid_max < n ? (kid_max > 0 ? kid_max : 0) : n;
    if (s->kid_n) {
        s->kid = sid_malloc((size_t)s->kid_n * d * sizeof(float));
        for (int64_t i = 0; i < s->kid_n; i++)
            memcpy(s->kid + i * d, feat + sid_fid_stats_kid_row(i, n, s->kid_n) * d, (size_t)d * sizeof(float));
    }
    snprintf(s->features, sizeof s->features, "%s", features ? features : "");
    snprintf(s->source, sizeof s->source, "%s", source ? source : "");
    return 0;
}

int sid_fid_stats_save(const sid_fid_stats *s, const char *path) {
    const int64_t d = s->g.d;
    sid_st_entry e[3] = {{"mu", SID_F64, 1, {d}, s->g.mu},
                         {"sigma", SID_F64, 2, {d, d}, s->g.cov},
                         {"kid_features", SID_F32, 2, {s->kid_n, d}, s->kid}};
    char n[32];
    snprintf(n, sizeof n, "%lld", (long long)s->g.n);
    const char *meta[] = {"format", FORMAT, "n", n, "features", s->features, "source", s->source};
    return sid_st_write(path, e, 3, meta, 4);
}

static const char *meta_str(const sid_safetensors *st, const char *key) {
    const cJSON *v = st->metadata ? cJSON_GetObjectItemCaseSensitive(st->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int all_finite(const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int sid_fid_stats_load(sid_fid_stats *s, const char *path, int want_d) {
    memset(s, 0, sizeof *s);
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    int rc = -1;
    const char *fmt = meta_str(&st, "format"), *n = meta_str(&st, "n");
    const sid_st_tensor *mu = sid_st_find(&st, "mu"), *sg = sid_st_find(&st, "sigma"), *kid = sid_st_find(&st, "kid_features");
    if (!fmt || strcmp(fmt, FORMAT) != 0 || !n || !mu || !sg) {
        sid_set_error("%s: not a reference statistics file (want metadata format=%s, n, and tensors mu, sigma; "
                      "make one with sid fid-ref-stats)", path, FORMAT);
        goto done;
    }
    const int64_t d = mu->ndim == 1 ? mu->shape[0] : -1;
    if (d < 1 || sg->ndim != 2 || sg->shape[0] != d || sg->shape[1] != d ||
        (kid && (kid->ndim != 2 || kid->shape[1] != d))) {
        sid_set_error("%s: mu, sigma and kid_features do not have the shapes [d], [d, d], [m, d]", path);
        goto done;
    }
    if (want_d && d != want_d) {
        sid_set_error("%s: statistics of %lld-d features, this evaluation makes %d-d ones", path, (long long)d, want_d);
        goto done;
    }
    s->g.d = (int)d;
    s->g.n = strtoll(n, NULL, 10);
    if (s->g.n < 2) {
        sid_set_error("%s: metadata n = '%s', want the number of images (>= 2)", path, n);
        goto done;
    }
    s->g.mu = sid_malloc((size_t)d * sizeof(double));
    s->g.cov = sid_malloc((size_t)d * d * sizeof(double));
    if (sid_st_read_f64(&st, mu, s->g.mu) || sid_st_read_f64(&st, sg, s->g.cov)) goto done;
    if (!all_finite(s->g.mu, (size_t)d) || !all_finite(s->g.cov, (size_t)d * d)) {
        sid_set_error("%s: mu or sigma has a NaN or an infinity", path);
        goto done;
    }
    if (kid && kid->shape[0] > 0) {
        s->kid_n = kid->shape[0];
        s->kid = sid_malloc((size_t)s->kid_n * d * sizeof(float));
        if (sid_st_read_f32(&st, kid, s->kid)) goto done;
        for (size_t i = 0; i < (size_t)s->kid_n * d; i++)
            if (!isfinite(s->kid[i])) {
                sid_set_error("%s: kid_features has a NaN or an infinity", path);
                goto done;
            }
    }
    snprintf(s->features, sizeof s->features, "%s", meta_str(&st, "features") ? meta_str(&st, "features") : "");
    snprintf(s->source, sizeof s->source, "%s", meta_str(&st, "source") ? meta_str(&st, "source") : "");
    rc = 0;
done:
    sid_st_close(&st);
    if (rc) sid_fid_stats_free(s);
    return rc;
}

void sid_fid_stats_free(sid_fid_stats *s) {
    sid_gauss_free(&s->g);
    free(s->kid);
    memset(s, 0, sizeof *s);
}
