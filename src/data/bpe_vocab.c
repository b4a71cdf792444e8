#include "data/bpe_vocab.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"
#include "io/json.h"

// ---------------------------------------------------------------- a string -> id table

typedef struct {
    char **s;
    int n, cap;
    int32_t *slot;  // open addressing, -1 empty
    size_t mask;
} strtab;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int strtab_find(const strtab *t, const char *s, size_t n) {
    if (!t->slot) return -1;
    for (size_t h = fnv1a(s, n) & t->mask;; h = (h + 1) & t->mask) {
        int32_t id = t->slot[h];
        if (id < 0) return -1;
        if (strlen(t->s[id]) == n && memcmp(t->s[id], s, n) == 0) return id;
    }
}

static void strtab_rehash(strtab *t, size_t slots) {
    free(t->slot);
    t->slot = sid_malloc(slots * sizeof *t->slot);
    for (size_t i = 0; i < slots; i++) t->slot[i] = -1;
    t->mask = slots - 1;
    for (int id = 0; id < t->n; id++) {
        size_t h = fnv1a(t->s[id], strlen(t->s[id])) & t->mask;
        while (t->slot[h] >= 0) h = (h + 1) & t->mask;
        t->slot[h] = id;
    }
}

// Adds s (absent) and returns its id.
static int strtab_add(strtab *t, const char *s, size_t n) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        char **p = realloc(t->s, (size_t)t->cap * sizeof *p);
        if (!p) sid_die("out of memory building a BPE vocabulary");
        t->s = p;
    }
    char *c = sid_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    t->s[t->n++] = c;
    if (!t->slot || (size_t)t->n * 2 > t->mask + 1) strtab_rehash(t, t->slot ? 2 * (t->mask + 1) : 4096);
    else {
        size_t h = fnv1a(c, n) & t->mask;
        while (t->slot[h] >= 0) h = (h + 1) & t->mask;
        t->slot[h] = t->n - 1;
    }
    return t->n - 1;
}

static void strtab_free(strtab *t) {
    for (int i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------- CLIP's byte symbols

// bytes_to_unicode as a vocabulary order: order[i] is the byte of id i (printable bytes first,
// then the other 68 in byte order, which bytes_to_unicode maps to U+0100...), cp[b] its character.
static void byte_symbols(int order[256], uint32_t cp[256]) {
    int n = 0, extra = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) order[n++] = b, cp[b] = (uint32_t)b;
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)))
            order[n++] = b, cp[b] = 256u + (uint32_t)extra++;
}

static size_t utf8_put(uint32_t c, char *out) {
    if (c < 0x80) return out[0] = (char)c, 1;
    out[0] = (char)(0xC0 | (c >> 6));  // byte symbols stop at U+0143
    out[1] = (char)(0x80 | (c & 0x3F));
    return 2;
}

// ---------------------------------------------------------------- the corpus as counted words

typedef struct {
    int *sym;
    int len;
    int64_t count;
} bpe_word;

typedef struct {
    strtab text;  // the distinct pieces
    bpe_word *w;  // parallel to text
    int cap;
} word_set;

static void count_piece(word_set *ws, const char *s, size_t n) {
    int id = strtab_find(&ws->text, s, n);
    if (id < 0) {
        id = strtab_add(&ws->text, s, n);
        if (id >= ws->cap) {
            ws->cap = ws->cap ? 2 * ws->cap : 1024;
            bpe_word *p = realloc(ws->w, (size_t)ws->cap * sizeof *p);
            if (!p) sid_die("out of memory building a BPE vocabulary");
            ws->w = p;
        }
        ws->w[id] = (bpe_word){0};
    }
    ws->w[id].count++;
}

static int is_alpha(char c) { return c >= 'a' && c <= 'z'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_ws(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// CLIP's pre-tokenizer regex on lower-cased ASCII text:
// <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// The two specials are the tokenizer's own tokens, not words to learn.
static void split_text(word_set *ws, const char *s) {
    static const char *const specials[] = {"<|startoftext|>", "<|endoftext|>"};
    static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    size_t i = 0, n = strlen(s);
    while (i < n) {
        if (is_ws(s[i])) {
            i++;
            continue;
        }
        size_t e = i;
        for (int k = 0; k < 2 && e == i; k++)
            if (strncmp(s + i, specials[k], strlen(specials[k])) == 0) i += strlen(specials[k]);
        if (i != e) continue;
        for (int k = 0; k < 7 && e == i; k++)
            if (strncmp(s + i, contractions[k], strlen(contractions[k])) == 0) e = i + strlen(contractions[k]);
        if (e == i) {
            if (is_alpha(s[i])) {
                while (e < n && is_alpha(s[e])) e++;
            } else if (is_digit(s[i])) {
                e = i + 1;
            } else {
                while (e < n && !is_ws(s[e]) && !is_alpha(s[e]) && !is_digit(s[e])) e++;
            }
        }
        count_piece(ws, s + i, e - i);
        i = e;
    }
}

// ---------------------------------------------------------------- output

static cJSON *added_token(const char *content) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "__type", "AddedToken");
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 1);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "single_word", 0);
    return o;
}

// SD1.5's tokenizer configs (openai/clip-vit-large-patch14), which both tokenizers read.
static int write_configs(const char *dir) {
    char path[4096];
    cJSON *cfg = cJSON_CreateObject(), *map = cJSON_CreateObject();
    cJSON_AddBoolToObject(cfg, "add_prefix_space", 0);
    cJSON_AddItemToObject(cfg, "bos_token", added_token("<|startoftext|>"));
    cJSON_AddBoolToObject(cfg, "do_lower_case", 1);
    cJSON_AddItemToObject(cfg, "eos_token", added_token("<|endoftext|>"));
    cJSON_AddStringToObject(cfg, "errors", "replace");
    cJSON_AddNumberToObject(cfg, "model_max_length", 77);
    cJSON_AddStringToObject(cfg, "pad_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "tokenizer_class", "CLIPTokenizer");
    cJSON_AddItemToObject(cfg, "unk_token", added_token("<|endoftext|>"));
    static const char *const keys[3] = {"bos_token", "eos_token", "unk_token"};
    static const char *const vals[3] = {"<|startoftext|>", "<|endoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 3; k++) {
        cJSON *t = added_token(vals[k]);
        cJSON_DeleteItemFromObject(t, "__type");  // special_tokens_map.json has no "__type"
        cJSON_AddItemToObject(map, keys[k], t);
        if (k == 1) cJSON_AddStringToObject(map, "pad_token", "<|endoftext|>");
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    int rc = sid_json_save(path, cfg);
    snprintf(path, sizeof path, "%s/special_tokens_map.json", dir);
    rc = rc || sid_json_save(path, map);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- learning

typedef struct {
    uint64_t key;  // a << 32 | b; UINT64_MAX empty
    int64_t count;
} pair_slot;

// -1 when a first, 1 when b first, by the strings of their two symbols.
static int pair_cmp(const strtab *sy, uint64_t a, uint64_t b) {
    int c = strcmp(sy->s[a >> 32], sy->s[b >> 32]);
    return c ? c : strcmp(sy->s[(uint32_t)a], sy->s[(uint32_t)b]);
}

int sid_bpe_build(const char *const *corpus, int n, int max_merges, const char *out_dir) {
    for (int i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)corpus[i]; *p; p++) {
            if (*p >= 0x80) {
                sid_set_error("bpe: corpus text %d is not ASCII (byte 0x%02X at %d): \"%.40s\"", i, *p,
                              (int)(p - (const unsigned char *)corpus[i]), corpus[i]);
                return -1;
            }
        }
    }
    if (sid_mkdir_p(out_dir) != 0) return -1;

    word_set ws = {0};
    for (int i = 0; i < n; i++) {
        size_t len = strlen(corpus[i]);
        char *low = sid_malloc(len + 1);
        for (size_t k = 0; k <= len; k++) low[k] = corpus[i][k] >= 'A' && corpus[i][k] <= 'Z' ? corpus[i][k] + 32 : corpus[i][k];
        split_text(&ws, low);
        free(low);
    }

    // The symbol table doubles as the vocabulary: ids 0-511 are CLIP's byte symbols.
    strtab sy = {0};
    int order[256], byte_id[256];
    uint32_t cp[256];
    byte_symbols(order, cp);
    for (int eow = 0; eow < 2; eow++)
        for (int i = 0; i < 256; i++) {
            char buf[8];
            size_t l = utf8_put(cp[order[i]], buf);
            if (eow) memcpy(buf + l, "</w>", 4), l += 4;
            strtab_add(&sy, buf, l);
            byte_id[order[i]] = i;
        }
    size_t positions = 0;
    for (int w = 0; w < ws.text.n; w++) {
        const char *s = ws.text.s[w];
        int len = (int)strlen(s);
        ws.w[w].sym = sid_malloc((size_t)len * sizeof(int));
        ws.w[w].len = len;
        for (int k = 0; k < len; k++) ws.w[w].sym[k] = byte_id[(unsigned char)s[k]] + (k == len - 1 ? 256 : 0);
        positions += (size_t)len;
    }

    size_t slots = 16;
    while (slots < 2 * positions) slots *= 2;
    pair_slot *pairs = sid_malloc(slots * sizeof *pairs);
    uint64_t *merges = NULL;
    int n_merges = 0, merges_cap = 0;
    char *joined = NULL;
    size_t joined_cap = 0;
    while (max_merges < 0 || n_merges < max_merges) {
        for (size_t i = 0; i < slots; i++) pairs[i].key = UINT64_MAX;
        for (int w = 0; w < ws.text.n; w++) {
            const bpe_word *x = &ws.w[w];
            for (int k = 0; k + 1 < x->len; k++) {
                uint64_t key = (uint64_t)(uint32_t)x->sym[k] << 32 | (uint32_t)x->sym[k + 1];
                size_t h = (size_t)(key * 0x9E3779B97F4A7C15ull >> 20) & (slots - 1);
                while (pairs[h].key != UINT64_MAX && pairs[h].key != key) h = (h + 1) & (slots - 1);
                if (pairs[h].key == UINT64_MAX) pairs[h] = (pair_slot){key, 0};
                pairs[h].count += x->count;
            }
        }
        uint64_t best = UINT64_MAX;
        int64_t best_count = 0;
        for (size_t i = 0; i < slots; i++) {
            if (pairs[i].key == UINT64_MAX) continue;
            if (pairs[i].count > best_count || (pairs[i].count == best_count && pair_cmp(&sy, pairs[i].key, best) < 0))
                best = pairs[i].key, best_count = pairs[i].count;
        }
        if (best == UINT64_MAX) break;  // every word is one symbol
        const int a = (int)(best >> 32), b = (int)(uint32_t)best;
        size_t la = strlen(sy.s[a]), lb = strlen(sy.s[b]);
        if (la + lb + 1 > joined_cap) {
            joined_cap = 2 * (la + lb + 1);
            free(joined);
            joined = sid_malloc(joined_cap);
        }
        memcpy(joined, sy.s[a], la);
        memcpy(joined + la, sy.s[b], lb);
        // Should two different merges ever spell the same token ("ab"+"c", "a"+"bc"; not seen
        // in fuzzing, but nothing here rules it out), the vocabulary keeps one id for it, as a
        // JSON object must, and both merges point at it.
        int ab = strtab_find(&sy, joined, la + lb);
        if (ab < 0) ab = strtab_add(&sy, joined, la + lb);
        if (n_merges == merges_cap) {
            merges_cap = merges_cap ? 2 * merges_cap : 256;
            uint64_t *p = realloc(merges, (size_t)merges_cap * sizeof *p);
            if (!p) sid_die("out of memory building a BPE vocabulary");
            merges = p;
        }
        merges[n_merges++] = best;
        // left to right, non-overlapping: what the encoder does with a pair of equal rank
        int64_t applied = 0;
        for (int w = 0; w < ws.text.n; w++) {
            bpe_word *x = &ws.w[w];
            int o = 0;
            for (int k = 0; k < x->len; k++) {
                if (k + 1 < x->len && x->sym[k] == a && x->sym[k + 1] == b) x->sym[o++] = ab, k++, applied++;
                else x->sym[o++] = x->sym[k];
            }
            x->len = o;
        }
        if (applied == 0) sid_die("bpe: merge '%s %s' applied nowhere (a bug: it would loop forever)", sy.s[a], sy.s[b]);
    }
    free(pairs);
    free(joined);

    int rc = -1;
    char path[4096], tmp[4200];
    cJSON *vocab = cJSON_CreateObject();
    for (int i = 0; i < sy.n; i++) cJSON_AddNumberToObject(vocab, sy.s[i], i);
    cJSON_AddNumberToObject(vocab, "<|startoftext|>", sy.n);
    cJSON_AddNumberToObject(vocab, "<|endoftext|>", sy.n + 1);
    snprintf(path, sizeof path, "%s/vocab.json", out_dir);
    if (sid_json_save(path, vocab) != 0) goto done;
    snprintf(path, sizeof path, "%s/merges.txt", out_dir);
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) goto done;
    fputs("#version: 0.2\n", f);
    for (int i = 0; i < n_merges; i++) fprintf(f, "%s %s\n", sy.s[merges[i] >> 32], sy.s[(uint32_t)merges[i]]);
    if (sid_atomic_commit(f, tmp, path) != 0 || write_configs(out_dir) != 0) goto done;
    rc = n_merges;
done:
    cJSON_Delete(vocab);
    free(merges);
    for (int w = 0; w < ws.text.n; w++) free(ws.w[w].sym);
    free(ws.w);
    strtab_free(&ws.text);
    strtab_free(&sy);
    return rc;
}
