// A minimal test runner: each test program lists its cases and calls
// harness_run, which prints one line per case, the seed with every failure,
// and a closing "name: N passed, N failed" line; the exit status is non-zero
// on any failure. SID_TEST_SEED=<n> replays a failing run, argv filters by name.
#ifndef SID_TEST_HARNESS_H
#define SID_TEST_HARNESS_H
#include <stdint.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case;

extern uint64_t test_seed;  // base seed of this run; cases derive their own streams from it

int harness_run(const char *suite, const test_case *cases, int n, int argc, char **argv);
void test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int test_failed(void);  // has the current case failed so far?

// Shared by the test programs.
void test_remove_tree(const char *path);          // rm -rf, for temp folders
int test_same_file(const char *a, const char *b); // byte-identical contents
const char *test_data_dir(void);                  // $SID_TEST_DATA or tests/data
// The CPU kernels' instruction sets this machine runs, except `except` (NULL: none), one per call
// from *i = 0: the next one's name, or NULL past the end. Those the CPU lacks print a visible SKIP.
const char *test_next_cpu_isa(int *i, const char *except);
void test_write_text(const char *path, const char *text);  // dies when it cannot
void test_gunzip(const char *src, const char *dst);         // dies when it cannot
void test_copy_file(const char *src, const char *dst);      // dies when it cannot
// The hashed values the reference scripts fill random weights and inputs with, so that a golden file
// needs no stored weights: FNV-1a 64 of a tensor's name is its seed, element i is a splitmix64 step
// of seed + (i + 1) * golden ratio, its top 24 bits as a fraction in [0, 1).
uint64_t test_fnv1a64(const char *s);
double test_hashed_unit(uint64_t seed, uint64_t i);
int test_ends_with(const char *s, const char *suffix);

#define EXPECT(cond, ...)                                               \
    do {                                                                \
        if (!(cond)) test_fail(__FILE__, __LINE__, __VA_ARGS__);        \
    } while (0)

#define TEST_LIST(...) static const test_case all_tests[] = {__VA_ARGS__};
#define T(fn) {#fn, fn}
#define TEST_MAIN(suite)                                                               \
    int main(int argc, char **argv) {                                                  \
        return harness_run(suite, all_tests, (int)(sizeof all_tests / sizeof all_tests[0]), argc, argv); \
    }

#endif
