// `sid sample`: text to image with a diffusion model folder: DDIM with classifier-free guidance.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"
#include "core/progress.h"
#include "data/prompts.h"
#include "io/file.h"
#include "io/png.h"
#include "ops/backend.h"
#include "pipeline/text2img.h"

int cmd_sample(int argc, char **argv) {
    const char *model = "models/teacher", *prompt = NULL, *prompts_file = NULL, *out = "out/samples.png";
    const char *device = NULL;
    double n = 8, seed = 0, steps = 25, cfg = 3, chunk = 64, cols = 0;
    int singles = 0;
    const sid_flag flags[] = {
        {"--model", SID_FLAG_STR, &model, 0, 0, "model folder (default models/teacher)"},
        {"--prompt", SID_FLAG_STR, &prompt, 0, 0, "one prompt"},
        {"--prompts", SID_FLAG_STR, &prompts_file, 0, 0, "a prompt file, one per line"},
        {"--n", SID_FLAG_INT, &n, 1, 1e6, "images per prompt (default 8)"},
        {"--seed", SID_FLAG_INT, &seed, 0, 1e18, "noise seed"},
        {"--steps", SID_FLAG_INT, &steps, 1, 1000, "DDIM steps (default 25)"},
        {"--cfg", SID_FLAG_NUM, &cfg, 0, 100, "guidance scale (default 3; 1 = none)"},
        {"--chunk", SID_FLAG_INT, &chunk, 1, 4096, "images per network batch"},
        {"--cols", SID_FLAG_INT, &cols, 0, 1024, "grid columns (default: images per prompt)"},
        {"--out", SID_FLAG_STR, &out, 0, 0, "a .png grid, or a folder for single images and grid.png"},
        {"--singles", SID_FLAG_BOOL, &singles, 0, 0, "also write each image (when --out is a folder)"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("sample", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    if (!prompt && !prompts_file) sid_die("sample: give --prompt TEXT or --prompts FILE");
    const sid_backend *be = sid_cli_device("sample", device, 0);
    sid_prompts pf = {0};
    if (prompts_file && sid_prompts_load(prompts_file, &pf)) sid_die("%s", sid_error());
    const int np = prompt ? 1 : pf.n, per = (int)n;
    if ((double)np * per > 1e7) sid_die("sample: %d prompts x --n %d is more than 10 million images", np, per);
    const int total = np * per;
    const char **list = sid_malloc((size_t)total * sizeof *list);
    for (int i = 0; i < total; i++) list[i] = prompt ? prompt : pf.text[i / per];
    const size_t len = strlen(out);
    const int grid_only = len > 4 && strcmp(out + len - 4, ".png") == 0;
    char path[1100];
    if (!grid_only && sid_mkdir_p(out)) sid_die("%s", sid_error());

    sid_text2img p;
    if (sid_text2img_open_on(&p, model, be)) sid_die("%s", sid_error());
    int C, H, W;
    sid_text2img_image_shape(&p, &C, &H, &W);
    float *img = sid_malloc((size_t)total * C * H * W * sizeof(float));
    const double t0 = sid_now();
    if (sid_text2img_sample(&p, list, total, (uint64_t)seed, (int)steps, (float)cfg, (int)chunk, img)) sid_die("%s", sid_error());
    const double dt = sid_now() - t0;
    snprintf(path, sizeof path, grid_only ? "%s" : "%s/grid.png", out);
    if (sid_png_write_grid(path, img, total, C, H, W, cols > 0 ? (int)cols : per, 2)) sid_die("%s", sid_error());
    if (!grid_only && singles)
        for (int i = 0; i < total; i++) {
            snprintf(path, sizeof path, "%s/%05d.png", out, i);
            if (sid_png_write_grid(path, img + (size_t)i * C * H * W, 1, C, H, W, 1, 0)) sid_die("%s", sid_error());
        }
    printf("sample: %d images (%d prompts x %d) with %d DDIM steps, cfg %g, in %.2f s (%.1f images/s) -> %s\n", total, np,
           per, (int)steps, cfg, dt, total / dt, out);
    free(img), free(list);
    sid_prompts_free(&pf);
    if (p.truncated)
        fprintf(stderr, "%s: warning: the prompts of %d image%s were longer than %d tokens and %s truncated\n", "sample", p.truncated,
                p.truncated > 1 ? "s" : "", p.max_len, "were");
    sid_text2img_close(&p);
    return 0;
}
