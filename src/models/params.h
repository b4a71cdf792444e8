// A network's parameters: named tensors (diffusers names) carved out of one
// float block, with an optional gradient block of the same layout, so the
// optimiser, the EMA and checkpoints each see one array (llm.c style) while
// loading and saving see names and shapes.
#ifndef SID_PARAMS_H
#define SID_PARAMS_H
#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;
    int ndim;
    int64_t shape[4];
    size_t offset, numel;  // in floats, within the block
} sid_param;

struct sid_backend;
typedef struct {
    sid_param *items;
    int n, cap;
    size_t total;       // floats in the block
    float *data, *grad; // NULL until sid_params_alloc
    // Where data and grad live: NULL for host memory (loading, saving, the CPU trainers), else the
    // device they were moved to with sid_params_to_backend.
    const struct sid_backend *be;
} sid_params;

// Declares a parameter; returns its index. A duplicate name is a programming error (dies).
int sid_params_add(sid_params *ps, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
// Allocates the block (zero-filled) and, if with_grad, the gradient block.
void sid_params_alloc(sid_params *ps, int with_grad);
void sid_params_free(sid_params *ps);
// Moves the blocks into be's memory (uploaded; the gradient block zero-filled there) and frees the
// host copies. For the CPU backend or NULL it does nothing.
void sid_params_to_backend(sid_params *ps, const struct sid_backend *be);
int sid_params_find(const sid_params *ps, const char *name);  // -1 if absent
size_t sid_params_count(const sid_params *ps);                  // number of scalars (no padding)

static inline float *sid_p(const sid_params *ps, int i) { return ps->data + ps->items[i].offset; }
static inline float *sid_g(const sid_params *ps, int i) { return ps->grad ? ps->grad + ps->items[i].offset : NULL; }

// Maps one of our (diffusers) names to the name in a file, e.g. the LDM single-file naming;
// returns 0 and fills buf, or -1 when the parameter has no counterpart.
typedef int (*sid_rename_fn)(const char *ours, char *buf, size_t cap);

// The same with a context, for mappings that depend on the model config (UNet block numbering).
typedef int (*sid_rename_ctx_fn)(const void *ctx, const char *ours, char *buf, size_t cap);

// Loads every parameter from a safetensors file: the file's tensor is `prefix` + name (or
// rename(name) when rename is given). Missing tensors, shape mismatches and (when strict) tensors
// under the prefix that no parameter claims are rejected with one line naming the tensor.
// A [C, C] parameter accepts a [C, C, 1, 1] tensor and vice versa (linear vs 1x1 conv projections).
// A loaded tensor with a NaN, an infinity or a value beyond SID_WEIGHT_ABS_MAX is rejected too.
// `ignore` lists name suffixes that strict mode tolerates (e.g. "position_ids"), NULL-terminated.
int sid_params_load(sid_params *ps, const char *path, const char *prefix, sid_rename_fn rename, int strict,
                    const char *const *ignore);
int sid_params_load_mapped(sid_params *ps, const char *path, const char *prefix, sid_rename_ctx_fn rename,
                           const void *rename_ctx, int strict, const char *const *ignore);
// Loaded weights must be finite and below SID_WEIGHT_ABS_MAX in magnitude: a NaN or an infinity
// in a checkpoint (a diverged fine-tune, a broken conversion) would otherwise surface as NaN
// images or losses far from the cause. 1e4 is far above any trained weight of SD1.5 / SD2.1
// (UNet, VAE, CLIP; every one of them also ships as an fp16 file, so no weight there reaches
// fp16's 65504, and with weights near 1e4 fp16 inference, which those models run in, would
// overflow its activations), of the built-in teacher (largest |w| 1.24) and the classifier
// (1.14); beyond it a value is corrupt data (e.g. bytes read as the wrong dtype), not a weight.
#define SID_WEIGHT_ABS_MAX 1e4f
// n floats of tensor `tensor` from `what` (a file): 0, or -1 with one line such as
// "path: tensor 'conv_in.weight' has 3 NaN values". sid_params_load* check every tensor they load.
int sid_weights_check(const float *w, size_t n, const char *what, const char *tensor);
// Every parameter of ps (e.g. a generator before it is exported): 0, or -1 naming `what` and the
// first bad tensor. A set not yet allocated passes.
int sid_params_check_finite(const sid_params *ps, const char *what);

// Writes every parameter under its name, converted to dtype (F32, F16 or BF16), atomically.
int sid_params_save(const sid_params *ps, const char *path, sid_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif
