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
#include "dist/dist.h"
#include "io/file.h"
#include "io/json.h"
#include "io/png.h"
#include "ops/backend.h"
#include "pipeline/text2img.h"
#include "sid/distill.h"

// Whether a flag's value in a differs from the saved run's b (for the flags that change the maths).
static int distill_flag_differs(const char *f, const sid_distill_cfg *a, const sid_distill_cfg *b) {
    if (!strcmp(f, "--teacher")) return strcmp(a->teacher_dir, b->teacher_dir) != 0;
    if (!strcmp(f, "--prompts")) return strcmp(a->prompts_file, b->prompts_file) != 0;
    if (!strcmp(f, "--kappa")) return memcmp(a->kappa, b->kappa, sizeof a->kappa) != 0;
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "--kappa%d", k + 1);
        if (!strcmp(f, name)) return a->kappa[k] != b->kappa[k];
    }
    if (!strcmp(f, "--alpha")) return a->alpha != b->alpha;
    if (!strcmp(f, "--init-timestep")) return a->t_init != b->t_init;
    if (!strcmp(f, "--tmin")) return a->tmin != b->tmin;
    if (!strcmp(f, "--tmax")) return a->tmax != b->tmax;
    if (!strcmp(f, "--lr")) return a->lr != b->lr;
    if (!strcmp(f, "--glr")) return a->glr != b->glr;
    if (!strcmp(f, "--beta1")) return a->beta1 != b->beta1;
    if (!strcmp(f, "--beta2")) return a->beta2 != b->beta2;
    if (!strcmp(f, "--adam-eps")) return a->adam_eps != b->adam_eps;
    if (!strcmp(f, "--batch")) return a->batch != b->batch;
    if (!strcmp(f, "--ema")) return a->ema_halflife_img != b->ema_halflife_img;
    if (!strcmp(f, "--ema-rampup")) return a->ema_rampup != b->ema_rampup;
    if (!strcmp(f, "--seed")) return a->seed != b->seed;
    if (!strcmp(f, "--gen-steps")) return a->gen_steps != b->gen_steps;
    return 1;
}

// Copies the value of a flag that may change on resume from the command line's a into r.
static void distill_flag_take(const char *f, sid_distill_cfg *r, const sid_distill_cfg *a) {
    if (!strcmp(f, "--kimg")) r->duration_img = a->duration_img;
    else if (!strcmp(f, "--tick")) r->tick_img = a->tick_img;
    else if (!strcmp(f, "--snap")) r->snapshot_ticks = a->snapshot_ticks;
    else if (!strcmp(f, "--metrics")) r->metrics = a->metrics;
    else if (!strcmp(f, "--metrics-n")) r->metrics_n = a->metrics_n;
    else if (!strcmp(f, "--classifier")) r->classifier_dir = a->classifier_dir;
    else if (!strcmp(f, "--eval-prompts")) r->eval_prompts = a->eval_prompts;
    else if (!strcmp(f, "--micro")) r->micro = a->micro;
}

int cmd_distill(int argc, char **argv) {
    sid_distill_cfg c = sid_distill_defaults();
    double kappa = -1, k[4] = {c.kappa[0], c.kappa[1], c.kappa[2], c.kappa[3]}, alpha = c.alpha, t_init = c.t_init;
    double tmin = c.tmin, tmax = c.tmax, lr = c.lr, glr = c.glr, b1 = c.beta1, b2 = c.beta2, aeps = c.adam_eps;
    double batch = c.batch, micro = 0, ema = c.ema_halflife_img / 1000, rampup = c.ema_rampup;
    double kimg = c.duration_img / 1000, tick = c.tick_img / 1000, snap = c.snapshot_ticks, seed = (double)c.seed;
    double gsteps = c.gen_steps, mn = c.metrics_n, stop = 0;
    const char *resume_dir = NULL, *device = NULL;
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
        {"--init-timestep", SID_FLAG_INT, &t_init, 1, 999, "generator timestep (default 625)"},
        {"--tmin", SID_FLAG_INT, &tmin, 0, 1000, "smallest loss timestep (default 20)"},
        {"--tmax", SID_FLAG_INT, &tmax, 0, 1000, "loss timesteps below this (default 980)"},
        {"--lr", SID_FLAG_NUM, &lr, 1e-12, 1, "fake-net learning rate (default 2e-4)"},
        {"--glr", SID_FLAG_NUM, &glr, 1e-12, 1, "generator learning rate (default 5e-5)"},
        {"--beta1", SID_FLAG_NUM, &b1, 0, 1, "Adam beta1 (default 0)"},
        {"--beta2", SID_FLAG_NUM, &b2, 0, 1, "Adam beta2 (default 0.999)"},
        {"--adam-eps", SID_FLAG_NUM, &aeps, 1e-20, 1, "Adam eps (default 1e-8)"},
        {"--batch", SID_FLAG_INT, &batch, 1, 65536, "images per iteration"},
        {"--micro", SID_FLAG_INT, &micro, 0, 65536, "images per accumulation round (default: batch)"},
        {"--ema", SID_FLAG_NUM, &ema, 0, 1e9, "EMA half-life in kimg (0: no EMA)"},
        {"--ema-rampup", SID_FLAG_NUM, &rampup, 0, 1, "EMA ramp-up ratio (default 0.05)"},
        {"--kimg", SID_FLAG_NUM, &kimg, 0.001, 1e9, "duration in thousands of generator images"},
        {"--tick", SID_FLAG_NUM, &tick, 0.001, 1e9, "kimg between stats lines"},
        {"--snap", SID_FLAG_INT, &snap, 1, 1e9, "ticks between grids, exports, metrics and state dumps"},
        {"--seed", SID_FLAG_INT, &seed, 0, 1e18, "random seed"},
        {"--gen-steps", SID_FLAG_INT, &gsteps, 1, 4, "generator steps (1; 2-4: multi-step variant)"},
        {"--metrics", SID_FLAG_BOOL, &c.metrics, 0, 0, "FID and alignment at each snapshot (built-in teacher)"},
        {"--metrics-n", SID_FLAG_INT, &mn, 10, 1e6, "images for the metrics"},
        {"--classifier", SID_FLAG_STR, &c.classifier_dir, 0, 0, "evaluation classifier folder"},
        {"--stop-after", SID_FLAG_NUM, &stop, 0, 1e9, "end this invocation after this many kimg (resume later)"},
        {SID_DEVICE_FLAG(&device)},
        {"--checkpointing", SID_FLAG_BOOL, &c.checkpointing, 0, 0,
         "recompute each UNet block's saved state in backward: less memory, same results"},
    };
    const int nf = (int)(sizeof flags / sizeof flags[0]);
    int given[sizeof flags / sizeof flags[0]];
    if (sid_flags_parse_given("distill", flags, nf, argc, argv, NULL, given)) sid_die("%s", sid_error());
    c.be = sid_cli_device("distill", device, 0);
    for (int i = 0; i < 4; i++) c.kappa[i] = (float)(kappa >= 0 ? kappa : k[i]);
    c.alpha = (float)alpha, c.t_init = (int)t_init, c.tmin = (int)tmin, c.tmax = (int)tmax, c.lr = (float)lr;
    c.glr = (float)glr, c.beta1 = (float)b1, c.beta2 = (float)b2, c.adam_eps = (float)aeps, c.batch = (int)batch;
    // --micro is per rank and round; its default: the batch split over the ranks in one round
    const int ranks = sid_dist_size();
    c.micro = micro > 0 ? (int)micro : (int)batch % ranks ? (int)batch : (int)batch / ranks, c.ema_halflife_img = ema * 1000, c.ema_rampup = rampup;
    c.duration_img = kimg * 1000, c.tick_img = tick * 1000, c.snapshot_ticks = (int)snap, c.seed = (uint64_t)seed;
    c.gen_steps = (int)gsteps, c.metrics_n = (int)mn, c.stop_after_img = (int64_t)(stop * 1000);
    cJSON *saved_json = NULL;
    if (resume_dir) {
        // The run continues with its own settings (its config.json); a flag that would change the
        // maths of the run is refused, the ones that only say how long or how often are taken.
        char path[1200];
        snprintf(path, sizeof path, "%s/training-state.safetensors", resume_dir);
        if (!sid_file_exists(path)) sid_die("%s: nothing to resume (no training-state.safetensors)", resume_dir);
        snprintf(path, sizeof path, "%s/config.json", resume_dir);
        sid_distill_cfg saved;
        if (!(saved_json = sid_distill_config_load(path, &saved))) sid_die("%s (cannot resume %s)", sid_error(), resume_dir);
        static const char *const may_change[] = {"--kimg",       "--stop-after",   "--tick",  "--snap",
                                                 "--metrics",    "--metrics-n",    "--micro", "--resume",
                                                 "--classifier", "--eval-prompts", "--out",   "--device",
                                                 "--checkpointing"};
        for (int i = 0; i < nf; i++) {
            if (!given[i]) continue;
            int ok = 0;
            for (size_t j = 0; j < sizeof may_change / sizeof may_change[0] && !ok; j++)
                ok = strcmp(flags[i].name, may_change[j]) == 0;
            if (!ok && distill_flag_differs(flags[i].name, &c, &saved))
                sid_die("distill: %s differs from the resumed run's setting in %s; resume without it (or start a new run)",
                        flags[i].name, path);
        }
        sid_distill_cfg r = saved;
        for (int i = 0; i < nf; i++)
            if (given[i]) distill_flag_take(flags[i].name, &r, &c);
        r.stop_after_img = c.stop_after_img, r.out_dir = resume_dir, r.resume = 1, r.be = c.be;
        r.checkpointing = c.checkpointing;  // how it runs, not what it computes: as given now
        if (!micro && r.batch % (r.micro * ranks) && r.batch % ranks == 0)
            r.micro = r.batch / ranks;  // resumed with another number of ranks: the same global batch
        c = r;
    }
    if (sid_distill_validate(&c) || sid_distill_run(&c)) sid_die("%s", sid_error());
    cJSON_Delete(saved_json);
    if (sid_dist_rank() == 0) printf("distill: wrote %s (generator in %s/generator)\n", c.out_dir, c.out_dir);
    return 0;
}

int cmd_generate(int argc, char **argv) {
    const char *model = "out/distill/generator", *prompt = NULL, *prompts_file = NULL, *out = "out/generated.png";
    const char *device = NULL;
    double n = 8, seed = 0, steps = -1, cols = 0;
    int singles = 0;
    const sid_flag flags[] = {
        {"--model", SID_FLAG_STR, &model, 0, 0, "generator folder (default out/distill/generator)"},
        {"--prompt", SID_FLAG_STR, &prompt, 0, 0, "one prompt"},
        {"--prompts", SID_FLAG_STR, &prompts_file, 0, 0, "a prompt file, one per line"},
        {"--n", SID_FLAG_INT, &n, 1, 1e7, "images per prompt (default 8)"},
        {"--seed", SID_FLAG_INT, &seed, 0, 1e18, "noise seed"},
        {"--steps", SID_FLAG_INT, &steps, 1, 4, "generator steps (default: as trained)"},
        {"--cols", SID_FLAG_INT, &cols, 0, 1024, "grid columns"},
        {"--out", SID_FLAG_STR, &out, 0, 0, "a .png grid, or a folder for single images and grid.png"},
        {"--singles", SID_FLAG_BOOL, &singles, 0, 0, "also write each image (when --out is a folder)"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("generate", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    if (!prompt && !prompts_file) sid_die("generate: give --prompt TEXT or --prompts FILE");
    const sid_backend *be = sid_cli_device("generate", device, 0);
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
    const int np = prompt ? 1 : pf.n, per = (int)n;
    if ((double)np * per > 1e7) sid_die("generate: %d prompts x --n %d is more than 10 million images", np, per);
    const int total = np * per;
    const size_t len = strlen(out);
    const int grid_only = len > 4 && strcmp(out + len - 4, ".png") == 0;
    if (!grid_only && sid_mkdir_p(out)) sid_die("%s", sid_error());
    sid_text2img p;
    if (sid_text2img_open_on(&p, model, be)) sid_die("%s", sid_error());
    int C, H, W;
    sid_text2img_image_shape(&p, &C, &H, &W);
    const size_t D = (size_t)C * H * W;
    const char **list = sid_malloc((size_t)total * sizeof *list);
    for (int i = 0; i < total; i++) list[i] = prompt ? prompt : pf.text[i / per];
    float *x = sid_malloc((size_t)total * D * sizeof(float));
    const double t0 = sid_now();
    if (sid_text2img_generate(&p, list, total, (uint64_t)seed, t_init, (int)steps, x)) sid_die("%s", sid_error());
    const double dt = sid_now() - t0;
    snprintf(path, sizeof path, grid_only ? "%s" : "%s/grid.png", out);
    if (sid_png_write_grid(path, x, total, C, H, W, cols > 0 ? (int)cols : per, 2)) sid_die("%s", sid_error());
    if (!grid_only && singles)
        for (int i = 0; i < total; i++) {
            snprintf(path, sizeof path, "%s/%05d.png", out, i);
            if (sid_png_write_grid(path, x + (size_t)i * D, 1, C, H, W, 1, 0)) sid_die("%s", sid_error());
        }
    printf("generate: %d images in %.2f s (%.0f images/s, %d step%s, %s) -> %s\n", total, dt, total / dt, (int)steps,
           steps > 1 ? "s" : "", be->name, out);
    free(x), free(list);
    sid_prompts_free(&pf);
    if (p.truncated)
        fprintf(stderr, "%s: warning: the prompts of %d image%s were longer than %d tokens and %s truncated\n", "generate", p.truncated,
                p.truncated > 1 ? "s" : "", p.max_len, "were");
    sid_text2img_close(&p);
    return 0;
}
