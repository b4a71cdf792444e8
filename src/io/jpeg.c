// libjpeg reports errors through a longjmp out of its error_exit hook; the message goes into
// sid_error with the file name.
#include "io/jpeg.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
// jpeglib.h needs FILE and size_t declared first
#include <jerror.h>
#include <jpeglib.h>

#include "core/error.h"

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void on_error(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    cinfo->err->format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}
// Warnings about stray bytes between markers are ignored, as Pillow ignores them (some COCO files
// have them); a premature end of the file is an error, as Pillow refuses a truncated image.
static void on_warning(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
}

int sid_jpeg_read_rgb(const char *path, uint8_t **pix, int *w, int *h) {
    *pix = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return sid_set_error("%s: cannot open", path), -1;
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    cinfo.err = jpeg_std_error(&err.mgr);
    err.mgr.error_exit = on_error;
    err.mgr.emit_message = on_warning;
    uint8_t *volatile out = NULL, *volatile line = NULL;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        free(out);
        free(line);
        sid_set_error("%s: not a readable JPEG (%s)", path, err.msg);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    const int comps = cinfo.num_components;
    if (comps != 1 && comps != 3) {
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        return sid_set_error("%s: a JPEG with %d components (CMYK?); only gray and colour images are read", path,
                             comps),
               -1;
    }
    cinfo.out_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;  // Pillow's default
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    const int W = (int)cinfo.output_width, H = (int)cinfo.output_height;
    out = malloc((size_t)W * H * 3 + 1);
    line = malloc((size_t)W * comps + 1);
    if (!out || !line) {
        free(line);
        jpeg_destroy_decompress(&cinfo);
        fclose(f);
        free(out);
        return sid_set_error("%s: out of memory for %dx%d pixels", path, W, H), -1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        const int y = (int)cinfo.output_scanline;
        JSAMPROW row = comps == 3 ? (JSAMPROW)(out + (size_t)y * W * 3) : line;
        jpeg_read_scanlines(&cinfo, &row, 1);
        if (comps == 1)
            for (int x = 0; x < W; x++) memset(out + ((size_t)y * W + x) * 3, line[x], 3);
    }
    free(line);
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    fclose(f);
    *pix = out;
    *w = W;
    *h = H;
    return 0;
}
