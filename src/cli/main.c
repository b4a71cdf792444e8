// The sid command. Subcommands arrive with the model and distillation issues;
// for now: version/build info and a self-check of the engine.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "dist/dist.h"
#include "ops/backend.h"
#include "ops/cpu_isa.h"
#ifdef SID_HAVE_NCCL
#include "dist/nccl.h"
#endif

static int cmd_info(void) {
    printf("sid engine: backends:");
    for (int i = 0; sid_backend_at(i); i++)
        printf(" %s%s", sid_backend_at(i)->name, sid_backend_at(i)->available() ? "" : " (unavailable)");
    printf("; threads: %d; mpi: %s", sid_threads_get(), sid_dist_compiled() ? "built" : "off");
    if (sid_dist_size() > 1) printf(" (rank %d of %d)", sid_dist_rank(), sid_dist_size());
#ifdef SID_HAVE_NCCL
    const char *nv = sid_dist_nccl_version();
    printf("; nccl: %s", nv ? nv : "not loadable");
#else
    printf("; nccl: off");
#endif
    printf("\n");
    printf("cpu kernels: %s (compiled:", sid_cpu_isa());
    for (int i = 0; sid_cpu_isa_at(i); i++) printf(" %s", sid_cpu_isa_at(i));
    printf("; usable here:");
    for (int i = 0; sid_cpu_isa_at(i); i++)
        if (sid_cpu_isa_usable(sid_cpu_isa_at(i))) printf(" %s", sid_cpu_isa_at(i));
    printf("; SID_ISA picks one); cpu features: %s; openblas: %s\n", sid_cpu_features(), openblas_get_corename());
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: sid <command> [options]\n"
               "commands:\n"
               "  info              backends, threads and CPU kernels of this build\n"
               "  selftest [DIR]    train a tiny conv net end to end, write DIR (out/selftest)\n"
               "  inspect PATH      model kind, config and parameter counts of a folder, config or checkpoint\n"
               "  distill           SiD-LSG: distil a teacher into a one-step generator (sid distill --help)\n"
               "  generate          one-step generation with a distilled generator (sid generate --help)\n"
               "  train-teacher     train the built-in Fashion-MNIST teacher (sid train-teacher --help)\n"
               "  sample            text to image: DDIM with guidance (sid sample --help)\n"
               "  train-classifier  train the evaluation CNN on Fashion-MNIST (models/classifier)\n"
               "  eval              FID and alignment of images, or --real for the real-vs-real floor\n"
               "  eval-model        generate from held-out prompts, then FID and alignment (JSON line)\n"
               "  eval-coco         zero-shot COCO-2014: FID, KID, CLIP score of a generator (sid eval-coco --help)\n"
               "  fid-ref-stats     FID reference statistics of an image folder, computed once (--help)\n"
               "  convert-unet SRC DST [--config F] [--dtype f32|f16|bf16]\n"
               "                    a UNet (diffusers folder or single-file checkpoint) as a diffusers folder\n"
               "options:\n"
               "  --threads N  worker threads (default: all cores; env SID_THREADS)\n");
}

int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    int a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--threads") == 0) {
            char *end = NULL;
            long n = a + 1 < argc ? strtol(argv[a + 1], &end, 10) : 0;
            if (!end || *end || n < 1 || n > 1024) sid_die("--threads: expected a count from 1 to 1024");
            sid_threads_set((int)n);
            a++;
        }
        else if (strcmp(argv[a], "--help") == 0) return usage(stdout), 0;
        else sid_die("unknown option '%s' (see sid --help)", argv[a]);
    }
    if (a >= argc) return usage(stderr), 2;
    // the commands that run data-parallel under an MPI launcher (mpirun -np N sid distill ...)
    // A rank that fails exits without MPI_Finalize (sid_die), which makes the launcher end the others.
    if (strcmp(argv[a], "distill") == 0 || strcmp(argv[a], "train-teacher") == 0 || strcmp(argv[a], "info") == 0) {
        if (sid_dist_init(&argc, &argv)) sid_die("%s", sid_error());
        const int rc = strcmp(argv[a], "info") == 0      ? cmd_info()
                       : strcmp(argv[a], "distill") == 0 ? cmd_distill(argc - a - 1, argv + a + 1)
                                                         : cmd_train_teacher(argc - a - 1, argv + a + 1);
        sid_dist_finalize();
        return rc;
    }
    if (strcmp(argv[a], "train-classifier") == 0) return cmd_train_classifier(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "eval-model") == 0) return cmd_eval_model(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "eval") == 0) return cmd_eval(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "eval-coco") == 0) return cmd_eval_coco(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "fid-ref-stats") == 0) return cmd_fid_ref_stats(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "generate") == 0) return cmd_generate(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "sample") == 0) return cmd_sample(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "convert-unet") == 0) return cmd_convert_unet(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "inspect") == 0) return cmd_inspect(argc - a - 1, argv + a + 1);
    if (strcmp(argv[a], "selftest") == 0) return cmd_selftest(argc - a - 1, argv + a + 1);
    sid_die("unknown command '%s' (see sid --help)", argv[a]);
}
