// bench_unet CONFIG BATCH SIZE CTX_LEN: UNet forward and forward+backward time per sample
// for a config, with random weights. bench/unet_vs_torch.sh runs it next to diffusers.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "models/unet.h"
#include "ops/cpu_isa.h"

int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    if (argc != 5) sid_die("usage: bench_unet CONFIG BATCH SIZE CTX_LEN");
    sid_unet_config cfg;
    if (sid_unet_config_load(&cfg, argv[1])) sid_die("%s", sid_error());
    const int N = atoi(argv[2]), S = atoi(argv[3]), M = atoi(argv[4]);
    sid_params ps = {0};
    sid_unet u;
    sid_unet_decl(&u, &ps, &cfg);
    sid_params_alloc(&ps, 1);
    sid_rng rng = sid_rng_new(1);
    sid_rng_normal(&rng, ps.data, ps.total);
    for (size_t i = 0; i < ps.total; i++) ps.data[i] *= 0.02f;
    const size_t nx = (size_t)N * cfg.in_channels * S * S, no = (size_t)N * cfg.out_channels * S * S;
    const size_t nc = (size_t)N * M * cfg.cross_attention_dim;
    float *x = sid_malloc(nx * 4), *ctx = sid_malloc(nc * 4), *out = sid_malloc(no * 4), *dout = sid_malloc(no * 4);
    float *dx = sid_calloc(nx * 4), t[1024];
    sid_rng_normal(&rng, x, nx), sid_rng_normal(&rng, ctx, nc), sid_rng_normal(&rng, dout, no);
    for (int i = 0; i < N; i++) t[i] = (float)((i * 397) % 1000);
    sid_arena act;
    sid_arena_init(&act, "bench activations", (size_t)16 << 30);
    sid_ctx c = {&ps, &act, NULL};
    double best_f = 1e30, best_fb = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        sid_arena_reset(&act, 0);
        double t0 = sid_now();
        sid_unet_saved *s = sid_unet_forward(&c, &u, out, x, t, ctx, N, S, S, M);
        double t1 = sid_now();
        sid_unet_backward(&c, &u, dx, NULL, dout, s);
        double t2 = sid_now();
        if (t1 - t0 < best_f) best_f = t1 - t0;
        if (t2 - t0 < best_fb) best_fb = t2 - t0;
    }
    printf("sid     %-12s params %10zu  batch %3d  %3dx%-3d  fwd %9.2f ms/sample  fwd+bwd %9.2f ms/sample  (%d threads, %.0f MB activations, cpu %s)\n",
           strrchr(argv[1], '/') ? strrchr(argv[1], '/') + 1 : argv[1], sid_params_count(&ps), N, S, S, 1e3 * best_f / N,
           1e3 * best_fb / N, sid_threads_get(), act.peak / 1e6, sid_cpu_isa());
    return 0;
}
