// IDX arrays (plain or gzip): the input is the file.
#include "fuzz/fuzz.h"
#include "io/idx.h"

SID_FUZZ_TARGET(idx) {
    char path[128];
    snprintf(path, sizeof path, "%s/input.idx", fuzz_tmp_dir());
    fuzz_write(path, data, size);
    sid_idx x;
    if (sid_idx_read(path, &x) == 0) {
        size_t n = 1;
        for (int i = 0; i < x.ndim; i++) n *= (size_t)x.dims[i];
        volatile uint8_t sum = 0;  // touch every byte the header promised
        for (size_t i = 0; i < n; i++) sum += x.data[i];
        (void)sum;
        sid_idx_free(&x);
    }
    unlink(path);
    return 0;
}
