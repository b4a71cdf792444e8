// CLIP byte-level BPE; see tokenizer.h for the pipeline. Every step follows the `tokenizers`
// library behind transformers' CLIPTokenizer: AddedVocabulary (added-token split, raw text
// first, then normalised text), the NFC + Replace(\s+, " ") + Lowercase normalizer, the CLIP
// Split pre-tokenizer followed by ByteLevel, and models::bpe (rank-ordered merges).
#include "io/tokenizer.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/unicode_tables.h"

// ---------------------------------------------------------------- growable buffers

typedef struct {
    uint32_t *v;
    size_t n, cap;
} u32buf;

static void u32_reserve(u32buf *b, size_t need) {
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    uint32_t *p = realloc(b->v, cap * sizeof *p);
    if (!p) sid_die("out of memory in the tokenizer");
    b->v = p;
    b->cap = cap;
}

static void u32_push(u32buf *b, uint32_t x) {
    u32_reserve(b, b->n + 1);
    b->v[b->n++] = x;
}

// ---------------------------------------------------------------- Unicode

static int in_ranges(const uc_range *r, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo) hi = mid;
        else if (c > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return in_ranges(uc_letter, NELEM(uc_letter), c);
}
static int is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return in_ranges(uc_number, NELEM(uc_number), c);
}
static int is_space(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return in_ranges(uc_space, NELEM(uc_space), c);
}

// Lowercase of c, except U+0130 (two characters), which the caller handles.
static uint32_t to_lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    size_t lo = 0, hi = NELEM(uc_lower);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < uc_lower[mid].lo) hi = mid;
        else if (c > uc_lower[mid].hi) lo = mid + 1;
        else return (c - uc_lower[mid].lo) % uc_lower[mid].stride == 0 ? (uint32_t)((int32_t)c + uc_lower[mid].delta) : c;
    }
    return c;
}

static uint32_t ccc(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = NELEM(uc_ccc_table);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < uc_ccc_table[mid].lo) hi = mid;
        else if (c > uc_ccc_table[mid].hi) lo = mid + 1;
        else return uc_ccc_table[mid].ccc;
    }
    return 0;
}

enum { H_SBASE = 0xAC00, H_LBASE = 0x1100, H_VBASE = 0x1161, H_TBASE = 0x11A7, H_LCOUNT = 19, H_VCOUNT = 21,
       H_TCOUNT = 28, H_NCOUNT = H_VCOUNT * H_TCOUNT, H_SCOUNT = H_LCOUNT * H_NCOUNT };

static const uc_decomp *find_decomp(uint32_t c) {
    size_t lo = 0, hi = NELEM(uc_decomp_table);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < uc_decomp_table[mid].cp) hi = mid;
        else if (c > uc_decomp_table[mid].cp) lo = mid + 1;
        else return &uc_decomp_table[mid];
    }
    return NULL;
}

static void decompose(uint32_t c, u32buf *out) {
    if (c >= H_SBASE && c < H_SBASE + H_SCOUNT) {
        uint32_t s = c - H_SBASE, t = s % H_TCOUNT;
        u32_push(out, H_LBASE + s / H_NCOUNT);
        u32_push(out, H_VBASE + (s % H_NCOUNT) / H_TCOUNT);
        if (t) u32_push(out, H_TBASE + t);
        return;
    }
    const uc_decomp *d = c < 0xC0 ? NULL : find_decomp(c);
    if (!d) {
        u32_push(out, c);
        return;
    }
    decompose(d->a, out);
    if (d->b) decompose(d->b, out);
}

// The primary composite of (a, b), or 0.
static uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= H_LBASE && a < H_LBASE + H_LCOUNT && b >= H_VBASE && b < H_VBASE + H_VCOUNT)
        return H_SBASE + ((a - H_LBASE) * H_VCOUNT + (b - H_VBASE)) * H_TCOUNT;
    if (a >= H_SBASE && a < H_SBASE + H_SCOUNT && (a - H_SBASE) % H_TCOUNT == 0 && b > H_TBASE &&
        b < H_TBASE + H_TCOUNT)
        return a + (b - H_TBASE);
    size_t lo = 0, hi = NELEM(uc_compose);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const uc_decomp *d = &uc_decomp_table[uc_compose[mid]];
        if (a < d->a || (a == d->a && b < d->b)) hi = mid;
        else if (a > d->a || b > d->b) lo = mid + 1;
        else return d->cp;
    }
    return 0;
}

// NFC of s in place (tmp is scratch): canonical decomposition, canonical ordering, canonical
// composition (the sample algorithm of UAX #15).
static void nfc(u32buf *s, u32buf *tmp) {
    size_t i;
    for (i = 0; i < s->n && s->v[i] < 0x300; i++) {}
    if (i == s->n) return;  // nothing below U+0300 decomposes, reorders or composes in NFC
    tmp->n = 0;
    for (i = 0; i < s->n; i++) decompose(s->v[i], tmp);
    uint32_t *x = tmp->v;
    size_t n = tmp->n;
    for (i = 1; i < n; i++) {
        uint32_t cc = ccc(x[i]);
        if (!cc) continue;
        for (size_t j = i; j > 0 && ccc(x[j - 1]) > cc; j--) {
            uint32_t t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    }
    size_t out = 0;
    if (n) {
        size_t starter_pos = 0;
        uint32_t starter = x[0], last = ccc(x[0]) ? 256 : 0;
        out = 1;
        for (i = 1; i < n; i++) {
            uint32_t ch = x[i], cc = ccc(ch), comp = compose(starter, ch);
            if (comp && (last < cc || last == 0)) {
                x[starter_pos] = starter = comp;
            } else {
                if (cc == 0) {
                    starter_pos = out;
                    starter = ch;
                }
                last = cc;
                x[out++] = ch;
            }
        }
    }
    u32_reserve(s, out);
    memcpy(s->v, x, out * sizeof *x);
    s->n = out;
}

// The tokenizers normalizer: NFC, Replace(\s+ -> " "), Lowercase (per character).
static void normalize(u32buf *s, u32buf *tmp) {
    nfc(s, tmp);
    tmp->n = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->v[i];
        if (is_space(c)) {
            while (i + 1 < s->n && is_space(s->v[i + 1])) i++;
            u32_push(tmp, ' ');
        } else if (c == 0x130) {
            u32_push(tmp, 'i');
            u32_push(tmp, 0x307);
        } else {
            u32_push(tmp, to_lower(c));
        }
    }
    u32_reserve(s, tmp->n);
    memcpy(s->v, tmp->v, tmp->n * sizeof *tmp->v);
    s->n = tmp->n;
}

// Strict UTF-8 (no overlongs, surrogates or values above U+10FFFF), as Python decodes it.
// Returns the byte offset of the first bad sequence, or -1 when all is well.
static long utf8_decode(const char *p, size_t len, u32buf *out) {
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0;
    while (i < len) {
        uint32_t c = s[i];
        int k;
        if (c < 0x80) {
            u32_push(out, c);
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) k = 1, c &= 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, c &= 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, c &= 0x07;
        else return (long)i;
        for (int j = 1; j <= k; j++) {
            if (i + (size_t)j >= len || (s[i + j] & 0xC0) != 0x80) return (long)i;
            c = (c << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF))) || (k == 3 && (c < 0x10000 || c > 0x10FFFF)))
            return (long)i;
        u32_push(out, c);
        i += (size_t)k + 1;
    }
    return -1;
}

static size_t utf8_encode(uint32_t c, unsigned char *o) {
    if (c < 0x80) {
        o[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (unsigned char)(0xC0 | (c >> 6));
        o[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (c >> 12));
        o[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (c >> 18));
    o[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

// bytes_to_unicode(): printable bytes map to themselves, the other 68 to U+0100.. in order.
static uint32_t byte_char(int b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + (uint32_t)n;
}

// ---------------------------------------------------------------- the tokenizer

typedef struct {
    uint32_t *cps;  // code points: raw for normalized=0 tokens, normalised for normalized=1
    size_t n;
    int32_t id;
    int normalized;
} added_token;

typedef struct {
    uint64_t key;  // (left id << 32) | right id; UINT64_MAX = empty
    int32_t rank, id;
} merge_slot;

struct sid_tokenizer {
    char *keys;                // vocab strings, NUL-separated
    uint32_t *key_off, *key_len;
    int32_t *key_id;
    int n_vocab;
    int32_t *vhash;  // index into key_* or -1
    size_t vmask;
    merge_slot *merges;
    size_t mmask;
    int32_t sym[256], sym_eow[256];  // ids of the byte symbols, without and with "</w>" (-1: missing)
    added_token *added;
    int n_added;
    int32_t bos, eos, pad, unk;  // unk -1: not in the vocabulary
    int vocab_size, max_length;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

// The vocab.json id of the string, or -1.
static int32_t vocab_find(const sid_tokenizer *t, const char *s, size_t n) {
    for (size_t h = hash_bytes(s, n) & t->vmask;; h = (h + 1) & t->vmask) {
        int32_t e = t->vhash[h];
        if (e < 0) return -1;
        if (t->key_len[e] == n && memcmp(t->keys + t->key_off[e], s, n) == 0) return t->key_id[e];
    }
}

static const merge_slot *merge_find(const sid_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t h = hash_u64(key) & t->mmask;; h = (h + 1) & t->mmask) {
        const merge_slot *m = &t->merges[h];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

void sid_tokenizer_free(sid_tokenizer *t) {
    if (!t) return;
    free(t->keys);
    free(t->key_off);
    free(t->key_len);
    free(t->key_id);
    free(t->vhash);
    free(t->merges);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].cps);
    free(t->added);
    free(t);
}

// Token ids must be below this: CLIP has 49408, the largest BPE vocabularies a few hundred
// thousand. The bound keeps id + 1 and the vocabulary size from overflowing an int and stops
// one absurd id from sizing an embedding table of billions of rows downstream.
#define MAX_TOKEN_ID (1 << 24)

// A JSON number that is an integer id in [0, MAX_TOKEN_ID), or -1.
static int32_t json_token_id(const cJSON *v) {
    if (!cJSON_IsNumber(v)) return -1;
    const double d = v->valuedouble;
    if (!(d >= 0 && d < MAX_TOKEN_ID) || d != (double)(int32_t)d) return -1;
    return (int32_t)d;
}

// The vocabulary from a JSON object of token -> id (vocab.json, or tokenizer.json's model.vocab).
static int vocab_from_json(sid_tokenizer *t, const cJSON *j, const char *path) {
    if (!cJSON_IsObject(j)) {
        sid_set_error("%s: expected a JSON object of token -> id", path);
        return -1;
    }
    int n = cJSON_GetArraySize(j);
    if (n <= 0) {
        sid_set_error("%s: the vocabulary is empty", path);
        return -1;
    }
    size_t bytes = 0;
    for (const cJSON *e = j->child; e; e = e->next) bytes += strlen(e->string) + 1;
    if (bytes > UINT32_MAX / 2) {  // offsets are 32-bit; the file cap keeps this far away
        sid_set_error("%s: the vocabulary's strings are too large", path);
        return -1;
    }
    t->keys = sid_malloc(bytes);
    t->key_off = sid_malloc((size_t)n * sizeof *t->key_off);
    t->key_len = sid_malloc((size_t)n * sizeof *t->key_len);
    t->key_id = sid_malloc((size_t)n * sizeof *t->key_id);
    size_t cap = 1;
    while (cap < (size_t)n * 2) cap *= 2;
    t->vmask = cap - 1;
    t->vhash = sid_malloc(cap * sizeof *t->vhash);
    memset(t->vhash, 0xFF, cap * sizeof *t->vhash);
    size_t off = 0;
    int k = 0;
    for (const cJSON *e = j->child; e; e = e->next) {
        const int32_t id = json_token_id(e);
        if (id < 0) {
            sid_set_error("%s: the id of token '%.40s' must be an integer from 0 to %d", path, e->string,
                          MAX_TOKEN_ID - 1);
            return -1;
        }
        size_t len = strlen(e->string);
        size_t h = hash_bytes(e->string, len) & t->vmask;
        int32_t dup = -1;
        for (; t->vhash[h] >= 0; h = (h + 1) & t->vmask) {
            int32_t x = t->vhash[h];
            if (t->key_len[x] == len && memcmp(t->keys + t->key_off[x], e->string, len) == 0) {
                dup = x;
                break;
            }
        }
        if (dup >= 0) {  // a repeated key: the last value wins, as in a JSON map
            t->key_id[dup] = id;
        } else {
            memcpy(t->keys + off, e->string, len + 1);
            t->key_off[k] = (uint32_t)off;
            t->key_len[k] = (uint32_t)len;
            t->key_id[k] = id;
            t->vhash[h] = k++;
            off += len + 1;
        }
    }
    t->n_vocab = k;
    for (int i = 0; i < k; i++)
        if (t->key_id[i] + 1 > t->vocab_size) t->vocab_size = t->key_id[i] + 1;
    return 0;
}

static int load_vocab(sid_tokenizer *t, const char *path) {
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    int rc = vocab_from_json(t, j, path);
    cJSON_Delete(j);
    return rc;
}

static void merges_alloc(sid_tokenizer *t, size_t n) {
    size_t cap = 2;
    while (cap < n * 2) cap *= 2;
    t->mmask = cap - 1;
    t->merges = sid_malloc(cap * sizeof *t->merges);
    for (size_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
}

// Scratch for joining the two halves of a merge.
typedef struct {
    char *v;
    size_t cap;
} join_buf;

// Registers merge a + b with the next rank; where names "merges.txt: line 3" or
// "tokenizer.json: merges[2]" in the message when a token is not in the vocabulary.
static int add_merge(sid_tokenizer *t, const char *a_s, size_t na, const char *b_s, size_t nb, int32_t *rank,
                     join_buf *buf, const char *path, const char *where) {
    int32_t a = vocab_find(t, a_s, na), b = vocab_find(t, b_s, nb);
    if (na + nb + 1 > buf->cap) {
        buf->cap = 2 * (na + nb + 1);
        free(buf->v);
        buf->v = sid_malloc(buf->cap);
    }
    memcpy(buf->v, a_s, na);
    memcpy(buf->v + na, b_s, nb);
    int32_t ab = vocab_find(t, buf->v, na + nb);
    if (a < 0 || b < 0 || ab < 0) {
        const char *miss = a < 0 ? a_s : b < 0 ? b_s : buf->v;
        size_t nm = a < 0 ? na : b < 0 ? nb : na + nb;
        sid_set_error("%s: %s: token '%.*s' is not in the vocabulary", path, where, nm > 60 ? 60 : (int)nm, miss);
        return -1;
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t h = hash_u64(key) & t->mmask;
    while (t->merges[h].key != UINT64_MAX && t->merges[h].key != key) h = (h + 1) & t->mmask;
    t->merges[h].key = key;  // a repeated pair keeps its last rank, as tokenizers' map does
    t->merges[h].rank = (*rank)++;
    t->merges[h].id = ab;
    return 0;
}

static int load_merges(sid_tokenizer *t, const char *path) {
    char *text;
    size_t len;
    if (sid_read_file(path, &text, &len) != 0) return -1;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    merges_alloc(t, lines);
    join_buf buf = {0};
    int32_t rank = 0;
    int line = 0, rc = -1;
    char where[32];
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && text[e] != '\n') e++;
        size_t next = e + 1, n = e - p;
        line++;
        if (n && text[p + n - 1] == '\r') n--;
        const char *s = text + p;
        p = next;
        if (n >= 8 && memcmp(s, "#version", 8) == 0) continue;
        const char *sp = memchr(s, ' ', n);
        if (memchr(s, '\0', n) || !sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
            sid_set_error("%s: line %d: expected two tokens separated by one space, got '%.*s'", path, line,
                          n > 60 ? 60 : (int)n, s);
            goto done;
        }
        size_t na = (size_t)(sp - s), nb = n - na - 1;
        snprintf(where, sizeof where, "line %d", line);
        if (add_merge(t, s, na, sp + 1, nb, &rank, &buf, path, where) != 0) goto done;
    }
    rc = 0;
done:
    free(buf.v);
    free(text);
    return rc;
}

// tokenizer.json's model.merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
static int merges_from_json(sid_tokenizer *t, const cJSON *merges, const char *path) {
    if (!cJSON_IsArray(merges)) {
        sid_set_error("%s: 'model.merges' must be a list", path);
        return -1;
    }
    merges_alloc(t, (size_t)cJSON_GetArraySize(merges) + 1);
    join_buf buf = {0};
    int32_t rank = 0;
    int i = 0, rc = 0;
    char where[40];
    for (const cJSON *m = merges->child; m && rc == 0; m = m->next, i++) {
        snprintf(where, sizeof where, "merges[%d]", i);
        const char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) a = s, na = (size_t)(sp - s), b = sp + 1, nb = strlen(sp + 1);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, na = strlen(a), b = m->child->next->valuestring, nb = strlen(b);
        }
        if (!a) {
            sid_set_error("%s: %s must be \"a b\" or [\"a\", \"b\"]", path, where);
            rc = -1;
        } else {
            rc = add_merge(t, a, na, b, nb, &rank, &buf, path, where);
        }
    }
    free(buf.v);
    return rc;
}

// ---------------------------------------------------------------- configs

// A token named by a config: content and the AddedToken "normalized" flag.
typedef struct {
    char *content;  // NULL: not set
    int normalized;
    int32_t id;     // added_tokens_decoder / added_tokens.json entries only
} tok_spec;

// 'key' of obj (string, or object with "content" and optional "normalized") into *out.
// Without "normalized", tokenizers' AddedToken takes normalized = !special: dflt_norm 1 reads
// "special" from the object (absent = not special), 0 means the caller forces special=True.
static int parse_token(const cJSON *v, const char *key, int dflt_norm, tok_spec *out, const char *path) {
    const cJSON *c = v, *nz = NULL;
    if (cJSON_IsObject(v)) {
        c = cJSON_GetObjectItemCaseSensitive(v, "content");
        nz = cJSON_GetObjectItemCaseSensitive(v, "normalized");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(v, "special");
        if (sp && cJSON_IsBool(sp) && dflt_norm == 1) dflt_norm = !cJSON_IsTrue(sp);
        if (nz && !cJSON_IsNull(nz) && !cJSON_IsBool(nz)) {
            sid_set_error("%s: '%s': 'normalized' must be a boolean", path, key);
            return -1;
        }
    }
    if (!cJSON_IsString(c)) {
        sid_set_error("%s: '%s' must be a string or an object with a string 'content'", path, key);
        return -1;
    }
    free(out->content);
    size_t n = strlen(c->valuestring);
    out->content = sid_malloc(n + 1);
    memcpy(out->content, c->valuestring, n + 1);
    // A plain string is a special token with normalized=false (TokenizersBackend._post_init).
    out->normalized = cJSON_IsObject(v) ? (nz && cJSON_IsBool(nz) ? cJSON_IsTrue(nz) : dflt_norm != 0) : 0;
    return 0;
}

// Optional JSON file: NULL and *err = 0 when absent.
static cJSON *load_optional(const char *path, int *err) {
    *err = 0;
    if (!sid_file_exists(path)) return NULL;
    cJSON *j = sid_json_load(path);
    if (!j) {
        *err = 1;
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        sid_set_error("%s: expected a JSON object", path);
        cJSON_Delete(j);
        *err = 1;
        return NULL;
    }
    return j;
}

enum { N_NAMED = 7 };
static const char *const named_keys[N_NAMED] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};

typedef struct {
    tok_spec *v;
    int n, cap;
} spec_list;

static tok_spec *spec_add(spec_list *l) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        tok_spec *p = realloc(l->v, (size_t)l->cap * sizeof *p);
        if (!p) sid_die("out of memory in the tokenizer");
        l->v = p;
    }
    tok_spec *s = &l->v[l->n++];
    s->content = NULL;
    s->normalized = 0;
    s->id = 0;
    return s;
}

static void spec_list_free(spec_list *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i].content);
    free(l->v);
}

// "additional_special_tokens" / "extra_special_tokens": a list of strings or objects.
static int parse_extra(const cJSON *cfg, spec_list *extra, int dflt_norm, const char *path) {
    static const char *const keys[2] = {"additional_special_tokens", "extra_special_tokens"};
    for (int k = 0; k < 2; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
        if (!a || cJSON_IsNull(a) || cJSON_IsObject(a)) continue;  // an object maps names: not tokens we split on
        if (!cJSON_IsArray(a)) {
            sid_set_error("%s: '%s' must be a list", path, keys[k]);
            return -1;
        }
        extra->n = 0;  // a later file replaces the list
        for (const cJSON *e = a->child; e; e = e->next)
            if (parse_token(e, keys[k], dflt_norm, spec_add(extra), path) != 0) return -1;
    }
    return 0;
}

static uint32_t *utf8_dup_cps(const char *s, size_t *n) {
    u32buf b = {0};
    if (utf8_decode(s, strlen(s), &b) >= 0) {
        free(b.v);
        return NULL;
    }
    *n = b.n;
    if (!b.v) b.v = sid_malloc(sizeof *b.v);
    return b.v;
}

// Registers content with the added vocabulary (tokenizers AddedVocabulary::add_tokens): a
// content seen before keeps its id and takes the new flags; a new one takes its vocab.json id,
// or the next free id after the vocabulary.
static int add_token(sid_tokenizer *t, const tok_spec *s, int *cap, const char *path) {
    if (!s->content || !s->content[0]) return 0;
    size_t n;
    uint32_t *cps = utf8_dup_cps(s->content, &n);
    if (!cps) {
        sid_set_error("%s: token '%.40s' is not valid UTF-8", path, s->content);
        return -1;
    }
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (a->n == n && memcmp(a->cps, cps, n * sizeof *cps) == 0) {
            a->normalized = s->normalized;
            free(cps);
            return 0;
        }
    }
    if (t->n_added == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        added_token *p = realloc(t->added, (size_t)*cap * sizeof *p);
        if (!p) sid_die("out of memory in the tokenizer");
        t->added = p;
    }
    int32_t id = vocab_find(t, s->content, strlen(s->content));
    if (id < 0) {
        int32_t max = -1;
        for (int i = 0; i < t->n_added; i++)
            if (t->added[i].id > max) max = t->added[i].id;
        id = max >= t->n_vocab ? max + 1 : t->n_vocab;
    }
    t->added[t->n_added++] = (added_token){cps, n, id, s->normalized};
    return 0;
}

static int32_t token_id(const sid_tokenizer *t, const char *content) {
    size_t n;
    uint32_t *cps = utf8_dup_cps(content, &n);
    int32_t id = -1;
    for (int i = 0; cps && i < t->n_added; i++)
        if (t->added[i].n == n && memcmp(t->added[i].cps, cps, n * sizeof *cps) == 0) id = t->added[i].id;
    free(cps);
    return id >= 0 ? id : vocab_find(t, content, strlen(content));
}

static int cmp_id(const void *a, const void *b) {
    int32_t x = ((const tok_spec *)a)->id, y = ((const tok_spec *)b)->id;
    return (x > y) - (x < y);
}

// Reads the configs as transformers 5.x does (PreTrainedTokenizerBase._from_pretrained, then
// TokenizersBackend.__init__/_post_init): named tokens come from tokenizer_config.json (class
// defaults otherwise); if that file has no added_tokens_decoder, special_tokens_map.json
// overrides them and added_tokens.json adds tokens; a named token equal to such an entry takes
// its flags. The added vocabulary then receives the entries by id, then the named tokens in
// the order bos, eos, unk, sep, pad, cls, mask, extras; the last flags given to a content win
// (this is why SD1.5's eos ends up normalized=false: its pad, a plain string, comes last).
// lstrip/rstrip cannot change ids here (whitespace is dropped anyway); single_word is ignored.
// tokenizer.json's added_tokens: [{"id", "content", "normalized", "special", ...}], in the
// order the tokenizers library registers them (before anything the configs add).
static int parse_json_added(const cJSON *added, spec_list *out, const char *path) {
    if (!added || cJSON_IsNull(added)) return 0;
    if (!cJSON_IsArray(added)) {
        sid_set_error("%s: 'added_tokens' must be a list", path);
        return -1;
    }
    for (const cJSON *e = added->child; e; e = e->next) {
        const int32_t id = json_token_id(cJSON_GetObjectItemCaseSensitive(e, "id"));
        if (!cJSON_IsObject(e) || id < 0) {
            sid_set_error("%s: every 'added_tokens' entry needs an integer 'id' from 0 to %d", path,
                          MAX_TOKEN_ID - 1);
            return -1;
        }
        tok_spec *s = spec_add(out);
        if (parse_token(e, "added_tokens", 1, s, path) != 0) return -1;
        s->id = id;
    }
    return 0;
}

// read_files 0: none of the config files is read (sid_tokenizer_load_bpe): CLIPTokenizer's class defaults.
static int load_configs(sid_tokenizer *t, const char *dir, const cJSON *json_added, const char *json_path,
                        int read_files) {
    char cfg_path[4096], map_path[4096], add_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", dir);
    snprintf(map_path, sizeof map_path, "%s/special_tokens_map.json", dir);
    snprintf(add_path, sizeof add_path, "%s/added_tokens.json", dir);
    tok_spec named[N_NAMED] = {{0}};
    const char *named_path[N_NAMED] = {0};
    spec_list extra = {0}, decoder = {0}, from_json = {0};
    cJSON *cfg = NULL, *map = NULL, *add = NULL;
    u32buf pat = {0}, tmp = {0};
    int rc = -1, err = 0, cap = 0;
    static const char *const dflt[N_NAMED] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>", NULL,
                                              "<|endoftext|>", NULL, NULL};  // CLIPTokenizer.__init__
    for (int i = 0; i < N_NAMED; i++) {
        if (!dflt[i]) continue;
        named[i].content = sid_malloc(strlen(dflt[i]) + 1);
        strcpy(named[i].content, dflt[i]);
    }
    if (parse_json_added(json_added, &from_json, json_path) != 0) goto done;
    cfg = read_files ? load_optional(cfg_path, &err) : NULL;
    if (err) goto done;
    int has_decoder = 0;
    if (cfg) {
        int ml;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
        if (m && cJSON_IsNumber(m) && m->valuedouble >= 1 && m->valuedouble <= 1e6) {
            if (sid_json_int(cfg, "model_max_length", &ml, 0, 0, cfg_path) == 0) t->max_length = ml;
        }
        for (int i = 0; i < N_NAMED; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, named_keys[i]);
            if (!v || cJSON_IsNull(v)) continue;
            if (parse_token(v, named_keys[i], 1, &named[i], cfg_path) != 0) goto done;
            named_path[i] = cfg_path;
        }
        if (parse_extra(cfg, &extra, 1, cfg_path) != 0) goto done;
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        if (dec && !cJSON_IsNull(dec)) {
            if (!cJSON_IsObject(dec)) {
                sid_set_error("%s: 'added_tokens_decoder' must be an object", cfg_path);
                goto done;
            }
            has_decoder = 1;
            for (const cJSON *e = dec->child; e; e = e->next) {
                char *end;
                long id = strtol(e->string, &end, 10);
                if (!e->string[0] || *end || id < 0 || id >= MAX_TOKEN_ID) {
                    sid_set_error("%s: added_tokens_decoder key '%.20s' is not an id from 0 to %d", cfg_path,
                                  e->string, MAX_TOKEN_ID - 1);
                    goto done;
                }
                tok_spec *s = spec_add(&decoder);
                if (parse_token(e, "added_tokens_decoder", 1, s, cfg_path) != 0) goto done;
                s->id = (int32_t)id;
            }
        }
    }
    if (!has_decoder && read_files) {
        map = load_optional(map_path, &err);
        if (err) goto done;
        for (int i = 0; map && i < N_NAMED; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(map, named_keys[i]);
            if (!v || cJSON_IsNull(v)) continue;
            if (parse_token(v, named_keys[i], 0, &named[i], map_path) != 0) goto done;
            named_path[i] = map_path;
        }
        if (map && parse_extra(map, &extra, 0, map_path) != 0) goto done;
        add = load_optional(add_path, &err);
        if (err) goto done;
        for (const cJSON *e = add ? add->child : NULL; e; e = e->next) {
            const int32_t id = json_token_id(e);
            if (id < 0) {
                sid_set_error("%s: the id of '%.40s' must be an integer from 0 to %d", add_path, e->string,
                              MAX_TOKEN_ID - 1);
                goto done;
            }
            int special = 0;
            for (int i = 0; i < N_NAMED; i++) special |= named[i].content && strcmp(named[i].content, e->string) == 0;
            for (int i = 0; i < extra.n; i++) special |= strcmp(extra.v[i].content, e->string) == 0;
            tok_spec *s = spec_add(&decoder);
            s->content = sid_malloc(strlen(e->string) + 1);
            strcpy(s->content, e->string);
            s->normalized = !special;
            s->id = id;
        }
    }
    // A named token that matches a decoder entry by content is that entry (flags included).
    for (int i = 0; i < N_NAMED; i++)
        for (int k = 0; named[i].content && k < decoder.n; k++)
            if (strcmp(named[i].content, decoder.v[k].content) == 0) named[i].normalized = decoder.v[k].normalized;
    for (int k = 0; k < from_json.n; k++)
        for (int i = 0; i < N_NAMED; i++)
            if (named[i].content && strcmp(named[i].content, from_json.v[k].content) == 0 && !named_path[i])
                named[i].normalized = from_json.v[k].normalized;
    for (int k = 0; k < from_json.n; k++)
        if (add_token(t, &from_json.v[k], &cap, json_path) != 0) goto done;
    if (decoder.n) qsort(decoder.v, (size_t)decoder.n, sizeof *decoder.v, cmp_id);
    for (int k = 0; k < decoder.n; k++) {
        if (add_token(t, &decoder.v[k], &cap, has_decoder ? cfg_path : add_path) != 0) goto done;
    }
    for (int i = 0; i < N_NAMED; i++)
        if (add_token(t, &named[i], &cap, named_path[i] ? named_path[i] : cfg_path) != 0) goto done;
    for (int i = 0; i < extra.n; i++)
        if (add_token(t, &extra.v[i], &cap, cfg_path) != 0) goto done;
    // Normalised tokens are matched on normalised text, so their patterns are normalised too.
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        if (!a->normalized) continue;
        pat.n = 0;
        for (size_t k = 0; k < a->n; k++) u32_push(&pat, a->cps[k]);
        normalize(&pat, &tmp);
        u32_reserve(&pat, 1);
        free(a->cps);
        a->cps = pat.v;
        a->n = pat.n;
        pat = (u32buf){0};
    }
    static const int need[3] = {0, 1, 4};  // bos, eos, pad
    int32_t *dst[3] = {&t->bos, &t->eos, &t->pad};
    for (int k = 0; k < 3; k++) {
        int i = need[k];
        if (!named[i].content) {
            sid_set_error("%s: no %s configured", cfg_path, named_keys[i]);
            goto done;
        }
        *dst[k] = token_id(t, named[i].content);
        if (*dst[k] < 0) {
            sid_set_error("%s: %s '%.40s' is not in the vocabulary", named_path[i] ? named_path[i] : cfg_path,
                          named_keys[i], named[i].content);
            goto done;
        }
    }
    // The BPE model's unk is looked up in vocab.json only (models::bpe).
    t->unk = named[2].content ? vocab_find(t, named[2].content, strlen(named[2].content)) : -1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id + 1 > t->vocab_size) t->vocab_size = t->added[i].id + 1;
    rc = 0;
done:
    for (int i = 0; i < N_NAMED; i++) free(named[i].content);
    free(pat.v);
    free(tmp.v);
    spec_list_free(&extra);
    spec_list_free(&decoder);
    spec_list_free(&from_json);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    cJSON_Delete(add);
    return rc;
}

// tokenizer.json as transformers 5 saves a CLIPTokenizer: model {type "BPE", vocab, merges} and
// added_tokens; its normalizer and pre-tokenizer are CLIP's, which this file implements.
static int load_tokenizer_json(sid_tokenizer *t, const char *path, cJSON **root) {
    cJSON *j = *root = sid_json_load(path);
    if (!j) return -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(j) || !cJSON_IsObject(model)) {
        sid_set_error("%s: expected an object with a 'model' object", path);
        return -1;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0)) {
        sid_set_error("%s: 'model.type' must be \"BPE\" (a CLIP tokenizer)", path);
        return -1;
    }
    if (vocab_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path) != 0) return -1;
    return merges_from_json(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), path);
}

static sid_tokenizer *load(const char *dir, int configs) {
    sid_tokenizer *t = sid_calloc(sizeof *t);
    char path[4096], json_path[4096];
    cJSON *json = NULL;
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", dir);
    // vocab.json + merges.txt when there, as transformers 4 saved it; tokenizer.json otherwise.
    if (sid_file_exists(path) || !sid_file_exists(json_path)) {
        if (!sid_file_exists(path)) {
            sid_set_error("%s: no such file (a tokenizer folder needs vocab.json and merges.txt, or tokenizer.json)",
                          path);
            goto fail;
        }
        if (load_vocab(t, path) != 0) goto fail;
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        if (load_merges(t, path) != 0) goto fail;
    } else if (load_tokenizer_json(t, json_path, &json) != 0) {
        goto fail;
    }
    for (int b = 0; b < 256; b++) {
        unsigned char s[8];
        size_t n = utf8_encode(byte_char(b), s);
        memcpy(s + n, "</w>", 4);
        t->sym[b] = vocab_find(t, (const char *)s, n);
        t->sym_eow[b] = vocab_find(t, (const char *)s, n + 4);
    }
    const cJSON *added = json && configs ? cJSON_GetObjectItemCaseSensitive(json, "added_tokens") : NULL;
    if (load_configs(t, dir, added, json_path, configs) != 0) goto fail;
    cJSON_Delete(json);
    return t;
fail:
    cJSON_Delete(json);
    sid_tokenizer_free(t);
    return NULL;
}

sid_tokenizer *sid_tokenizer_load(const char *dir) { return load(dir, 1); }
sid_tokenizer *sid_tokenizer_load_bpe(const char *dir) { return load(dir, 0); }

int sid_tokenizer_vocab_size(const sid_tokenizer *t) { return t->vocab_size; }
int sid_tokenizer_pad_id(const sid_tokenizer *t) { return t->pad; }
int sid_tokenizer_bos_id(const sid_tokenizer *t) { return t->bos; }
int sid_tokenizer_eos_id(const sid_tokenizer *t) { return t->eos; }
int sid_tokenizer_max_length(const sid_tokenizer *t) { return t->max_length; }

// ---------------------------------------------------------------- encoding

typedef struct {
    uint32_t rank, pos, id;
} bpe_merge;

typedef struct {
    const sid_tokenizer *t;
    u32buf out;          // ids so far
    size_t limit;        // stop once this many ids are out (the rest would be truncated)
    u32buf sym, next, prev;  // BPE scratch: symbols as a linked list
    bpe_merge *heap;
    size_t heap_n, heap_cap;
    unsigned char *bytes;
    size_t bytes_cap;
    int unk_missing;
} encoder;

static int full(const encoder *e) { return e->out.n >= e->limit; }

static int merge_before(const bpe_merge *a, const bpe_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(encoder *e, uint32_t rank, uint32_t pos, uint32_t id) {
    if (e->heap_n == e->heap_cap) {
        e->heap_cap = e->heap_cap ? 2 * e->heap_cap : 256;
        bpe_merge *p = realloc(e->heap, e->heap_cap * sizeof *p);
        if (!p) sid_die("out of memory in the tokenizer");
        e->heap = p;
    }
    size_t i = e->heap_n++;
    bpe_merge m = {rank, pos, id};
    while (i > 0 && merge_before(&m, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = m;
}

static bpe_merge heap_pop(encoder *e) {
    bpe_merge top = e->heap[0], last = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_before(&e->heap[c + 1], &e->heap[c])) c++;
        if (!merge_before(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

static void push_pair(encoder *e, uint32_t pos, uint32_t right) {
    const merge_slot *ms = merge_find(e->t, (int32_t)e->sym.v[pos], (int32_t)e->sym.v[right]);
    if (ms) heap_push(e, (uint32_t)ms->rank, pos, (uint32_t)ms->id);
}

// models::bpe on one pre-token: byte symbols, "</w>" on the last, then the lowest-ranked
// adjacent pair (leftmost on ties) is merged until no pair is in merges.txt (word.rs
// merge_all: a min-heap of candidate merges over a linked list of symbols).
static void bpe_word(encoder *e, const uint32_t *cps, size_t n) {
    const sid_tokenizer *t = e->t;
    if (e->bytes_cap < 4 * n) {
        free(e->bytes);
        e->bytes_cap = 4 * n;
        e->bytes = sid_malloc(e->bytes_cap);
    }
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) nb += utf8_encode(cps[i], e->bytes + nb);
    if (nb == 0) return;
    e->sym.n = e->next.n = e->heap_n = 0;
    for (size_t i = 0; i < nb; i++) {
        int32_t id = i + 1 < nb ? t->sym[e->bytes[i]] : t->sym_eow[e->bytes[i]];
        if (id < 0) {
            id = t->unk;
            if (id < 0) e->unk_missing = 1;
        }
        u32_push(&e->sym, (uint32_t)id);
        u32_push(&e->next, i + 1 < nb ? (uint32_t)i + 1 : UINT32_MAX);
    }
    u32_reserve(&e->prev, nb);
    uint32_t *s = e->sym.v, *nx = e->next.v, *pv = e->prev.v;
    for (size_t i = 0; i < nb; i++) pv[i] = i ? (uint32_t)i - 1 : UINT32_MAX;
    for (size_t i = 0; i + 1 < nb; i++) push_pair(e, (uint32_t)i, (uint32_t)i + 1);
    const uint32_t DEAD = UINT32_MAX - 1;
    while (e->heap_n) {
        bpe_merge m = heap_pop(e);
        uint32_t p = m.pos, r = nx[p];
        if (pv[p] == DEAD || r == UINT32_MAX) continue;
        const merge_slot *ms = merge_find(t, (int32_t)s[p], (int32_t)s[r]);
        if (!ms || (uint32_t)ms->id != m.id) continue;  // stale: a neighbour has changed
        s[p] = m.id;
        nx[p] = nx[r];
        if (nx[r] != UINT32_MAX) pv[nx[r]] = p;
        pv[r] = DEAD;
        if (pv[p] != UINT32_MAX) push_pair(e, pv[p], p);
        if (nx[p] != UINT32_MAX) push_pair(e, p, nx[p]);
    }
    for (uint32_t i = 0; i != UINT32_MAX && !full(e); i = nx[i]) u32_push(&e->out, s[i]);
}

static int match_at(const uint32_t *s, size_t n, size_t i, const char *lit) {
    size_t k = 0;
    for (; lit[k]; k++)
        if (i + k >= n || s[i + k] != (unsigned char)lit[k]) return 0;
    return (int)k;
}

// CLIP's Split pattern, then ByteLevel's GPT-2 split (which only cuts the two literal
// special-token pieces into "<|", the letters, "|>"), then BPE.
static void pretokenize(encoder *e, const uint32_t *s, size_t n) {
    static const char *const lits[2] = {"<|startoftext|>", "<|endoftext|>"};
    for (size_t i = 0; i < n && !full(e);) {
        uint32_t c = s[i];
        int k = 0;
        if (c == '<') {
            for (int l = 0; l < 2 && !k; l++) k = match_at(s, n, i, lits[l]);
            if (k) {
                bpe_word(e, s + i, 2);
                if (!full(e)) bpe_word(e, s + i + 2, (size_t)k - 4);
                if (!full(e)) bpe_word(e, s + i + k - 2, 2);
                i += (size_t)k;
                continue;
            }
        }
        if (c == '\'' && i + 1 < n) {
            uint32_t d = s[i + 1];
            if (d == 's' || d == 't' || d == 'm' || d == 'd') k = 2;
            else if (match_at(s, n, i, "'re") || match_at(s, n, i, "'ve") || match_at(s, n, i, "'ll")) k = 3;
            if (k) {
                bpe_word(e, s + i, (size_t)k);
                i += (size_t)k;
                continue;
            }
        }
        size_t j = i + 1;
        if (is_letter(c)) {
            while (j < n && is_letter(s[j])) j++;
        } else if (is_number(c)) {
        } else if (is_space(c)) {
            i++;
            continue;
        } else {
            while (j < n && !is_space(s[j]) && !is_letter(s[j]) && !is_number(s[j])) j++;
        }
        bpe_word(e, s + i, j - i);
        i = j;
    }
}

// Leftmost-longest match of the added tokens with this normalized flag at or after from.
static int find_added(const sid_tokenizer *t, const uint32_t *s, size_t n, size_t from, int normalized,
                      size_t *at, size_t *len, int32_t *id) {
    for (size_t i = from; i < n; i++) {
        size_t best = 0;
        for (int k = 0; k < t->n_added; k++) {
            const added_token *a = &t->added[k];
            if (a->normalized != normalized || a->n <= best || i + a->n > n) continue;
            if (memcmp(s + i, a->cps, a->n * sizeof *s) == 0) {
                best = a->n;
                *id = a->id;
            }
        }
        if (best) {
            *at = i;
            *len = best;
            return 1;
        }
    }
    return 0;
}

static void encode_normalized(encoder *e, const uint32_t *s, size_t n) {
    size_t from = 0, at, len;
    int32_t id;
    while (!full(e) && find_added(e->t, s, n, from, 1, &at, &len, &id)) {
        pretokenize(e, s + from, at - from);
        if (!full(e)) u32_push(&e->out, (uint32_t)id);
        from = at + len;
    }
    if (!full(e)) pretokenize(e, s + from, n - from);
}

int sid_tokenizer_encode(const sid_tokenizer *t, const char *text, int32_t *ids, int max_len) {
    return sid_tokenizer_encode_ex(t, text, ids, max_len, NULL);
}

int sid_tokenizer_encode_ex(const sid_tokenizer *t, const char *text, int32_t *ids, int max_len, int *truncated) {
    if (truncated) *truncated = 0;
    for (int i = 0; i < max_len; i++) ids[i] = t->pad;
    if (max_len < 2) {
        sid_set_error("tokenizer: max_len must be at least 2 (bos and eos), got %d", max_len);
        return -1;
    }
    if (!text) text = "";
    u32buf raw = {0}, seg = {0}, tmp = {0};
    long bad = utf8_decode(text, strlen(text), &raw);
    if (bad >= 0) {
        free(raw.v);
        sid_set_error("tokenizer: prompt is not valid UTF-8 (byte %ld)", bad);
        return -1;
    }
    // One token past what fits is encoded, so a prompt that is cut can be told from one that fits exactly.
    const size_t room = (size_t)max_len - 2;
    encoder e = {.t = t, .limit = room + 1};
    size_t from = 0, at, len;
    int32_t id;
    for (;;) {
        int found = find_added(t, raw.v, raw.n, from, 0, &at, &len, &id);
        size_t end = found ? at : raw.n;
        seg.n = 0;
        for (size_t i = from; i < end; i++) u32_push(&seg, raw.v[i]);
        if (seg.n && !full(&e)) {
            normalize(&seg, &tmp);
            encode_normalized(&e, seg.v, seg.n);
        }
        if (!found || full(&e)) break;
        u32_push(&e.out, (uint32_t)id);
        from = at + len;
    }
    int rc;
    if (e.unk_missing) {
        sid_set_error("tokenizer: a byte symbol is missing from the vocabulary and unk token is not in it");
        rc = -1;
    } else {
        size_t n = e.out.n < room ? e.out.n : room;
        if (truncated) *truncated = e.out.n > room;
        ids[0] = t->bos;
        for (size_t i = 0; i < n; i++) ids[1 + i] = (int32_t)e.out.v[i];
        ids[1 + n] = t->eos;
        rc = (int)n + 2;
    }
    free(raw.v);
    free(seg.v);
    free(tmp.v);
    free(e.out.v);
    free(e.sym.v);
    free(e.next.v);
    free(e.prev.v);
    free(e.heap);
    free(e.bytes);
    return rc;
}
