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
