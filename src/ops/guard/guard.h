// The guard device: a backend of the op table (backend.h, name "guard", always compiled and
// always usable) that runs the CPU kernels but treats its memory the way a GPU does, so code
// that would break on a GPU breaks on any machine (docs/engine.md, "The guard device"):
//  - every allocation is its own mmap region followed by an inaccessible page, and every region
//    is PROT_NONE between ops: a host dereference of device memory faults at its line
//    (SIGSEGV, with a one-line note naming the buffer), and so does a kernel that runs past
//    the end of its buffer;
//  - every op checks that each non-NULL pointer argument lies in a guard buffer and that the
//    extent the op reads or writes there (from its size arguments) fits in that buffer; a
//    violation prints one line naming the op, the argument and the pointer, and aborts;
//  - upload/download check that the device side is guard memory and the host side is not,
//    and are counted (calls and bytes).
// alloc() returns zeroed memory (the backend contract); sid_guard_alloc_poisoned returns
// memory filled with NaN, for buffers that are not meant to be zero (scratch, arenas), so that
// reading what was never written shows up as NaN.
#ifndef SID_OPS_GUARD_H
#define SID_OPS_GUARD_H
#include <stddef.h>

#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const sid_backend sid_backend_guard;

// Like sid_backend_guard.alloc, but every 4-byte word is the quiet NaN 0x7fc0dead (a tail of
// fewer than 4 bytes is 0xff). Freed with sid_backend_guard.free.
void *sid_guard_alloc_poisoned(size_t bytes);

// bf16 mode ("guard-bf16" on the command line): after every op its activation outputs (forward
// outputs and activation gradients of the network ops) are rounded to bf16, while statistics,
// losses, parameter gradients, optimizer state and the SiD arithmetic stay fp32: the CPU's
// kernels with bf16 activation storage, to calibrate bf16 tolerances without a GPU.
void sid_guard_set_bf16(int on);
int sid_guard_bf16(void);

// Transfers since the start or the last reset: calls and bytes of upload and download.
// Any argument may be NULL.
void sid_guard_stats(size_t *uploads, size_t *upload_bytes, size_t *downloads, size_t *download_bytes);
void sid_guard_stats_reset(void);

// Guard buffers allocated and not yet freed: how many, and their bytes (as requested).
void sid_guard_live(size_t *buffers, size_t *bytes);

// 1 when p lies inside a live guard buffer (its first byte up to, not including, its end).
int sid_guard_owns(const void *p);

#ifdef __cplusplus
}
#endif

#endif
