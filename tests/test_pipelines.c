// The two tiny latent Stable Diffusion pipelines written by diffusers (tools/reference/
// sd_pipeline_reference.py): an SD1.5-structured one (conv projections, quick_gelu text encoder,
// vocab.json/merges.txt, pad = eos) and an SD2-style one (linear projections, per-level heads, gelu,
// tokenizer.json only, pad "!" = 0). Loaded as a user's folder is, each stage is held to diffusers'
// output: token ids, text embeddings, UNet eps, VAE decode, and the one-step generator's latent and
// image. The distill -> resume -> generate -> sample -> eval-model path runs in tests/cli.sh.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "harness.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/checkpoint.h"
#include "sid/generator.h"

static float *golden(const sid_safetensors *st, const char *name, size_t *n) {
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) sid_die("%s: no tensor '%s' (tools/reference/sd_pipeline_reference.py writes it)", st->path, name);
    *n = (size_t)sid_shape_numel(t->ndim, t->shape);
    float *x = sid_malloc(*n * sizeof(float));
    if (t->dtype == SID_I64) {
        for (size_t i = 0; i < *n; i++) x[i] = (float)((const int64_t *)t->data)[i];
    } else if (sid_st_read_f32(st, t, x)) {
        sid_die("%s", sid_error());
    }
    return x;
}

static double max_rel(const float *got, const float *want, size_t n) {
    double scale = 1e-30, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - want[i]));
    return err / scale;
}

static void check_pipeline(const char *name) {
    char dir[512], gpath[512];
    snprintf(dir, sizeof dir, "%s/pipelines/%s", test_data_dir(), name);
    snprintf(gpath, sizeof gpath, "%s/pipelines/%s_golden.safetensors", test_data_dir(), name);
    sid_sd_model m = {0};
    if (sid_sd_load(&m, dir, SID_SD_ALL, 0)) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, sid_error());
        return;
    }
    sid_tokenizer *tok = sid_tokenizer_load(m.tokenizer_dir);
    sid_safetensors st;
    if (!tok || sid_st_open(&st, gpath)) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, sid_error());
        sid_tokenizer_free(tok), sid_sd_free(&m);
        return;
    }
    size_t n;
    const int T = 77, Wt = m.clip_cfg.hidden, S = m.unet_cfg.sample_size;
    float *want_ids = golden(&st, "ids", &n);
    int32_t ids[2 * 77];
    const char *prompts[2] = {"a photo of a sneaker", ""};
    for (int i = 0; i < 2; i++) sid_tokenizer_encode(tok, prompts[i], ids + i * T, T);
    int same = 1;
    for (int i = 0; i < 2 * T; i++) same &= ids[i] == (int32_t)want_ids[i];
    EXPECT(same, "%s: token ids differ from transformers' tokenizer", name);

    sid_arena act;
    sid_arena_init(&act, "pipeline test", (size_t)1 << 30);
    sid_ctx c = {&m.clip_ps, &act};
    float *text = sid_malloc((size_t)2 * T * Wt * sizeof(float)), *want = golden(&st, "text", &n);
    sid_clip_forward(&c, &m.clip, text, ids, 2, T, m.clip_skip_layers);
    double e = max_rel(text, want, n);
    EXPECT(e < 1e-5, "%s: text embeddings differ from transformers by %.3g", name, e);
    free(want);

    size_t nt;
    float *x = golden(&st, "x", &n), *tt = golden(&st, "t", &nt), *eps = sid_malloc(n * sizeof(float));
    want = golden(&st, "eps", &n);
    sid_arena_reset(&act, 0);
    c = (sid_ctx){&m.unet_ps, &act};
    sid_unet_forward(&c, &m.unet, eps, x, tt, text, 1, S, S, T);
    e = max_rel(eps, want, n);
    EXPECT(e < 1e-5, "%s: UNet eps differs from diffusers by %.3g", name, e);
    free(want);

    int H, W;
    sid_vae_image_size(&m.vae_cfg, S, S, &H, &W);
    float *z = golden(&st, "z", &n), *img = sid_malloc((size_t)3 * H * W * sizeof(float));
    want = golden(&st, "image", &n);
    sid_arena_reset(&act, 0);
    c = (sid_ctx){&m.vae_ps, &act};
    sid_vae_decode(&c, &m.vae, img, z, 1, S, S);
    e = max_rel(img, want, n);
    EXPECT(n == (size_t)3 * H * W && e < 1e-5, "%s: VAE decode differs from diffusers by %.3g", name, e);
    free(want);

    // the one-step generator (the teacher's UNet at t_init = 625 from the noise z), then the VAE
    sid_schedule sched;
    sid_schedule_init(&sched, m.train_timesteps, m.beta_start, m.beta_end);
    const sid_generator g = {&m.unet, &sched, 625, 1, m.clip_sample, m.clip_sample_range, S, S};
    float *xg = sid_malloc((size_t)4 * S * S * sizeof(float));
    sid_arena_reset(&act, 0);
    sid_generator_apply(&g, &m.unet_ps, &act, text, T, z, NULL, 1, xg);
    want = golden(&st, "gen_x", &n);
    e = max_rel(xg, want, n);
    EXPECT(e < 1e-5, "%s: generator latent differs from diffusers by %.3g", name, e);
    free(want);
    sid_arena_reset(&act, 0);
    c = (sid_ctx){&m.vae_ps, &act};
    sid_vae_decode(&c, &m.vae, img, xg, 1, S, S);
    want = golden(&st, "gen_image", &n);
    e = max_rel(img, want, n);
    EXPECT(e < 1e-5, "%s: generator image differs from diffusers by %.3g", name, e);
    free(want);

    free(want_ids), free(text), free(x), free(tt), free(eps), free(z), free(img), free(xg);
    sid_schedule_free(&sched);
    sid_arena_free(&act);
    sid_st_close(&st);
    sid_tokenizer_free(tok);
    sid_sd_free(&m);
}

static void test_sd15_tiny_matches_diffusers(void) { check_pipeline("sd15_tiny"); }
static void test_sd2_tiny_matches_diffusers(void) { check_pipeline("sd2_tiny"); }

TEST_LIST(T(test_sd15_tiny_matches_diffusers), T(test_sd2_tiny_matches_diffusers))
TEST_MAIN("pipelines")
