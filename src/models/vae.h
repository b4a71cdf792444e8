// The Stable Diffusion VAE (diffusers AutoencoderKL): every parameter of the encoder,
// quant_conv, post_quant_conv and decoder is declared under diffusers' names so a real
// vae/diffusion_pytorch_model.safetensors loads strictly; the decoder (latents -> image) and
// the encoder (image -> mean, logvar) run forward in fp32. No backward: nothing in SiD
// differentiates through the VAE.
//
// Decoder: z = latents / scaling_factor -> post_quant_conv (1x1) -> conv_in -> mid (resnet,
// 1-head attention over the H*W tokens + residual, resnet) -> up blocks (layers_per_block + 1
// resnets, then nearest 2x + 3x3 conv except in the last) -> GroupNorm, SiLU, conv_out.
// Encoder: conv_in -> down blocks (layers_per_block resnets, then pad (0,1,0,1) + 3x3 stride-2
// conv except in the last) -> mid -> GroupNorm, SiLU, conv_out (2 x latent channels) -> quant_conv.
// All GroupNorms use eps 1e-6; no time embedding anywhere.
#ifndef SID_MODELS_VAE_H
#define SID_MODELS_VAE_H
#include <stddef.h>

#include "models/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { SID_VAE_MAX_BLOCKS = 8 };

typedef struct {
    int in_channels, out_channels, latent_channels, layers_per_block, norm_groups;
    int n_blocks, block_out[SID_VAE_MAX_BLOCKS];
    float scaling_factor;
    int use_quant_conv, use_post_quant_conv, mid_attention;
} sid_vae_config;

// SD1.x / SD2.x vae/config.json (block_out_channels [128, 256, 512, 512], 2 layers per block, ...).
sid_vae_config sid_vae_config_sd(void);
// Reads a diffusers AutoencoderKL config.json. block_out_channels is required; other absent keys take
// the class defaults (scaling_factor 0.18215, ...); only DownEncoderBlock2D / UpDecoderBlock2D blocks, act_fn "silu" and no
// shift_factor are supported; anything else is a one-line error naming the file and key.
int sid_vae_config_load(sid_vae_config *c, const char *config_json_path);
// The same from the JSON text (path only names it in messages).
int sid_vae_config_parse(sid_vae_config *c, const char *json_text, const char *path);

typedef struct {
    sid_resnet *resnets;
    int n_resnets, has_sample;
    sid_conv sample;  // downsamplers.0.conv (3x3 stride 2, pad 0) or upsamplers.0.conv (3x3, pad 1)
} sid_vae_block;

typedef struct {
    sid_resnet res[2];
    sid_norm norm;  // attentions.0.group_norm
    sid_attn attn;  // attentions.0.to_q / to_k / to_v / to_out.0, one head
    int has_attn;
} sid_vae_mid;

typedef struct {
    sid_conv conv_in, conv_out;
    sid_vae_block *blocks;  // down_blocks or up_blocks, in diffusers order
    sid_vae_mid mid;
    sid_norm norm_out;
} sid_vae_coder;

typedef struct {
    sid_vae_config cfg;
    sid_vae_coder enc, dec;
    sid_conv quant_conv, post_quant_conv;
} sid_vae;

void sid_vae_decl(sid_vae *v, sid_params *ps, const sid_vae_config *c);
void sid_vae_free(sid_vae *v);
// Parameters of a config, counted without allocating them; encoder (with quant_conv) and decoder
// (with post_quant_conv) apart. SD: 34,163,664 + 49,490,199 = 83,653,863. Either pointer may be NULL.
size_t sid_vae_param_count(const sid_vae_config *c, size_t *encoder, size_t *decoder);

// Loads vae/diffusion_pytorch_model.safetensors strictly; `prefix` goes in front of every name (NULL
// or ""). Old diffusers files (e.g. the 2022 SD1.5 upload) name the mid attention
// query/key/value/proj_attn instead of to_q/to_k/to_v/to_out.0; both are accepted. A file in the
// single-file (LDM) naming (recognised by "<prefix>decoder.mid.block_1.conv1.weight") loads through
// sid_vae_ldm_name: prefix "first_stage_model." for a whole SD checkpoint, NULL for a stand-alone
// LDM VAE file (e.g. vae-ft-mse-840000-ema-pruned.safetensors).
int sid_vae_load(sid_params *ps, const char *path, const char *prefix);

// The single-file (LDM / CompVis AutoencoderKL) name of one of our diffusers parameter names, without
// the "first_stage_model." prefix; cfg is the sid_vae_config (only n_blocks is read). 0, or -1 for an
// unknown name. For any number of blocks and layers (docs/models.md): down_blocks.i.resnets.j
// -> down.i.block.j, downsamplers.0 -> downsample, decoder up_blocks.i -> up.{n_blocks-1-i} (reversed)
// with upsamplers.0 -> upsample, mid_block.resnets.{0,1} -> mid.block_{1,2}, mid_block.attentions.0.
// {group_norm,to_q,to_k,to_v,to_out.0} -> mid.attn_1.{norm,q,k,v,proj_out} (LDM stores those
// weights as [C, C, 1, 1] 1x1 convs; loading accepts either shape), conv_shortcut -> nin_shortcut,
// conv_norm_out -> norm_out; conv_in, conv_out, quant_conv, post_quant_conv keep their names.
int sid_vae_ldm_name(const void *cfg, const char *ours, char *buf, size_t cap);

// Latent size of an H x W image (H, W >= 2 at each downsampling; SD: H/8 x W/8).
void sid_vae_latent_size(const sid_vae_config *c, int H, int W, int *h, int *w);
// Image size decoded from an h x w latent: (h, w) * 2^(n_blocks - 1).
void sid_vae_image_size(const sid_vae_config *c, int h, int w, int *H, int *W);
// Arena bytes (c->act) that decode / encode need, at most, for one batch (they run one sample at a time
// and release everything before returning).
size_t sid_vae_decode_workspace(const sid_vae_config *c, int h, int w);
size_t sid_vae_encode_workspace(const sid_vae_config *c, int H, int W);

// Both run on c's backend: the parameters, the arena and every tensor argument are in its memory.
// image_out [B, out_channels, H, W] (sid_vae_image_size) = decoder(post_quant_conv(latents / scaling_factor)):
// diffusers' vae.decode(latents / scaling_factor).sample, roughly in [-1, 1]; latents [B, latent, h, w].
void sid_vae_decode(const sid_ctx *c, const sid_vae *v, float *image_out, const float *latents, int B, int h, int w);
// pixels [B, in_channels, H, W] in [-1, 1] -> mean, logvar [B, latent, h, w] (sid_vae_latent_size):
// diffusers' vae.encode(pixels).latent_dist.{mean, logvar}, logvar clamped to [-30, 20].
// Training latents are (mean + exp(logvar / 2) * noise) * scaling_factor.
void sid_vae_encode(const sid_ctx *c, const sid_vae *v, float *mean, float *logvar, const float *pixels, int B, int H,
                    int W);

#ifdef __cplusplus
}
#endif

#endif
