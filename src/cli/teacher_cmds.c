// `sid train-teacher`: trains the built-in Fashion-MNIST teacher (see src/teacher/teacher.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"
#include "ops/backend.h"
#include "dist/dist.h"
#include "teacher/teacher.h"

int cmd_train_teacher(int argc, char **argv) {
    sid_teacher_train_cfg c = sid_teacher_train_defaults();
    const char *device = NULL;
    double stop_after = 0, steps = (double)c.steps, batch = c.batch, warmup = c.warmup, log_every = c.log_every,
           snap = c.snapshot_every, seed = (double)c.seed, lr = c.lr, lr_final = c.lr_final, p = c.p_uncond,
           ema_kimg = c.ema_halflife_img / 1000;
    const sid_flag flags[] = {
        {"--out", SID_FLAG_STR, &c.out_dir, 0, 0, "teacher folder (default models/teacher)"},
        {"--data", SID_FLAG_STR, &c.data_dir, 0, 0, "Fashion-MNIST folder (default the Debian package's)"},
        {"--prompts", SID_FLAG_STR, &c.prompts_file, 0, 0, "training prompts file"},
        {"--steps", SID_FLAG_INT, &steps, 1, 1e9, "optimiser steps"},
        {"--stop-after", SID_FLAG_INT, &stop_after, 0, 1e9, "end this run after N steps in all (resume later)"},
        {"--batch", SID_FLAG_INT, &batch, 1, 1024, "images per step"},
        {"--lr", SID_FLAG_NUM, &lr, 1e-7, 1, "peak learning rate"},
        {"--lr-final", SID_FLAG_NUM, &lr_final, 0, 1, "learning rate at the end of the cosine decay"},
        {"--warmup", SID_FLAG_INT, &warmup, 1, 1e9, "linear warm-up steps"},
        {"--p-uncond", SID_FLAG_NUM, &p, 0, 1, "fraction of empty prompts"},
        {"--ema-kimg", SID_FLAG_NUM, &ema_kimg, 0.001, 1e6, "EMA half-life in thousands of images"},
        {"--seed", SID_FLAG_INT, &seed, 0, 1e18, "random seed"},
        {"--log-every", SID_FLAG_INT, &log_every, 1, 1e9, "steps between log.jsonl lines"},
        {"--snapshot-every", SID_FLAG_INT, &snap, 1, 1e9, "steps between state dumps and folder exports"},
        {"--resume", SID_FLAG_BOOL, &c.resume, 0, 0, "continue from OUT/train_state.safetensors"},
        {"--keep-snapshots", SID_FLAG_BOOL, &c.keep_snapshots, 0, 0, "export every snapshot to OUT/snapshots/ (FID curve)"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("train-teacher", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    c.be = sid_cli_device("train-teacher", device, 0);
    c.stop_after = (int64_t)stop_after, c.steps = (int64_t)steps, c.batch = (int)batch, c.warmup = (int)warmup, c.log_every = (int)log_every;
    c.snapshot_every = (int)snap, c.seed = (uint64_t)seed, c.lr = (float)lr, c.lr_final = (float)lr_final;
    c.p_uncond = (float)p, c.ema_halflife_img = ema_kimg * 1000;
    if (sid_teacher_train(&c)) sid_die("%s", sid_error());
    if (sid_dist_rank() == 0) printf("train-teacher: wrote %s\n", c.out_dir);
    return 0;
}
