// A trainer's state dump (the teacher's and SiD-LSG's): named float blocks wherever they live
// (host memory, or a device's, staged through the host), integer tensors from the host, and
// counters as string metadata, in one safetensors file written atomically. Loading checks each
// block's presence and size, checks weights where asked (a diverged state must not
// resume), fills device blocks through the host, and reads the counters; every failure is one
// line naming the file and the tensor or key.
#ifndef SID_TRAIN_STATE_H
#define SID_TRAIN_STATE_H
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "ops/backend.h"

typedef struct {
    const char *name;
    float *data;       // in be's memory; NULL: the block is absent (e.g. Adam's m at beta1 = 0)
    size_t n;          // floats
    int check_weights;  // on load: finite and within SID_WEIGHT_ABS_MAX, as loaded weights (models/params.h)
} sid_state_block;

typedef struct {
    const char *name;
    const char *alias;  // an older name the key was written under, or NULL
    uint64_t value;
} sid_state_counter;

// Writes blocks (from be's memory), the int32 tensors ints (host memory; may be NULL) and the counters.
int sid_state_save(const char *path, const sid_backend *be, const sid_state_block *blocks, int nb,
                   const sid_st_entry *ints, int ni, const sid_state_counter *counters, int nc);

// Fills blocks (into be's memory) and counters; ints[i].data must point to host buffers of the
// given shape's size, filled from int32 tensors of the same name and element count.
int sid_state_load(const char *path, const sid_backend *be, const sid_state_block *blocks, int nb, sid_st_entry *ints,
                   int ni, sid_state_counter *counters, int nc);

#endif
