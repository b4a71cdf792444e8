// `sid convert-unet SRC DST [--config FILE] [--dtype f32|f16|bf16]`: reads a UNet from a
// diffusers folder or a single-file (LDM) checkpoint and writes it as a diffusers folder
// (config.json + diffusion_pytorch_model.safetensors) that diffusers' from_pretrained loads.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/error.h"
#include "io/file.h"
#include "models/unet.h"

int cmd_convert_unet(int argc, char **argv) {
    const char *src = NULL, *dst = NULL, *config = NULL, *dtype_name = "f32";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc) dtype_name = argv[++i];
        else if (argv[i][0] == '-') sid_die("convert-unet: unknown option '%s'", argv[i]);
        else if (!src) src = argv[i];
        else if (!dst) dst = argv[i];
        else sid_die("convert-unet: unexpected argument '%s'", argv[i]);
    }
    if (!src || !dst) sid_die("usage: sid convert-unet SRC DST [--config unet/config.json] [--dtype f32|f16|bf16]");
    sid_dtype dtype;
    if (strcmp(dtype_name, "f32") == 0) dtype = SID_F32;
    else if (strcmp(dtype_name, "f16") == 0) dtype = SID_F16;
    else if (strcmp(dtype_name, "bf16") == 0) dtype = SID_BF16;
    else sid_die("--dtype: '%s' is not one of f32, f16, bf16", dtype_name);

    struct stat sb;
    if (stat(src, &sb)) sid_die("%s: no such file or folder", src);
    const int folder = S_ISDIR(sb.st_mode);
    char cfg_path[1024], weights[1024];
    if (folder) {
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", config ? config : src);
        if (config) snprintf(cfg_path, sizeof cfg_path, "%s", config);
        snprintf(weights, sizeof weights, "%s/diffusion_pytorch_model.safetensors", src);
    } else {
        if (!config) sid_die("%s: a single-file checkpoint needs --config (the UNet's config.json)", src);
        snprintf(cfg_path, sizeof cfg_path, "%s", config);
        snprintf(weights, sizeof weights, "%s", src);
    }
    sid_unet_config c;
    if (sid_unet_config_load(&c, cfg_path)) sid_die("%s", sid_error());
    if (sid_mkdir_p(dst)) sid_die("%s", sid_error());
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, &c);
    sid_params_alloc(&ps, 0);
    int rc = folder ? sid_params_load(&ps, weights, NULL, NULL, 1, NULL)
                    : sid_params_load_mapped(&ps, weights, "model.diffusion_model.", sid_unet_ldm_name, &c, 1, NULL);
    if (rc) sid_die("%s", sid_error());
    char out[1200];
    snprintf(out, sizeof out, "%s/config.json", dst);
    if (sid_unet_config_save(&c, out)) sid_die("%s", sid_error());
    snprintf(out, sizeof out, "%s/diffusion_pytorch_model.safetensors", dst);
    if (sid_params_save(&ps, out, dtype)) sid_die("%s", sid_error());
    printf("convert-unet: %zu parameters in %d tensors -> %s (%s)\n", sid_params_count(&ps), ps.n, dst, dtype_name);
    sid_unet_free(&u);
    sid_params_free(&ps);
    return 0;
}
