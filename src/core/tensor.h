// A small tensor: row-major (NCHW for images), contiguous. Kernels take raw
// float pointers and shape ints (llm.c style); the tensor type is for code that
// moves whole arrays around: files, parameter blocks, tests.
#ifndef SID_TENSOR_H
#define SID_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SID_MAX_DIMS 8

typedef enum { SID_F32 = 0, SID_F16, SID_BF16, SID_I64, SID_I32, SID_F64, SID_DTYPE_COUNT } sid_dtype;

typedef struct {
    sid_dtype dtype;
    int ndim;
    int64_t shape[SID_MAX_DIMS];
    void *data;  // not owned unless the creator says so
} sid_tensor;

size_t sid_dtype_size(sid_dtype t);
const char *sid_dtype_name(sid_dtype t);  // safetensors spelling: "F32", "F16", ...
int sid_dtype_from_name(const char *name, sid_dtype *out);  // 0 ok, -1 unknown

int64_t sid_shape_numel(int ndim, const int64_t *shape);
static inline int64_t sid_tensor_numel(const sid_tensor *t) { return sid_shape_numel(t->ndim, t->shape); }
static inline size_t sid_tensor_nbytes(const sid_tensor *t) {
    return (size_t)sid_tensor_numel(t) * sid_dtype_size(t->dtype);
}
// "[2, 3, 4]" into buf; returns buf.
const char *sid_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

float sid_f16_to_f32(uint16_t h);
uint16_t sid_f32_to_f16(float f);    // round to nearest even, overflow to inf
float sid_bf16_to_f32(uint16_t b);
uint16_t sid_f32_to_bf16(float f);   // round to nearest even, NaN stays NaN

// Element-wise conversion of n values; src/dst must not overlap.
void sid_convert_to_f32(float *dst, const void *src, sid_dtype src_type, size_t n);
void sid_convert_from_f32(void *dst, sid_dtype dst_type, const float *src, size_t n);

#ifdef __cplusplus
}
#endif

#endif
