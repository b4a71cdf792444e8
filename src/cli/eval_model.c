// `sid eval-model`: generates N images from held-out prompts (classes balanced) with DDIM and
// guidance (or, for a distilled generator folder, in one step), and reports FID against the 10k test images and alignment, as one JSON line.
// The teacher's README table and FID curve are made of such lines.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/prompts.h"
#include "eval/classifier.h"
#include "eval/eval.h"
#include "eval/panel.h"
#include "io/png.h"
#include "ops/backend.h"
#include "pipeline/text2img.h"

int cmd_eval_model(int argc, char **argv) {
    const char *model = "models/teacher", *prompts_file = "data/prompts/fmnist_eval.txt", *cls_dir = SID_CLS_DEFAULT_DIR;
    const char *grid = NULL, *device = NULL, *mlp_dir = SID_CLS_MLP_DIR;
    double n = 5000, seed = 1, steps = 25, cfg = 3, chunk = 250, panel = 1;
    const sid_flag flags[] = {
        {"--model", SID_FLAG_STR, &model, 0, 0, "model folder (default models/teacher)"},
        {"--prompts", SID_FLAG_STR, &prompts_file, 0, 0, "held-out prompts (default data/prompts/fmnist_eval.txt)"},
        {"--classifier", SID_FLAG_STR, &cls_dir, 0, 0, "evaluation classifier folder"},
        {"--features-mlp", SID_FLAG_STR, &mlp_dir, 0, 0, "the panel's second feature network (default models/features-mlp)"},
        {"--panel", SID_FLAG_INT, &panel, 0, 1, "1 (default): the whole evaluation panel; 0: FID and alignment only"},
        {"--n", SID_FLAG_INT, &n, 10, 1e6, "images (default 5000)"},
        {"--seed", SID_FLAG_INT, &seed, 0, 1e18, "noise seed"},
        {"--steps", SID_FLAG_INT, &steps, 1, 1000, "DDIM steps (default 25)"},
        {"--cfg", SID_FLAG_NUM, &cfg, 0, 100, "guidance scale (default 3)"},
        {"--chunk", SID_FLAG_INT, &chunk, 1, 4096, "images per network batch"},
        {"--grid", SID_FLAG_STR, &grid, 0, 0, "also write the first 100 images as a PNG grid"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("eval-model", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    sid_prompts pf = {0};
    if (sid_prompts_load(prompts_file, &pf)) sid_die("%s", sid_error());
    // prompts grouped by class, then image i takes class i % 10 and the next prompt of that class
    int *by[SID_CLS_CLASSES], nb[SID_CLS_CLASSES] = {0};
    for (int k = 0; k < SID_CLS_CLASSES; k++) by[k] = sid_malloc((size_t)pf.n * sizeof(int));
    for (int i = 0; i < pf.n; i++)
        if (pf.cls[i] >= 0 && pf.cls[i] < SID_CLS_CLASSES) by[pf.cls[i]][nb[pf.cls[i]]++] = i;
    for (int k = 0; k < SID_CLS_CLASSES; k++)
        if (!nb[k]) sid_die("%s: no prompt of class %d", prompts_file, k);
    const int N = (int)n;
    const char **list = sid_malloc((size_t)N * sizeof *list);
    int *cls = sid_malloc((size_t)N * sizeof(int));
    for (int i = 0; i < N; i++) {
        const int k = i % SID_CLS_CLASSES, j = (i / SID_CLS_CLASSES) % nb[k];
        list[i] = pf.text[by[k][j]], cls[i] = k;
    }
    sid_classifier c, mlp = {0};
    if (sid_classifier_load(&c, cls_dir)) sid_die("%s", sid_error());
    if (panel && sid_panel_load_mlp(&mlp, mlp_dir)) sid_die("%s", sid_error());
    int t_init = 0, gsteps = 0;
    const int is_gen = sid_text2img_is_generator(model, &t_init, &gsteps);
    if (is_gen < 0) sid_die("%s", sid_error());
    const sid_backend *be = sid_cli_device("eval-model", device, 0);
    sid_text2img p;
    if (sid_text2img_open_on(&p, model, be)) sid_die("%s", sid_error());
    int C, H, W;
    sid_text2img_image_shape(&p, &C, &H, &W);
    if (C != 1 && C != 3) sid_die("%s: eval-model needs grey or RGB images, the model makes %d channels", model, C);
    const int convert = C != 1 || H != 32 || W != 32;
    if (convert)  // the classifier sees 1x32x32 Fashion-MNIST images; other models are judged on those
        fprintf(stderr, "eval-model: %s makes %dx%dx%d images: scored as their luminance resized to 1x32x32\n", model, C, H, W);
    float *img = sid_malloc((size_t)N * C * H * W * sizeof(float));
    const double t0 = sid_now();
    if (is_gen ? sid_text2img_generate(&p, list, N, (uint64_t)seed, t_init, gsteps, img)
               : sid_text2img_sample(&p, list, N, (uint64_t)seed, (int)steps, (float)cfg, (int)chunk, img))
        sid_die("%s", sid_error());
    if (is_gen) steps = gsteps, cfg = 1;  // a distilled generator runs as trained, without guidance
    const double gen = sid_now() - t0;
    if (convert) {
        float *grey = sid_malloc((size_t)N * 32 * 32 * sizeof(float));
        for (int i = 0; i < N; i++) sid_image_to_grey32(img + (size_t)i * C * H * W, C, H, W, grey + (size_t)i * 32 * 32);
        free(img);
        img = grey, C = 1, H = W = 32;
    }
    if (grid && sid_png_write_grid(grid, img, N < 100 ? N : 100, 1, H, W, 10, 2)) sid_die("%s", sid_error());
    // with the panel, FID and alignment are its CNN space's (the same computation as sid_eval_images)
    double fid, alignment;
    char *panel_json = NULL;
    if (panel) {
        sid_panel_ref ref;
        sid_panel pr;
        if (sid_panel_ref_init_shipped(&ref, &c, &mlp, NULL, N) || sid_panel_eval(&ref, img, cls, N, &pr))
            sid_die("%s", sid_error());
        fid = pr.space[0].gen.fid, alignment = pr.space[0].gen.alignment;
        panel_json = sid_panel_json_text(&pr);
        sid_panel_ref_free(&ref);
    } else {
        sid_eval_result r;
        if (sid_eval_images(&c, NULL, img, cls, N, &r)) sid_die("%s", sid_error());
        fid = r.fid, alignment = r.alignment;
    }
    printf("{\"model\": \"%s\", \"n\": %d, \"steps\": %d, \"cfg\": %g, \"fid\": %.3f, \"alignment\": %.4f, "
           "\"generate_s\": %.2f, \"images_per_s\": %.1f, \"converted\": %s%s%s}\n",
           model, N, (int)steps, cfg, fid, alignment, gen, N / gen, convert ? "true" : "false",
           panel_json ? ", \"panel\": " : "", panel_json ? panel_json : "");
    free(panel_json);
    if (panel) sid_classifier_free(&mlp);
    free(img), free(list), free(cls);
    for (int k = 0; k < SID_CLS_CLASSES; k++) free(by[k]);
    sid_prompts_free(&pf);
    if (p.truncated)
        fprintf(stderr, "eval-model: warning: the prompts of %d image%s were longer than %d tokens and were truncated\n",
                p.truncated, p.truncated > 1 ? "s" : "", p.max_len);
    sid_text2img_close(&p);
    sid_classifier_free(&c);
    return 0;
}
