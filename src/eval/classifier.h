// The evaluation classifier: a small fixed CNN over 32x32 grey images in
// [-1, 1] (Fashion-MNIST as data/fmnist.h lays it out). Its 128 penultimate
// features give the FID (eval/fid.h) and its predictions the alignment.
//
//   conv3x3 1->32            32x32   GN(8) SiLU
//   conv3x3 32->64 stride 2  16x16   GN(8) SiLU
//   conv3x3 64->64           16x16   GN(8) SiLU
//   conv3x3 64->128 stride 2  8x8    GN(8) SiLU
//   conv3x3 128->128 stride 2 4x4    GN(8) SiLU
//   flatten 2048 -> linear 128 -> SiLU = features -> linear 10 = logits
//
// GroupNorm normalises each image on its own, so a prediction never depends on
// the rest of its batch.
//
// A second architecture, an MLP on the raw pixels, gives the evaluation panel a feature space of
// another kind (no convolutions, no normalisation), trained apart from the CNN:
//
//   flatten 1024 -> linear 512 SiLU -> linear 256 SiLU -> linear 128 SiLU = features -> linear 10
//
// (parameters hid0.*, hid1.*, fc1.*, fc2.*; shipped as models/features-mlp). Parameters live in one params.h block (names as
// below), saved as DIR/classifier.safetensors next to DIR/config.json.
#ifndef SID_EVAL_CLASSIFIER_H
#define SID_EVAL_CLASSIFIER_H
#include <cJSON.h>
#include <stdint.h>

#include "core/arena.h"
#include "models/layers.h"
#include "train/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SID_CLS_ARCH "sid-fmnist-cnn-v1"
#define SID_CLS_ARCH_MLP "sid-fmnist-mlp-v1"
#define SID_CLS_MLP_DIR "models/features-mlp"
#define SID_CLS_DEFAULT_DIR "models/classifier"
enum {
    SID_CLS_RES = 32,       // input: [N, 1, 32, 32]
    SID_CLS_STAGES = 5,     // conv + GN + SiLU stages
    SID_CLS_FEATURES = 128, // penultimate width
    SID_CLS_CLASSES = 10,
    SID_CLS_GROUPS = 8,
};

typedef enum { SID_CLS_CNN = 0, SID_CLS_MLP = 1 } sid_cls_arch;

typedef struct {
    sid_cls_arch arch;
    sid_params ps;  // CNN: conv{i}.weight/.bias, norm{i}.weight/.bias (i = 0..4), fc1.*, fc2.*; MLP: hid0/1.*, fc1.*, fc2.*
    sid_linear hid[2];  // the MLP's hidden layers
    sid_conv conv[SID_CLS_STAGES];
    sid_norm norm[SID_CLS_STAGES];
    sid_linear fc1, fc2;
} sid_classifier;

// Declares the architecture and allocates its block, zero-filled (with a gradient block when with_grad).
void sid_classifier_init_arch(sid_classifier *c, sid_cls_arch arch, int with_grad);
void sid_classifier_init(sid_classifier *c, int with_grad);  // the CNN
const char *sid_classifier_arch_name(sid_cls_arch arch);
// "cnn" or "mlp" -> the architecture; -1 with an error otherwise.
int sid_classifier_arch_parse(const char *name, sid_cls_arch *arch);
// PyTorch's default initialisation (U(+-1/sqrt(fan_in)) for conv and linear weights and biases,
// GN weight 1, bias 0), drawn from a Philox stream of seed.
void sid_classifier_init_random(sid_classifier *c, uint64_t seed);
void sid_classifier_free(sid_classifier *c);

// DIR/config.json must name SID_CLS_ARCH or SID_CLS_ARCH_MLP; DIR/classifier.safetensors is loaded strictly. c is
// initialised here (no gradient block). On failure c is left freed and the error names the file.
int sid_classifier_load(sid_classifier *c, const char *dir);
// Writes DIR/classifier.safetensors (F16 or F32) and DIR/config.json ({"architecture": ..., the
// fixed sizes, class names, plus every item of info, which may be NULL}), each atomically. DIR is
// created when missing.
int sid_classifier_save(const sid_classifier *c, const char *dir, sid_dtype dtype, const cJSON *info);

// ---- forward / backward with saved activations
typedef struct {
    int B;
    const float *x;                    // the input, not copied: must outlive backward
    float *h[SID_CLS_STAGES];          // conv outputs (MLP: h[0], h[1] the hidden layers' linear outputs)
    float *n[SID_CLS_STAGES];          // GN outputs
    float *a[SID_CLS_STAGES];          // SiLU outputs (stage inputs of the next conv; MLP: a[0], a[1])
    sid_norm_saved s[SID_CLS_STAGES];  // GN statistics
    float *pre, *feat, *logits;        // fc1 output [B,128], SiLU(pre) = features, fc2 output [B,10]
} sid_classifier_acts;

// Bytes of activation arena one forward + backward of B images needs (the CNN's, more than the MLP's).
size_t sid_classifier_arena_bytes(int B);
// x [B, 1, 32, 32] -> acts (in the arena act).
void sid_classifier_forward(const sid_classifier *c, sid_arena *act, const float *x, int B, sid_classifier_acts *a);
// Accumulates parameter gradients (when c has a gradient block) and, when dx is not NULL, the input
// gradient into dx [B, 1, 32, 32], from dlogits [B, 10]. Temporaries are released on return.
void sid_classifier_backward(const sid_classifier *c, sid_arena *act, const sid_classifier_acts *a,
                             const float *dlogits, float *dx);

// Mean softmax cross-entropy of B rows of C logits against labels. dlogits (NULL skips) is
// WRITTEN (not accumulated) with its gradient, (softmax - onehot) / B. *correct (NULL skips) gets
// how many rows have their label as the arg-max.
double sid_softmax_xent(float *dlogits, const float *logits, const int32_t *labels, int B, int C, int *correct);

// ---- training: Adam over the whole block
typedef struct {
    sid_adam_cfg adam;
    float *m, *v;
    int64_t step;
    sid_arena act;
    int max_batch;
} sid_classifier_trainer;
void sid_classifier_trainer_init(sid_classifier_trainer *t, const sid_classifier *c, int max_batch,
                                 const sid_adam_cfg *adam);
void sid_classifier_trainer_free(sid_classifier_trainer *t);
// One step on B <= max_batch images: zero gradients, forward, cross-entropy, backward, Adam at lr.
// Returns the batch's mean loss; *correct (NULL skips) gets its count of right predictions.
double sid_classifier_train_step(sid_classifier *c, sid_classifier_trainer *t, const float *x, const int32_t *labels,
                                 int B, float lr, int *correct);

// ---- inference in batches (any N, no gradient): each output may be NULL.
// feat [N, 128] penultimate features, logits [N, 10], pred [N] arg-max classes.
void sid_classifier_run(const sid_classifier *c, const float *x, int N, float *feat, float *logits, int32_t *pred);
// Fraction of the N images classified as labels[i].
double sid_classifier_accuracy(const sid_classifier *c, const float *x, const int32_t *labels, int N);

#ifdef __cplusplus
}
#endif

#endif
