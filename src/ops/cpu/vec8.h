// Eight-float vectors in GCC's vector extension for the hand-tiled kernels (one AVX register;
// two SSE registers in the SSE2 variant), with unaligned loads and stores and the lane shuffles
// those kernels need, spelled for GCC and for clang (the fuzz build).
#ifndef SID_CPU_VEC8_H
#define SID_CPU_VEC8_H
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }

// Four floats from p and four from q as one vector (without AVX, through memory; with it, two
// halves written to the stack and read back as one vector stall the store forwarding).
static inline v8f load4x2(const float *p, const float *q) {
#if defined(__AVX__)
    return (v8f)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(q), 1);
#else
    float t[8];
    memcpy(t, p, 4 * sizeof(float));
    memcpy(t + 4, q, 4 * sizeof(float));
    return load8(t);
#endif
}

#if defined(__AVX512F__)
// Two adjacent eight-float vectors as one AVX-512 register, for the kernels whose pairs of vectors
// are contiguous in memory and take the same operations (each lane's arithmetic is unchanged).
typedef float v16f __attribute__((vector_size(64)));
static inline v16f load16(const float *p) {
    v16f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store16(float *p, v16f v) { memcpy(p, &v, sizeof v); }
#endif

#if defined(__clang__)
#define SID_SHUFFLE1(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#define SID_SHUFFLE2(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SID_SHUFFLE1(v, ...) __builtin_shuffle(v, (v8i){__VA_ARGS__})
#define SID_SHUFFLE2(a, b, ...) __builtin_shuffle(a, b, (v8i){__VA_ARGS__})
#endif

static inline float hsum8(v8f v) {  // three shuffle-and-add steps (a lane loop compiles to 7 scalar adds)
    v += SID_SHUFFLE1(v, 4, 5, 6, 7, 0, 1, 2, 3);
    v += SID_SHUFFLE1(v, 2, 3, 0, 1, 6, 7, 4, 5);
    v += SID_SHUFFLE1(v, 1, 0, 3, 2, 5, 4, 7, 6);
    return v[0];
}

// The lanes of a and b alternating: a0 b0 a1 b1 a2 b2 a3 b3 (lo) and a4 b4 ... a7 b7 (hi).
static inline v8f interleave_lo(v8f a, v8f b) { return SID_SHUFFLE2(a, b, 0, 8, 1, 9, 2, 10, 3, 11); }
static inline v8f interleave_hi(v8f a, v8f b) { return SID_SHUFFLE2(a, b, 4, 12, 5, 13, 6, 14, 7, 15); }
#if defined(__AVX512F__)
// The same over 16 lanes: a0 b0 ... a7 b7 (lo) and a8 b8 ... a15 b15 (hi).
#if defined(__clang__)
static inline v16f interleave16_lo(v16f a, v16f b) {
    return __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
}
static inline v16f interleave16_hi(v16f a, v16f b) {
    return __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
}
#else
typedef int v16i __attribute__((vector_size(64)));
static inline v16f interleave16_lo(v16f a, v16f b) {
    return __builtin_shuffle(a, b, (v16i){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23});
}
static inline v16f interleave16_hi(v16f a, v16f b) {
    return __builtin_shuffle(a, b, (v16i){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31});
}
#endif
#endif
// Their inverse: the even lanes of lo then hi, and the odd ones.
static inline v8f deinterleave_even(v8f lo, v8f hi) { return SID_SHUFFLE2(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14); }
static inline v8f deinterleave_odd(v8f lo, v8f hi) { return SID_SHUFFLE2(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15); }
#endif
