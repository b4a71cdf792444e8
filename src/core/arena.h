// Bump allocator: one block per role (parameters, gradients, activations,
// scratch), so freeing a role is one call and resetting a step is one store.
#ifndef SID_ARENA_H
#define SID_ARENA_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sid_arena {
    char *base;
    size_t cap, used, peak;
    const char *name;  // for the out-of-memory message
    // An arena in a device's memory (sid_backend_arena_init): the host never touches its bytes, so
    // zero-filling and releasing go through the device. NULL for host memory.
    void *owner;
    void (*zero)(void *owner, void *p, size_t bytes);
    void (*release)(void *owner, void *p);
} sid_arena;

void sid_arena_init(sid_arena *a, const char *name, size_t cap_bytes);
// An arena over memory that owner provides (base, cap bytes, 64-byte aligned offsets from base).
void sid_arena_init_with(sid_arena *a, const char *name, void *base, size_t cap_bytes, void *owner,
                         void (*zero)(void *owner, void *p, size_t bytes), void (*release)(void *owner, void *p));
void sid_arena_free(sid_arena *a);
// 64-byte aligned, zero-filled; dies with a one-line message when the arena is full.
void *sid_arena_alloc(sid_arena *a, size_t bytes);
float *sid_arena_floats(sid_arena *a, size_t n);
// Not zero-filled: for outputs an op overwrites entirely (zeroing them was 5% of a small UNet step).
void *sid_arena_alloc_uninit(sid_arena *a, size_t bytes);
static inline size_t sid_arena_mark(const sid_arena *a) { return a->used; }
static inline void sid_arena_reset(sid_arena *a, size_t mark) { a->used = mark; }

// A growable scratch buffer for op workspaces (im2col columns, attention tiles).
// The CPU ops keep theirs thread-local: threads may run ops side by side.
typedef struct {
    float *data;
    size_t cap;  // floats
} sid_scratch;
float *sid_scratch_get(sid_scratch *s, size_t nfloats);
void sid_scratch_free(sid_scratch *s);

#ifdef __cplusplus
}
#endif

#endif
