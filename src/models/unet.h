// UNet2DConditionModel (diffusers), built from its config.json: the SD1.5 and
// SD2.x denoisers and sid's small built-in teacher are configs of this code.
// Parameter names are the diffusers keys.
#ifndef SID_UNET_H
#define SID_UNET_H
#include "models/layers.h"

enum { SID_UNET_MAX_LEVELS = 6 };

typedef struct {
    int in_channels, out_channels, sample_size;
    int levels, block_out_channels[SID_UNET_MAX_LEVELS];
    int layers_per_block;
    int down_attn[SID_UNET_MAX_LEVELS], up_attn[SID_UNET_MAX_LEVELS];  // CrossAttn*Block2D or plain
    int mid_block;  // 1: UNetMidBlock2DCrossAttn, 0: none (mid_block_type null)
    int heads[SID_UNET_MAX_LEVELS];  // attention heads per level (diffusers' attention_head_dim)
    int cross_attention_dim, transformer_layers, norm_num_groups;
    float norm_eps, freq_shift;
    int flip_sin_to_cos, use_linear_projection;
} sid_unet_config;

// Reads diffusers' unet/config.json; unsupported options are rejected with one line naming the key.
int sid_unet_config_load(sid_unet_config *c, const char *path);
int sid_unet_config_parse(sid_unet_config *c, const char *json_text, const char *path);
// Writes a config.json that diffusers' UNet2DConditionModel.from_pretrained accepts.
int sid_unet_config_save(const sid_unet_config *c, const char *path);

typedef struct sid_unet_level sid_unet_level;
typedef struct {
    sid_unet_config cfg;
    int temb_dim;
    sid_conv conv_in, conv_out;
    sid_linear time1, time2;
    sid_norm norm_out;
    sid_unet_level *down, *up;
    sid_resnet mid_res[2];
    sid_transformer mid_attn;
    struct sid_unet_split *split;  // how batches are split over threads (unet.c)
    int checkpointing;             // sid_unet_set_checkpointing
} sid_unet;

void sid_unet_decl(sid_unet *u, sid_params *ps, const sid_unet_config *c);

// The single-file (LDM / CompVis) name of one of our diffusers parameter names, without the
// "model.diffusion_model." prefix; ctx is the sid_unet_config. 0, or -1 for an unknown name.
// The one rename table for UNet checkpoints (docs/models.md, generalised to any
// layers_per_block).
int sid_unet_ldm_name(const void *cfg, const char *ours, char *buf, size_t cap);
void sid_unet_free(sid_unet *u);
// Parameters and tensors of a config, counted without allocating them (SD1.5: 859,520,964 in 686).
size_t sid_unet_param_count(const sid_unet_config *c, int *tensors);

typedef struct sid_unet_saved sid_unet_saved;
// x [N, in, H, W], t [N] timesteps (float), ctx [N, M, cross_attention_dim] -> eps [N, out, H, W].
// H and W must be divisible by 2^(levels-1). Every op runs on sid_be(c), on buffers in its memory
// (x, t, ctx, out, the parameters and c->act). Saves the activations backward needs in c->act and
// its host bookkeeping (the tape) with sid_ctx_host: c->meta, which a device arena requires.
// On the CPU backend with several OpenMP threads the batch is split into parts of a few samples,
// each run through the whole network with single-threaded ops (not for networks whose per-thread
// gradient copies would exceed 256 MB); results equal the unsplit pass up to float summation order.
// Other backends run the whole batch as one.
sid_unet_saved *sid_unet_forward(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                 const float *ctx, int N, int H, int W, int M);
// A paired pass, as for classifier-free guidance: x [N/2, in, H, W] and t [N/2] are shared by
// samples i and N/2 + i, which differ in ctx [N, M, dim] only; out [N, out, H, W]. The layers
// before the first cross-attention run once on the N/2 shared samples; backward takes dout [N]
// and gives dx [N/2] (the two halves' gradients added). N must be even.
sid_unet_saved *sid_unet_forward_pairs(const sid_ctx *c, const sid_unet *u, float *out, const float *x, const float *t,
                                       const float *ctx, int N, int H, int W, int M);
// Accumulates parameter gradients (unless the set is frozen) and, when non-NULL, dx [N, in, H, W]
// and dctx [N, M, cross_attention_dim].
void sid_unet_backward(const sid_ctx *c, const sid_unet *u, float *dx, float *dctx, const float *dout,
                       sid_unet_saved *s);
// How many parts a forward split its batch into (1: not split).
int sid_unet_saved_parts(const sid_unet_saved *s);
// Gradient checkpointing per block: with it on, forward keeps only the ResNet and transformer
// blocks' inputs and outputs, and backward recomputes each block's forward before its backward
// (about one more forward of those blocks per backward; the results are the same bits).
void sid_unet_set_checkpointing(sid_unet *u, int on);

#endif
