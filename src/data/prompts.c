#include "data/prompts.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/file.h"

// ---------------------------------------------------------------- the vocabulary of classes

typedef struct {
    const char *text;
    unsigned gen : 1;   // used to generate prompts; match-only otherwise (spellings people type)
    unsigned pair : 1;  // plural-only noun: "a pair of trousers"
} synonym;

enum { MAX_SYN = 8 };

// Every class keeps at least two generating synonyms so that a prompt never is the only way the
// teacher hears of a class. No synonym (as words) may belong to two classes (tested).
static const synonym synonyms[SID_FMNIST_CLASSES][MAX_SYN] = {
    {{"t-shirt", 1, 0}, {"tee shirt", 1, 0}, {"tee", 1, 0}, {"top", 1, 0}, {"tshirt", 0, 0}},
    {{"trousers", 1, 1}, {"pants", 1, 1}, {"jeans", 1, 1}, {"trouser", 0, 0}},
    {{"pullover", 1, 0}, {"sweater", 1, 0}, {"jumper", 1, 0}, {"hoodie", 1, 0}},
    {{"dress", 1, 0}, {"gown", 1, 0}, {"frock", 1, 0}},
    {{"coat", 1, 0}, {"jacket", 1, 0}, {"overcoat", 1, 0}},
    {{"sandal", 1, 0}, {"flip-flop", 1, 0}},
    // "dress shirt" outranks "dress" by length: the longest synonym at a word wins
    {{"shirt", 1, 0}, {"blouse", 1, 0}, {"dress shirt", 1, 0}, {"button-down shirt", 1, 0}},
    {{"sneaker", 1, 0}, {"trainer", 1, 0}, {"running shoe", 1, 0}},
    {{"bag", 1, 0}, {"handbag", 1, 0}, {"purse", 1, 0}, {"tote bag", 1, 0}},
    {{"ankle boot", 1, 0}, {"boot", 1, 0}},
};

// "{a}": the noun with its indefinite article; "{}": the bare noun. The evaluation templates
// recombine words of the training ones (see prompts.h) and none equals a training template.
static const char *const train_templates[] = {
    "{}",
    "{a}",
    "a photo of {a}",
    "a picture of {a}",
    "a photo of the {}",
    "an image of the {}",
    "a black and white photo of {a}",
    "a grayscale image of {a}",
    "a small picture of {a}",
    "a low resolution photo of the {}",
    "a product photo of {a}",
    "a centered image of the {}",
};
static const char *const eval_templates[] = {
    "a picture of the {}",
    "an image of {a}",
    "a black and white picture of {a}",
    "a small photo of the {}",
    "a grayscale photo of {a}",
    "a low resolution image of {a}",
    "a product picture of the {}",
};
#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

// The k-th generating synonym of cls.
static const synonym *gen_synonym(int cls, int k) {
    if (cls < 0 || cls >= SID_FMNIST_CLASSES || k < 0) return NULL;
    for (int j = 0; j < MAX_SYN && synonyms[cls][j].text; j++)
        if (synonyms[cls][j].gen && k-- == 0) return &synonyms[cls][j];
    return NULL;
}

int sid_fmnist_n_synonyms(int cls) {
    int n = 0;
    while (gen_synonym(cls, n)) n++;
    return n;
}

const char *sid_fmnist_synonym(int cls, int k) {
    const synonym *s = gen_synonym(cls, k);
    return s ? s->text : NULL;
}

int sid_fmnist_n_templates(sid_prompt_split split) {
    return split == SID_PROMPTS_TRAIN ? NELEM(train_templates) : split == SID_PROMPTS_EVAL ? NELEM(eval_templates) : 0;
}

const char *sid_fmnist_template(sid_prompt_split split, int k) {
    if (k < 0 || k >= sid_fmnist_n_templates(split)) return NULL;
    return split == SID_PROMPTS_TRAIN ? train_templates[k] : eval_templates[k];
}

int sid_fmnist_prompt(char *buf, size_t cap, sid_prompt_split split, int tmpl, int cls, int syn) {
    const char *t = sid_fmnist_template(split, tmpl);
    const synonym *s = gen_synonym(cls, syn);
    if (!t || !s) {
        sid_set_error("prompts: no template %d in split %d or synonym %d of class %d", tmpl, (int)split, syn, cls);
        return -1;
    }
    size_t n = 0;
    int over = 0;
#define PUT(str)                                        \
    do {                                                \
        size_t l_ = strlen(str);                        \
        if (n + l_ < cap) memcpy(buf + n, (str), l_);   \
        else over = 1;                                  \
        n += l_;                                        \
    } while (0)
    for (const char *p = t; *p;) {
        if (strncmp(p, "{a}", 3) == 0) {
            PUT(s->pair ? "a pair of " : strchr("aeiou", s->text[0]) ? "an " : "a ");
            PUT(s->text);
            p += 3;
        } else if (strncmp(p, "{}", 2) == 0) {
            PUT(s->text);
            p += 2;
        } else {
            char c[2] = {*p++, 0};
            PUT(c);
        }
    }
#undef PUT
    if (over || n >= cap) {
        sid_set_error("prompts: a buffer of %zu bytes is too small for a prompt of %zu", cap, n);
        if (cap) buf[0] = 0;
        return -1;
    }
    buf[n] = 0;
    return (int)n;
}

int sid_fmnist_random_prompt(sid_rng *r, char *buf, size_t cap, sid_prompt_split split, int cls) {
    const int nt = sid_fmnist_n_templates(split), ns = sid_fmnist_n_synonyms(cls);
    if (nt == 0 || ns == 0) {
        sid_set_error("prompts: no prompts for class %d in split %d", cls, (int)split);
        return -1;
    }
    uint32_t u;
    sid_rng_below(r, (uint32_t)(nt * ns), &u, 1);
    return sid_fmnist_prompt(buf, cap, split, (int)(u / (uint32_t)ns), cls, (int)(u % (uint32_t)ns));
}

// ---------------------------------------------------------------- prompt -> class

// Words: runs of ASCII letters/digits and of non-ASCII bytes (so a UTF-8 letter does not split a
// word into two that might match), ASCII-lowercased.
typedef struct {
    const char *s;
    int n;
} word;

static int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int split_words(const char *text, word *w, int cap) {
    int n = 0;
    for (const char *p = text; *p;) {
        if (!is_word_byte((unsigned char)*p)) {
            p++;
            continue;
        }
        const char *b = p;
        while (*p && is_word_byte((unsigned char)*p)) p++;
        if (n < cap) w[n] = (word){b, (int)(p - b)};
        n++;
    }
    return n;
}

static int same_lower(const char *a, const char *b, int n) {
    for (int i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 0;
    }
    return 1;
}

// Prompt word p against synonym word s; plural endings only where `plural` (the last word).
static int word_match(word p, word s, int plural) {
    if (p.n == s.n) return same_lower(p.s, s.s, s.n);
    if (!plural || p.n < s.n + 1 || p.n > s.n + 2 || !same_lower(p.s, s.s, s.n)) return 0;
    return p.n == s.n + 1 ? same_lower(p.s + s.n, "s", 1) : same_lower(p.s + s.n, "es", 2);
}

int sid_prompt_class(const char *prompt) {
    if (!prompt) return -1;
    int nw = split_words(prompt, NULL, 0);
    if (nw == 0) return -1;
    word *w = sid_malloc((size_t)nw * sizeof *w);
    split_words(prompt, w, nw);
    int found = -1, conflict = 0;
    for (int i = 0; i < nw && !conflict;) {
        int best_len = 0, best_cls = -1;
        for (int c = 0; c < SID_FMNIST_CLASSES; c++) {
            for (int j = 0; j < MAX_SYN && synonyms[c][j].text; j++) {
                word sw[4];
                int m = split_words(synonyms[c][j].text, sw, 4);
                if (m <= best_len || i + m > nw) continue;
                int ok = 1;
                for (int k = 0; k < m && ok; k++) ok = word_match(w[i + k], sw[k], k == m - 1);
                if (ok) best_len = m, best_cls = c;
            }
        }
        if (best_cls < 0) {
            i++;
            continue;
        }
        if (found >= 0 && found != best_cls) conflict = 1;
        found = best_cls;
        i += best_len;
    }
    free(w);
    return conflict ? -1 : found;
}

int sid_prompt_is_uncond(const char *prompt) {
    if (!prompt) return 1;
    for (const unsigned char *p = (const unsigned char *)prompt; *p; p++)
        if (!(*p == ' ' || (*p >= '\t' && *p <= '\r'))) return 0;
    return 1;
}

// ---------------------------------------------------------------- prompt files

// Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid: overlong forms,
// surrogates and code points past U+10FFFF are rejected, as the tokenizer rejects them.
static int utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return c ? 1 : 0;
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || (size_t)len > n || c > 0xF4 || c == 0xC0 || c == 0xC1) return 0;
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

void sid_prompts_free(sid_prompts *p) {
    for (int i = 0; i < p->n; i++) free(p->text[i]);
    free(p->text);
    free(p->cls);
    memset(p, 0, sizeof *p);
}

int sid_prompts_load(const char *path, sid_prompts *p) {
    memset(p, 0, sizeof *p);
    char *data;
    size_t len;
    if (sid_read_file(path, &data, &len) != 0) return -1;
    size_t cap = 1;
    for (size_t i = 0; i < len; i++) cap += data[i] == '\n';
    p->text = sid_malloc(cap * sizeof *p->text);
    p->cls = sid_malloc(cap * sizeof *p->cls);
    size_t pos = 0;
    // an editor's byte-order mark is not part of the first prompt
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) pos = 3;
    for (int line = 1; pos < len; line++) {
        size_t b = pos, e = pos;
        while (e < len && data[e] != '\n') e++;
        pos = e + 1;
        for (size_t k = b; k < e;) {
            int l = utf8_len((const unsigned char *)data + k, e - k);
            if (l == 0) {
                sid_set_error("%s: line %d: %s at byte %zu", path, line, data[k] ? "invalid UTF-8" : "a NUL byte",
                              k - b + 1);
                free(data);
                sid_prompts_free(p);
                return -1;
            }
            k += (size_t)l;
        }
        while (b < e && is_blank(data[b])) b++;
        while (e > b && is_blank(data[e - 1])) e--;
        if (b == e || data[b] == '#') continue;
        if (e - b == 2 && data[b] == '"' && data[b + 1] == '"') b = e;  // "" : the empty prompt
        char *s = sid_malloc(e - b + 1);
        memcpy(s, data + b, e - b);
        s[e - b] = 0;
        p->cls[p->n] = sid_prompt_class(s);
        p->text[p->n++] = s;
    }
    free(data);
    if (p->n == 0) {
        sid_set_error("%s: no prompts (every line is empty or a '#' comment)", path);
        sid_prompts_free(p);
        return -1;
    }
    return 0;
}

static int write_split(const char *dir, sid_prompt_split split) {
    const char *name = split == SID_PROMPTS_TRAIN ? "fmnist_train.txt" : "fmnist_eval.txt";
    char path[4096], tmp[4200], buf[256];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        sid_set_error("%s: path too long", dir);
        return -1;
    }
    int n_syn = 0;
    for (int c = 0; c < SID_FMNIST_CLASSES; c++) n_syn += sid_fmnist_n_synonyms(c);
    const int nt = sid_fmnist_n_templates(split);
    FILE *f = sid_atomic_begin(path, tmp, sizeof tmp);
    if (!f) return -1;
    fprintf(f,
            "# Fashion-MNIST prompts, %s split: %d templates x %d class synonyms = %d prompts.\n"
            "# Written by sid_prompts_write_fmnist (src/data/prompts.c); the class of a line is\n"
            "# sid_prompt_class(line). One prompt per line; '#' starts a comment line.\n",
            split == SID_PROMPTS_TRAIN ? "training" : "held-out evaluation", nt, n_syn, nt * n_syn);
    for (int c = 0; c < SID_FMNIST_CLASSES; c++)
        for (int s = 0; s < sid_fmnist_n_synonyms(c); s++)
            for (int t = 0; t < nt; t++) {
                if (sid_fmnist_prompt(buf, sizeof buf, split, t, c, s) < 0) {
                    sid_atomic_abort(f, tmp);
                    return -1;
                }
                fprintf(f, "%s\n", buf);
            }
    return sid_atomic_commit(f, tmp, path);
}

int sid_prompts_write_fmnist(const char *dir) {
    if (sid_mkdir_p(dir) != 0) return -1;
    return write_split(dir, SID_PROMPTS_TRAIN) || write_split(dir, SID_PROMPTS_EVAL) ? -1 : 0;
}
