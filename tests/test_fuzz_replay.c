// Replays every file of tests/data/fuzz/<name>/ through the fuzz harness <name> (fuzz/*.c,
// built with -DSID_FUZZ_REPLAY), so the normal suite and its sanitizer build re-run the seed
// corpora and every input that once crashed sid. A crash is a crash of this program; a case
// fails when its corpus folder is missing or empty.
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "harness.h"

int sid_fuzz_safetensors(const uint8_t *data, size_t size);
int sid_fuzz_config(const uint8_t *data, size_t size);
int sid_fuzz_tokenizer(const uint8_t *data, size_t size);
int sid_fuzz_idx(const uint8_t *data, size_t size);
int sid_fuzz_png(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void replay(const char *name, int (*target)(const uint8_t *, size_t)) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/fuzz/%s", test_data_dir(), name);
    DIR *d = opendir(dir);
    EXPECT(d, "%s: no corpus folder", dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names) sid_die("out of memory");
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);  // a fixed order, so a failure replays the same way
    EXPECT(n > 0, "%s: empty corpus", dir);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        EXPECT(f, "%s: cannot open", path);
        if (f) {
            fseek(f, 0, SEEK_END);
            const long len = ftell(f);
            fseek(f, 0, SEEK_SET);
            // An exact-size copy, as libFuzzer passes it: ASan sees a read one byte past the end.
            uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
            if (!buf || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)) sid_die("cannot read %s", path);
            fclose(f);
            EXPECT(target(buf, (size_t)len) == 0, "%s: harness returned non-zero", path);
            free(buf);
        }
        free(names[i]);
    }
    free(names);
}

static void test_safetensors(void) { replay("safetensors", sid_fuzz_safetensors); }
static void test_config(void) { replay("config", sid_fuzz_config); }
static void test_tokenizer(void) { replay("tokenizer", sid_fuzz_tokenizer); }
static void test_idx(void) { replay("idx", sid_fuzz_idx); }
static void test_png(void) { replay("png", sid_fuzz_png); }

TEST_LIST(T(test_safetensors), T(test_config), T(test_tokenizer), T(test_idx), T(test_png))
TEST_MAIN("fuzz_replay")
