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

#define SID_OP(name) __typeof__(sid_##name) *name

typedef struct sid_backend {
    const char *name;
    int (*available)(void);  // compiled in *and* usable here (a GPU is present)
    void *(*alloc)(size_t bytes);  // zero-filled
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*sync)(void);

    SID_OP(linear_fwd);
    SID_OP(linear_bwd);
    SID_OP(conv2d_fwd);
    SID_OP(conv2d_bwd);
    SID_OP(groupnorm_fwd);
    SID_OP(groupnorm_bwd);
    SID_OP(layernorm_fwd);
    SID_OP(layernorm_bwd);
    SID_OP(act_fwd);
    SID_OP(act_bwd);
    SID_OP(geglu_fwd);
    SID_OP(geglu_bwd);
    SID_OP(softmax_fwd);
    SID_OP(softmax_bwd);
    SID_OP(attention_fwd);
    SID_OP(attention_bwd);
    SID_OP(upsample2x_fwd);
    SID_OP(upsample2x_bwd);
    SID_OP(concat_fwd);
    SID_OP(concat_bwd);
    SID_OP(transpose_fwd);
    SID_OP(transpose_bwd);
    SID_OP(fill);
    SID_OP(add_fwd);
    SID_OP(add_bwd);
    SID_OP(scale_fwd);
    SID_OP(scale_bwd);
    SID_OP(mul_fwd);
    SID_OP(mul_bwd);
    SID_OP(add_channel_bias_fwd);
    SID_OP(add_channel_bias_bwd);
    SID_OP(timestep_embedding_fwd);
    SID_OP(timestep_embedding_bwd);
    SID_OP(embedding_fwd);
    SID_OP(embedding_bwd);
    SID_OP(mse_fwd);
    SID_OP(mse_bwd);
    SID_OP(mean_abs_fwd);
    SID_OP(mean_abs_bwd);
    SID_OP(dot_fwd);
    SID_OP(dot_bwd);
    SID_OP(cfg_combine_fwd);
    SID_OP(cfg_combine_bwd);
    SID_OP(add_noise_fwd);
    SID_OP(add_noise_bwd);
    SID_OP(x0_from_eps_fwd);
    SID_OP(x0_from_eps_bwd);
    SID_OP(clamp_fwd);
    SID_OP(clamp_bwd);
    SID_OP(dsm_loss_fwd);
    SID_OP(dsm_loss_bwd);
    SID_OP(sid_loss_fwd);
    SID_OP(sid_loss_bwd);
    SID_OP(nan_rows);
    SID_OP(sanitize);
    SID_OP(adam);
    SID_OP(ema);
    SID_OP(gather_rows);
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
