#include "error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_error[1024];

void sid_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *sid_error(void) { return last_error[0] ? last_error : "unknown error"; }

_Noreturn void sid_die(const char *fmt, ...) {
    // One write, so the line stays whole when other threads or processes share stderr.
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 5, sizeof line - 6, fmt, ap);
    va_end(ap);
    memcpy(line, "sid: ", 5);
    n = n < 0 ? 0 : n > (int)sizeof line - 7 ? (int)sizeof line - 7 : n;
    line[5 + n] = '\n';
    fwrite(line, 1, (size_t)n + 6, stderr);
    exit(1);
}

void *sid_malloc_impl(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) sid_die("%s:%d: out of memory allocating %zu bytes", file, line, n);
    return p;
}

void *sid_calloc_impl(size_t n, const char *file, int line) {
    void *p = calloc(1, n ? n : 1);
    if (!p) sid_die("%s:%d: out of memory allocating %zu bytes", file, line, n);
    return p;
}

void *sid_aligned_alloc_impl(size_t n, const char *file, int line) {
    size_t rounded = (n + 63) / 64 * 64;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) sid_die("%s:%d: out of memory allocating %zu bytes", file, line, n);
    return p;
}
