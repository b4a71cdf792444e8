#include "data/fmnist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/idx.h"

static const char *const class_names[SID_FMNIST_CLASSES] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

const char *sid_fmnist_class_name(int label) {
    return label >= 0 && label < SID_FMNIST_CLASSES ? class_names[label] : NULL;
}

// lower-case letters and digits only
static void normalise(char *dst, size_t cap, const char *src) {
    size_t n = 0;
    for (; *src && n + 1 < cap; src++)
        if (isalnum((unsigned char)*src)) dst[n++] = (char)tolower((unsigned char)*src);
    dst[n] = 0;
}

int sid_fmnist_class_from_name(const char *name) {
    char want[64], have[64];
    normalise(want, sizeof want, name);
    if (!*want) return -1;
    if (strcmp(want, "tshirt") == 0) return 0;
    for (int c = 0; c < SID_FMNIST_CLASSES; c++) {
        normalise(have, sizeof have, class_names[c]);
        if (strcmp(want, have) == 0) return c;
    }
    return -1;
}

const char *sid_fmnist_default_dir(void) {
    const char *env = getenv("SID_FMNIST_DIR");
    return env && *env ? env : SID_FMNIST_DIR;
}

static void file_names(const char *dir, int train, char *img, char *lab, size_t cap) {
    const char *split = train ? "train" : "t10k";
    snprintf(img, cap, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lab, cap, "%s/%s-labels-idx1-ubyte.gz", dir, split);
}

int sid_fmnist_available(const char *dir, int train) {
    char img[1024], lab[1024];
    struct stat sb;
    file_names(dir ? dir : sid_fmnist_default_dir(), train, img, lab, sizeof img);
    return stat(img, &sb) == 0 && stat(lab, &sb) == 0;
}

void sid_fmnist_pad(float *dst, const uint8_t *src, int n) {
    const int R = SID_FMNIST_RES, S = SID_FMNIST_SRC, P = SID_FMNIST_PAD;
    for (int i = 0; i < n; i++) {
        float *d = dst + (size_t)i * R * R;
        const uint8_t *s = src + (size_t)i * S * S;
        for (int k = 0; k < R * R; k++) d[k] = -1.0f;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) d[(y + P) * R + x + P] = (float)s[y * S + x] / 127.5f - 1.0f;
    }
}

// Reads one IDX file; a missing file gets the install hint.
static int read_idx(const char *path, sid_idx *x) {
    struct stat sb;
    if (stat(path, &sb) != 0) {
        sid_set_error("%s: no such file; Fashion-MNIST is missing: install it with %s, or point SID_FMNIST_DIR at "
                      "a folder holding the IDX files",
                      path, SID_FMNIST_INSTALL);
        return -1;
    }
    return sid_idx_read(path, x);
}

int sid_fmnist_load(sid_fmnist *out, const char *dir, int train, int limit) {
    memset(out, 0, sizeof *out);
    char img_path[1024], lab_path[1024];
    file_names(dir ? dir : sid_fmnist_default_dir(), train, img_path, lab_path, sizeof img_path);
    sid_idx img = {0}, lab = {0};
    if (read_idx(img_path, &img) || read_idx(lab_path, &lab)) goto fail;
    if (img.ndim != 3 || img.dims[1] != SID_FMNIST_SRC || img.dims[2] != SID_FMNIST_SRC) {
        sid_set_error("%s: expected images of shape [N, 28, 28], got %d dimensions", img_path, img.ndim);
        goto fail;
    }
    if (lab.ndim != 1 || lab.dims[0] != img.dims[0]) {
        sid_set_error("%s: expected %lld labels, one per image of %s", lab_path, (long long)img.dims[0], img_path);
        goto fail;
    }
    if (img.dims[0] > (1 << 24)) {
        sid_set_error("%s: %lld images is more than sid reads", img_path, (long long)img.dims[0]);
        goto fail;
    }
    int n = (int)img.dims[0];
    if (limit > 0 && limit < n) n = limit;
    for (int i = 0; i < n; i++)
        if (lab.data[i] >= SID_FMNIST_CLASSES) {
            sid_set_error("%s: label %d of image %d is not a class 0..9", lab_path, lab.data[i], i);
            goto fail;
        }
    out->n = n;
    out->images = sid_aligned_alloc((size_t)n * SID_FMNIST_RES * SID_FMNIST_RES * sizeof(float));
    out->labels = sid_malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    sid_fmnist_pad(out->images, img.data, n);
    for (int i = 0; i < n; i++) out->labels[i] = lab.data[i];
    sid_idx_free(&img);
    sid_idx_free(&lab);
    return 0;
fail:
    sid_idx_free(&img);
    sid_idx_free(&lab);
    return -1;
}

void sid_fmnist_free(sid_fmnist *d) {
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}
