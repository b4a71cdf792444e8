// The op checker: runs one op case on a backend and compares
//  - the forward output with a naive double-precision reference, and
//  - the backward (which must accumulate into the gradients it is given) with
//    central finite differences of that double reference, on every coordinate
//    of small inputs and on a random sample of large ones,
//  - and the input-only backward (weight gradients NULL, as for a frozen
//    network) with the full one.
#ifndef SID_OP_CHECK_H
#define SID_OP_CHECK_H
#include <stddef.h>
#include <stdint.h>

#include "ops/backend.h"

enum { MAX_IO = 6 };

typedef struct {
    int i[10];
    float f[4];
    int32_t ids[64];  // token ids for embedding cases (host memory)
} op_params;

typedef struct op_case {
    const char *name;
    int n_in, n_out;
    size_t in_size[MAX_IO], out_size[MAX_IO];
    int in_diff[MAX_IO];   // input gets a gradient (checked against finite differences)
    int in_frozen[MAX_IO]; // gradient skipped (NULL) in the input-only backward
    int out_loss[MAX_IO];  // output enters the loss; others are state saved for backward
    float in_lo, in_hi;    // inputs drawn uniform in [lo, hi] (default [-1, 1])
    op_params p;
    void (*fwd)(const sid_backend *be, const op_params *p, float **in, float **out);
    void (*bwd)(const sid_backend *be, const op_params *p, float **in, float **out, float **dout, float **din);
    void (*ref)(const op_params *p, double **in, double **out);
    double fwd_tol, grad_tol;  // 0: defaults 2e-5 and 1e-4, relative to the largest magnitude
} op_case;

typedef struct {
    double fwd_err;          // max |y - y_ref| / scale
    double grad_err;         // worst relative gradient error over inputs
    double frozen_err;       // input-only vs full backward
    int fwd_bad, grad_bad, frozen_bad;
    char where[160];         // first failure, human readable
} op_report;

// Returns 0 when every check is within tolerance.
int op_check(const sid_backend *be, const op_case *c, uint64_t seed, op_report *r);

#endif
