// safetensors: the input is a whole file image, validated from memory; every tensor of an
// accepted image is looked up by name and, for float dtypes, converted to float.
#include "fuzz/fuzz.h"
#include "io/safetensors.h"

SID_FUZZ_TARGET(safetensors) {
    sid_safetensors st;
    if (sid_st_parse_memory(&st, data, size, "fuzz.safetensors") != 0) return 0;
    for (int i = 0; i < st.n; i++) {
        const sid_st_tensor *t = sid_st_find(&st, st.tensors[i].name);
        if (t != &st.tensors[i]) abort();  // names are unique and sorted: the lookup must find it
        if (t->dtype != SID_F32 && t->dtype != SID_F16 && t->dtype != SID_BF16) continue;
        const size_t n = (t->end - t->begin) / sid_dtype_size(t->dtype);
        float *dst = malloc(n ? n * sizeof *dst : 1);
        if (!dst) abort();
        if (sid_st_read_f32(&st, t, dst) != 0) abort();
        free(dst);
    }
    sid_st_close(&st);
    return 0;
}
