// Counter-based RNG (Philox4x32-10). Draw i of a stream depends only on
// (seed, offset + i), never on how the work is split between threads, so a
// run is reproducible across thread counts and resumable from (seed, offset).
#ifndef SID_RNG_H
#define SID_RNG_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t seed;
    uint64_t offset;  // counters consumed so far; save it to resume the stream
} sid_rng;

static inline sid_rng sid_rng_new(uint64_t seed) { return (sid_rng){seed, 0}; }
void sid_philox(uint64_t seed, uint64_t counter, uint32_t out[4]);
// The bare Philox4x32-10 block function (Random123's known-answer vectors apply).
void sid_philox_block(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

// Fill and advance the stream. normal: N(0,1) by Box-Muller; uniform: [0,1)
// with 24 random bits; below: integers in [0, n). A normal draw of n values
// consumes ceil(n/2) counters, so split a stream only at even sizes.
void sid_rng_normal(sid_rng *r, float *out, size_t n);
void sid_rng_uniform(sid_rng *r, float *out, size_t n);
void sid_rng_below(sid_rng *r, uint32_t n, uint32_t *out, size_t count);

#ifdef __cplusplus
}
#endif

#endif
