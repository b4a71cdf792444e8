#include "rng.h"

#include <math.h>

void sid_philox_block(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

void sid_philox(uint64_t seed, uint64_t counter, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    sid_philox_block(ctr, key, out);
}

static inline float u24(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

// Each counter yields two normals (the cos and sin halves of one Box-Muller pair).
void sid_rng_normal(sid_rng *r, float *out, size_t n) {
    const uint64_t seed = r->seed, base = r->offset;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i += 2) {
        uint32_t w[4];
        sid_philox(seed, base + i / 2, w);
        // (x+0.5)/2^32 keeps the log finite; 53-bit precision would be overkill here.
        double u1 = ((double)w[0] + 0.5) * (1.0 / 4294967296.0);
        double u2 = ((double)w[1] + 0.5) * (1.0 / 4294967296.0);
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[i] = (float)(rad * cos(th));
        if (i + 1 < n) out[i + 1] = (float)(rad * sin(th));
    }
    r->offset += (n + 1) / 2;
}

void sid_rng_uniform(sid_rng *r, float *out, size_t n) {
    const uint64_t seed = r->seed, base = r->offset;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        sid_philox(seed, base + i / 4, w);
        for (size_t j = 0; j < 4 && i + j < n; j++) out[i + j] = u24(w[j]);
    }
    r->offset += (n + 3) / 4;
}

void sid_rng_below(sid_rng *r, uint32_t bound, uint32_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t w[4];
        sid_philox(r->seed, r->offset + i, w);
        uint64_t x = ((uint64_t)w[0] << 32) | w[1];
        out[i] = (uint32_t)(x % bound);  // bias < 2^-32 for the bounds used here
    }
    r->offset += n;
}
