// The sid command. Subcommands arrive with the model and distillation issues;
// for now: version/build info and a self-check of the engine.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/threads.h"
#include "ops/backend.h"

static int cmd_info(void) {
    printf("sid engine: backends:");
    for (int i = 0; sid_backend_at(i); i++)
        printf(" %s%s", sid_backend_at(i)->name, sid_backend_at(i)->available() ? "" : " (unavailable)");
    printf("; threads: %d\n", sid_threads_get());
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: sid <command> [options]\n"
               "commands:\n"
               "  info        backends and threads of this build\n"
               "options:\n"
               "  --threads N  worker threads (default: all cores; env SID_THREADS)\n");
}

int main(int argc, char **argv) {
    sid_threads_init(argc, argv);
    int a = 1;
    for (; a < argc && strncmp(argv[a], "--", 2) == 0; a++) {
        if (strcmp(argv[a], "--threads") == 0 && a + 1 < argc) sid_threads_set(atoi(argv[++a]));
        else if (strcmp(argv[a], "--help") == 0) return usage(stdout), 0;
        else sid_die("unknown option '%s' (see sid --help)", argv[a]);
    }
    if (a >= argc) return usage(stderr), 2;
    if (strcmp(argv[a], "info") == 0) return cmd_info();
    sid_die("unknown command '%s' (see sid --help)", argv[a]);
}
