#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void sid_arena_init(sid_arena *a, const char *name, size_t cap) {
    memset(a, 0, sizeof *a);
    a->base = sid_aligned_alloc(cap);
    a->cap = (cap + 63) / 64 * 64;
    a->name = name;
}

void sid_arena_init_with(sid_arena *a, const char *name, void *base, size_t cap, void *owner,
                         void (*zero)(void *owner, void *p, size_t bytes), void (*release)(void *owner, void *p)) {
    *a = (sid_arena){.base = base, .cap = cap / 64 * 64, .name = name, .owner = owner, .zero = zero, .release = release};
}

void sid_arena_free(sid_arena *a) {
    if (a->release) a->release(a->owner, a->base);
    else free(a->base);
    memset(a, 0, sizeof *a);
}

void *sid_arena_alloc(sid_arena *a, size_t bytes) {
    void *p = sid_arena_alloc_uninit(a, bytes);
    if (a->zero) a->zero(a->owner, p, (bytes + 63) / 64 * 64);
    else memset(p, 0, (bytes + 63) / 64 * 64);
    return p;
}

void *sid_arena_alloc_uninit(sid_arena *a, size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    if (n > a->cap - a->used)
        sid_die("arena '%s' full: %zu bytes requested, %zu of %zu used", a->name ? a->name : "?", bytes,
                a->used, a->cap);
    void *p = a->base + a->used;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *sid_arena_floats(sid_arena *a, size_t n) { return sid_arena_alloc(a, n * sizeof(float)); }

float *sid_scratch_get(sid_scratch *s, size_t n) {
    if (n > s->cap) {
        free(s->data);
        s->cap = n + n / 4;
        s->data = sid_aligned_alloc(s->cap * sizeof(float));
    }
    return s->data;
}

void sid_scratch_free(sid_scratch *s) {
    free(s->data);
    s->data = NULL;
    s->cap = 0;
}
