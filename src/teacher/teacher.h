// sid's built-in teacher: a small text-conditional Fashion-MNIST diffusion model (tiny
// CLIPTextModel + UNet2DConditionModel in pixel space, 1x32x32) trained by sid itself and
// written as a diffusers pipeline folder, so every later stage (sampling, distillation) loads it
// like any Stable Diffusion model.
#ifndef SID_TEACHER_H
#define SID_TEACHER_H
#include <stdint.h>

#include "models/clip_text.h"
#include "models/init.h"
#include "models/unet.h"

typedef struct {
    const char *out_dir;       // the teacher folder (diffusers layout) and training state
    const char *data_dir;      // Fashion-MNIST IDX files
    const char *prompts_file;  // training prompts (one per line); the vocabulary also covers vocab_file
    const char *vocab_file;    // extra text the tokenizer must cover as whole words (eval prompts)
    int batch;
    int64_t steps;             // total optimiser steps (resume continues to this count)
    int64_t stop_after;        // end this invocation after this many steps in all (0: at steps); the
                               // learning-rate schedule still spans `steps`, so a resumed run matches
    float lr, lr_final;        // peak and final learning rate (cosine decay after warm-up)
    int warmup;                // linear warm-up steps
    float p_uncond;            // fraction of empty prompts (classifier-free guidance)
    double ema_halflife_img;   // EMA half-life in images (with a ramp-up, as EDM/SiD)
    uint64_t seed;
    int log_every, snapshot_every;  // steps between log lines / folder exports + state dumps
    int resume;
    int keep_snapshots;        // also export each snapshot to out_dir/snapshots/kimg-NNNNNN (FID curve)
    const struct sid_backend *be;  // where it trains (NULL: the CPU)
} sid_teacher_train_cfg;

sid_teacher_train_cfg sid_teacher_train_defaults(void);

// The architecture: UNet (16, 32, 32) channels, one layer per block, cross-attention at 8x8 and in
// the mid block; CLIP text encoder 2 layers, width 64, over max_len tokens.
void sid_teacher_arch(sid_unet_config *u, sid_clip_config *c, int vocab_size, int max_len);

// Trains (or resumes) and writes the folder. Progress on stderr, one JSON line per log step in
// out_dir/log.jsonl. 0, or -1 with a one-line error (nothing lost: state files are atomic).
int sid_teacher_train(const sid_teacher_train_cfg *cfg);

#endif
