#include "io/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "io/jpeg.h"
#include "io/png.h"

int sid_image_read_rgb(const char *path, uint8_t **pix, int *w, int *h) {
    *pix = NULL;
    unsigned char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return sid_set_error("%s: cannot open", path), -1;
    const size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) return sid_jpeg_read_rgb(path, pix, w, h);
    if (got == 8 && !memcmp(magic, "\x89PNG\r\n\x1a\n", 8)) {
        int c = 0;
        if (sid_png_read(path, pix, w, h, &c)) return -1;
        if (c == 3) return 0;
        const size_t n = (size_t)*w * *h;
        uint8_t *rgb = malloc(n * 3 + 1);
        if (!rgb) return free(*pix), *pix = NULL, sid_set_error("%s: out of memory", path), -1;
        for (size_t i = 0; i < n; i++) memset(rgb + 3 * i, (*pix)[i], 3);
        free(*pix);
        *pix = rgb;
        return 0;
    }
    return sid_set_error("%s: neither a PNG nor a JPEG file", path), -1;
}

int sid_image_name_ok(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}
