#include "tensor.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[SID_DTYPE_COUNT] = {
    [SID_F32] = {"F32", 4}, [SID_F16] = {"F16", 2}, [SID_BF16] = {"BF16", 2},
    [SID_I64] = {"I64", 8}, [SID_I32] = {"I32", 4}, [SID_F64] = {"F64", 8},
};

size_t sid_dtype_size(sid_dtype t) { return (unsigned)t < SID_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *sid_dtype_name(sid_dtype t) { return (unsigned)t < SID_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int sid_dtype_from_name(const char *name, sid_dtype *out) {
    for (int i = 0; i < SID_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (sid_dtype)i;
            return 0;
        }
    return -1;
}

int64_t sid_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

const char *sid_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sid_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  // inf / nan
    if (exp == 0) {  // zero or subnormal: value = man * 2^-24
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sid_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00 : 0x7c00);
    if (a >= 0x477ff000u) return sign | 0x7c00;  // rounds past 65504: inf
    if (a < 0x38800000u) {                       // f16 subnormal or zero
        // value / 2^-24 rounded to nearest even; rint uses the current (nearest-even) mode.
        float v = bits_f32(a) * 16777216.0f;
        return sign | (uint16_t)rintf(v);
    }
    uint32_t mant_odd = (a >> 13) & 1;
    a += 0xfff + mant_odd;  // round to nearest even at bit 13
    return sign | (uint16_t)((a - 0x38000000u) >> 13);
}

float sid_bf16_to_f32(uint16_t b) { return bits_f32((uint32_t)b << 16); }

uint16_t sid_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

void sid_convert_to_f32(float *dst, const void *src, sid_dtype t, size_t n) {
    switch (t) {
    case SID_F32: memcpy(dst, src, n * 4); break;
    case SID_F16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = sid_f16_to_f32(s[i]);
    } break;
    case SID_BF16: {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = sid_bf16_to_f32(s[i]);
    } break;
    case SID_I64: {
        const int64_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } break;
    case SID_I32: {
        const int32_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } break;
    case SID_F64: {
        const double *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    } break;
    default: break;
    }
}

void sid_convert_from_f32(void *dst, sid_dtype t, const float *src, size_t n) {
    switch (t) {
    case SID_F32: memcpy(dst, src, n * 4); break;
    case SID_F16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = sid_f32_to_f16(src[i]);
    } break;
    case SID_BF16: {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = sid_f32_to_bf16(src[i]);
    } break;
    case SID_I64: {
        int64_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (int64_t)llrintf(src[i]);
    } break;
    case SID_I32: {
        int32_t *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = (int32_t)lrintf(src[i]);
    } break;
    case SID_F64: {
        double *d = dst;
        for (size_t i = 0; i < n; i++) d[i] = src[i];
    } break;
    default: break;
    }
}
