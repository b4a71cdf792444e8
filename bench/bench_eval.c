// The evaluation networks of the COCO protocol (docs/coco.md), forward time per image on every
// usable backend in one run: FID Inception-v3 at 299x299 (random weights of the real shapes) for
// several batch sizes, and the protocol's per-image preprocessing (crop + Lanczos 256, bicubic 299)
// from a 512x512 image. bench/eval_vs_torch.sh puts pytorch-fid's Inception next to it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/threads.h"
#include "eval/coco.h"
#include "models/inception.h"
#include "ops/backend.h"

static double inception_ms_per_image(const sid_backend *be, int batch) {
    sid_inception *m = sid_inception_random(1, be);
    if (!m) sid_die("%s", sid_error());
    const int S = SID_INCEPTION_SIZE;
    const size_t np = (size_t)batch * 3 * S * S;
    float *h = sid_malloc(np * sizeof(float));
    sid_rng r = sid_rng_new(7);
    sid_rng_uniform(&r, h, np);
    for (size_t i = 0; i < np; i++) h[i] *= 255.0f;
    float *px = be->alloc(np * sizeof(float)), *feat = be->alloc((size_t)batch * SID_INCEPTION_FEATURES * sizeof(float));
    be->upload(px, h, np * sizeof(float));
    sid_arena act, meta;
    sid_backend_arena_init(&act, be, "inception activations", (size_t)batch * sid_inception_act_bytes(S) + (1u << 20));
    sid_arena_init(&meta, "meta", 1u << 16);
    const sid_ctx c = {.act = &act, .be = be, .meta = &meta};
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        const double t0 = sid_now();
        if (sid_inception_forward(&c, m, feat, px, batch, S)) sid_die("%s", sid_error());
        be->sync();
        const double t = sid_now() - t0;
        best = t < best ? t : best;
        sid_arena_reset(&act, 0), sid_arena_reset(&meta, 0);
    }
    be->free(px), be->free(feat);
    sid_arena_free(&act), sid_arena_free(&meta);
    sid_inception_free(m);
    free(h);
    return 1e3 * best / batch;
}

static double prep_ms_per_image(void) {
    enum { W = 512 };
    uint8_t *img = sid_malloc((size_t)W * W * 3);
    for (size_t i = 0; i < (size_t)W * W * 3; i++) img[i] = (uint8_t)(i * 2654435761u >> 24);
    float *fid = sid_malloc((size_t)3 * SID_INCEPTION_SIZE * SID_INCEPTION_SIZE * sizeof(float));
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        const double t0 = sid_now();
        if (sid_coco_prep_image(img, W, W, fid, 0, NULL, NULL, NULL)) sid_die("%s", sid_error());
        const double t = sid_now() - t0;
        best = t < best ? t : best;
    }
    free(img), free(fid);
    return 1e3 * best;
}

int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    const int threads = sid_threads_get();
    printf("eval networks (%d threads)\n", threads);
    printf("  preprocessing 512x512 -> crop + Lanczos 256 -> bicubic 299 (host): %8.2f ms/image\n", prep_ms_per_image());
    static const int batches[] = {1, 4, 16};
    for (int b = 0; sid_backend_at(b); b++) {
        const sid_backend *be = sid_backend_at(b);
        if (!be->available() || strcmp(be->name, "guard") == 0) continue;
        for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++)
            printf("  sid %-5s inception-v3 299x299  batch %3d  fwd %9.2f ms/image\n", be->name, batches[k],
                   inception_ms_per_image(be, batches[k]));
    }
    return 0;
}
