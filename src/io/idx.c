#include "io/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"

// Well above any IDX data set (MNIST training images: 47 MB); a corrupt
// header must not make us allocate terabytes.
#define IDX_MAX_BYTES ((uint64_t)1 << 34)

// Reads up to len bytes; returns the count, or -1 on a gzip stream error.
static int64_t read_fully(gzFile g, uint8_t *dst, uint64_t len) {
    uint64_t done = 0;
    while (done < len) {
        uint64_t want = len - done;
        unsigned chunk = want > (1u << 30) ? (1u << 30) : (unsigned)want;
        int got = gzread(g, dst + done, chunk);
        if (got < 0) return -1;
        if (got == 0) break;
        done += (uint64_t)got;
    }
    return (int64_t)done;
}

static int gz_fail(const char *path, gzFile g) {
    int code;
    const char *msg = gzerror(g, &code);
    sid_set_error("%s: corrupt gzip data: %s", path, msg && *msg ? msg : "unknown error");
    return -1;
}

static int read_header(const char *path, gzFile g, sid_idx *out, uint64_t *total) {
    uint8_t magic[4];
    int64_t got = read_fully(g, magic, 4);
    if (got < 0) return gz_fail(path, g);
    if (got < 4 || magic[0] != 0 || magic[1] != 0) {
        sid_set_error("%s: bad magic number, not an IDX file", path);
        return -1;
    }
    if (magic[2] != 0x08) {
        sid_set_error("%s: IDX element type 0x%02x is not supported (only unsigned bytes, 0x08)", path, magic[2]);
        return -1;
    }
    if (magic[3] < 1 || magic[3] > 4) {
        sid_set_error("%s: IDX file has %d dimensions, expected 1 to 4", path, magic[3]);
        return -1;
    }
    out->ndim = magic[3];
    uint8_t dims[16];
    got = read_fully(g, dims, 4 * (uint64_t)out->ndim);
    if (got < 0) return gz_fail(path, g);
    if (got < 4 * out->ndim) {
        sid_set_error("%s: truncated IDX header", path);
        return -1;
    }
    uint64_t n = 1;
    for (int i = 0; i < out->ndim; i++) {
        const uint8_t *b = dims + 4 * i;
        uint64_t d = (uint64_t)b[0] << 24 | (uint64_t)b[1] << 16 | (uint64_t)b[2] << 8 | b[3];
        out->dims[i] = (int64_t)d;
        if (d != 0 && n > IDX_MAX_BYTES / d) {
            sid_set_error("%s: IDX dimensions describe more than %llu bytes", path,
                          (unsigned long long)IDX_MAX_BYTES);
            return -1;
        }
        n *= d;
    }
    *total = n;
    return 0;
}

// Grows the buffer only as bytes arrive, so a header claiming far more data
// than the file holds costs no more memory than the file itself.
static int read_data(const char *path, gzFile g, uint64_t total, uint8_t **data) {
    uint64_t cap = total < ((uint64_t)1 << 24) ? total : ((uint64_t)1 << 24), have = 0;
    uint8_t *buf = sid_malloc((size_t)cap);
    for (;;) {
        int64_t got = read_fully(g, buf + have, cap - have);
        if (got < 0) {
            free(buf);
            return gz_fail(path, g);
        }
        have += (uint64_t)got;
        if (have < cap || cap == total) break;
        cap = cap * 2 < total ? cap * 2 : total;
        uint8_t *grown = realloc(buf, (size_t)cap);
        if (!grown) sid_die("out of memory reading %s", path);
        buf = grown;
    }
    if (have < total) {
        free(buf);
        sid_set_error("%s: truncated IDX data: %llu of %llu bytes", path, (unsigned long long)have,
                      (unsigned long long)total);
        return -1;
    }
    uint8_t extra;
    int64_t more = read_fully(g, &extra, 1);
    if (more != 0) {
        free(buf);
        if (more < 0) return gz_fail(path, g);
        sid_set_error("%s: trailing data after the %llu bytes the IDX header describes", path,
                      (unsigned long long)total);
        return -1;
    }
    *data = buf;
    return 0;
}

int sid_idx_read(const char *path, sid_idx *out) {
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            sid_set_error("%s: no such file", path);
        else
            sid_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        sid_set_error("%s: not a regular file", path);
        return -1;
    }
    // gzopen reads plain files transparently, so .gz and unpacked files both work.
    gzFile g = gzopen(path, "rb");
    if (!g) {
        sid_set_error("%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        return -1;
    }
    uint64_t total = 0;
    int rc = read_header(path, g, out, &total);
    if (rc == 0) rc = read_data(path, g, total, &out->data);
    gzclose(g);
    if (rc != 0) memset(out, 0, sizeof *out);
    return rc;
}

void sid_idx_free(sid_idx *x) {
    free(x->data);
    memset(x, 0, sizeof *x);
}
