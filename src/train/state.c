#include "train/state.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/params.h"

int sid_state_save(const char *path, const sid_backend *be, const sid_state_block *blocks, int nb,
                   const sid_st_entry *ints, int ni, const sid_state_counter *counters, int nc) {
    be = sid_backend_or_cpu(be);
    sid_st_entry *e = sid_calloc((size_t)(nb + ni) * sizeof *e);
    float **host = sid_calloc((size_t)nb * sizeof *host);
    int n = 0;
    for (int k = 0; k < nb; k++) {
        if (!blocks[k].data) continue;
        const float *src = blocks[k].data;
        if (be != &sid_backend_cpu) {  // device blocks come to the host for the file
            host[k] = sid_malloc(blocks[k].n * sizeof(float) + 4);
            be->download(host[k], blocks[k].data, blocks[k].n * sizeof(float));
            src = host[k];
        }
        e[n++] = (sid_st_entry){blocks[k].name, SID_F32, 1, {(int64_t)blocks[k].n}, src};
    }
    for (int k = 0; k < ni; k++) e[n++] = ints[k];
    char (*vals)[24] = sid_calloc((size_t)(nc ? nc : 1) * sizeof *vals);
    const char **kv = sid_calloc((size_t)(2 * nc + 1) * sizeof *kv);
    for (int k = 0; k < nc; k++) {
        snprintf(vals[k], sizeof vals[k], "%" PRIu64, counters[k].value);
        kv[2 * k] = counters[k].name, kv[2 * k + 1] = vals[k];
    }
    const int rc = sid_st_write(path, e, n, kv, nc);
    for (int k = 0; k < nb; k++) free(host[k]);
    free(host), free(e), free(vals), free(kv);
    return rc;
}

int sid_state_load(const char *path, const sid_backend *be, const sid_state_block *blocks, int nb, sid_st_entry *ints,
                   int ni, sid_state_counter *counters, int nc) {
    be = sid_backend_or_cpu(be);
    sid_safetensors st;
    if (sid_st_open(&st, path)) return -1;
    int rc = 0;
    for (int k = 0; k < nb && !rc; k++) {
        if (!blocks[k].data) continue;
        const sid_st_tensor *x = sid_st_find(&st, blocks[k].name);
        if (!x || sid_shape_numel(x->ndim, x->shape) != (int64_t)blocks[k].n) {
            sid_set_error("%s: tensor '%s' missing or of another size (the state of another model or settings?)", path,
                          blocks[k].name);
            rc = -1;
            break;
        }
        float *dst = be == &sid_backend_cpu ? blocks[k].data : sid_malloc(blocks[k].n * sizeof(float) + 4);
        rc = sid_st_read_f32(&st, x, dst);
        if (!rc && blocks[k].check_weights) rc = sid_weights_check(dst, blocks[k].n, path, blocks[k].name);
        if (!rc && dst != blocks[k].data) be->upload(blocks[k].data, dst, blocks[k].n * sizeof(float));
        if (dst != blocks[k].data) free(dst);
    }
    for (int k = 0; k < ni && !rc; k++) {
        const sid_st_tensor *x = sid_st_find(&st, ints[k].name);
        const int64_t want = sid_shape_numel(ints[k].ndim, ints[k].shape);
        if (!x || x->dtype != SID_I32 || sid_shape_numel(x->ndim, x->shape) != want) {
            sid_set_error("%s: tensor '%s' missing or not %lld int32 values (another prompt file?)", path, ints[k].name,
                          (long long)want);
            rc = -1;
        } else {
            memcpy((void *)ints[k].data, x->data, (size_t)want * sizeof(int32_t));
        }
    }
    for (int k = 0; k < nc && !rc; k++) {
        const cJSON *j = st.metadata ? cJSON_GetObjectItemCaseSensitive(st.metadata, counters[k].name) : NULL;
        if (!j && counters[k].alias && st.metadata) j = cJSON_GetObjectItemCaseSensitive(st.metadata, counters[k].alias);
        char *end = NULL;
        if (cJSON_IsString(j)) counters[k].value = strtoull(j->valuestring, &end, 10);
        if (!cJSON_IsString(j) || !end || *end || end == j->valuestring) {
            sid_set_error("%s: metadata lacks the counter '%s'", path, counters[k].name);
            rc = -1;
        }
    }
    sid_st_close(&st);
    return rc;
}
