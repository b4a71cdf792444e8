// IDX arrays (the MNIST distribution format), plain or gzip-compressed: magic
// 00 00 <type> <ndim>, ndim big-endian u32 dims, then the elements. Only
// unsigned bytes (type 0x08) are supported, which covers MNIST and Fashion-MNIST.
#ifndef SID_IO_IDX_H
#define SID_IO_IDX_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int ndim;
    int64_t dims[4];
    uint8_t *data;  // dims[0] * ... * dims[ndim-1] bytes, row-major
} sid_idx;

// "path: no such file" when missing (callers add download hints). Rejects a
// data length different from the product of the dims, in either direction.
int sid_idx_read(const char *path, sid_idx *out);
void sid_idx_free(sid_idx *x);

#ifdef __cplusplus
}
#endif

#endif
