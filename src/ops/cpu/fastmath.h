// A vectorisable e^x. glibc's expf is not vectorised without -ffast-math (which
// would also break isnan in gradient sanitising), and attention spends most of
// its non-GEMM time in exp: Nq*Nk per head. Cephes' polynomial on a range-reduced
// argument; relative error below 2e-7 on [-87, 88] (tested against expf), 0 for
// arguments below -87.33 (so -inf, a masked score, gives exactly 0).
#ifndef SID_FASTMATH_H
#define SID_FASTMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float sid_expf(float x) {
    const float hi = 88.37626f, lo = -87.33654f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    // Round to nearest with the 1.5*2^23 trick (floorf blocks vectorisation here): the
    // integer n lands in t's low mantissa bits, which also give the exponent of 2^n.
    const float t = xc * 1.44269504088896341f + 12582912.0f, n = t - 12582912.0f;
    uint32_t ti;  // unsigned: a NaN input gives any bits, and a signed shift of those is undefined
    memcpy(&ti, &t, 4);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    const uint32_t e = (ti - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &e, 4);
    return x < lo ? 0.0f : p * scale;
}

static inline float sid_sigmoidf(float x) { return 1.0f / (1.0f + sid_expf(-x)); }

// Sigmoid and SiLU over arrays, in vectors of the widest registers the variant is compiled for.
// GCC vectorises sid_expf's clamps and zero select into compare-and-blend sequences (twice the
// instructions: SiLU was most of a fused GroupNorm + SiLU's time); here the clamps are min/max
// instructions (NaN passes through, as in sid_expf) and there is no select: below -87.34 e^x is
// 2^-126 instead of 0, which 1 + e^x cannot tell apart. Each lane computes exactly what the scalar
// tail (sig_lane) does, so results do not depend on an element's position.
#if defined(__AVX512F__)
#include <immintrin.h>
typedef float sid_vf __attribute__((vector_size(64)));
typedef uint32_t sid_vi __attribute__((vector_size(64)));
static inline sid_vf sid_vmin(sid_vf a, sid_vf b) { return (sid_vf)_mm512_min_ps((__m512)a, (__m512)b); }
static inline sid_vf sid_vmax(sid_vf a, sid_vf b) { return (sid_vf)_mm512_max_ps((__m512)a, (__m512)b); }
#elif defined(__AVX__)
#include <immintrin.h>
typedef float sid_vf __attribute__((vector_size(32)));
typedef uint32_t sid_vi __attribute__((vector_size(32)));
static inline sid_vf sid_vmin(sid_vf a, sid_vf b) { return (sid_vf)_mm256_min_ps((__m256)a, (__m256)b); }
static inline sid_vf sid_vmax(sid_vf a, sid_vf b) { return (sid_vf)_mm256_max_ps((__m256)a, (__m256)b); }
#else
#include <emmintrin.h>
typedef float sid_vf __attribute__((vector_size(16)));
typedef uint32_t sid_vi __attribute__((vector_size(16)));
static inline sid_vf sid_vmin(sid_vf a, sid_vf b) { return (sid_vf)_mm_min_ps((__m128)a, (__m128)b); }
static inline sid_vf sid_vmax(sid_vf a, sid_vf b) { return (sid_vf)_mm_max_ps((__m128)a, (__m128)b); }
#endif
enum { SID_VLANES = sizeof(sid_vf) / sizeof(float) };

// e^x of x clamped to [-87.34, 88.38], lanes and scalar: min(hi, x) and max(lo, x) keep x when
// it is NaN, as minps/maxps do. (Unsigned lanes: a NaN gives any bits to shift.)
#define SID_EXP_CLAMPED(T, TI, x, MIN, MAX, out)                                                      \
    do {                                                                                               \
        const T x_ = MAX(-87.33654f + (T){0}, MIN(88.37626f + (T){0}, x));                            \
        const T t_ = x_ * 1.44269504088896341f + 12582912.0f, n_ = t_ - 12582912.0f;                 \
        T r_ = x_ - n_ * 0.693359375f;                                                                 \
        r_ = r_ - n_ * -2.12194440e-4f;                                                                \
        T p_ = 1.9875691500e-4f + (T){0};                                                              \
        p_ = p_ * r_ + 1.3981999507e-3f;                                                               \
        p_ = p_ * r_ + 8.3334519073e-3f;                                                               \
        p_ = p_ * r_ + 4.1665795894e-2f;                                                               \
        p_ = p_ * r_ + 1.6666665459e-1f;                                                               \
        p_ = p_ * r_ + 5.0000001201e-1f;                                                               \
        p_ = p_ * r_ * r_ + r_ + 1.0f;                                                                 \
        TI ti_;                                                                                        \
        memcpy(&ti_, &t_, sizeof ti_);                                                                 \
        ti_ = (ti_ - 0x4B400000u + 127u) << 23;                                                        \
        T scale_;                                                                                      \
        memcpy(&scale_, &ti_, sizeof scale_);                                                          \
        out = p_ * scale_;                                                                             \
    } while (0)
static inline float sid_min_lane(float a, float b) { return a < b ? a : b; }  // minps: b unless a < b
static inline float sid_max_lane(float a, float b) { return a > b ? a : b; }

// den = 1 + e^-v for one element
static inline float sid_one_plus_exp_neg(float v) {
    float e;
    SID_EXP_CLAMPED(float, uint32_t, -v, sid_min_lane, sid_max_lane, e);
    return 1.0f + e;
}
static inline sid_vf sid_vone_plus_exp_neg(sid_vf v) {
    sid_vf e;
    SID_EXP_CLAMPED(sid_vf, sid_vi, -v, sid_vmin, sid_vmax, e);
    return 1.0f + e;
}
// sid_expf over a vector, the same bits per lane: 0 below -87.34 (-inf, a masked score, gives 0).
static inline sid_vf sid_vexpf(sid_vf x) {
    sid_vf e;
    SID_EXP_CLAMPED(sid_vf, sid_vi, x, sid_vmin, sid_vmax, e);
    const sid_vi below = (sid_vi)(x < -87.33654f);
    return (sid_vf)((sid_vi)e & ~below);
}
#undef SID_EXP_CLAMPED

// y[i] = silu(x[i] * a + b) = v / (1 + e^-v)
static inline void sid_silu_affine(float *y, const float *x, size_t n, float a, float b) {
    size_t i = 0;
    for (const size_t nv = n - n % SID_VLANES; i < nv; i += SID_VLANES) {
        sid_vf v;
        memcpy(&v, x + i, sizeof v);
        v = v * a + b;
        v = v / sid_vone_plus_exp_neg(v);
        memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        const float v = x[i] * a + b;
        y[i] = v / sid_one_plus_exp_neg(v);
    }
}

// s[i] = sigmoid(x[i] * a + b)
static inline void sid_sigmoid_affine(float *s, const float *x, size_t n, float a, float b) {
    size_t i = 0;
    for (const size_t nv = n - n % SID_VLANES; i < nv; i += SID_VLANES) {
        sid_vf v;
        memcpy(&v, x + i, sizeof v);
        v = 1.0f / sid_vone_plus_exp_neg(v * a + b);
        memcpy(s + i, &v, sizeof v);
    }
    for (; i < n; i++) s[i] = 1.0f / sid_one_plus_exp_neg(x[i] * a + b);
}

// A vectorisable erf for GELU (glibc's erff is a scalar call: 4% of a SiD iteration):
// the Maclaurin series below |x| = 0.5, Abramowitz & Stegun 7.1.26 above (both computed,
// one selected, so the loop stays branch-free). Absolute error below 3e-7 (tested against
// erf), which GELU adds to 1.
static inline float sid_erff(float x) {
    const float a = fabsf(x), s = x * x, t = 1.0f / (1.0f + 0.3275911f * a);
    float q = -1.2055333836e-4f;  // 2/sqrt(pi) (-1)^k / (k! (2k+1)), k = 6 .. 0
    q = q * s + 8.548327023e-4f;
    q = q * s - 5.223977625e-3f;
    q = q * s + 2.686617065e-2f;
    q = q * s - 1.128379167e-1f;
    q = q * s + 3.761263890e-1f;
    q = q * s - 1.128379167f;
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float r = 1.0f - p * t * sid_expf(-s);
    return a < 0.5f ? -x * q : (x < 0 ? -r : r);
}

#endif
