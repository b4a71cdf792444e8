#include "ops/backend.h"

#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "ops/guard/guard.h"

// Atomic: the UNet runs ops on several threads side by side (unet.c, the batch split).
static double ops_flops;
double sid_ops_flops(void) { return ops_flops; }
void sid_ops_flops_add(double flops) {
#pragma omp atomic
    ops_flops += flops;
}

static int cpu_available(void) { return 1; }
static void *cpu_alloc(size_t bytes) { return sid_calloc(bytes); }
static void cpu_free(void *p) { free(p); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { memcpy(dst, src, bytes); }
static void cpu_sync(void) {}

#define X(name) .name = sid_##name,
const sid_backend sid_backend_cpu = {
    .name = "cpu", .available = cpu_available, .alloc = cpu_alloc, .free = cpu_free,
    .upload = cpu_copy, .download = cpu_copy, .sync = cpu_sync,
    SID_OPS(X)
};
#undef X

static void backend_zero(void *owner, void *p, size_t bytes) {
    ((const sid_backend *)owner)->fill(p, 0.0f, bytes / sizeof(float));
}
static void backend_release(void *owner, void *p) { ((const sid_backend *)owner)->free(p); }

size_t sid_device_arena_bytes(size_t dflt) {
    const char *e = getenv("SID_DEVICE_ARENA_MB");
    char *end = NULL;
    const long long mb = e ? strtoll(e, &end, 10) : 0;
    if (e && (!end || *end || mb < 1 || mb > (1ll << 24))) sid_die("SID_DEVICE_ARENA_MB=%s: expected megabytes (1 to 2^24)", e);
    return e ? (size_t)mb << 20 : dflt;
}

void sid_backend_arena_init(sid_arena *a, const sid_backend *be, const char *name, size_t cap) {
    if (!be || be == &sid_backend_cpu) {
        sid_arena_init(a, name, cap);
        return;
    }
    // The guard device is for tests: its arenas are real memory (poisoned below), so they are kept
    // to 512 MiB unless SID_DEVICE_ARENA_MB says otherwise.
    if (be == &sid_backend_guard && !getenv("SID_DEVICE_ARENA_MB") && cap > ((size_t)512 << 20)) cap = (size_t)512 << 20;
    cap = (cap + 63) / 64 * 64;
    // on the guard device NaN, so that an output read before any op wrote it shows up
    void *base = be == &sid_backend_guard ? sid_guard_alloc_poisoned(cap) : be->alloc(cap);
    if (!base) sid_die("%s: cannot allocate %zu bytes on the %s device", name, cap, be->name);
    sid_arena_init_with(a, name, base, cap, (void *)be, backend_zero, backend_release);
}

// The guard device (ops/guard) is always compiled: the CPU kernels behind GPU-like memory rules.
#ifdef SID_HAVE_CUDA
extern const sid_backend sid_backend_cuda;
static const sid_backend *const backends[] = {&sid_backend_cpu, &sid_backend_guard, &sid_backend_cuda};
#else
static const sid_backend *const backends[] = {&sid_backend_cpu, &sid_backend_guard};
#endif

const sid_backend *sid_backend_at(int i) {
    return i >= 0 && i < (int)(sizeof backends / sizeof backends[0]) ? backends[i] : NULL;
}

const sid_backend *sid_backend_by_name(const char *name) {
    for (int i = 0; sid_backend_at(i); i++)
        if (strcmp(sid_backend_at(i)->name, name) == 0) {
            if (sid_backend_at(i)->available()) return sid_backend_at(i);
            sid_set_error("backend '%s': compiled in but not usable on this machine", name);
            return NULL;
        }
    sid_set_error("backend '%s': not compiled into this build (see sid info)", name);
    return NULL;
}
