#include "cli/flags.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "ops/backend.h"
#include "ops/guard/guard.h"

static void usage(const char *cmd, const sid_flag *flags, int n) {
    printf("usage: sid %s [flags]\n", cmd);
    for (int i = 0; i < n; i++) printf("  %-18s %s\n", flags[i].name, flags[i].help);
}

int sid_flags_parse(const char *cmd, const sid_flag *flags, int n, int argc, char **argv, const char **positional) {
    return sid_flags_parse_given(cmd, flags, n, argc, argv, positional, NULL);
}

int sid_flags_parse_given(const char *cmd, const sid_flag *flags, int n, int argc, char **argv, const char **positional,
                          int *given) {
    int npos = 0;
    if (given) memset(given, 0, (size_t)n * sizeof *given);
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0) {
            usage(cmd, flags, n);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (!positional || npos == 8) {
                sid_set_error("%s: unexpected argument '%s' (see sid %s --help)", cmd, arg, cmd);
                return -1;
            }
            positional[npos++] = arg;
            positional[npos] = NULL;
            continue;
        }
        const sid_flag *f = NULL;
        for (int i = 0; i < n && !f; i++)
            if (strcmp(arg, flags[i].name) == 0) f = &flags[i];
        if (!f) {
            sid_set_error("%s: unknown flag '%s' (see sid %s --help)", cmd, arg, cmd);
            return -1;
        }
        if (given) given[f - flags] = 1;
        if (f->kind == SID_FLAG_BOOL) {
            *(int *)f->dst = 1;
            continue;
        }
        if (a + 1 >= argc) {
            sid_set_error("%s: %s needs a value", cmd, arg);
            return -1;
        }
        const char *v = argv[++a];
        if (f->kind == SID_FLAG_STR) {
            *(const char **)f->dst = v;
            continue;
        }
        char *end = NULL;
        const double x = strtod(v, &end);
        if (!end || *end || end == v || !isfinite(x)) {
            sid_set_error("%s: %s expects a number, got '%s'", cmd, arg, v);
            return -1;
        }
        if (f->kind == SID_FLAG_INT && x != floor(x)) {
            sid_set_error("%s: %s expects a whole number, got '%s'", cmd, arg, v);
            return -1;
        }
        if (x < f->min || x > f->max) {
            sid_set_error("%s: %s = %s is outside [%g, %g]", cmd, arg, v, f->min, f->max);
            return -1;
        }
        *(double *)f->dst = x;
    }
    return 0;
}

const sid_backend *sid_cli_device(const char *cmd, const char *device, int cpu_only) {
    const char *name = device ? device : getenv("SID_DEVICE") ? getenv("SID_DEVICE") : "cpu";
    // guard-bf16: the guard device in bf16 mode (ops/guard/guard.h)
    const int bf16 = strcmp(name, "guard-bf16") == 0;
    const sid_backend *be = sid_backend_by_name(bf16 ? "guard" : name);
    if (bf16) sid_guard_set_bf16(1);
    if (!be) sid_die("%s: --device %s: %s", cmd, name, sid_error());
    if (cpu_only && be != &sid_backend_cpu)
        sid_die("%s: --device %s: this command runs on the CPU only so far (distill, generate, sample and eval-model run on any device)", cmd, name);
    return be;
}
