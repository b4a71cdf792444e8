// `sid distill` (SiD-LSG) and `sid generate` (one-step generation with a distilled generator).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/prompts.h"
#include "io/file.h"
#include "io/json.h"
#include "io/png.h"
#include "pipeline/text2img.h"
#include "sid/distill.h"

int cmd_distill(int argc, char **argv) {
    sid_distill_cfg c = sid_distill_defaults();
    double kappa = -1, k[4] = {c.kappa[0], c.kappa[1], c.kappa[2], c.kappa[3]}, alpha = c.alpha, t_init = c.t_init;
    double tmin = c.tmin, tmax = c.tmax, lr = c.lr, glr = c.glr, b1 = c.beta1, b2 = c.beta2, aeps = c.adam_eps;
    double batch = c.batch, micro = 0, ema = c.ema_halflife_img / 1000, rampup = c.ema_rampup;
    double kimg = c.duration_img / 1000, tick = c.tick_img / 1000, snap = c.snapshot_ticks, seed = (double)c.seed;
    double gsteps = c.gen_steps, mn = c.metrics_n, stop = 0;
    const char *resume_dir = NULL;
    const sid_flag flags[] = {
        {"--teacher", SID_FLAG_STR, &c.teacher_dir, 0, 0, "teacher model folder (default models/teacher)"},
        {"--prompts", SID_FLAG_STR, &c.prompts_file, 0, 0, "training prompts, one per line"},
        {"--eval-prompts", SID_FLAG_STR, &c.eval_prompts, 0, 0, "held-out prompts for grids and metrics"},
        {"--out", SID_FLAG_STR, &c.out_dir, 0, 0, "run folder (default out/distill)"},
        {"--resume", SID_FLAG_STR, &resume_dir, 0, 0, "continue the run in this folder"},
        {"--kappa", SID_FLAG_NUM, &kappa, 0, 100, "set kappa1..kappa4 at once (LSG)"},
        {"--kappa1", SID_FLAG_NUM, &k[0], 0, 100, "guidance of the fake net in its training loss"},
        {"--kappa2", SID_FLAG_NUM, &k[1], 0, 100, "guidance of the fake net in the generator loss (= kappa3)"},
        {"--kappa3", SID_FLAG_NUM, &k[2], 0, 100, "(must equal kappa2)"},
        {"--kappa4", SID_FLAG_NUM, &k[3], 0, 100, "guidance of the teacher in the generator loss"},
        {"--alpha", SID_FLAG_NUM, &alpha, 0, 10, "SiD alpha (default 1)"},
        {"--init-timestep", SID_FLAG_NUM, &t_init, 1, 999, "generator timestep (default 625)"},
        {"--tmin", SID_FLAG_NUM, &tmin, 0, 1000, "smallest loss timestep (default 20)"},
        {"--tmax", SID_FLAG_NUM, &tmax, 0, 1000, "loss timesteps below this (default 980)"},
        {"--lr", SID_FLAG_NUM, &lr, 1e-12, 1, "fake-net learning rate (default 2e-4)"},
        {"--glr", SID_FLAG_NUM, &glr, 1e-12, 1, "generator learning rate (default 5e-5)"},
        {"--beta1", SID_FLAG_NUM, &b1, 0, 1, "Adam beta1 (default 0)"},
        {"--beta2", SID_FLAG_NUM, &b2, 0, 1, "Adam beta2 (default 0.999)"},
        {"--adam-eps", SID_FLAG_NUM, &aeps, 1e-20, 1, "Adam eps (default 1e-8)"},
        {"--batch", SID_FLAG_NUM, &batch, 1, 65536, "images per iteration"},
        {"--micro", SID_FLAG_NUM, &micro, 0, 65536, "images per accumulation round (default: batch)"},
        {"--ema", SID_FLAG_NUM, &ema, 0, 1e9, "EMA half-life in kimg (0: no EMA)"},
        {"--ema-rampup", SID_FLAG_NUM, &rampup, 0, 1, "EMA ramp-up ratio (default 0.05)"},
        {"--kimg", SID_FLAG_NUM, &kimg, 0.001, 1e9, "duration in thousands of generator images"},
        {"--tick", SID_FLAG_NUM, &tick, 0.001, 1e9, "kimg between stats lines"},
        {"--snap", SID_FLAG_NUM, &snap, 1, 1e9, "ticks between grids, exports, metrics and state dumps"},
        {"--seed", SID_FLAG_NUM, &seed, 0, 1e18, "random seed"},
        {"--gen-steps", SID_FLAG_NUM, &gsteps, 1, 4, "generator steps (1; 2-4: multi-step variant)"},
        {"--metrics", SID_FLAG_BOOL, &c.metrics, 0, 0, "FID and alignment at each snapshot (built-in teacher)"},
        {"--metrics-n", SID_FLAG_NUM, &mn, 10, 1e6, "images for the metrics"},
        {"--classifier", SID_FLAG_STR, &c.classifier_dir, 0, 0, "evaluation classifier folder"},
        {"--stop-after", SID_FLAG_NUM, &stop, 0, 1e9, "end this invocation after this many kimg (resume later)"},
    };
    if (sid_flags_parse("distill", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    for (int i = 0; i < 4; i++) c.kappa[i] = (float)(kappa >= 0 ? kappa : k[i]);
    c.alpha = (float)alpha, c.t_init = (int)t_init, c.tmin = (int)tmin, c.tmax = (int)tmax, c.lr = (float)lr;
    c.glr = (float)glr, c.beta1 = (float)b1, c.beta2 = (float)b2, c.adam_eps = (float)aeps, c.batch = (int)batch;
    c.micro = micro > 0 ? (int)micro : (int)batch, c.ema_halflife_img = ema * 1000, c.ema_rampup = rampup;
    c.duration_img = kimg * 1000, c.tick_img = tick * 1000, c.snapshot_ticks = (int)snap, c.seed = (uint64_t)seed;
    c.gen_steps = (int)gsteps, c.metrics_n = (int)mn, c.stop_after_img = (int64_t)(stop * 1000);
    if (resume_dir) c.out_dir = resume_dir, c.resume = 1;
    if (sid_distill_validate(&c) || sid_distill_run(&c)) sid_die("%s", sid_error());
    printf("distill: wrote %s (generator in %s/generator)\n", c.out_dir, c.out_dir);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model = "out/distill/generator", *prompt = NULL, *prompts_file = NULL, *out = "out/generated.png";
    double n = 8, seed = 0, steps = -1, cols = 0;
    int singles = 0;
    const sid_flag flags[] = {
        {"--model", SID_FLAG_STR, &model, 0, 0, "generator folder (default out/distill/generator)"},
        {"--prompt", SID_FLAG_STR, &prompt, 0, 0, "one prompt"},
        {"--prompts", SID_FLAG_STR, &prompts_file, 0, 0, "a prompt file, one per line"},
        {"--n", SID_FLAG_NUM, &n, 1, 1e7, "images per prompt (default 8)"},
        {"--seed", SID_FLAG_NUM, &seed, 0, 1e18, "noise seed"},
        {"--steps", SID_FLAG_NUM, &steps, 1, 4, "generator steps (default: as trained)"},
        {"--cols", SID_FLAG_NUM, &cols, 0, 1024, "grid columns"},
        {"--out", SID_FLAG_STR, &out, 0, 0, "a .png grid, or a folder for single images and grid.png"},
        {"--singles", SID_FLAG_BOOL, &singles, 0, 0, "also write each image (when --out is a folder)"},
    };
    if (sid_flags_parse("generate", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    if (!prompt && !prompts_file) sid_die("generate: give --prompt TEXT or --prompts FILE");
    char path[1200];
    snprintf(path, sizeof path, "%s/sid_generator.json", model);
    cJSON *gj = sid_json_load(path);
    if (!gj) sid_die("%s (is %s a generator written by sid distill?)", sid_error(), model);
    int t_init, tsteps;
    if (sid_json_int(gj, "t_init", &t_init, 625, 1, path) || sid_json_int(gj, "steps", &tsteps, 1, 1, path)) sid_die("%s", sid_error());
    cJSON_Delete(gj);
    if (steps < 0) steps = tsteps;
    sid_prompts pf = {0};
    if (prompts_file && sid_prompts_load(prompts_file, &pf)) sid_die("%s", sid_error());
    const int np = prompt ? 1 : pf.n, per = (int)n, total = np * per;
    const size_t len = strlen(out);
    const int grid_only = len > 4 && strcmp(out + len - 4, ".png") == 0;
    if (!grid_only && sid_mkdir_p(out)) sid_die("%s", sid_error());
    sid_text2img p;
    if (sid_text2img_open(&p, model)) sid_die("%s", sid_error());
    const sid_unet_config *u = &p.m->unet_cfg;
    const int S = u->sample_size;
    const size_t D = (size_t)u->in_channels * S * S;
    const char **list = sid_malloc((size_t)total * sizeof *list);
    for (int i = 0; i < total; i++) list[i] = prompt ? prompt : pf.text[i / per];
    float *x = sid_malloc((size_t)total * D * sizeof(float));
    const double t0 = sid_now();
    if (sid_text2img_generate(&p, list, total, (uint64_t)seed, t_init, (int)steps, x)) sid_die("%s", sid_error());
    const double dt = sid_now() - t0;
    snprintf(path, sizeof path, grid_only ? "%s" : "%s/grid.png", out);
    if (sid_png_write_grid(path, x, total, u->in_channels, S, S, cols > 0 ? (int)cols : per, 2)) sid_die("%s", sid_error());
    if (!grid_only && singles)
        for (int i = 0; i < total; i++) {
            snprintf(path, sizeof path, "%s/%05d.png", out, i);
            if (sid_png_write_grid(path, x + (size_t)i * D, 1, u->in_channels, S, S, 1, 0)) sid_die("%s", sid_error());
        }
    printf("generate: %d images in %.2f s (%.0f images/s, %d step%s) -> %s\n", total, dt, total / dt, (int)steps,
           steps > 1 ? "s" : "", out);
    free(x), free(list);
    sid_prompts_free(&pf);
    sid_text2img_close(&p);
    return 0;
}
