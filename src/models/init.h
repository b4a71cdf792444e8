// Fresh weights for a model trained from scratch (the built-in teacher), following
// PyTorch's defaults so training behaves as the reference's would: Linear/Conv weights
// and biases uniform in +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), norm scales 1
// and shifts 0, embeddings normal (token 0.02, position 0.01, as transformers' CLIP).
#ifndef SID_INIT_H
#define SID_INIT_H
#include "core/rng.h"
#include "models/params.h"

void sid_params_init_default(sid_params *ps, sid_rng *rng);

#endif
