// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// mapping tensor names to {dtype, shape, data_offsets}, then the data buffer
// (offsets relative to byte 8 + N). Files are mmap'd read-only, so opening a
// multi-gigabyte checkpoint costs only its header.
#ifndef SID_IO_SAFETENSORS_H
#define SID_IO_SAFETENSORS_H
#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    sid_dtype dtype;
    int ndim;
    int64_t shape[SID_MAX_DIMS];
    size_t begin, end;  // within the data buffer
    // Points into the mapping. Not necessarily aligned to the element size
    // (the header length need not be a multiple of 8): copy, or use
    // sid_st_read_f32, rather than dereferencing as float*.
    const void *data;
} sid_st_tensor;

typedef struct {
    char *path;
    void *map;
    size_t map_size;
    int n;
    sid_st_tensor *tensors;  // sorted by name (sid_st_find searches by bisection)
    cJSON *metadata;         // the "__metadata__" object of string values, or NULL
    int borrowed;            // map is the caller's buffer (sid_st_parse_memory), not a mapping
} sid_safetensors;

// Maps and validates the whole header: on success every tensor's bytes lie
// inside the file and match its shape. On failure st is left closed.
int sid_st_open(sid_safetensors *st, const char *path);
// The same checks on a whole file image already in memory (not copied: data must outlive st;
// sid_st_close leaves it alone). name only names it in messages.
int sid_st_parse_memory(sid_safetensors *st, const void *data, size_t size, const char *name);
void sid_st_close(sid_safetensors *st);  // safe on a zeroed or closed st
const sid_st_tensor *sid_st_find(const sid_safetensors *st, const char *name);
// Converts F32, F16 or BF16 data to numel floats at dst; other dtypes are an error.
int sid_st_read_f32(const sid_safetensors *st, const sid_st_tensor *t, float *dst);
// F64 data as is, or F32 / F16 / BF16 widened, to numel doubles at dst.
int sid_st_read_f64(const sid_safetensors *st, const sid_st_tensor *t, double *dst);

typedef struct {
    const char *name;
    sid_dtype dtype;
    int ndim;
    int64_t shape[SID_MAX_DIMS];
    const void *data;  // numel * dtype size bytes; may be NULL for zero-size tensors
} sid_st_entry;

// Writes n tensors atomically, data laid out in the given order. metadata_kv
// holds n_kv (key, value) string pairs as 2*n_kv consecutive pointers. The
// header is the compact JSON {"__metadata__":{...},"name":{"dtype":..,
// "shape":[..],"data_offsets":[b,e]},...} padded with spaces to a multiple
// of 8 bytes, as the reference writer does.
int sid_st_write(const char *path, const sid_st_entry *e, int n, const char *const *metadata_kv, int n_kv);

#ifdef __cplusplus
}
#endif

#endif
