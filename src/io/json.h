// Thin helpers over cJSON for config files: load/save with file-named errors,
// and typed getters whose failures read "config.json: 'key' must be ...".
#ifndef SID_IO_JSON_H
#define SID_IO_JSON_H
#include <cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

// NULL with "path: no such file" or "path: invalid JSON near byte K (line L)".
// Free with cJSON_Delete.
cJSON *sid_json_load(const char *path);
// Pretty-printed with a trailing newline, written atomically.
int sid_json_save(const char *path, const cJSON *j);

// Typed getters. obj is the enclosing object (NULL counts as empty); path only
// names the file in messages. A missing key, or one whose value is JSON null
// (diffusers configs write null for "unset"), stores dflt and returns 0 unless
// required, in which case it is an error. A present value of the wrong type is
// always an error: a typo in a config must not silently become the default.
int sid_json_int(const cJSON *obj, const char *key, int *out, int dflt, int required, const char *path);
int sid_json_double(const cJSON *obj, const char *key, double *out, double dflt, int required, const char *path);
int sid_json_bool(const cJSON *obj, const char *key, int *out, int dflt, int required, const char *path);
// *out points into obj and lives as long as it.
int sid_json_string(const cJSON *obj, const char *key, const char **out, const char *dflt, int required,
                    const char *path);
// A required array of up to cap integers; *n gets the count. A bare integer is
// accepted as a one-element array because diffusers configs write either
// form (attention_head_dim: 8 or [5, 10, 20, 20]); the caller decides whether
// one element broadcasts.
int sid_json_int_array(const cJSON *obj, const char *key, int *out, int cap, int *n, const char *path);

// Adds a float as the shortest decimal that reads back as the same float ("lr": 0.0002, not the
// widened 0.000199999994947575 a double conversion prints).
cJSON *sid_json_add_float(cJSON *obj, const char *key, float v);

#ifdef __cplusplus
}
#endif

#endif
