// Text to image with a loaded Stable Diffusion model (src/models/checkpoint.h): prompts through
// the tokenizer and text encoder, DDIM with classifier-free guidance, and the VAE when the model
// has one (the built-in teacher works in pixel space and has none).
#ifndef SID_TEXT2IMG_H
#define SID_TEXT2IMG_H
#include <stdint.h>

#include "io/tokenizer.h"
#include "models/checkpoint.h"
#include "ops/backend.h"

typedef struct {
    sid_sd_model *m;
    sid_tokenizer *tok;
    int max_len;  // tokens per prompt (the tokenizer's model_max_length)
    const sid_backend *be;  // where the weights and every buffer of a run live (NULL: the CPU)
    int truncated;  // prompts encoded so far that were cut to max_len tokens (callers warn, as diffusers does)
} sid_text2img;

// Loads the model folder (UNet, text encoder, tokenizer, scheduler; the VAE when listed).
int sid_text2img_open(sid_text2img *p, const char *model_dir);
// The same with the weights moved to be (NULL or the CPU: host memory). On a device, encode's ctx
// is device memory and generate runs there whole (text encoder, generator, VAE; the images come
// back to the host); sample (DDIM) runs on the CPU only so far and refuses a device.
int sid_text2img_open_on(sid_text2img *p, const char *model_dir, const sid_backend *be);
void sid_text2img_close(sid_text2img *p);

// ctx [n, max_len, width]: the text encoder's output for each prompt ("" = unconditional).
int sid_text2img_encode(sid_text2img *p, const char *const *prompts, int n, float *ctx);

// Generates one image per prompt: out [n, C, H, W] in [-1, 1] (pixels after the VAE, if any),
// noise from (seed, offset 0), DDIM with `steps` steps (trailing spacing) and guidance `cfg`
// (1 = no unconditional pass). Images are generated in chunks of `chunk`.
int sid_text2img_sample(sid_text2img *p, const char *const *prompts, int n, uint64_t seed, int steps,
                        float cfg, int chunk, float *out);
// A distilled generator folder (sid_generator.json beside the model): one-step (or few-step)
// generation, out [n, C, H, W] (pixels after the VAE, if any). 1 if the folder is a generator, 0 if not, -1 on error.
int sid_text2img_is_generator(const char *model_dir, int *t_init, int *steps);
int sid_text2img_generate(sid_text2img *p, const char *const *prompts, int n, uint64_t seed, int t_init, int steps,
                          float *out);
// The same with image i's noise from its own stream (seeds[i], offset 0), so an image depends on
// its seed only, not on its batch: what an evaluation that resumes or splits its work needs.
int sid_text2img_generate_seeded(sid_text2img *p, const char *const *prompts, int n, const uint64_t *seeds,
                                 int t_init, int steps, float *out);
// Shape of one generated image.
void sid_text2img_image_shape(const sid_text2img *p, int *C, int *H, int *W);

#endif
