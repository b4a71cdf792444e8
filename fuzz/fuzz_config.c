// Model configs: the first byte picks the parser (UNet, VAE, CLIP text), the rest is the JSON.
// An accepted config is also declared and its parameters counted, which sizes every layer from
// it (only when that takes milliseconds, so that slow inputs do not drown the crashes).
#include "fuzz/fuzz.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"

SID_FUZZ_TARGET(config) {
    if (size < 1) return 0;
    char *text = fuzz_cstr(data + 1, size - 1);
    switch (data[0] % 3) {
    case 0: {
        sid_unet_config c;
        if (sid_unet_config_parse(&c, text, "unet/config.json") == 0 &&
            (size_t)c.levels * (size_t)(c.layers_per_block + 1) * (size_t)c.transformer_layers <= 64) {
            int tensors = 0;
            if (sid_unet_param_count(&c, &tensors) == 0 || tensors <= 0) abort();
        }
        break;
    }
    case 1: {
        sid_vae_config c;
        if (sid_vae_config_parse(&c, text, "vae/config.json") == 0 && c.n_blocks * (c.layers_per_block + 1) <= 64) {
            size_t enc, dec;
            if (sid_vae_param_count(&c, &enc, &dec) == 0) abort();
        }
        break;
    }
    default: {
        sid_clip_config c;
        if (sid_clip_config_parse(&c, text, "text_encoder/config.json") == 0 && c.layers <= 64) {
            if (sid_clip_param_count(&c) == 0) abort();
        }
        break;
    }
    }
    free(text);
    return 0;
}
