// One op set, several backends. A backend owns its memory and provides every
// op of ops.h with the same signature over its own pointers (host memory for
// the CPU, device memory for CUDA). The op tests and benchmarks run every
// compiled-in backend against the same references; the models, the pipeline and
// the trainers do not call through this table yet: they run the CPU ops
// directly on host memory (docs/engine.md).
#ifndef SID_BACKEND_H
#define SID_BACKEND_H
#include <stddef.h>

#include "ops/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// Every op of the table, once: the struct below and each backend's table are made from this list,
// so a backend cannot miss one (X(name) is applied to each).
#define SID_OPS(X) \
    X(linear_fwd) \
    X(linear_bwd) \
    X(conv2d_fwd) \
    X(conv2d_bwd) \
    X(groupnorm_fwd) \
    X(groupnorm_bwd) \
    X(groupnorm_silu_fwd) \
    X(groupnorm_silu_bwd) \
    X(layernorm_fwd) \
    X(layernorm_bwd) \
    X(act_fwd) \
    X(act_bwd) \
    X(geglu_fwd) \
    X(geglu_bwd) \
    X(softmax_fwd) \
    X(softmax_bwd) \
    X(attention_fwd) \
    X(attention_bwd) \
    X(upsample2x_fwd) \
    X(upsample2x_bwd) \
    X(pool2d_fwd) \
    X(pool2d_bwd) \
    X(concat_fwd) \
    X(concat_bwd) \
    X(transpose_fwd) \
    X(transpose_bwd) \
    X(fill) \
    X(add_fwd) \
    X(add_bwd) \
    X(scale_fwd) \
    X(scale_bwd) \
    X(mul_fwd) \
    X(mul_bwd) \
    X(add_channel_bias_fwd) \
    X(add_channel_bias_bwd) \
    X(timestep_embedding_fwd) \
    X(timestep_embedding_bwd) \
    X(embedding_fwd) \
    X(embedding_bwd) \
    X(mse_fwd) \
    X(mse_bwd) \
    X(mean_abs_fwd) \
    X(mean_abs_bwd) \
    X(dot_fwd) \
    X(dot_bwd) \
    X(cfg_combine_fwd) \
    X(cfg_combine_bwd) \
    X(add_noise_fwd) \
    X(add_noise_bwd) \
    X(x0_from_eps_fwd) \
    X(x0_from_eps_bwd) \
    X(clamp_fwd) \
    X(clamp_bwd) \
    X(dsm_loss_fwd) \
    X(dsm_loss_bwd) \
    X(sid_loss_fwd) \
    X(sid_loss_bwd) \
    X(nan_rows) \
    X(sanitize) \
    X(adam) \
    X(ema) \
    X(gather_rows)

#define SID_OP(name) __typeof__(sid_##name) *name

typedef struct sid_backend {
    const char *name;
    int (*available)(void);  // compiled in *and* usable here (a GPU is present)
    void *(*alloc)(size_t bytes);  // zero-filled
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*sync)(void);

#define X(name) SID_OP(name);
    SID_OPS(X)
#undef X
} sid_backend;

#undef SID_OP

extern const sid_backend sid_backend_cpu;
// be, or the CPU backend for NULL (callers that have not chosen a device).
static inline const sid_backend *sid_backend_or_cpu(const sid_backend *be) { return be ? be : &sid_backend_cpu; }
// An activation arena in be's memory (host memory for the CPU or NULL): cap bytes, zero-filled
// allocations through be->fill, released through be->free.
struct sid_arena;
void sid_backend_arena_init(struct sid_arena *a, const sid_backend *be, const char *name, size_t cap_bytes);
// The size of a device arena: $SID_DEVICE_ARENA_MB when set (e.g. small on the guard device, whose
// per-op protection changes cost time in proportion to its mappings), else dflt.
size_t sid_device_arena_bytes(size_t dflt);
// Backends compiled into this build, CPU first; NULL past the end.
const sid_backend *sid_backend_at(int i);
// By name ("cpu", "cuda"); NULL with an error message when unknown or unavailable.
const sid_backend *sid_backend_by_name(const char *name);

#ifdef __cplusplus
}
#endif

#endif
