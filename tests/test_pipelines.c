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
#include "ops/guard/guard.h"
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
    sid_ctx c = {&m.clip_ps, &act, NULL};
    float *text = sid_malloc((size_t)2 * T * Wt * sizeof(float)), *want = golden(&st, "text", &n);
    sid_clip_forward(&c, &m.clip, text, ids, 2, T, m.clip_skip_layers);
    double e = max_rel(text, want, n);
    EXPECT(e < 1e-5, "%s: text embeddings differ from transformers by %.3g", name, e);
    free(want);

    size_t nt;
    float *x = golden(&st, "x", &n), *tt = golden(&st, "t", &nt), *eps = sid_malloc(n * sizeof(float));
    want = golden(&st, "eps", &n);
    sid_arena_reset(&act, 0);
    c = (sid_ctx){&m.unet_ps, &act, NULL};
    sid_unet_forward(&c, &m.unet, eps, x, tt, text, 1, S, S, T);
    e = max_rel(eps, want, n);
    EXPECT(e < 1e-5, "%s: UNet eps differs from diffusers by %.3g", name, e);
    free(want);

    int H, W;
    sid_vae_image_size(&m.vae_cfg, S, S, &H, &W);
    float *z = golden(&st, "z", &n), *img = sid_malloc((size_t)3 * H * W * sizeof(float));
    want = golden(&st, "image", &n);
    sid_arena_reset(&act, 0);
    c = (sid_ctx){&m.vae_ps, &act, NULL};
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
    c = (sid_ctx){&m.vae_ps, &act, NULL};
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

// ---------------------------------------------------------------- the same stages on a device
// A host array in be's memory (a copy; the host array itself for the CPU).
static void *on_device(const sid_backend *be, const void *host, size_t bytes) {
    if (!be) return (void *)host;
    void *d = be->alloc(bytes);
    be->upload(d, host, bytes);
    return d;
}

static void *device_out(const sid_backend *be, size_t bytes) { return be ? be->alloc(bytes) : sid_calloc(bytes); }

static float *to_host(const sid_backend *be, const float *d, size_t n) {
    float *h = sid_malloc(n * sizeof(float));
    if (be) be->download(h, d, n * sizeof(float));
    else memcpy(h, d, n * sizeof(float));
    return h;
}

typedef struct {
    float *text, *eps, *image;  // host copies
    size_t nt, ne, ni;
} stage_outputs;

// Text encoder, UNet and VAE decode of the golden inputs with every buffer (weights, activations,
// inputs, outputs) in be's memory (NULL: the CPU as the other tests run it).
static int run_stages(const char *name, const sid_backend *be, stage_outputs *o) {
    char dir[512], gpath[512];
    snprintf(dir, sizeof dir, "%s/pipelines/%s", test_data_dir(), name);
    snprintf(gpath, sizeof gpath, "%s/pipelines/%s_golden.safetensors", test_data_dir(), name);
    sid_sd_model m = {0};
    sid_safetensors st;
    if (sid_sd_load(&m, dir, SID_SD_ALL, 0)) return -1;
    if (sid_st_open(&st, gpath)) return sid_sd_free(&m), -1;
    if (be) sid_params_to_backend(&m.unet_ps, be), sid_params_to_backend(&m.clip_ps, be), sid_params_to_backend(&m.vae_ps, be);
    const int T = 77, Wt = m.clip_cfg.hidden, S = m.unet_cfg.sample_size;
    size_t n;
    float *fids = golden(&st, "ids", &n), *x = golden(&st, "x", &n), *t = golden(&st, "t", &n), *z = golden(&st, "z", &n);
    int32_t ids[2 * 77];
    for (int i = 0; i < 2 * T; i++) ids[i] = (int32_t)fids[i];
    sid_arena act, meta;
    sid_backend_arena_init(&act, be, "pipeline stages", (size_t)256 << 20);
    sid_arena_init(&meta, "pipeline stage state", (size_t)16 << 20);
    int H, W;
    sid_vae_image_size(&m.vae_cfg, S, S, &H, &W);
    o->nt = (size_t)2 * T * Wt, o->ne = (size_t)4 * S * S, o->ni = (size_t)3 * H * W;
    int32_t *d_ids = on_device(be, ids, sizeof ids);
    float *d_x = on_device(be, x, o->ne * 4), *d_t = on_device(be, t, 4), *d_z = on_device(be, z, o->ne * 4);
    float *d_text = device_out(be, o->nt * 4), *d_eps = device_out(be, o->ne * 4), *d_img = device_out(be, o->ni * 4);
    sid_ctx c = {&m.clip_ps, &act, be, &meta};
    sid_clip_forward(&c, &m.clip, d_text, d_ids, 2, T, m.clip_skip_layers);
    sid_arena_reset(&act, 0), sid_arena_reset(&meta, 0);
    c.ps = &m.unet_ps;
    sid_unet_forward(&c, &m.unet, d_eps, d_x, d_t, d_text, 1, S, S, T);
    sid_arena_reset(&act, 0), sid_arena_reset(&meta, 0);
    c.ps = &m.vae_ps;
    sid_vae_decode(&c, &m.vae, d_img, d_z, 1, S, S);
    o->text = to_host(be, d_text, o->nt), o->eps = to_host(be, d_eps, o->ne), o->image = to_host(be, d_img, o->ni);
    void *bufs[] = {d_ids, d_x, d_t, d_z, d_text, d_eps, d_img};
    for (int i = 0; i < 7; i++)
        if (be) be->free(bufs[i]);
        else if (i >= 4) free(bufs[i]);
    free(fids), free(x), free(t), free(z);
    sid_arena_free(&act), sid_arena_free(&meta);
    sid_st_close(&st);
    sid_sd_free(&m);
    return 0;
}

// Equal bit for bit on the guard device (the CPU's kernels); within 1e-4 of the largest value on
// another device (a GPU's kernels sum in other orders; fp32, TF32 off).
static void expect_same(const sid_backend *be, const char *name, const char *what, const float *cpu, const float *dev,
                        size_t n) {
    if (be == &sid_backend_guard) {
        EXPECT(memcmp(cpu, dev, n * 4) == 0, "%s: %s on the guard device differ from the CPU", name, what);
    } else {
        const double e = max_rel(dev, cpu, n);
        EXPECT(e < 1e-4, "%s: %s on %s differ from the CPU by %.3g", name, what, be->name, e);
    }
}

static void check_on_devices(const char *name) {
    stage_outputs cpu = {0};
    if (run_stages(name, NULL, &cpu)) {
        test_fail(__FILE__, __LINE__, "%s: %s", name, sid_error());
        return;
    }
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (be == &sid_backend_cpu) continue;
        if (!be->available()) {
            printf("SKIP %s (not usable here) ", be->name);
            continue;
        }
        stage_outputs dev = {0};
        if (run_stages(name, be, &dev)) {
            test_fail(__FILE__, __LINE__, "%s on %s: %s", name, be->name, sid_error());
            continue;
        }
        expect_same(be, name, "text embeddings", cpu.text, dev.text, cpu.nt);
        expect_same(be, name, "UNet eps", cpu.eps, dev.eps, cpu.ne);
        expect_same(be, name, "VAE decode", cpu.image, dev.image, cpu.ni);
        free(dev.text), free(dev.eps), free(dev.image);
    }
    free(cpu.text), free(cpu.eps), free(cpu.image);
}

static void test_sd15_tiny_matches_diffusers(void) { check_pipeline("sd15_tiny"); }
static void test_sd2_tiny_matches_diffusers(void) { check_pipeline("sd2_tiny"); }
// Every stage with its weights, activations and inputs in a device's memory (the guard device's,
// which the host cannot read between ops, and a GPU's where one is usable).
static void test_sd15_tiny_on_devices(void) { check_on_devices("sd15_tiny"); }
static void test_sd2_tiny_on_devices(void) { check_on_devices("sd2_tiny"); }

TEST_LIST(T(test_sd15_tiny_matches_diffusers), T(test_sd2_tiny_matches_diffusers), T(test_sd15_tiny_on_devices),
          T(test_sd2_tiny_on_devices))
TEST_MAIN("pipelines")
