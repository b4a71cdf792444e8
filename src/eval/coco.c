// realpath (POSIX.1-2008 with XSI)
#define _DEFAULT_SOURCE
#include "eval/coco.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/clip_score.h"
#include "eval/fid.h"
#include "eval/image_prep.h"
#include "eval/metrics.h"
#include "io/file.h"
#include "io/image.h"
#include "io/png.h"
#include "io/safetensors.h"
#include "models/inception.h"
#include "pipeline/text2img.h"

enum { FEAT = SID_INCEPTION_FEATURES, FID_SIDE = SID_INCEPTION_SIZE, SQUARE = 256 };
// a folder name (at most PATH_MAX) and a file name in it
#define FILE_IN_DIR (PATH_MAX + 64)
// a network's name in the manifest: its file and the file's size and time
#define NET_ID (FILE_IN_DIR + 600)

// Formats a path into a FILE_IN_DIR buffer; a longer one is no file this program can open.
SID_PRINTF(2, 3) static void pathf(char *out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(out, FILE_IN_DIR, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= FILE_IN_DIR) sid_die("a path longer than %d bytes: %.80s...", PATH_MAX, out);
}

// ---------------------------------------------------------------- captions and pixels

int sid_coco_captions_load(const char *path, char ***lines, int64_t *n) {
    char *text;
    size_t len;
    *lines = NULL, *n = 0;
    if (sid_read_file(path, &text, &len)) return -1;
    int64_t cap = 0;
    for (char *s = text; s && *s;) {
        char *nl = strchr(s, '\n'), *next = nl ? nl + 1 : NULL;
        char *e = nl ? nl : s + strlen(s);
        // Python's str.strip() on ASCII whitespace (the file is UTF-8: no other byte is < 0x80 there)
        while (s < e && isspace((unsigned char)*s)) s++;
        while (e > s && isspace((unsigned char)e[-1])) e--;
        if (e > s) {
            if (*n == cap) *lines = realloc(*lines, (size_t)(cap = cap ? 2 * cap : 1024) * sizeof **lines);
            if (!*lines) sid_die("out of memory reading %s", path);
            char *line = sid_malloc((size_t)(e - s) + 1);
            memcpy(line, s, (size_t)(e - s));
            line[e - s] = 0;
            (*lines)[(*n)++] = line;
        }
        s = next;
    }
    free(text);
    if (!*n) {
        sid_set_error("%s: no captions (every line is empty)", path);
        return -1;
    }
    return 0;
}

static void free_strings(char **s, int64_t n) {
    for (int64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

void sid_coco_captions_free(char **lines, int64_t n) { free_strings(lines, n); }

void sid_coco_quantize(const float *chw, int C, int H, int W, uint8_t *rgb) {
    const size_t plane = (size_t)H * W;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            const float x = chw[(size_t)(C == 1 ? 0 : c) * plane + p] * 127.5f + 128.0f;
            rgb[p * 3 + c] = x >= 255.0f ? 255 : x > 0.0f ? (uint8_t)x : 0;  // NaN fails both tests: 0
        }
}

int sid_coco_prep_image(const uint8_t *rgb, int w, int h, float *fid_chw, int clip_size, const float *mean,
                        const float *std, float *clip_chw) {
    uint8_t *sq = sid_malloc((size_t)SQUARE * SQUARE * 3);
    int rc = sid_eval_square_u8(rgb, w, h, SQUARE, sq) || sid_fid_prep(sq, SQUARE, SQUARE, FID_SIDE, fid_chw);
    if (!rc && clip_size > 0) {
        sid_gigagan_u8_roundtrip(sq, (size_t)SQUARE * SQUARE * 3);
        rc = sid_clip_prep(sq, SQUARE, SQUARE, clip_size, mean, std, clip_chw);
    }
    free(sq);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- the feature networks

typedef struct {
    const sid_backend *be;
    sid_inception *inc;
    sid_clip_scorer *clip;
    int batch, clip_size;
    sid_arena act, meta;
    float *dpix, *dfeat;       // device: one batch of Inception input and features
    float *fid_px, *clip_px;   // host: the same batch prepared
} feature_nets;

static void nets_close(feature_nets *f) {
    if (f->dpix) f->be->free(f->dpix);
    if (f->dfeat) f->be->free(f->dfeat);
    if (f->inc) {
        sid_arena_free(&f->act);
        sid_arena_free(&f->meta);
        sid_inception_free(f->inc);
    }
    if (f->clip) sid_clip_scorer_close(f->clip);
    free(f->fid_px), free(f->clip_px);
    memset(f, 0, sizeof *f);
}

// inception: a safetensors file, or "random" / "random:SEED" (random weights, for tests of the pipeline)
static int nets_open(feature_nets *f, const char *inception, const char *clip, const sid_backend *be, int batch) {
    memset(f, 0, sizeof *f);
    f->be = sid_backend_or_cpu(be), f->batch = batch;
    if (!inception) {
        sid_set_error("no FID Inception weights: pass --inception FILE (pt_inception-2015-12-05 converted with "
                      "tools/reference/convert_fid_inception.py, docs/coco.md)");
        return -1;
    }
    if (strncmp(inception, "random", 6) == 0 && (inception[6] == 0 || inception[6] == ':'))
        f->inc = sid_inception_random(inception[6] ? strtoull(inception + 7, NULL, 10) : 0, f->be);
    else if (!sid_file_exists(inception)) {
        sid_set_error("%s: no such file: the FID Inception weights (pt_inception-2015-12-05-6726825d.pth from "
                      "pytorch-fid's release) converted with tools/reference/convert_fid_inception.py (docs/coco.md)",
                      inception);
        return -1;
    } else
        f->inc = sid_inception_load(inception, f->be);
    if (!f->inc) return -1;
    sid_backend_arena_init(&f->act, f->be, "inception activations",
                           (size_t)batch * sid_inception_act_bytes(FID_SIDE) + (1u << 20));
    sid_arena_init(&f->meta, "inception meta", 1u << 16);
    const size_t np = (size_t)batch * 3 * FID_SIDE * FID_SIDE;
    f->dpix = f->be->alloc(np * sizeof(float));
    f->dfeat = f->be->alloc((size_t)batch * FEAT * sizeof(float));
    f->fid_px = sid_malloc(np * sizeof(float));
    if (clip) {
        if (!(f->clip = sid_clip_scorer_open(clip, f->be, batch))) {
            nets_close(f);
            return -1;
        }
        f->clip_size = sid_clip_scorer_image_size(f->clip);
        f->clip_px = sid_malloc((size_t)batch * 3 * f->clip_size * f->clip_size * sizeof(float));
    }
    return 0;
}

// k <= batch images -> feat [k, FEAT] and, when cos is given, the CLIP cosines [k] against captions.
static int nets_run(feature_nets *f, uint8_t *const *rgb, const int *w, const int *h, const char *const *captions,
                    int k, float *feat, float *cos) {
    const size_t fid_one = (size_t)3 * FID_SIDE * FID_SIDE, clip_one = (size_t)3 * f->clip_size * f->clip_size;
    const int clip = f->clip && cos;
    for (int j = 0; j < k; j++)
        if (sid_coco_prep_image(rgb[j], w[j], h[j], f->fid_px + j * fid_one, clip ? f->clip_size : 0,
                                clip ? sid_clip_scorer_mean(f->clip) : NULL, clip ? sid_clip_scorer_std(f->clip) : NULL,
                                clip ? f->clip_px + j * clip_one : NULL))
            return -1;
    f->be->upload(f->dpix, f->fid_px, (size_t)k * fid_one * sizeof(float));
    const size_t mark = sid_arena_mark(&f->act), mmark = sid_arena_mark(&f->meta);
    const sid_ctx c = {.ps = NULL, .act = &f->act, .be = f->be, .meta = &f->meta};
    const int rc = sid_inception_forward(&c, f->inc, f->dfeat, f->dpix, k, FID_SIDE);
    sid_arena_reset(&f->act, mark), sid_arena_reset(&f->meta, mmark);
    if (rc) return -1;
    f->be->download(feat, f->dfeat, (size_t)k * FEAT * sizeof(float));
    for (size_t i = 0; i < (size_t)k * FEAT; i++)
        if (!isfinite(feat[i])) {
            sid_set_error("the Inception features of an image are not finite (NaN or infinite weights or pixels)");
            return -1;
        }
    if (clip && sid_clip_scorer_cosines(f->clip, f->clip_px, captions, k, cos)) return -1;
    return 0;
}

// ---------------------------------------------------------------- feature shards

// A shard's rows: 0 with *k = 0 when the file does not exist; -1 when it exists but is not one
// this run can use (it was written atomically, so that is another program's file or damage).
static int shard_load(const char *path, int want_clip, int64_t cap, float *feat, float *cos, int64_t *k) {
    *k = 0;
    if (!sid_file_exists(path)) return 0;
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    const sid_st_tensor *fi = sid_st_find(&st, "inception"), *cc = sid_st_find(&st, "clip_cos");
    int rc = -1;
    if (!fi || fi->ndim != 2 || fi->shape[1] != FEAT || fi->shape[0] < 1 || fi->shape[0] > SID_COCO_SHARD)
        sid_set_error("%s: not a feature shard (want \"inception\" [k <= %d, %d]); remove it", path, SID_COCO_SHARD,
                      FEAT);
    else if (want_clip && (!cc || cc->ndim != 1 || cc->shape[0] != fi->shape[0]))
        sid_set_error("%s: the shard has no \"clip_cos\" [%lld] of its images; remove it", path,
                      (long long)fi->shape[0]);
    else {
        const int64_t rows = fi->shape[0];
        float *f = sid_malloc((size_t)rows * FEAT * sizeof(float)), *c = want_clip ? sid_malloc(rows * sizeof(float)) : NULL;
        if (!sid_st_read_f32(&st, fi, f) && (!want_clip || !sid_st_read_f32(&st, cc, c))) {
            *k = rows < cap ? rows : cap;
            memcpy(feat, f, (size_t)*k * FEAT * sizeof(float));
            if (want_clip) memcpy(cos, c, (size_t)*k * sizeof(float));
            rc = 0;
        }
        free(f), free(c);
    }
    sid_st_close(&st);
    return rc;
}

static int shard_save(const char *path, const float *feat, const float *cos, int64_t k) {
    sid_st_entry e[2] = {{"inception", SID_F32, 2, {k, FEAT}, feat}, {"clip_cos", SID_F32, 1, {k}, cos}};
    const char *meta[] = {"format", "sid-coco-shard-1"};
    return sid_st_write(path, e, cos ? 2 : 1, meta, 1);
}

// Where the images of a feature pass come from: get() fills rgb / w / h of images [i, i + k),
// each rgb[j] malloc'd (the pass frees them).
typedef struct image_source {
    int (*get)(struct image_source *s, int64_t i, int k, uint8_t **rgb, int *w, int *h);
    const char *const *captions;  // caption of image i, or NULL (no CLIP)
} image_source;

// Features of images [0, n): shard by shard from shard_dir, computing the rows a shard lacks
// (shard_dir NULL: all computed, nothing kept).
static int feature_pass(feature_nets *f, image_source *src, const char *shard_dir, int64_t n, const char *label,
                        float *feat, float *cos, int64_t *found, double *seconds) {
    const int want_clip = f->clip != NULL && cos != NULL;
    uint8_t **rgb = sid_calloc((size_t)f->batch * sizeof *rgb);
    int *w = sid_malloc((size_t)f->batch * sizeof(int)), *h = sid_malloc((size_t)f->batch * sizeof(int));
    sid_progress bar;
    sid_progress_start(&bar, label, n);
    int rc = 0;
    *found = 0;
    for (int64_t a = 0; a < n && !rc; a += SID_COCO_SHARD) {
        const int64_t b = a + SID_COCO_SHARD < n ? a + SID_COCO_SHARD : n;
        char path[FILE_IN_DIR];
        int64_t k = 0;
        if (shard_dir) {
            pathf(path, "%s/%06" PRId64 ".safetensors", shard_dir, a);
            if ((rc = shard_load(path, want_clip, b - a, feat + a * FEAT, want_clip ? cos + a : NULL, &k))) break;
        }
        *found += k;
        if (a + k == b) {
            sid_progress_update(&bar, b);
            continue;
        }
        for (int64_t i = a + k; i < b && !rc; i += f->batch) {
            const int m = (int)(b - i < f->batch ? b - i : f->batch);
            rc = src->get(src, i, m, rgb, w, h);
            const double t0 = sid_now();
            if (!rc)
                rc = nets_run(f, rgb, w, h, src->captions ? src->captions + i : NULL, m, feat + i * FEAT,
                              want_clip ? cos + i : NULL);
            *seconds += sid_now() - t0;
            for (int j = 0; j < m; j++) free(rgb[j]), rgb[j] = NULL;  // also those a failed get had read
            sid_progress_update(&bar, i + m);
        }
        if (!rc && shard_dir) rc = shard_save(path, feat + a * FEAT, want_clip ? cos + a : NULL, b - a);
    }
    sid_progress_finish(&bar);
    free(rgb), free(w), free(h);
    return rc;
}

// ---------------------------------------------------------------- the work folder's manifest

static void stamp_file(char *buf, size_t cap, const char *dir, const char *name) {
    char path[FILE_IN_DIR];
    struct stat sb;
    pathf(path, "%s/%s", dir, name);
    if (stat(path, &sb) == 0)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s:%lld:%lld", *buf ? " " : "", name, (long long)sb.st_size,
                 (long long)sb.st_mtime);
}

// What a model folder's output depends on, cheaply: its place and its weight files' sizes and times
// (hashing an SD1.5 UNet would take longer than a smoke run).
static void model_stamp(const char *dir, char *buf, size_t cap) {
    static const char *const files[] = {"sid_generator.json", "model_index.json", "unet/config.json",
                                        "unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                                        "vae/diffusion_pytorch_model.safetensors"};
    *buf = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) stamp_file(buf, cap, dir, files[i]);
}

// The absolute name of path (out: FILE_IN_DIR bytes), or path itself when it does not resolve.
static void where(const char *path, char *out) {
    char r[PATH_MAX];
    pathf(out, "%s", realpath(path, r) ? r : path);
}

static uint64_t fnv1a64(const void *p, size_t n, uint64_t h) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void network_id(const char *net, char *out, size_t cap) {
    if (!net) {
        snprintf(out, cap, "none");
        return;
    }
    if (strncmp(net, "random", 6) == 0) {
        snprintf(out, cap, "%s", net);
        return;
    }
    char w[FILE_IN_DIR], st[512];
    where(net, w);
    struct stat sb;
    if (stat(net, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        *st = 0;
        stamp_file(st, sizeof st, net, "model.safetensors");
        stamp_file(st, sizeof st, net, "config.json");
    } else
        snprintf(st, sizeof st, "%lld:%lld", stat(net, &sb) == 0 ? (long long)sb.st_size : -1LL,
                 stat(net, &sb) == 0 ? (long long)sb.st_mtime : -1LL);
    snprintf(out, cap, "%s %s", w, st);
}

// Refuses a folder whose manifest names other inputs; with `write`, writes the manifest when the
// folder has none (only once every input has opened: a run that fails on a bad flag or a missing
// file must not claim the folder for its inputs).
static int manifest_check(const char *work, const char *const *kv, int n_kv, int write) {
    char path[FILE_IN_DIR];
    pathf(path, "%s/manifest.json", work);
    if (!sid_file_exists(path)) {
        if (!write) return 0;
        cJSON *o = cJSON_CreateObject();
        o = o ? o : (sid_die("out of memory"), NULL);
        for (int i = 0; i < n_kv; i++) cJSON_AddStringToObject(o, kv[2 * i], kv[2 * i + 1]);
        char *text = cJSON_Print(o), tmp[PATH_MAX + 32];
        cJSON_Delete(o);
        FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
        int rc = -1;
        if (f) {
            fputs(text, f), fputc('\n', f);
            rc = sid_atomic_commit(f, tmp, path);
        }
        free(text);
        return rc;
    }
    char *text;
    size_t len;
    if (sid_read_file(path, &text, &len)) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        sid_set_error("%s: not a JSON object; remove it or use another --work folder", path);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n_kv && !rc; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, kv[2 * i]);
        if (!cJSON_IsString(v) || strcmp(v->valuestring, kv[2 * i + 1]) != 0) {
            sid_set_error("%s: this folder holds the work of another evaluation (%s was '%s', now '%s'); use "
                          "another --work folder or remove it",
                          path, kv[2 * i], cJSON_IsString(v) ? v->valuestring : "(absent)", kv[2 * i + 1]);
            rc = -1;
        }
    }
    cJSON_Delete(o);
    return rc;
}

// ---------------------------------------------------------------- generated images

typedef struct {
    image_source base;
    sid_text2img *p;
    int is_gen, t_init, gsteps, steps, C, H, W;
    float cfg;
    char dir[FILE_IN_DIR];
    float *out;  // [batch, C, H, W]
    int64_t generated, reused;
    double seconds;
} generated_images;

static int generated_get(image_source *s, int64_t i, int k, uint8_t **rgb, int *w, int *h) {
    generated_images *g = (generated_images *)s;
    const char *prompts[k];
    uint64_t seeds[k];
    int todo[k], nt = 0;
    char path[FILE_IN_DIR];
    for (int j = 0; j < k; j++) {
        pathf(path, "%s/%06" PRId64 ".png", g->dir, i + j);
        rgb[j] = NULL;
        if (sid_file_exists(path)) {
            if (sid_image_read_rgb(path, &rgb[j], &w[j], &h[j])) return -1;
            if (w[j] != g->W || h[j] != g->H) {
                sid_set_error("%s: %dx%d, the model makes %dx%d images; remove it", path, w[j], h[j], g->W, g->H);
                return -1;
            }
            g->reused++;
        } else
            todo[nt] = j, prompts[nt] = g->base.captions[i + j], seeds[nt] = (uint64_t)(i + j), nt++;
    }
    if (!nt) return 0;
    const double t0 = sid_now();
    const size_t one = (size_t)g->C * g->H * g->W;
    int rc = 0;
    if (g->is_gen)  // image i: caption i, noise from seed i alone (the protocol's --seeds 0-N)
        rc = sid_text2img_generate_seeded(g->p, prompts, nt, seeds, g->t_init, g->gsteps, g->out);
    else
        for (int j = 0; j < nt && !rc; j++)
            rc = sid_text2img_sample(g->p, &prompts[j], 1, seeds[j], g->steps, g->cfg, 1, g->out + j * one);
    if (rc) return -1;
    for (int t = 0; t < nt; t++) {
        const int j = todo[t];
        rgb[j] = sid_malloc((size_t)g->H * g->W * 3);
        w[j] = g->W, h[j] = g->H;
        sid_coco_quantize(g->out + t * one, g->C, g->H, g->W, rgb[j]);
        pathf(path, "%s/%06" PRId64 ".png", g->dir, i + j);
        if (sid_png_write(path, rgb[j], g->W, g->H, 3)) return -1;
    }
    g->generated += nt;
    g->seconds += sid_now() - t0;
    return 0;
}

// ---------------------------------------------------------------- reference images

typedef struct {
    image_source base;
    const char *dir;
    char **names;
} folder_images;

static int folder_get(image_source *s, int64_t i, int k, uint8_t **rgb, int *w, int *h) {
    folder_images *f = (folder_images *)s;
    char path[FILE_IN_DIR];
    for (int j = 0; j < k; j++) {
        pathf(path, "%s/%s", f->dir, f->names[i + j]);
        if (sid_image_read_rgb(path, &rgb[j], &w[j], &h[j])) return -1;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// The image files of a folder, sorted by name (byte order).
static int list_images(const char *dir, char ***names, int64_t *n) {
    DIR *d = opendir(dir);
    *names = NULL, *n = 0;
    if (!d) {
        sid_set_error("%s: cannot open the folder of reference images", dir);
        return -1;
    }
    int64_t cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !sid_image_name_ok(e->d_name)) continue;
        if (*n == cap && !(*names = realloc(*names, (size_t)(cap = cap ? 2 * cap : 4096) * sizeof **names)))
            sid_die("out of memory listing %s", dir);
        (*names)[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n < 2) {
        sid_set_error("%s: %lld image file%s (.png, .jpg, .jpeg), at least 2 needed for reference statistics", dir,
                      (long long)*n, *n == 1 ? "" : "s");
        free_strings(*names, *n);
        return -1;
    }
    qsort(*names, (size_t)*n, sizeof **names, cmp_names);
    return 0;
}

static int ref_stats_with(feature_nets *f, const char *images_dir, const char *inception, const char *cache_dir,
                          int64_t kid_max, sid_fid_stats *out) {
    folder_images src = {.base = {.get = folder_get}, .dir = images_dir};
    int64_t n;
    if (list_images(images_dir, &src.names, &n)) return -1;
    char shards[FILE_IN_DIR], dir[FILE_IN_DIR], inc[NET_ID], count[32];
    where(images_dir, dir);
    network_id(inception, inc, sizeof inc);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < n; i++) h = fnv1a64(src.names[i], strlen(src.names[i]) + 1, h);
    char names_hash[32];
    snprintf(names_hash, sizeof names_hash, "%016" PRIx64, h);
    snprintf(count, sizeof count, "%" PRId64, n);
    int rc = -1;
    float *feat = sid_malloc((size_t)n * FEAT * sizeof(float));
    if (cache_dir) {
        pathf(shards, "%s/ref_features", cache_dir);
        const char *kv[] = {"reference_images", dir, "reference_files", count, "reference_names_fnv1a", names_hash,
                            "inception", inc};
        if (sid_mkdir_p(shards) || sid_remove_partial_files(shards, 0) < 0 || manifest_check(shards, kv, 4, 1))
            goto done;
    }
    int64_t found;
    double secs = 0;
    if (feature_pass(f, &src.base, cache_dir ? shards : NULL, n, "reference features", feat, NULL, &found, &secs))
        goto done;
    if (found) fprintf(stderr, "reference statistics: found the features of %lld of %lld images in %s\n", (long long)found,
                       (long long)n, shards);
    rc = sid_fid_stats_from_features(out, feat, n, FEAT, kid_max, "inception-2015-12-05 pool3, clean-fid resize", dir);
done:
    free(feat);
    free_strings(src.names, n);
    return rc;
}

int sid_coco_ref_stats(const char *images_dir, const char *inception, const char *cache_dir, int64_t kid_max,
                       const sid_backend *be, int batch, sid_fid_stats *out) {
    feature_nets f;
    if (nets_open(&f, inception, NULL, be, batch)) return -1;
    const int rc = ref_stats_with(&f, images_dir, inception, cache_dir, kid_max, out);
    nets_close(&f);
    return rc;
}

// ---------------------------------------------------------------- the evaluation

static int reference_stats(const sid_coco_opts *o, feature_nets *f, sid_fid_stats *ref) {
    if (o->ref_stats) return sid_fid_stats_load(ref, o->ref_stats, FEAT);
    if (!o->coco_val) {
        sid_set_error("eval-coco: give --coco-val DIR (the COCO val2014 images) or --ref-stats FILE");
        return -1;
    }
    char path[FILE_IN_DIR];
    pathf(path, "%s/ref_stats.safetensors", o->work);
    char manifest[FILE_IN_DIR];
    pathf(manifest, "%s/manifest.json", o->work);
    // the manifest (checked already) ties a cached file to the same folder and network; without one
    // the statistics are made again from the feature shards, which carry their own manifest
    if (sid_file_exists(path) && sid_file_exists(manifest)) {
        fprintf(stderr, "eval-coco: reference statistics from %s\n", path);
        return sid_fid_stats_load(ref, path, FEAT);
    }
    if (ref_stats_with(f, o->coco_val, o->inception, o->work, o->kid_ref, ref)) return -1;
    return sid_fid_stats_save(ref, path);
}

int sid_coco_eval(const sid_coco_opts *o, sid_coco_result *r) {
    memset(r, 0, sizeof *r);
    if (o->n < 2 || o->batch < 1) {
        sid_set_error("eval-coco: need n >= 2 images and batch >= 1 (n = %lld, batch = %d)", (long long)o->n, o->batch);
        return -1;
    }
    char **caps = NULL;
    int64_t ncap = 0;
    if (sid_coco_captions_load(o->captions, &caps, &ncap)) return -1;
    if (ncap < o->n) {
        sid_set_error("%s: %lld captions, fewer than the %lld images asked for", o->captions, (long long)ncap,
                      (long long)o->n);
        sid_coco_captions_free(caps, ncap);
        return -1;
    }
    int t_init = 0, gsteps = 0;
    const int is_gen = sid_text2img_is_generator(o->model, &t_init, &gsteps);
    if (is_gen < 0) {
        sid_coco_captions_free(caps, ncap);
        return -1;
    }
    // the manifest: everything the images and features depend on
    char model[FILE_IN_DIR], stamp[1024], capfile[FILE_IN_DIR], caphash[32], inc[NET_ID], clip[NET_ID],
        sampler[96], ref[NET_ID];
    where(o->model, model);
    model_stamp(o->model, stamp, sizeof stamp);
    where(o->captions, capfile);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < ncap; i++) h = fnv1a64(caps[i], strlen(caps[i]) + 1, h);
    snprintf(caphash, sizeof caphash, "%016" PRIx64, h);
    network_id(o->inception, inc, sizeof inc);
    network_id(o->clip, clip, sizeof clip);
    if (is_gen)
        snprintf(sampler, sizeof sampler, "generator t_init=%d steps=%d", t_init, gsteps);
    else
        snprintf(sampler, sizeof sampler, "ddim steps=%d cfg=%g", o->steps, o->cfg);
    if (o->ref_stats)
        network_id(o->ref_stats, ref, sizeof ref);
    else
        where(o->coco_val ? o->coco_val : "", ref);  // its files are tied in ref_features/manifest.json
    const char *kv[] = {"format", "sid-coco-work-1", "model", model, "model_files", stamp, "sampler", sampler,
                        "captions_fnv1a", caphash, "inception", inc, "clip", clip, "reference", ref};
    char images[FILE_IN_DIR], shards[FILE_IN_DIR];
    pathf(images, "%s/images", o->work);
    pathf(shards, "%s/shards", o->work);
    int rc = -1;
    feature_nets f = {0};
    sid_text2img p = {0};
    int p_open = 0;
    sid_fid_stats refs = {0};
    float *feat = NULL, *cos = NULL;
    const int n_kv = (int)(sizeof kv / sizeof kv[0] / 2);
    if (sid_mkdir_p(images) || sid_mkdir_p(shards) || sid_remove_partial_files(o->work, 2) < 0 ||
        manifest_check(o->work, kv, n_kv, 0))
        goto done;
    if (sid_text2img_open_on(&p, o->model, o->be)) goto done;
    p_open = 1;
    if (nets_open(&f, o->inception, o->clip, o->be, o->batch) || reference_stats(o, &f, &refs) ||
        manifest_check(o->work, kv, n_kv, 1))
        goto done;
    generated_images gen = {.base = {.get = generated_get, .captions = (const char *const *)caps},
                            .p = &p, .is_gen = is_gen, .t_init = t_init, .gsteps = gsteps, .steps = o->steps,
                            .cfg = o->cfg};
    pathf(gen.dir, "%s", images);
    sid_text2img_image_shape(&p, &gen.C, &gen.H, &gen.W);
    if (gen.C != 1 && gen.C != 3) {
        sid_set_error("%s: the model makes %d-channel images; the protocol needs RGB (or grey)", o->model, gen.C);
        goto done;
    }
    gen.out = sid_malloc((size_t)o->batch * gen.C * gen.H * gen.W * sizeof(float));
    feat = sid_malloc((size_t)o->n * FEAT * sizeof(float));
    cos = o->clip ? sid_malloc((size_t)o->n * sizeof(float)) : NULL;
    int64_t found = 0;
    const int pass = feature_pass(&f, &gen.base, shards, o->n, "eval-coco", feat, cos, &found, &r->feature_seconds);
    free(gen.out);
    if (pass) goto done;
    r->generated = gen.generated, r->reused = gen.reused, r->gen_seconds = gen.seconds;
    if (found || gen.reused)
        fprintf(stderr, "eval-coco: found the features of %lld images and %lld more images in %s\n", (long long)found,
                (long long)gen.reused, o->work);
    if ((rc = sid_frechet_distance_rows(feat, o->n, FEAT, &refs.g, &r->fid))) goto done;
    r->n = o->n, r->ref_n = refs.g.n, r->kid_ref_n = refs.kid_n;
    if (refs.kid_n >= 3 && o->n >= 3) {
        if ((rc = sid_kid(feat, o->n, refs.kid, refs.kid_n, FEAT, &r->kid, &r->kid_se))) goto done;
        r->has_kid = 1;
    }
    if (cos) {
        double s = 0;
        for (int64_t i = 0; i < o->n; i++) s += cos[i];
        r->clip_score = s / (double)o->n, r->has_clip = 1;
    }
    rc = 0;
done:
    if (p_open) {
        if (p.truncated)
            fprintf(stderr, "eval-coco: warning: %d captions were longer than %d tokens and were truncated\n",
                    p.truncated, p.max_len);
        sid_text2img_close(&p);
    }
    nets_close(&f);
    sid_fid_stats_free(&refs);
    free(feat), free(cos);
    sid_coco_captions_free(caps, ncap);
    return rc;
}
