// File formats: safetensors (reference test vector, round trips, one test per
// rejection rule), atomic writes, JSON getters, PNG, IDX, half conversions.
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/tensor.h"
#include "harness.h"
#include "io/file.h"
#include "io/idx.h"
#include "io/json.h"
#include "io/png.h"
#include "io/safetensors.h"

// ---------------------------------------------------------------- helpers

static void make_tmpdir(char *dir, size_t cap) {
    snprintf(dir, cap, "/tmp/sid_test_io_XXXXXX");
    if (!mkdtemp(dir)) sid_die("mkdtemp failed");
}


static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static const char *join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) sid_die("cannot create %s", path);
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

// A safetensors file from its parts: declared header length n (which may lie),
// header text, data bytes.
static void write_st_raw(const char *path, uint64_t n, const char *hdr, const void *data, size_t dlen) {
    size_t hl = strlen(hdr);
    uint8_t *b = sid_malloc(8 + hl + dlen);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, hdr, hl);
    if (dlen) memcpy(b + 8 + hl, data, dlen);
    write_bytes(path, b, 8 + hl + dlen);
    free(b);
}

static int contains(const char *s, const char *word) { return strstr(s, word) != NULL; }

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// ---------------------------------------------------------------- conversions

static void test_f16_bf16_conversions(void) {
    EXPECT(sid_f32_to_f16(1.0f) == 0x3c00, "f16(1) = 0x%04x", sid_f32_to_f16(1.0f));
    EXPECT(sid_f32_to_f16(-2.0f) == 0xc000, "f16(-2) = 0x%04x", sid_f32_to_f16(-2.0f));
    EXPECT(sid_f32_to_f16(65504.0f) == 0x7bff, "f16(65504) = 0x%04x", sid_f32_to_f16(65504.0f));
    EXPECT(sid_f32_to_f16(65520.0f) == 0x7c00, "f16(65520) rounds to inf, got 0x%04x", sid_f32_to_f16(65520.0f));
    EXPECT(sid_f32_to_f16(65519.0f) == 0x7bff, "f16(65519) = 0x%04x", sid_f32_to_f16(65519.0f));
    EXPECT(sid_f32_to_f16(1e-8f) == 0, "f16(1e-8) = 0x%04x", sid_f32_to_f16(1e-8f));
    EXPECT(sid_f32_to_f16(6e-8f) == 1, "f16(6e-8) = 0x%04x, want the smallest subnormal", sid_f32_to_f16(6e-8f));
    EXPECT(sid_f32_to_f16(6.103515625e-05f) == 0x0400, "smallest normal");
    EXPECT(sid_f32_to_f16(1.00048828125f) == 0x3c00, "1 + 2^-11 ties to even (down)");
    EXPECT(sid_f32_to_f16(1.00146484375f) == 0x3c02, "1 + 3*2^-11 ties to even (up)");
    EXPECT(sid_f32_to_f16(INFINITY) == 0x7c00 && sid_f32_to_f16(-INFINITY) == 0xfc00, "infinities");
    uint16_t hn = sid_f32_to_f16(NAN);
    EXPECT((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0, "f16(NaN) = 0x%04x", hn);
    EXPECT(isnan(sid_f16_to_f32(0x7e00)), "f16 NaN back to f32");
    EXPECT(sid_f16_to_f32(0x0001) == 5.9604644775390625e-8f, "f16 0x0001 = %g", sid_f16_to_f32(0x0001));
    EXPECT(sid_f16_to_f32(0x3c00) == 1.0f && sid_f16_to_f32(0x7bff) == 65504.0f, "f16 to f32");
    EXPECT(sid_f16_to_f32(0x8000) == 0.0f && signbit(sid_f16_to_f32(0x8000)), "negative zero");
    EXPECT(isinf(sid_f16_to_f32(0xfc00)) && sid_f16_to_f32(0xfc00) < 0, "-inf");
    // Every finite half survives f16 -> f32 -> f16.
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00 && sid_f32_to_f16(sid_f16_to_f32((uint16_t)h)) != h) bad++;
    EXPECT(bad == 0, "%d halves do not round-trip", bad);

    EXPECT(sid_f32_to_bf16(1.0f) == 0x3f80, "bf16(1) = 0x%04x", sid_f32_to_bf16(1.0f));
    EXPECT(sid_f32_to_bf16(1.00390625f) == 0x3f80, "bf16(1 + 2^-8) ties to even, got 0x%04x",
           sid_f32_to_bf16(1.00390625f));
    EXPECT(sid_f32_to_bf16(1.01171875f) == 0x3f82, "bf16(1 + 3*2^-8) ties up to even, got 0x%04x",
           sid_f32_to_bf16(1.01171875f));
    EXPECT(sid_f32_to_bf16(1.0040f) == 0x3f81, "bf16 above the tie rounds up");
    uint16_t bn = sid_f32_to_bf16(NAN);
    EXPECT(isnan(sid_bf16_to_f32(bn)), "bf16(NaN) = 0x%04x is not NaN", bn);
    // A NaN whose payload lies only in the low 16 bits must not become infinity.
    float low_nan;
    uint32_t u = 0x7f800001u;
    memcpy(&low_nan, &u, 4);
    EXPECT(isnan(sid_bf16_to_f32(sid_f32_to_bf16(low_nan))), "low-payload NaN became 0x%04x",
           sid_f32_to_bf16(low_nan));
    EXPECT(bits(sid_bf16_to_f32(0x3f80)) == 0x3f800000u, "bf16 to f32 places the bits high");
}

// ---------------------------------------------------------------- safetensors

static const char vector_json[] = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";

static void test_st_reference_vector(void) {
    char dir[64], p1[256], p2[256];
    make_tmpdir(dir, sizeof dir);
    join(p1, sizeof p1, dir, "ref.safetensors");
    join(p2, sizeof p2, dir, "ours.safetensors");
    // The bytes of tensor.rs test_serialization, assembled by hand.
    uint8_t ref[8 + 64 + 24];
    size_t hl = strlen(vector_json);
    EXPECT(hl == 64, "vector JSON is %zu bytes", hl);
    const uint8_t len_bytes[8] = {0x40, 0, 0, 0, 0, 0, 0, 0};
    memcpy(ref, len_bytes, 8);
    memset(ref + 8, ' ', 64);
    memcpy(ref + 8, vector_json, hl);
    float vals[6] = {0, 1, 2, 3, 4, 5};
    memcpy(ref + 72, vals, 24);
    write_bytes(p1, ref, sizeof ref);

    sid_safetensors st;
    EXPECT(sid_st_open(&st, p1) == 0, "open: %s", sid_error());
    if (!test_failed()) {
        EXPECT(st.n == 1 && st.metadata == NULL, "n=%d", st.n);
        const sid_st_tensor *t = sid_st_find(&st, "attn.0");
        EXPECT(t && t->dtype == SID_F32 && t->ndim == 3, "tensor attn.0");
        if (t) {
            EXPECT(t->shape[0] == 1 && t->shape[1] == 2 && t->shape[2] == 3, "shape");
            EXPECT(t->begin == 0 && t->end == 24, "offsets [%zu, %zu]", t->begin, t->end);
            EXPECT((const uint8_t *)t->data == (const uint8_t *)st.map + 72, "data pointer");
            float got[6] = {0};
            EXPECT(sid_st_read_f32(&st, t, got) == 0, "read: %s", sid_error());
            for (int i = 0; i < 6; i++) EXPECT(got[i] == (float)i, "value %d = %g", i, got[i]);
        }
        EXPECT(sid_st_find(&st, "attn.1") == NULL, "found a missing tensor");
        sid_st_close(&st);
    }

    sid_st_entry e = {"attn.0", SID_F32, 3, {1, 2, 3}, vals};
    EXPECT(sid_st_write(p2, &e, 1, NULL, 0) == 0, "write: %s", sid_error());
    char *ours = NULL;
    size_t ol = 0;
    EXPECT(sid_read_file(p2, &ours, &ol) == 0, "read back: %s", sid_error());
    EXPECT(ol == sizeof ref && ours && memcmp(ours, ref, sizeof ref) == 0, "writer output differs from the vector (%zu bytes)",
           ol);
    free(ours);
    test_remove_tree(dir);
}

static void test_st_round_trip(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "model.safetensors");

    float w[2 * 3], b[5];
    uint16_t h16[4], bf[3];
    int64_t ids[3] = {0, -7, (int64_t)1 << 40};
    for (int i = 0; i < 6; i++) w[i] = 0.25f * (float)i - 0.6f;
    for (int i = 0; i < 5; i++) b[i] = -1.0f / (float)(i + 1);
    const float hv[4] = {1.0f, -0.5f, 65504.0f, 0.0009765625f}, bv[3] = {3.140625f, -2.0f, 1e30f};
    for (int i = 0; i < 4; i++) h16[i] = sid_f32_to_f16(hv[i]);
    for (int i = 0; i < 3; i++) bf[i] = sid_f32_to_bf16(bv[i]);
    float scalar = 42.5f;
    // An odd-length tensor first, so later ones start at offsets that are not multiples of 8.
    sid_st_entry es[] = {
        {"odd.bytes", SID_F16, 1, {3}, h16},
        {"w", SID_F32, 2, {2, 3}, w},
        {"b \"quoted\"\\", SID_F32, 1, {5}, b},
        {"half", SID_F16, 2, {2, 2}, h16},
        {"brain", SID_BF16, 1, {3}, bf},
        {"position_ids", SID_I64, 2, {1, 3}, ids},
        {"empty", SID_F32, 2, {0, 4}, NULL},
        {"scalar", SID_F32, 0, {0}, &scalar},
    };
    int n = (int)(sizeof es / sizeof es[0]);
    const char *kv[] = {"format", "pt", "note", "line\nbreak \"q\""};
    EXPECT(sid_st_write(path, es, n, kv, 2) == 0, "write: %s", sid_error());
    EXPECT(count_entries(dir) == 1, "temp file left behind");

    char *raw = NULL;
    size_t rl = 0;
    EXPECT(sid_read_file(path, &raw, &rl) == 0, "%s", sid_error());
    if (raw && rl >= 8) {
        uint64_t hl = 0;
        for (int i = 7; i >= 0; i--) hl = hl << 8 | (uint8_t)raw[i];
        EXPECT(hl % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)hl);
        EXPECT(8 + hl <= rl && raw[8] == '{' && (raw[8 + hl - 1] == ' ' || raw[8 + hl - 1] == '}'), "header framing");
        EXPECT(contains(raw + 8, "{\"__metadata__\":{\"format\":\"pt\""), "metadata first in header");
    }
    free(raw);

    sid_safetensors st;
    EXPECT(sid_st_open(&st, path) == 0, "open: %s", sid_error());
    if (test_failed()) {
        test_remove_tree(dir);
        return;
    }
    EXPECT(st.n == n, "n = %d", st.n);
    for (int i = 1; i < st.n; i++) EXPECT(strcmp(st.tensors[i - 1].name, st.tensors[i].name) < 0, "not sorted");
    // Laid out in the given order.
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const sid_st_tensor *t = sid_st_find(&st, es[i].name);
        EXPECT(t != NULL, "missing %s", es[i].name);
        if (!t) continue;
        EXPECT(t->begin == at, "%s begins at %zu, want %zu", es[i].name, t->begin, at);
        EXPECT(t->dtype == es[i].dtype && t->ndim == es[i].ndim, "%s dtype/rank", es[i].name);
        for (int d = 0; d < t->ndim; d++) EXPECT(t->shape[d] == es[i].shape[d], "%s shape[%d]", es[i].name, d);
        at = t->end;
    }
    const sid_st_tensor *t;
    float got[8];
    t = sid_st_find(&st, "w");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0 && memcmp(got, w, sizeof w) == 0, "w values");
    t = sid_st_find(&st, "b \"quoted\"\\");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0 && memcmp(got, b, sizeof b) == 0, "escaped name values");
    t = sid_st_find(&st, "half");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0, "half");
    for (int i = 0; t && i < 4; i++) EXPECT(got[i] == hv[i], "half[%d] = %g, want %g", i, got[i], hv[i]);
    t = sid_st_find(&st, "odd.bytes");
    EXPECT(t && t->end - t->begin == 6, "odd tensor size");
    t = sid_st_find(&st, "brain");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0, "bf16");
    for (int i = 0; t && i < 3; i++) EXPECT(got[i] == sid_bf16_to_f32(bf[i]), "bf16[%d] = %g", i, got[i]);
    EXPECT(got[0] == 3.140625f && got[1] == -2.0f, "bf16 exact values %g %g", got[0], got[1]);
    t = sid_st_find(&st, "position_ids");
    EXPECT(t && t->end - t->begin == 24 && memcmp(t->data, ids, 24) == 0, "i64 bytes");
    EXPECT(t && sid_st_read_f32(&st, t, got) == -1, "i64 converted to float");
    EXPECT(contains(sid_error(), "position_ids") && contains(sid_error(), "I64") && contains(sid_error(), path),
           "i64 error: %s", sid_error());
    t = sid_st_find(&st, "empty");
    EXPECT(t && t->begin == t->end && t->shape[0] == 0 && t->shape[1] == 4, "zero-size tensor");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0, "read zero-size");
    t = sid_st_find(&st, "scalar");
    EXPECT(t && t->ndim == 0 && t->end - t->begin == 4, "scalar");
    EXPECT(t && sid_st_read_f32(&st, t, got) == 0 && got[0] == 42.5f, "scalar value");

    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(st.metadata, "format");
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(st.metadata, "note");
    EXPECT(cJSON_IsString(fmt) && strcmp(fmt->valuestring, "pt") == 0, "metadata format");
    EXPECT(cJSON_IsString(note) && strcmp(note->valuestring, kv[3]) == 0, "metadata escaping");
    sid_st_close(&st);
    EXPECT(st.map == NULL && st.tensors == NULL && st.n == 0, "close resets");
    sid_st_close(&st);  // twice is harmless

    // No tensors at all is a valid file.
    EXPECT(sid_st_write(path, NULL, 0, NULL, 0) == 0, "write empty: %s", sid_error());
    EXPECT(sid_st_open(&st, path) == 0 && st.n == 0, "open empty: %s", sid_error());
    EXPECT(sid_st_find(&st, "x") == NULL, "find in empty");
    sid_st_close(&st);
    test_remove_tree(dir);
}

// Header lengths not a multiple of 8 leave data misaligned; reads must still
// be exact (and UBSan-clean).
static void test_st_misaligned(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "odd.safetensors");
    const char *hdr = "{\"x\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                      "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[6,14]}} ";
    uint8_t data[14];
    uint16_t h[3] = {0x3c00, 0xc000, 0x3800};
    float f[2] = {7.5f, -0.125f};
    memcpy(data, h, 6);
    memcpy(data + 6, f, 8);
    size_t hl = strlen(hdr);
    EXPECT(hl % 2 == 1, "want an odd header length, have %zu", hl);
    write_st_raw(path, hl, hdr, data, sizeof data);
    sid_safetensors st;
    EXPECT(sid_st_open(&st, path) == 0, "open: %s", sid_error());
    if (!test_failed()) {
        float got[3];
        const sid_st_tensor *x = sid_st_find(&st, "x"), *y = sid_st_find(&st, "y");
        EXPECT(x && sid_st_read_f32(&st, x, got) == 0 && got[0] == 1.0f && got[1] == -2.0f && got[2] == 0.5f,
               "misaligned f16");
        EXPECT(y && sid_st_read_f32(&st, y, got) == 0 && got[0] == 7.5f && got[1] == -0.125f, "misaligned f32");
        sid_st_close(&st);
    }
    test_remove_tree(dir);
}

typedef struct {
    const char *what;
    int64_t n;          // declared header length; -1: the header's real length; -2: raw bytes only
    const char *hdr;    // header text, or the raw file when n == -2
    size_t data_len;    // zero bytes of data after the header; the raw file's length when n == -2
    const char *word;   // expected in the message
} st_bad_case;

static const st_bad_case st_bad_cases[] = {
    {"empty file", -2, "", 0, "too short"},
    {"5-byte file", -2, "\x05\x00\x00\x00\x00", 5, "too short"},
    {"header length 0", 0, "", 16, "header length is 0"},
    {"header past the end", 1000, "{}", 0, "past the end"},
    {"huge header length", INT64_MIN, "{}", 0, "exceeds the limit"},
    {"header not JSON", -1, "{\"a\": nope}", 0, "not valid JSON"},
    {"garbage after JSON", -1, "{}xx", 0, "not valid JSON"},
    {"header is an array", -1, "[1,2]", 0, "not a JSON object"},
    {"entry not an object", -1, "{\"a\":[1]}", 0, "entry is not an object"},
    {"missing dtype", -1, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "no dtype"},
    {"dtype not a string", -1, "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "dtype is not a string"},
    {"unknown dtype", -1, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype 'Q7'"},
    {"unsupported dtype", -1, "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
     "does not support"},
    {"missing shape", -1, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "no shape"},
    {"shape not array", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
     "shape is not an array"},
    {"negative dim", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "negative dimension"},
    {"fractional dim", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
     "not a valid size"},
    {"too many dims", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
     "9 dimensions"},
    {"missing data_offsets", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "no data_offsets"},
    {"offsets not a pair", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4,
     "pair of non-negative integers"},
    {"negative offset", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4,
     "pair of non-negative integers"},
    {"begin after end", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "begin after end"},
    {"offsets past the end", -1, "{\"a.weight\":{\"dtype\":\"F32\",\"shape\":[1024],\"data_offsets\":[0,4096]}}",
     2048, "data_offsets [0, 4096] past the end of the 2048-byte data buffer"},
    {"size mismatch", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, "needs 24 bytes"},
    {"numel overflow", -1,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
     "too large"},
    {"overlapping tensors", -1,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, "overlap"},
    {"gap between tensors", -1,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     12, "gap"},
    {"trailing data", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "trailing bytes"},
    {"duplicate key", -1,
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
     8, "duplicate tensor name 'a'"},
    {"metadata not strings", -1,
     "{\"__metadata__\":{\"epoch\":3},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "__metadata__ value of 'epoch'"},
    {"metadata not an object", -1, "{\"__metadata__\":\"pt\"}", 0, "__metadata__ is not an object"},
};

static void test_st_rejects(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "bad.safetensors");
    for (size_t i = 0; i < sizeof st_bad_cases / sizeof st_bad_cases[0]; i++) {
        const st_bad_case *c = &st_bad_cases[i];
        if (c->n == -2) {
            write_bytes(path, c->hdr, c->data_len);
        } else {
            uint8_t *zeros = sid_calloc(c->data_len);
            uint64_t n = c->n == -1 ? strlen(c->hdr) : (uint64_t)c->n;
            write_st_raw(path, n, c->hdr, zeros, c->data_len);
            free(zeros);
        }
        sid_safetensors st;
        sid_set_error("%s", "");
        int rc = sid_st_open(&st, path);
        EXPECT(rc == -1, "%s: accepted", c->what);
        if (rc == 0) {
            sid_st_close(&st);
            continue;
        }
        EXPECT(contains(sid_error(), path) && contains(sid_error(), c->word), "%s: message '%s' lacks '%s'", c->what,
               sid_error(), c->word);
        EXPECT(!strchr(sid_error(), '\n'), "%s: multi-line message", c->what);
        EXPECT(st.map == NULL && st.tensors == NULL && st.path == NULL, "%s: st not reset", c->what);
    }
    sid_safetensors st;
    join(path, sizeof path, dir, "missing.safetensors");
    EXPECT(sid_st_open(&st, path) == -1 && contains(sid_error(), "no such file") && contains(sid_error(), path),
           "missing file: %s", sid_error());
    EXPECT(sid_st_open(&st, dir) == -1 && contains(sid_error(), "not a regular file"), "folder: %s", sid_error());
    test_remove_tree(dir);
}

static void test_st_write_rejects(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "out.safetensors");
    float v[2] = {1, 2};
    write_bytes(path, "old", 3);
    sid_st_entry dup[2] = {{"a", SID_F32, 1, {1}, v}, {"a", SID_F32, 1, {1}, v + 1}};
    EXPECT(sid_st_write(path, dup, 2, NULL, 0) == -1 && contains(sid_error(), "duplicate tensor name 'a'"),
           "duplicate: %s", sid_error());
    sid_st_entry neg = {"n", SID_F32, 1, {-2}, v};
    EXPECT(sid_st_write(path, &neg, 1, NULL, 0) == -1 && contains(sid_error(), "negative"), "negative: %s",
           sid_error());
    sid_st_entry nodata = {"d", SID_F32, 1, {2}, NULL};
    EXPECT(sid_st_write(path, &nodata, 1, NULL, 0) == -1 && contains(sid_error(), "no data"), "no data: %s",
           sid_error());
    const char *kv[] = {"k", "1", "k", "2"};
    EXPECT(sid_st_write(path, dup, 1, kv, 2) == -1 && contains(sid_error(), "duplicate metadata key"),
           "duplicate metadata: %s", sid_error());
    char *txt = NULL;
    size_t len = 0;
    EXPECT(sid_read_file(path, &txt, &len) == 0 && len == 3 && memcmp(txt, "old", 3) == 0, "old file clobbered");
    free(txt);
    EXPECT(count_entries(dir) == 1, "temp files left");
    char deep[300];
    join(deep, sizeof deep, dir, "no/such/dir/x.safetensors");
    EXPECT(sid_st_write(deep, dup, 1, NULL, 0) == -1 && contains(sid_error(), deep), "missing dir: %s", sid_error());
    EXPECT(count_entries(dir) == 1, "missing dir left files");
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- files

static void test_read_file(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "t.txt");
    // Larger than any initial buffer guess would be without the size hint.
    size_t n = 100003;
    char *src = sid_malloc(n);
    for (size_t i = 0; i < n; i++) src[i] = (char)('a' + i % 26);
    write_bytes(path, src, n);
    char *data = NULL;
    size_t len = 0;
    EXPECT(sid_read_file(path, &data, &len) == 0, "%s", sid_error());
    EXPECT(len == n && data && memcmp(data, src, n) == 0 && data[n] == '\0', "contents (len %zu)", len);
    free(data);
    free(src);
    write_bytes(path, "", 0);
    EXPECT(sid_read_file(path, &data, &len) == 0 && len == 0 && data[0] == '\0', "empty file");
    free(data);
    join(path, sizeof path, dir, "nope");
    EXPECT(sid_read_file(path, &data, &len) == -1 && data == NULL, "missing file read");
    EXPECT(contains(sid_error(), path) && contains(sid_error(), "no such file"), "message: %s", sid_error());
    EXPECT(sid_read_file(dir, &data, &len) == -1 && contains(sid_error(), "directory"), "folder: %s", sid_error());
    EXPECT(sid_file_exists(dir) && !sid_file_exists(path), "sid_file_exists");
    test_remove_tree(dir);
}

static void test_atomic_write(void) {
    char dir[64], path[256], tmp[300];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "state.bin");
    write_bytes(path, "old", 3);

    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    EXPECT(f != NULL && contains(tmp, ".tmp."), "begin: %s", sid_error());
    if (!f) {
        test_remove_tree(dir);
        return;
    }
    fputs("half-written", f);
    sid_atomic_abort(f, tmp);
    char *txt = NULL;
    size_t len = 0;
    EXPECT(sid_read_file(path, &txt, &len) == 0 && strcmp(txt, "old") == 0, "abort clobbered the file");
    free(txt);
    EXPECT(count_entries(dir) == 1, "abort left the temp file");

    f = sid_atomic_begin(path, tmp, sizeof tmp);
    fputs("new contents", f);
    EXPECT(sid_atomic_commit(f, tmp, path) == 0, "commit: %s", sid_error());
    EXPECT(sid_read_file(path, &txt, &len) == 0 && strcmp(txt, "new contents") == 0, "commit contents");
    free(txt);
    EXPECT(count_entries(dir) == 1, "commit left the temp file");

    // rename over a non-empty folder fails: the temp file must go, the folder stay.
    char sub[300], inner[400];
    join(sub, sizeof sub, dir, "taken");
    mkdir(sub, 0777);
    join(inner, sizeof inner, sub, "keep");
    write_bytes(inner, "k", 1);
    f = sid_atomic_begin(sub, tmp, sizeof tmp);
    EXPECT(f != NULL, "begin: %s", sid_error());
    if (f) {
        fputs("x", f);
        EXPECT(sid_atomic_commit(f, tmp, sub) == -1, "commit over a folder succeeded");
        EXPECT(contains(sid_error(), sub) && contains(sid_error(), "rename"), "message: %s", sid_error());
        EXPECT(!sid_file_exists(tmp), "failed commit left %s", tmp);
        EXPECT(sid_file_exists(inner), "failed commit damaged the folder");
    }

    char missing[300];
    join(missing, sizeof missing, dir, "no_such_dir/file.bin");
    EXPECT(sid_atomic_begin(missing, tmp, sizeof tmp) == NULL, "begin in a missing folder");
    EXPECT(contains(sid_error(), missing) && contains(sid_error(), "does not exist"), "message: %s", sid_error());
    char small[8];
    EXPECT(sid_atomic_begin(path, small, sizeof small) == NULL && contains(sid_error(), "too long"), "tmp_cap");
    EXPECT(count_entries(dir) == 2, "stray files: %d entries", count_entries(dir));
    test_remove_tree(dir);
}

static void test_mkdir_p(void) {
    char dir[64], path[256], file[256];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a/b//c/", dir);
    EXPECT(sid_mkdir_p(path) == 0, "mkdir_p: %s", sid_error());
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    struct stat sb;
    EXPECT(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "a/b/c not created");
    EXPECT(sid_mkdir_p(path) == 0, "existing: %s", sid_error());
    join(file, sizeof file, dir, "plain");
    write_bytes(file, "x", 1);
    snprintf(path, sizeof path, "%s/plain/sub", dir);
    EXPECT(sid_mkdir_p(path) == -1 && contains(sid_error(), path), "through a file: %s", sid_error());
    EXPECT(sid_mkdir_p(file) == -1 && contains(sid_error(), "not a folder"), "onto a file: %s", sid_error());
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- JSON

static void test_json_load_save(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "config.json");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "sample_size", 64);
    cJSON_AddStringToObject(j, "_class_name", "UNet2DConditionModel");
    EXPECT(sid_json_save(path, j) == 0, "save: %s", sid_error());
    cJSON_Delete(j);
    EXPECT(count_entries(dir) == 1, "temp file left");
    j = sid_json_load(path);
    EXPECT(j != NULL, "load: %s", sid_error());
    int v = 0;
    EXPECT(sid_json_int(j, "sample_size", &v, 0, 1, path) == 0 && v == 64, "sample_size = %d", v);
    cJSON_Delete(j);

    const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}\n";
    write_bytes(path, bad, strlen(bad));
    EXPECT(sid_json_load(path) == NULL, "accepted invalid JSON");
    EXPECT(contains(sid_error(), path) && contains(sid_error(), "invalid JSON near byte 19 (line 3)"), "message: %s",
           sid_error());
    write_bytes(path, "{} extra", 8);
    EXPECT(sid_json_load(path) == NULL && contains(sid_error(), "invalid JSON"), "trailing garbage accepted");
    write_bytes(path, " {\"k\": [1, 2]}\n\n", 16);
    j = sid_json_load(path);
    EXPECT(j != NULL, "whitespace around the value: %s", sid_error());
    cJSON_Delete(j);
    join(path, sizeof path, dir, "absent.json");
    EXPECT(sid_json_load(path) == NULL && contains(sid_error(), "no such file") && contains(sid_error(), path),
           "missing: %s", sid_error());
    test_remove_tree(dir);
}

static void test_json_getters(void) {
    const char *p = "unet/config.json";
    cJSON *j = cJSON_Parse("{\"i\": 7, \"neg\": -3, \"frac\": 2.5, \"big\": 1e12, \"d\": 0.125, \"t\": true, "
                           "\"s\": \"hi\", \"n\": null, \"arr\": [320, 640, 1280], \"one\": 8, \"mixed\": [1, \"x\"], "
                           "\"sub\": {\"k\": 1}}");
    EXPECT(j != NULL, "parse");
    if (!j) return;
    int i = 0, b = 0;
    double d = 0;
    const char *s = NULL;
    EXPECT(sid_json_int(j, "i", &i, 0, 1, p) == 0 && i == 7, "int");
    EXPECT(sid_json_int(j, "neg", &i, 0, 1, p) == 0 && i == -3, "negative int");
    EXPECT(sid_json_int(j, "absent", &i, 99, 0, p) == 0 && i == 99, "default int");
    EXPECT(sid_json_int(j, "n", &i, 5, 0, p) == 0 && i == 5, "null means default");
    EXPECT(sid_json_int(j, "absent", &i, 0, 1, p) == -1, "missing required int");
    EXPECT(contains(sid_error(), p) && contains(sid_error(), "missing required key 'absent'"), "message: %s",
           sid_error());
    EXPECT(sid_json_int(j, "s", &i, 0, 0, p) == -1 && contains(sid_error(), "'s' must be an integer") &&
               contains(sid_error(), "a string"),
           "wrong type: %s", sid_error());
    EXPECT(sid_json_int(j, "frac", &i, 0, 0, p) == -1 && contains(sid_error(), "'frac'"), "fraction: %s", sid_error());
    EXPECT(sid_json_int(j, "big", &i, 0, 0, p) == -1 && contains(sid_error(), "int range"), "range: %s", sid_error());
    EXPECT(sid_json_double(j, "d", &d, 0, 1, p) == 0 && d == 0.125, "double");
    EXPECT(sid_json_double(j, "i", &d, 0, 1, p) == 0 && d == 7.0, "int as double");
    EXPECT(sid_json_double(j, "absent", &d, 1.5, 0, p) == 0 && d == 1.5, "default double");
    EXPECT(sid_json_double(j, "t", &d, 0, 1, p) == -1 && contains(sid_error(), "'t' must be a number"), "double type");
    EXPECT(sid_json_bool(j, "t", &b, 0, 1, p) == 0 && b == 1, "bool");
    EXPECT(sid_json_bool(j, "absent", &b, 0, 0, p) == 0 && b == 0, "default bool");
    EXPECT(sid_json_bool(j, "i", &b, 0, 1, p) == -1 && contains(sid_error(), "true or false"), "bool type");
    EXPECT(sid_json_string(j, "s", &s, NULL, 1, p) == 0 && s && strcmp(s, "hi") == 0, "string");
    EXPECT(sid_json_string(j, "absent", &s, "dflt", 0, p) == 0 && strcmp(s, "dflt") == 0, "default string");
    EXPECT(sid_json_string(j, "n", &s, NULL, 1, p) == -1 && contains(sid_error(), "'n'"), "required null string");
    EXPECT(sid_json_string(j, "sub", &s, NULL, 1, p) == -1 && contains(sid_error(), "an object"), "string type");

    int arr[4] = {0}, n = -1;
    EXPECT(sid_json_int_array(j, "arr", arr, 4, &n, p) == 0 && n == 3 && arr[0] == 320 && arr[2] == 1280,
           "int array n=%d", n);
    EXPECT(sid_json_int_array(j, "one", arr, 4, &n, p) == 0 && n == 1 && arr[0] == 8, "scalar as array");
    EXPECT(sid_json_int_array(j, "arr", arr, 2, &n, p) == -1 && contains(sid_error(), "3 elements, at most 2"),
           "cap: %s", sid_error());
    EXPECT(sid_json_int_array(j, "mixed", arr, 4, &n, p) == -1 && contains(sid_error(), "element 1"), "element: %s",
           sid_error());
    EXPECT(sid_json_int_array(j, "absent", arr, 4, &n, p) == -1 && contains(sid_error(), "missing required key"),
           "missing array");
    EXPECT(sid_json_int_array(j, "s", arr, 4, &n, p) == -1 && contains(sid_error(), "array of integers"), "type");
    EXPECT(sid_json_int(NULL, "x", &i, 3, 0, p) == 0 && i == 3, "NULL object");
    cJSON_Delete(j);
}

// ---------------------------------------------------------------- PNG

static void png_round_trip(const char *dir, int channels) {
    char path[256];
    join(path, sizeof path, dir, channels == 1 ? "gray.png" : "rgb.png");
    int w = 13, h = 7;
    uint8_t *pix = sid_malloc((size_t)w * h * channels);
    for (int i = 0; i < w * h * channels; i++) pix[i] = (uint8_t)(i * 37 + 11);
    EXPECT(sid_png_write(path, pix, w, h, channels) == 0, "write: %s", sid_error());
    uint8_t *back = NULL;
    int bw = 0, bh = 0, bc = 0;
    EXPECT(sid_png_read(path, &back, &bw, &bh, &bc) == 0, "read: %s", sid_error());
    EXPECT(bw == w && bh == h && bc == channels, "geometry %dx%dx%d", bw, bh, bc);
    EXPECT(back && memcmp(back, pix, (size_t)w * h * channels) == 0, "pixels differ (%d channels)", channels);
    free(back);
    free(pix);
}

static void test_png_round_trip(void) {
    char dir[64];
    make_tmpdir(dir, sizeof dir);
    png_round_trip(dir, 1);
    png_round_trip(dir, 3);
    EXPECT(count_entries(dir) == 2, "stray files");
    test_remove_tree(dir);
}

static void test_png_grid(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "grid.png");
    enum { N = 5, C = 3, H = 4, W = 6, COLS = 3, PAD = 2 };
    float *imgs = sid_malloc(sizeof(float) * N * C * H * W);
    // Image i, channel k: a constant distinct per (i, k), in [-1, 1].
    for (int i = 0; i < N; i++)
        for (int k = 0; k < C; k++)
            for (int p = 0; p < H * W; p++) imgs[((i * C + k) * H * W) + p] = -1.0f + 0.1f * (float)(i * C + k);
    // Special values in image 0, channel 0: top row.
    imgs[0] = NAN;
    imgs[1] = 2.0f;
    imgs[2] = -3.0f;
    imgs[3] = 0.0f;
    imgs[4] = 1.0f;
    EXPECT(sid_png_write_grid(path, imgs, N, C, H, W, COLS, PAD) == 0, "grid: %s", sid_error());
    uint8_t *pix = NULL;
    int gw = 0, gh = 0, gc = 0;
    EXPECT(sid_png_read(path, &pix, &gw, &gh, &gc) == 0, "read: %s", sid_error());
    int want_w = COLS * W + (COLS - 1) * PAD, want_h = 2 * H + PAD;
    EXPECT(gw == want_w && gh == want_h && gc == 3, "grid is %dx%dx%d, want %dx%dx3", gw, gh, gc, want_w, want_h);
    if (pix && gw == want_w && gh == want_h && gc == 3) {
#define PIX(x, y, k) pix[((size_t)(y) * gw + (x)) * 3 + (k)]
        EXPECT(PIX(0, 0, 0) == 0, "NaN -> %d", PIX(0, 0, 0));
        EXPECT(PIX(1, 0, 0) == 255, "2.0 -> %d", PIX(1, 0, 0));
        EXPECT(PIX(2, 0, 0) == 0, "-3.0 -> %d", PIX(2, 0, 0));
        EXPECT(PIX(3, 0, 0) == 128, "0.0 -> %d", PIX(3, 0, 0));
        EXPECT(PIX(4, 0, 0) == 255, "1.0 -> %d", PIX(4, 0, 0));
        EXPECT(PIX(0, 1, 0) == 0, "-1.0 -> %d", PIX(0, 1, 0));
        // Image 4 sits in row 1, column 1; its channel 2 value is -1 + 0.1*14 = 0.4 -> 178.5 -> 179 (178 if
        // the float sum lands just below the half).
        int x4 = 1 * (W + PAD) + 2, y4 = 1 * (H + PAD) + 3;
        float v = -1.0f + 0.1f * 14.0f;
        int want = (int)((v + 1.0f) * 127.5f + 0.5f);
        EXPECT(PIX(x4, y4, 2) == want, "image 4 pixel %d, want %d", PIX(x4, y4, 2), want);
        float v0 = -1.0f + 0.1f * 12.0f;
        EXPECT(PIX(x4, y4, 0) == (int)((v0 + 1.0f) * 127.5f + 0.5f) && PIX(x4, y4, 0) == 153, "image 4 channel 0: %d",
               PIX(x4, y4, 0));
        // Padding between cells and the empty sixth cell are black.
        int black = 1;
        for (int y = 0; y < gh; y++)
            for (int k = 0; k < 3; k++) black &= PIX(W, y, k) == 0 && PIX(W + PAD - 1, y, k) == 0;
        for (int x = 0; x < gw; x++) black &= PIX(x, H, 1) == 0 && PIX(x, H + PAD - 1, 1) == 0;
        for (int y = H + PAD; y < gh; y++)
            for (int x = 2 * (W + PAD); x < gw; x++) black &= PIX(x, y, 0) == 0 && PIX(x, y, 2) == 0;
        EXPECT(black, "padding or empty cell not black");
#undef PIX
    }
    free(pix);
    // Fewer images than columns: the grid narrows to n cells.
    EXPECT(sid_png_write_grid(path, imgs, 2, 1, H, W, 8, 1) == 0, "gray grid: %s", sid_error());
    EXPECT(sid_png_read(path, &pix, &gw, &gh, &gc) == 0 && gw == 2 * W + 1 && gh == H && gc == 1, "gray %dx%dx%d", gw,
           gh, gc);
    free(pix);
    EXPECT(sid_png_write_grid(path, imgs, 5, 2, H, W, 3, 0) == -1 && contains(sid_error(), path), "c=2 accepted");
    free(imgs);
    test_remove_tree(dir);
}

static void test_png_rejects(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    join(path, sizeof path, dir, "x.png");
    uint8_t *pix = NULL;
    int w, h, c;
    EXPECT(sid_png_read(path, &pix, &w, &h, &c) == -1 && contains(sid_error(), "no such file"), "missing");
    write_bytes(path, "GIF89a....", 10);
    EXPECT(sid_png_read(path, &pix, &w, &h, &c) == -1 && contains(sid_error(), "not a PNG"), "%s", sid_error());
    // A real PNG cut short: libpng fails inside; we must return, not abort.
    uint8_t img[64 * 64];
    for (int i = 0; i < 64 * 64; i++) img[i] = (uint8_t)(i * 7919 >> 3);
    EXPECT(sid_png_write(path, img, 64, 64, 1) == 0, "%s", sid_error());
    char *full = NULL;
    size_t len = 0;
    EXPECT(sid_read_file(path, &full, &len) == 0 && len > 100, "read back");
    if (full) write_bytes(path, full, len / 2);
    free(full);
    EXPECT(sid_png_read(path, &pix, &w, &h, &c) == -1 && pix == NULL, "truncated PNG accepted");
    EXPECT(contains(sid_error(), path), "message: %s", sid_error());
    EXPECT(sid_png_write(path, img, 0, 4, 1) == -1, "zero width accepted");
    char missing[300];
    join(missing, sizeof missing, dir, "nodir/x.png");
    EXPECT(sid_png_write(missing, img, 4, 4, 1) == -1 && contains(sid_error(), missing), "missing dir");
    EXPECT(count_entries(dir) == 1, "stray files");
    test_remove_tree(dir);
}

// ---------------------------------------------------------------- IDX

static void write_idx(const char *path, int gz, const uint8_t *hdr, size_t hl, const uint8_t *data, size_t dl) {
    if (gz) {
        gzFile g = gzopen(path, "wb");
        if (!g) sid_die("gzopen %s", path);
        gzwrite(g, hdr, (unsigned)hl);
        if (dl) gzwrite(g, data, (unsigned)dl);
        gzclose(g);
    } else {
        uint8_t buf[256];
        memcpy(buf, hdr, hl);
        if (dl) memcpy(buf + hl, data, dl);
        write_bytes(path, buf, hl + dl);
    }
}

static void test_idx(void) {
    char dir[64], path[256];
    make_tmpdir(dir, sizeof dir);
    const uint8_t hdr[] = {0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2};
    uint8_t data[12];
    for (int i = 0; i < 12; i++) data[i] = (uint8_t)(i * 20 + 1);
    for (int gz = 0; gz < 2; gz++) {
        join(path, sizeof path, dir, gz ? "imgs-idx3-ubyte.gz" : "imgs-idx3-ubyte");
        write_idx(path, gz, hdr, sizeof hdr, data, sizeof data);
        sid_idx x;
        EXPECT(sid_idx_read(path, &x) == 0, "read (gz=%d): %s", gz, sid_error());
        EXPECT(x.ndim == 3 && x.dims[0] == 3 && x.dims[1] == 2 && x.dims[2] == 2, "dims (gz=%d)", gz);
        EXPECT(x.data && memcmp(x.data, data, 12) == 0, "data (gz=%d)", gz);
        sid_idx_free(&x);
        EXPECT(x.data == NULL, "free resets");

        write_idx(path, gz, hdr, sizeof hdr, data, 11);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "truncated") && contains(sid_error(), path),
               "truncated (gz=%d): %s", gz, sid_error());
        EXPECT(x.data == NULL, "data after failure");
        uint8_t more[13];
        memcpy(more, data, 12);
        more[12] = 9;
        write_idx(path, gz, hdr, sizeof hdr, more, 13);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "trailing"), "trailing (gz=%d): %s", gz,
               sid_error());
        const uint8_t bad_magic[] = {1, 0, 0x08, 1, 0, 0, 0, 1};
        write_idx(path, gz, bad_magic, sizeof bad_magic, data, 1);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "magic"), "magic (gz=%d): %s", gz, sid_error());
        const uint8_t bad_type[] = {0, 0, 0x0d, 1, 0, 0, 0, 1};
        write_idx(path, gz, bad_type, sizeof bad_type, data, 4);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "0x0d"), "type (gz=%d): %s", gz, sid_error());
        const uint8_t bad_ndim[] = {0, 0, 0x08, 5, 0, 0, 0, 1};
        write_idx(path, gz, bad_ndim, sizeof bad_ndim, data, 4);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "5 dimensions"), "ndim (gz=%d): %s", gz,
               sid_error());
        // A header claiming 2^32-1 x 2^32-1 bytes must fail without allocating it.
        const uint8_t huge[] = {0, 0, 0x08, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        write_idx(path, gz, huge, sizeof huge, data, 4);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "more than"), "huge (gz=%d): %s", gz,
               sid_error());
        const uint8_t big[] = {0, 0, 0x08, 1, 0x10, 0, 0, 0};  // 256 MiB claimed, 4 bytes present
        write_idx(path, gz, big, sizeof big, data, 4);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "truncated"), "big (gz=%d): %s", gz, sid_error());
        write_idx(path, gz, hdr, 6, NULL, 0);
        EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "truncated IDX header"), "short header: %s",
               sid_error());
    }
    sid_idx x;
    join(path, sizeof path, dir, "t10k-images-idx3-ubyte.gz");
    EXPECT(sid_idx_read(path, &x) == -1 && contains(sid_error(), "no such file") && contains(sid_error(), path),
           "missing: %s", sid_error());
    test_remove_tree(dir);
}

TEST_LIST(T(test_f16_bf16_conversions), T(test_st_reference_vector), T(test_st_round_trip), T(test_st_misaligned),
          T(test_st_rejects), T(test_st_write_rejects), T(test_read_file), T(test_atomic_write), T(test_mkdir_p),
          T(test_json_load_save), T(test_json_getters), T(test_png_round_trip), T(test_png_grid),
          T(test_png_rejects), T(test_idx))
TEST_MAIN("io")
