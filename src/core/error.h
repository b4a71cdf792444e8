// One-line errors. Library code that can fail on user input returns -1 after
// sid_set_error("file: problem"); programs print sid_error() and exit non-zero.
// Failures that are never the user's fault (out of memory) die at once.
#ifndef SID_ERROR_H
#define SID_ERROR_H
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SID_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SID_PRINTF(a, b)
#endif
#ifdef __cplusplus
#define SID_NORETURN [[noreturn]]
#else
#define SID_NORETURN _Noreturn
#endif

void sid_set_error(const char *fmt, ...) SID_PRINTF(1, 2);
const char *sid_error(void);
SID_NORETURN void sid_die(const char *fmt, ...) SID_PRINTF(1, 2);

void *sid_malloc_impl(size_t n, const char *file, int line);
void *sid_calloc_impl(size_t n, const char *file, int line);
void *sid_aligned_alloc_impl(size_t n, const char *file, int line);
#define sid_malloc(n) sid_malloc_impl((n), __FILE__, __LINE__)
#define sid_calloc(n) sid_calloc_impl((n), __FILE__, __LINE__)
// 64-byte aligned, release with free(); for tensors the kernels vectorise over.
#define sid_aligned_alloc(n) sid_aligned_alloc_impl((n), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif

#endif
