#include "io/json.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"

cJSON *sid_json_load(const char *path) {
    char *text;
    size_t len;
    if (sid_read_file(path, &text, &len) != 0) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (j) {  // cJSON stops after the first value; anything but whitespace after it is an error
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end < text + len) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    if (!j) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        int line = 1;
        for (size_t i = 0; i < at; i++) line += text[i] == '\n';
        sid_set_error("%s: invalid JSON near byte %zu (line %d)", path, at, line);
    }
    free(text);
    return j;
}

int sid_json_save(const char *path, const cJSON *j) {
    char *text = cJSON_Print(j);
    if (!text) sid_die("out of memory printing JSON for %s", path);
    char tmp[4096];
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) {
        cJSON_free(text);
        return -1;
    }
    fputs(text, f);
    fputc('\n', f);
    cJSON_free(text);
    return sid_atomic_commit(f, tmp, path);
}

static const char *type_name(const cJSON *v) {
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "something else";
}

// The value under key, or NULL when absent or null; -1 when that is an error.
static int lookup(const cJSON *obj, const char *key, int required, const char *path, const cJSON **v) {
    *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    if (*v && cJSON_IsNull(*v)) *v = NULL;
    if (!*v && required) {
        sid_set_error("%s: missing required key '%s'", path, key);
        return -1;
    }
    return 0;
}

static int wrong_type(const cJSON *v, const char *key, const char *want, const char *path) {
    sid_set_error("%s: '%s' must be %s, got %s", path, key, want, type_name(v));
    return -1;
}

static int to_int(const cJSON *v, const char *key, int *out, const char *path) {
    if (!cJSON_IsNumber(v)) return wrong_type(v, key, "an integer", path);
    double d = v->valuedouble;
    if (d != floor(d) || d < INT_MIN || d > INT_MAX) {
        sid_set_error("%s: '%s' must be an integer in int range, got %g", path, key, d);
        return -1;
    }
    *out = (int)d;
    return 0;
}

int sid_json_int(const cJSON *obj, const char *key, int *out, int dflt, int required, const char *path) {
    const cJSON *v;
    if (lookup(obj, key, required, path, &v) != 0) return -1;
    if (!v) {
        *out = dflt;
        return 0;
    }
    return to_int(v, key, out, path);
}

int sid_json_double(const cJSON *obj, const char *key, double *out, double dflt, int required, const char *path) {
    const cJSON *v;
    if (lookup(obj, key, required, path, &v) != 0) return -1;
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return wrong_type(v, key, "a number", path);
    *out = v->valuedouble;
    return 0;
}

int sid_json_bool(const cJSON *obj, const char *key, int *out, int dflt, int required, const char *path) {
    const cJSON *v;
    if (lookup(obj, key, required, path, &v) != 0) return -1;
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return wrong_type(v, key, "true or false", path);
    *out = cJSON_IsTrue(v);
    return 0;
}

int sid_json_string(const cJSON *obj, const char *key, const char **out, const char *dflt, int required,
                    const char *path) {
    const cJSON *v;
    if (lookup(obj, key, required, path, &v) != 0) return -1;
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsString(v)) return wrong_type(v, key, "a string", path);
    *out = v->valuestring;
    return 0;
}

int sid_json_int_array(const cJSON *obj, const char *key, int *out, int cap, int *n, const char *path) {
    const cJSON *v;
    *n = 0;
    if (lookup(obj, key, 1, path, &v) != 0) return -1;
    if (cJSON_IsNumber(v)) {
        if (cap < 1) {
            sid_set_error("%s: '%s' has 1 element, at most %d allowed", path, key, cap);
            return -1;
        }
        if (to_int(v, key, out, path) != 0) return -1;
        *n = 1;
        return 0;
    }
    if (!cJSON_IsArray(v)) return wrong_type(v, key, "an array of integers", path);
    int count = cJSON_GetArraySize(v);
    if (count > cap) {
        sid_set_error("%s: '%s' has %d elements, at most %d allowed", path, key, count, cap);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < INT_MIN ||
            e->valuedouble > INT_MAX) {
            sid_set_error("%s: '%s' element %d must be an integer, got %s", path, key, i,
                          cJSON_IsNumber(e) ? "a fraction or huge number" : type_name(e));
            return -1;
        }
        out[i++] = (int)e->valuedouble;
    }
    *n = count;
    return 0;
}

cJSON *sid_json_add_float(cJSON *obj, const char *key, float v) {
    char buf[32];
    double shortest = v;
    for (int digits = 1; digits <= 9 && isfinite(v); digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) {
            shortest = strtod(buf, NULL);  // cJSON prints this double in its shortest form
            break;
        }
    }
    return cJSON_AddNumberToObject(obj, key, shortest);
}
