#include "arena.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

void sid_arena_init(sid_arena *a, const char *name, size_t cap) {
    a->base = sid_aligned_alloc(cap);
    a->cap = (cap + 63) / 64 * 64;
    a->used = a->peak = 0;
    a->name = name;
}

void sid_arena_free(sid_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

void *sid_arena_alloc(sid_arena *a, size_t bytes) {
    void *p = sid_arena_alloc_uninit(a, bytes);
    memset(p, 0, (bytes + 63) / 64 * 64);
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
