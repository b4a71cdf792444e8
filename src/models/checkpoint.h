// A whole Stable Diffusion 1.x / 2.x model: UNet, CLIP text encoder and VAE with their configs,
// the tokenizer folder and the training noise schedule, loaded from either form the models ship
// in (sd-architecture.md 5.2-5.6, 6):
//
//   * a diffusers folder: model_index.json (StableDiffusionPipeline) and unet/, text_encoder/, vae/,
//     tokenizer/, scheduler/, each weights file named diffusion_pytorch_model.safetensors /
//     model.safetensors or their ".fp16.safetensors" variant (sharded weights and pickled .bin
//     files are rejected with a message saying so);
//   * a single-file LDM checkpoint (.safetensors): UNet under "model.diffusion_model." (LDM names),
//     VAE under "first_stage_model." (LDM names), and the text encoder under
//     "cond_stage_model.transformer." (SD1, transformers names) or "cond_stage_model.model." (SD2,
//     open_clip names with the fused in_proj). SD1 vs SD2 comes from the keys; the configs are the
//     built-in SD1.5 / SD2.1-base ones unless a config folder overrides them; EMA copies, schedule
//     buffers and position_ids are ignored.
//
// Every failure is one line naming the file and the problem: a missing file or folder, an unknown
// _class_name, an unsupported scheduler, a weights file that does not fit its config.
#ifndef SID_MODELS_CHECKPOINT_H
#define SID_MODELS_CHECKPOINT_H
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

#ifdef __cplusplus
extern "C" {
#endif

// Components, for the `components` and `with_grad` masks.
enum { SID_SD_UNET = 1u, SID_SD_TEXT = 2u, SID_SD_VAE = 4u, SID_SD_ALL = 7u };

typedef struct {
    sid_unet_config unet_cfg;
    sid_clip_config clip_cfg;
    sid_vae_config vae_cfg;
    int sd_version;       // 1 or 2
    unsigned components;  // what was loaded (SID_SD_* mask); the others are left empty
    sid_params unet_ps, clip_ps, vae_ps;
    sid_unet unet;
    sid_clip clip;
    sid_vae vae;
    // The diffusers tokenizer/ folder (vocab.json, merges.txt, ...) for sid_tokenizer_load; "" when
    // there is none (single files carry no tokenizer: use a config folder's, or a stock CLIP one,
    // padded with 49407 for SD1 and 0 for SD2).
    char tokenizer_dir[1024];
    // The training noise schedule (scheduler/scheduler_config.json; SD's values for single files):
    // betas "scaled_linear" from beta_start to beta_end over train_timesteps steps.
    double beta_start, beta_end;
    int train_timesteps;
    char prediction_type[32];  // "epsilon" or "v_prediction"
    // Text encoder layers to run for the conditioning (sid_clip_forward's n_layers): all of the
    // config's, which for SD2 already is OpenCLIP's penultimate layer (23 of 24).
    int clip_skip_layers;
} sid_sd_model;

// Loads the components in `components` (SID_SD_UNET | SID_SD_TEXT | SID_SD_VAE) from a diffusers
// folder or a single-file .safetensors checkpoint into a zeroed or freed m. `with_grad` is the mask
// of components that get a gradient block (the VAE has no backward and never gets one). The configs
// of the loaded components, the schedule, tokenizer_dir (with SID_SD_TEXT) and sd_version are filled.
// On failure m is left freed, with one line in sid_error().
int sid_sd_load(sid_sd_model *m, const char *path, unsigned components, unsigned with_grad);
// The same with a config folder in diffusers' layout for a single-file checkpoint: each of its
// unet/config.json, text_encoder/config.json, vae/config.json, scheduler/scheduler_config.json and
// tokenizer/ that exists replaces the built-in one (e.g. the SD2.x 768-v model: a v_prediction
// scheduler config). NULL: built-ins only. A config folder given with a diffusers folder is an error.
int sid_sd_load_with_config(sid_sd_model *m, const char *path, const char *config_dir, unsigned components,
                            unsigned with_grad);
void sid_sd_free(sid_sd_model *m);

// The built-in configs a single file gets for sd_version 1 (SD1.5's) or 2 (SD2.1-base's: per-level
// heads [5, 10, 20, 20], linear projections, a 1024-wide context; the 23-layer OpenCLIP text tower);
// any pointer may be NULL. -1 for another version.
int sid_sd_default_configs(int sd_version, sid_unet_config *unet, sid_clip_config *clip, sid_vae_config *vae);

// SD1 or SD2 from a single file's keys (sd-architecture.md 5.3): the open_clip token embedding
// "cond_stage_model.model.token_embedding.weight" means 2, the transformers one under
// "cond_stage_model.transformer." 1; without a text encoder, the UNet's first proj_in tells (a
// Linear [C, C] is SD2, a 1x1 conv [C, C, 1, 1] SD1). -1 with an error when neither is there.
int sid_sd_single_file_version(const char *path);

// Reads a diffusers scheduler config into m's schedule fields: beta_start, beta_end,
// num_train_timesteps, beta_schedule (only "scaled_linear"), prediction_type ("epsilon", the default,
// or "v_prediction"); trained_betas must be null, steps_offset and the sampling options are ignored.
// Absent keys take diffusers' class defaults, as diffusers does.
int sid_sd_scheduler_load(sid_sd_model *m, const char *path);

#ifdef __cplusplus
}
#endif

#endif
