// Optimiser and parameter averages over one flat parameter block (llm.c style:
// all parameters of a network live in one array, so each update is one loop).
#ifndef SID_OPTIM_H
#define SID_OPTIM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float lr, beta1, beta2, eps;
    float weight_decay;
    int decoupled;  // 1: AdamW (p *= 1 - lr*wd), 0: L2 added to the gradient as torch.optim.Adam
} sid_adam_cfg;

// PyTorch Adam/AdamW (non-amsgrad); step counts from 1. m may be NULL when beta1 == 0 (SiD's default).
void sid_adam_step(float *p, const float *g, float *m, float *v, size_t n, const sid_adam_cfg *c, int64_t step);

// Gradient sanitising as the SiD reference: NaN -> 0, +inf -> posinf, -inf -> neginf.
// Returns how many values were replaced.
size_t sid_nan_to_num(float *x, size_t n, float posinf, float neginf);

// ema <- beta*ema + (1-beta)*p
void sid_ema_update(float *ema, const float *p, size_t n, float beta);
// EDM/SiD EMA decay for a batch of `batch` images: half-life min(halflife, rampup*nimg) images.
// rampup <= 0 disables the ramp. With nimg = 0 and a ramp, beta = 0 (the EMA becomes a copy).
double sid_ema_beta(double batch, double halflife_img, double rampup, double nimg);

#ifdef __cplusplus
}
#endif

#endif
