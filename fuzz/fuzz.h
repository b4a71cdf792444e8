// Shared by the libFuzzer harnesses of this folder. Each harness defines its entry point with
// SID_FUZZ_TARGET(name): LLVMFuzzerTestOneInput when built for libFuzzer (`make fuzz`), and
// sid_fuzz_<name> when built into tests/test_fuzz_replay.c (-DSID_FUZZ_REPLAY), which links all
// harnesses into one program and replays their corpora in the normal test suite.
#ifndef SID_FUZZ_H
#define SID_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef SID_FUZZ_REPLAY
#define SID_FUZZ_TARGET(name) int sid_fuzz_##name(const uint8_t *data, size_t size)
#else
#define SID_FUZZ_TARGET(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif

// Folders and temp files under one private folder per process, removed at exit.
static char fuzz_tmp_root[64];

static inline void fuzz_tmp_cleanup(void) {
    if (!fuzz_tmp_root[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_tmp_root);
}

static inline const char *fuzz_tmp_dir(void) {
    if (!fuzz_tmp_root[0]) {
        strcpy(fuzz_tmp_root, "/tmp/sid_fuzz_XXXXXX");
        if (!mkdtemp(fuzz_tmp_root)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_tmp_cleanup);
    }
    return fuzz_tmp_root;
}

// Writes n bytes to path; aborts when it cannot (the harness, not the input, is broken then).
static inline void fuzz_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

// A NUL-terminated copy of n bytes (text parsers take C strings).
static inline char *fuzz_cstr(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

#endif
