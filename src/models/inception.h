// Inception-v3 as FID uses it: the TF "2015-12-05" graph in pytorch-fid's port (FIDInceptionA/C/E_1/E_2:
// branch average pools that do not count the padding, a max pool in the last block), up to the
// 2048-d global average pool ("pool3"). Forward only: it is an evaluation network.
//
// Weights: pytorch-fid's state dict (pt_inception-2015-12-05-6726825d.pth) converted to safetensors
// with tools/reference/convert_fid_inception.py, names kept: "<conv>.conv.weight" and
// "<conv>.bn.{weight,bias,running_mean,running_var}" for every BasicConv2d (Conv2d_1a_3x3 ...
// Mixed_7c.branch_pool); fc.* and num_batches_tracked are ignored. At load each batch norm
// (eval mode, eps 1e-3) is folded into its convolution, and the input normalisation (x - 128) / 128
// of the protocol into the first one (it has no padding, so the fold is exact in real arithmetic).
#ifndef SID_MODELS_INCEPTION_H
#define SID_MODELS_INCEPTION_H
#include "models/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SID_INCEPTION_FEATURES = 2048, SID_INCEPTION_SIZE = 299 };

typedef struct sid_inception sid_inception;

// Loads and folds the weights and moves them to be (NULL: the CPU). NULL with a one-line error
// (missing file, missing tensor, wrong shape, non-finite value) naming the file.
sid_inception *sid_inception_load(const char *path, const sid_backend *be);
// Random weights of the same architecture (tests and benchmarks): every conv weight ~ N(0, 2/fan_in)
// and batch-norm statistics drawn so that no fold is the identity.
sid_inception *sid_inception_random(uint64_t seed, const sid_backend *be);
void sid_inception_free(sid_inception *m);
// The parameter set before folding, in the file's names (for writing test weights): the caller
// fills its data and passes it to sid_inception_from_params, which takes ownership.
void sid_inception_decl_file(sid_params *ps);
sid_inception *sid_inception_from_params(sid_params *file_params, const sid_backend *be, const char *what);

// pixels [N, 3, S, S] on the context's backend, RGB in [0, 255] (S >= 75; 299 in the protocol)
// -> features [N, 2048] (backend memory). Intermediate buffers come from c->act, which the
// caller resets between batches; c->ps is ignored (the model holds its own parameters).
int sid_inception_forward(const sid_ctx *c, const sid_inception *m, float *features, const float *pixels, int N,
                          int S);
// Activation bytes one forward takes per image at side S (to size the arena).
size_t sid_inception_act_bytes(int S);

#ifdef __cplusplus
}
#endif

#endif
