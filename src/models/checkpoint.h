// A whole Stable Diffusion 1.x / 2.x model: UNet, CLIP text encoder and VAE with their configs,
// the tokenizer folder and the training noise schedule, loaded from either form the models ship
// in (docs/models.md):
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
// _class_name, an unsupported scheduler or scheduler option, a weights file that does not fit its
// config or holds a NaN, an infinity or an absurd magnitude (sid_params_check_values).
#ifndef SID_MODELS_CHECKPOINT_H
#define SID_MODELS_CHECKPOINT_H
#include "diffusion/ddim.h"
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
    // How DDIM samples this model: what DDIMScheduler.from_config(scheduler config) would do, absent
    // keys taking DDIMScheduler's defaults (clip_sample true!); for single files without a config
    // folder SD1.5's / SD2.1-base's shipped values, i.e. sid_ddim_sd(). sid_sd_ddim_config() turns
    // them into a sid_ddim_config.
    sid_spacing timestep_spacing;  // default "leading"
    int steps_offset;              // default 0; added to "leading" timesteps
    int set_alpha_to_one;          // default 1: the last step lands on alpha 1, else on ab[0]
    // clip_sample: x0 predictions are clamped to [-clip_sample_range, clip_sample_range] (DDIM and
    // DDPM step()); the generator and the SiD phases apply it with the clamp op (ops.h).
    int clip_sample;          // default 1
    float clip_sample_range;  // default 1
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

// SD1 or SD2 from a single file's keys (docs/models.md): the open_clip token embedding
// "cond_stage_model.model.token_embedding.weight" means 2, the transformers one under
// "cond_stage_model.transformer." 1; without a text encoder, the UNet's first proj_in tells (a
// Linear [C, C] is SD2, a 1x1 conv [C, C, 1, 1] SD1). -1 with an error when neither is there.
int sid_sd_single_file_version(const char *path);

// Reads a diffusers scheduler config into m's schedule and DDIM fields. sid trains and
// distils with the DDPM schedule and samples with DDIM (eta 0), so the file means what
// DDIMScheduler.from_config(file) would: absent keys take DDIMScheduler's defaults whatever the
// _class_name (a DDPM or PNDM config without set_alpha_to_one gets true, one without clip_sample
// gets clipping), and a JSON null in a boolean key is false (diffusers passes None through). Every
// key of the DDPM, DDIM, PNDM and EulerDiscrete configs SD folders ship, and the others' that
// change the model's maths:
//
//   key                      absent        sid
//   num_train_timesteps      1000          honoured (>= 2)
//   beta_start, beta_end     1e-4, 0.02    honoured (0 < start < end < 1)
//   beta_schedule            "linear"      "scaled_linear" only; others refused
//   trained_betas            null          non-null refused
//   prediction_type          "epsilon"     "epsilon", "v_prediction"; "sample" and others refused
//   clip_sample              true          honoured: clip_sample (DDIM step; the clamp op elsewhere)
//   clip_sample_range        1.0           honoured when clip_sample (> 0, else refused)
//   thresholding             false         true refused: dynamic thresholding is not implemented
//   dynamic_thresholding_ratio, sample_max_value   irrelevant: used only with thresholding
//   set_alpha_to_one         true          honoured: DDIM's final alpha 1, else ab[0]
//   steps_offset             0             honoured, added to "leading" timesteps (< 0 refused)
//   timestep_spacing         "leading"     "leading", "trailing", "linspace" honoured; others refused
//   rescale_betas_zero_snr   false         true refused (no zero-terminal-SNR betas)
//   variance_type            fixed_small   fixed_small(_log), fixed_large(_log), null: irrelevant (a
//                                          stochastic DDPM step's variance; DDIM at eta 0 has none);
//                                          "learned", "learned_range" refused (variance channels
//                                          in the UNet output)
//   timestep_type            "discrete"    "continuous" refused (the UNet takes another time input)
//   skip_prk_steps (PNDM); interpolation_type, use_karras_sigmas, use_exponential_sigmas,
//   use_beta_sigmas, sigma_min, sigma_max, final_sigmas_type (Euler); solver_order, algorithm_type,
//   solver_type, lower_order_final, euler_at_final, use_lu_lambdas, lambda_min_clipped (DPM-Solver,
//   UniPC); original_inference_steps, timestep_scaling (LCM)   irrelevant: those samplers' own
//                                          step rules, which DDIMScheduler.from_config drops too
//   _class_name              -             one of the discrete-time scheduler classes, else refused
//   _diffusers_version and unknown keys    ignored, as diffusers does
//
// A wrong JSON type for any key read is an error. On error m is unchanged.
int sid_sd_scheduler_load(sid_sd_model *m, const char *path);

// The DDIM sampling config the model's scheduler config asks for (the fields above).
sid_ddim_config sid_sd_ddim_config(const sid_sd_model *m);

#ifdef __cplusplus
}
#endif

#endif
