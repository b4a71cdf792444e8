#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "core/error.h"
#include "io/file.h"

#include "core/progress.h"
#include "core/threads.h"
#include "ops/cpu_isa.h"

uint64_t test_seed;
static int current_failed;
static const char *current_name;

void test_fail(const char *file, int line, const char *fmt, ...) {
    if (!current_failed) printf("\n");
    current_failed++;
    if (current_failed > 10) return;  // one broken op should not bury the rest of the log
    va_list ap;
    va_start(ap, fmt);
    printf("  FAIL %s:%d [%s, seed %llu]: ", file, line, current_name, (unsigned long long)test_seed);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

int test_failed(void) { return current_failed != 0; }

int harness_run(const char *suite, const test_case *cases, int n, int argc, char **argv) {
    sid_threads_init(argc, argv);
    const char *s = getenv("SID_TEST_SEED");
    test_seed = s ? strtoull(s, NULL, 10) : 20261126ull;
    int passed = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        int selected = argc <= 1;
        for (int a = 1; a < argc; a++) selected |= strstr(cases[i].name, argv[a]) != NULL;
        if (!selected) continue;
        current_failed = 0;
        current_name = cases[i].name;
        printf("%s/%s ...", suite, cases[i].name);
        fflush(stdout);
        double t0 = sid_now();
        cases[i].fn();
        double dt = sid_now() - t0;
        if (current_failed) {
            printf("%s/%s FAILED (%d checks, %.2fs)\n", suite, cases[i].name, current_failed, dt);
            failed++;
        } else {
            printf(" ok (%.2fs)\n", dt);
            passed++;
        }
        fflush(stdout);
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed ? 1 : 0;
}

void test_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[1024];
        while (d && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            test_remove_tree(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

int test_same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (sid_read_file(a, &x, &nx)) return 0;
    if (sid_read_file(b, &y, &ny)) return free(x), 0;
    int same = nx == ny && memcmp(x, y, nx) == 0;
    free(x), free(y);
    return same;
}

const char *test_data_dir(void) { return getenv("SID_TEST_DATA") ? getenv("SID_TEST_DATA") : "tests/data"; }

const char *test_next_cpu_isa(int *i, const char *except) {
    for (const char *isa; (isa = sid_cpu_isa_at(*i)); ++*i) {
        if (except && strcmp(isa, except) == 0) continue;
        if (!sid_cpu_isa_usable(isa)) {
            printf("\n  SKIP cpu kernels %s: this CPU lacks them", isa);
            continue;
        }
        ++*i;
        return isa;
    }
    return NULL;
}

void test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) sid_die("cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

uint64_t test_fnv1a64(const char *s) {
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
    return h;
}

double test_hashed_unit(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 40) / (double)(1u << 24);
}

int test_ends_with(const char *s, const char *suffix) {
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

void test_gunzip(const char *src, const char *dst) {
    gzFile g = gzopen(src, "rb");
    if (!g) sid_die("cannot open %s (set SID_TEST_DATA to the tests/data folder)", src);
    FILE *f = fopen(dst, "wb");
    if (!f) sid_die("cannot write %s", dst);
    char buf[65536];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, f);
    if (n < 0 || fclose(f) != 0) sid_die("cannot gunzip %s", src);
    gzclose(g);
}

void test_copy_file(const char *src, const char *dst) {
    char *data;
    size_t n;
    if (sid_read_file(src, &data, &n) != 0) sid_die("%s", sid_error());
    FILE *f = fopen(dst, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) sid_die("cannot write %s", dst);
    free(data);
}
