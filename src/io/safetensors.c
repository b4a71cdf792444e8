#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/file.h"

// The reference reader's limit (tensor.rs MAX_HEADER_SIZE): a larger header is
// corruption or an attack, and we copy the header into memory to parse it.
#define ST_MAX_HEADER 100000000ull
// Offsets and dims arrive as JSON doubles; above 2^53 they would be silently rounded.
#define ST_MAX_INT 9007199254740992.0

static char *copy_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = sid_malloc(n);
    memcpy(c, s, n);
    return c;
}

// a * b into *out, or -1 when it does not fit in size_t.
static int mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return -1;
    *out = a * b;
    return 0;
}

static int shape_nbytes(int ndim, const int64_t *shape, sid_dtype dt, size_t *out) {
    size_t n = sid_dtype_size(dt);
    for (int i = 0; i < ndim; i++)
        if (mul_size(n, (size_t)shape[i], &n) != 0) return -1;
    *out = n;
    return 0;
}

// ---------------------------------------------------------------- reading

// Dtypes the format defines but sid has no use for: named in the message so a
// user sees "unsupported" rather than "unknown" for a legitimate file.
static const char *const other_dtypes[] = {"BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "U32", "U64"};

// 0: a non-negative integer below 2^53; -1: not an integer; -2: negative; -3: too large.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (d != floor(d)) return -1;
    if (d < 0) return -2;
    if (d >= ST_MAX_INT) return -3;
    *out = (uint64_t)d;
    return 0;
}

static int parse_dtype(const char *path, const char *name, const cJSON *v, sid_dtype *out) {
    if (!v) {
        sid_set_error("%s: tensor '%s' has no dtype", path, name);
        return -1;
    }
    if (!cJSON_IsString(v)) {
        sid_set_error("%s: tensor '%s' dtype is not a string", path, name);
        return -1;
    }
    if (sid_dtype_from_name(v->valuestring, out) == 0) return 0;
    for (size_t i = 0; i < sizeof other_dtypes / sizeof other_dtypes[0]; i++)
        if (strcmp(v->valuestring, other_dtypes[i]) == 0) {
            sid_set_error("%s: tensor '%s' has dtype %s, which sid does not support (F32, F16, BF16, I64, I32, F64)",
                          path, name, v->valuestring);
            return -1;
        }
    sid_set_error("%s: tensor '%s' has unknown dtype '%.32s'", path, name, v->valuestring);
    return -1;
}

static int parse_shape(const char *path, const char *name, const cJSON *v, sid_st_tensor *t) {
    if (!v) {
        sid_set_error("%s: tensor '%s' has no shape", path, name);
        return -1;
    }
    if (!cJSON_IsArray(v)) {
        sid_set_error("%s: tensor '%s' shape is not an array", path, name);
        return -1;
    }
    int nd = cJSON_GetArraySize(v);
    if (nd > SID_MAX_DIMS) {
        sid_set_error("%s: tensor '%s' has %d dimensions, at most %d supported", path, name, nd, SID_MAX_DIMS);
        return -1;
    }
    t->ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, v) {
        uint64_t u = 0;
        int rc = json_uint(d, &u);
        if (rc == -2) {
            sid_set_error("%s: tensor '%s' has negative dimension %g", path, name, d->valuedouble);
            return -1;
        }
        if (rc != 0) {
            sid_set_error("%s: tensor '%s' shape entry %d is not a valid size", path, name, t->ndim);
            return -1;
        }
        t->shape[t->ndim++] = (int64_t)u;
    }
    return 0;
}

static int parse_offsets(const char *path, const char *name, const cJSON *v, size_t buf_len, sid_st_tensor *t) {
    if (!v) {
        sid_set_error("%s: tensor '%s' has no data_offsets", path, name);
        return -1;
    }
    uint64_t be[2] = {0, 0};
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || json_uint(cJSON_GetArrayItem(v, 0), &be[0]) != 0 ||
        json_uint(cJSON_GetArrayItem(v, 1), &be[1]) != 0) {
        sid_set_error("%s: tensor '%s' data_offsets is not a pair of non-negative integers", path, name);
        return -1;
    }
    if (be[0] > be[1]) {
        sid_set_error("%s: tensor '%s' data_offsets [%llu, %llu] begin after end", path, name,
                      (unsigned long long)be[0], (unsigned long long)be[1]);
        return -1;
    }
    if (be[1] > buf_len) {
        sid_set_error("%s: tensor '%s' data_offsets [%llu, %llu] past the end of the %zu-byte data buffer", path,
                      name, (unsigned long long)be[0], (unsigned long long)be[1], buf_len);
        return -1;
    }
    t->begin = (size_t)be[0];
    t->end = (size_t)be[1];
    return 0;
}

static int parse_tensor(const char *path, const cJSON *item, size_t buf_len, sid_st_tensor *t) {
    const char *name = item->string;
    t->name = copy_str(name);
    if (!cJSON_IsObject(item)) {
        sid_set_error("%s: tensor '%s' entry is not an object", path, name);
        return -1;
    }
    if (parse_dtype(path, name, cJSON_GetObjectItemCaseSensitive(item, "dtype"), &t->dtype) != 0 ||
        parse_shape(path, name, cJSON_GetObjectItemCaseSensitive(item, "shape"), t) != 0 ||
        parse_offsets(path, name, cJSON_GetObjectItemCaseSensitive(item, "data_offsets"), buf_len, t) != 0)
        return -1;
    size_t need;
    char sh[160];
    if (shape_nbytes(t->ndim, t->shape, t->dtype, &need) != 0) {
        sid_set_error("%s: tensor '%s' shape %s is too large", path, name,
                      sid_shape_str(t->ndim, t->shape, sh, sizeof sh));
        return -1;
    }
    if (need != t->end - t->begin) {
        sid_set_error("%s: tensor '%s' shape %s of %s needs %zu bytes but data_offsets [%zu, %zu] hold %zu", path,
                      name, sid_shape_str(t->ndim, t->shape, sh, sizeof sh), sid_dtype_name(t->dtype), need,
                      t->begin, t->end, t->end - t->begin);
        return -1;
    }
    return 0;
}

static int parse_metadata(const char *path, const cJSON *item) {
    if (!cJSON_IsObject(item)) {
        sid_set_error("%s: __metadata__ is not an object", path);
        return -1;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, item) {
        if (!cJSON_IsString(kv)) {
            sid_set_error("%s: __metadata__ value of '%s' is not a string", path, kv->string);
            return -1;
        }
    }
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const sid_st_tensor *)a)->name, ((const sid_st_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const sid_st_tensor *x = *(const sid_st_tensor *const *)a, *y = *(const sid_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);  // a total order keeps the error message deterministic
}

// Like the reference reader (tensor.rs validate), the tensors must tile the
// data buffer exactly: no overlaps (two tensors aliasing the same bytes), no
// gaps and no trailing bytes (either would hide data no tensor accounts for).
static int check_layout(const char *path, const sid_st_tensor *ts, int n, size_t buf_len) {
    const sid_st_tensor **order = sid_malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, (size_t)n, sizeof *order, by_offset);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const sid_st_tensor *t = order[i];
        if (t->begin < at) {
            sid_set_error("%s: tensor '%s' data_offsets [%zu, %zu] overlap tensor '%s' [%zu, %zu]", path, t->name,
                          t->begin, t->end, order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end);
            rc = -1;
        } else if (t->begin > at) {
            sid_set_error("%s: tensor '%s' data_offsets [%zu, %zu] leave a gap after byte %zu of the data buffer "
                          "(tensors must be contiguous)",
                          path, t->name, t->begin, t->end, at);
            rc = -1;
        }
        at = t->end;
    }
    free(order);
    if (rc == 0 && at != buf_len) {
        sid_set_error("%s: tensors cover %zu bytes but the data buffer holds %zu (trailing bytes)", path, at,
                      buf_len);
        rc = -1;
    }
    return rc;
}

static int parse_header(sid_safetensors *st, const char *hdr, size_t hlen, size_t buf_len) {
    const char *path = st->path;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (root) {  // the reference writer pads with spaces; anything else after the object is corruption
        while (end < hdr + hlen && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end < hdr + hlen) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        size_t at = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        sid_set_error("%s: header is not valid JSON (near byte %zu of the header)", path, at);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        sid_set_error("%s: header is not a JSON object", path);
        cJSON_Delete(root);
        return -1;
    }
    int n = 0, rc = 0;
    cJSON *item, *meta = NULL;
    cJSON_ArrayForEach(item, root) n += strcmp(item->string, "__metadata__") != 0;
    st->tensors = sid_calloc((size_t)n * sizeof *st->tensors);
    cJSON_ArrayForEach(item, root) {
        if (strcmp(item->string, "__metadata__") == 0) {
            if (meta) {
                sid_set_error("%s: duplicate key '__metadata__' in header", path);
                rc = -1;
            } else {
                meta = item;
                rc = parse_metadata(path, item);
            }
        } else {
            rc = parse_tensor(path, item, buf_len, &st->tensors[st->n++]);
        }
        if (rc != 0) break;
    }
    if (rc == 0) {
        qsort(st->tensors, (size_t)st->n, sizeof *st->tensors, by_name);
        for (int i = 1; i < st->n && rc == 0; i++)
            if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0) {
                sid_set_error("%s: duplicate tensor name '%s' in header", path, st->tensors[i].name);
                rc = -1;
            }
    }
    if (rc == 0) rc = check_layout(path, st->tensors, st->n, buf_len);
    if (rc == 0 && meta) st->metadata = cJSON_DetachItemViaPointer(root, meta);
    cJSON_Delete(root);
    return rc;
}

static int map_file(sid_safetensors *st) {
    const char *path = st->path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (errno == ENOENT)
            sid_set_error("%s: no such file", path);
        else
            sid_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        sid_set_error("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        sid_set_error("%s: file is %zu bytes, too short for a safetensors file (8-byte header length missing)",
                      path, size);
        close(fd);
        return -1;
    }
    // A file truncated by another process after this point faults on access
    // (SIGBUS); checkpoints are written atomically, so that only happens to
    // files changed behind sid's back.
    void *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED) {
        sid_set_error("%s: cannot map file: %s", path, strerror(err));
        return -1;
    }
    st->map = m;
    st->map_size = size;
    return 0;
}

static int open_mapped(sid_safetensors *st) {
    const char *path = st->path;
    const uint8_t *b = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    size_t avail = st->map_size - 8;
    if (hlen == 0) {
        sid_set_error("%s: header length is 0", path);
        return -1;
    }
    if (hlen > ST_MAX_HEADER) {
        sid_set_error("%s: header length %llu exceeds the limit of %llu bytes (corrupt or not a safetensors file)",
                      path, (unsigned long long)hlen, ST_MAX_HEADER);
        return -1;
    }
    if (hlen > avail) {
        sid_set_error("%s: header length %llu runs past the end of the %zu-byte file (truncated?)", path,
                      (unsigned long long)hlen, st->map_size);
        return -1;
    }
    // A NUL-terminated private copy: cJSON never reads past it, whatever the bytes.
    char *hdr = sid_malloc((size_t)hlen + 1);
    memcpy(hdr, b + 8, (size_t)hlen);
    hdr[hlen] = '\0';
    int rc = parse_header(st, hdr, (size_t)hlen, avail - (size_t)hlen);
    free(hdr);
    if (rc != 0) return -1;
    const uint8_t *buf = b + 8 + hlen;
    for (int i = 0; i < st->n; i++) st->tensors[i].data = buf + st->tensors[i].begin;
    return 0;
}

int sid_st_open(sid_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    st->path = copy_str(path);
    if (map_file(st) != 0 || open_mapped(st) != 0) {
        sid_st_close(st);
        return -1;
    }
    return 0;
}

int sid_st_parse_memory(sid_safetensors *st, const void *data, size_t size, const char *name) {
    memset(st, 0, sizeof *st);
    st->path = copy_str(name);
    if (size < 8) {
        sid_set_error("%s: %zu bytes, too short for a safetensors file (8-byte header length missing)", name, size);
        sid_st_close(st);
        return -1;
    }
    st->map = (void *)data;
    st->map_size = size;
    st->borrowed = 1;
    if (open_mapped(st) != 0) {
        sid_st_close(st);
        return -1;
    }
    return 0;
}

void sid_st_close(sid_safetensors *st) {
    if (st->map && !st->borrowed) munmap(st->map, st->map_size);
    if (st->tensors)
        for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    cJSON_Delete(st->metadata);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const sid_st_tensor *sid_st_find(const sid_safetensors *st, const char *name) {
    if (st->n == 0) return NULL;
    sid_st_tensor key = {.name = (char *)name};
    return bsearch(&key, st->tensors, (size_t)st->n, sizeof *st->tensors, by_name);
}

int sid_st_read_f32(const sid_safetensors *st, const sid_st_tensor *t, float *dst) {
    if (t->dtype != SID_F32 && t->dtype != SID_F16 && t->dtype != SID_BF16) {
        sid_set_error("%s: tensor '%s' has dtype %s; only F32, F16 and BF16 convert to float", st->path, t->name,
                      sid_dtype_name(t->dtype));
        return -1;
    }
    size_t es = sid_dtype_size(t->dtype), n = (t->end - t->begin) / es;
    const uint8_t *src = t->data;
    if ((uintptr_t)src % es == 0) {
        sid_convert_to_f32(dst, src, t->dtype, n);
        return 0;
    }
    // Misaligned (odd header length): bounce through an aligned buffer rather
    // than read uint16_t through a misaligned pointer.
    uint64_t bounce[512];
    size_t per = sizeof bounce / es;
    for (size_t i = 0; i < n; i += per) {
        size_t k = n - i < per ? n - i : per;
        memcpy(bounce, src + i * es, k * es);
        sid_convert_to_f32(dst + i, bounce, t->dtype, k);
    }
    return 0;
}

int sid_st_read_f64(const sid_safetensors *st, const sid_st_tensor *t, double *dst) {
    const size_t n = (size_t)sid_shape_numel(t->ndim, t->shape);
    if (t->dtype == SID_F64) {
        memcpy(dst, t->data, n * sizeof(double));  // memcpy: the data may be misaligned
        return 0;
    }
    float *f = malloc(n * sizeof(float) + 4);
    if (!f) return sid_set_error("%s: out of memory reading '%s'", st->path, t->name), -1;
    const int rc = sid_st_read_f32(st, t, f);
    for (size_t i = 0; rc == 0 && i < n; i++) dst[i] = f[i];
    free(f);
    return rc;
}

// ---------------------------------------------------------------- writing

typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static void sb_put(strbuf *s, const char *x, size_t k) {
    if (s->n + k + 1 > s->cap) {
        while (s->n + k + 1 > s->cap) s->cap = s->cap ? s->cap * 2 : 256;
        char *g = realloc(s->p, s->cap);
        if (!g) sid_die("out of memory building a safetensors header");
        s->p = g;
    }
    memcpy(s->p + s->n, x, k);
    s->n += k;
    s->p[s->n] = '\0';
}

static void sb_printf(strbuf *s, const char *fmt, ...) SID_PRINTF(2, 3);
static void sb_printf(strbuf *s, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(s, tmp, (size_t)k);  // only used for numbers, which fit
}

static void sb_json_string(strbuf *s, const char *str) {
    sb_put(s, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            sb_put(s, esc, 2);
        } else if (*c < 0x20) {
            sb_printf(s, "\\u%04x", *c);
        } else {
            sb_put(s, (const char *)c, 1);
        }
    }
    sb_put(s, "\"", 1);
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// NULL when names[0..n) are distinct, else one of the repeated names.
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static int check_entries(const char *path, const sid_st_entry *e, int n, const char *const *kv, int n_kv,
                         size_t *sizes) {
    if (n < 0 || n_kv < 0 || (n_kv > 0 && !kv) || (n > 0 && !e)) {
        sid_set_error("%s: invalid tensor or metadata count", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *name = e[i].name;
        if (!name || strcmp(name, "__metadata__") == 0) {
            sid_set_error("%s: tensor %d has an invalid name", path, i);
            return -1;
        }
        if ((unsigned)e[i].dtype >= SID_DTYPE_COUNT || e[i].ndim < 0 || e[i].ndim > SID_MAX_DIMS) {
            sid_set_error("%s: tensor '%s' has an invalid dtype or rank", path, name);
            return -1;
        }
        for (int d = 0; d < e[i].ndim; d++)
            if (e[i].shape[d] < 0) {
                sid_set_error("%s: tensor '%s' has negative dimension %lld", path, name, (long long)e[i].shape[d]);
                return -1;
            }
        if (shape_nbytes(e[i].ndim, e[i].shape, e[i].dtype, &sizes[i]) != 0 || sizes[i] >= (size_t)ST_MAX_INT) {
            sid_set_error("%s: tensor '%s' is too large", path, name);
            return -1;
        }
        if (sizes[i] && !e[i].data) {
            sid_set_error("%s: tensor '%s' has no data", path, name);
            return -1;
        }
    }
    for (int i = 0; i < 2 * n_kv; i++)
        if (!kv[i]) {
            sid_set_error("%s: metadata pair %d has a NULL key or value", path, i / 2);
            return -1;
        }
    const char **names = sid_malloc((size_t)(n > n_kv ? n : n_kv) * sizeof *names + 1);
    for (int i = 0; i < n; i++) names[i] = e[i].name;
    const char *dup = find_duplicate(names, n);
    if (dup) sid_set_error("%s: duplicate tensor name '%s'", path, dup);
    if (!dup) {
        for (int i = 0; i < n_kv; i++) names[i] = kv[2 * i];
        dup = find_duplicate(names, n_kv);
        if (dup) sid_set_error("%s: duplicate metadata key '%s'", path, dup);
    }
    free(names);
    return dup ? -1 : 0;
}

static void build_header(strbuf *s, const sid_st_entry *e, int n, const size_t *sizes, const char *const *kv,
                         int n_kv) {
    sb_put(s, "{", 1);
    if (n_kv > 0) {
        sb_put(s, "\"__metadata__\":{", 16);
        for (int i = 0; i < n_kv; i++) {
            if (i) sb_put(s, ",", 1);
            sb_json_string(s, kv[2 * i]);
            sb_put(s, ":", 1);
            sb_json_string(s, kv[2 * i + 1]);
        }
        sb_put(s, "}", 1);
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (i || n_kv > 0) sb_put(s, ",", 1);
        sb_json_string(s, e[i].name);
        sb_printf(s, ":{\"dtype\":\"%s\",\"shape\":[", sid_dtype_name(e[i].dtype));
        for (int d = 0; d < e[i].ndim; d++) sb_printf(s, d ? ",%lld" : "%lld", (long long)e[i].shape[d]);
        sb_printf(s, "],\"data_offsets\":[%zu,%zu]}", at, at + sizes[i]);
        at += sizes[i];
    }
    sb_put(s, "}", 1);
    // The reference writer aligns the data buffer to 8 bytes so that mapped
    // tensors of every dtype are naturally aligned.
    while (s->n % 8) sb_put(s, " ", 1);
}

int sid_st_write(const char *path, const sid_st_entry *e, int n, const char *const *metadata_kv, int n_kv) {
    size_t *sizes = sid_malloc((size_t)(n > 0 ? n : 0) * sizeof *sizes + 1);
    if (check_entries(path, e, n, metadata_kv, n_kv, sizes) != 0) {
        free(sizes);
        return -1;
    }
    size_t total = 0, limit = (size_t)ST_MAX_INT;
    for (int i = 0; i < n && total < limit; i++) total = sizes[i] < limit - total ? total + sizes[i] : limit;
    if (total >= limit) {
        free(sizes);
        sid_set_error("%s: tensors total more than 2^53 bytes", path);
        return -1;
    }
    strbuf s = {0};
    build_header(&s, e, n, sizes, metadata_kv, n_kv);
    if (s.n > ST_MAX_HEADER) {
        free(sizes);
        free(s.p);
        sid_set_error("%s: header would be %zu bytes, over the %llu-byte limit readers accept", path, s.n,
                      ST_MAX_HEADER);
        return -1;
    }
    char tmp[4096];
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) {
        free(sizes);
        free(s.p);
        return -1;
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)s.n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(s.p, 1, s.n, f);
    for (int i = 0; i < n; i++)
        if (sizes[i]) fwrite(e[i].data, 1, sizes[i], f);
    free(sizes);
    free(s.p);
    return sid_atomic_commit(f, tmp, path);
}
