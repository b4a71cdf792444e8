// Fashion-MNIST prompts (src/data/prompts.c) and the BPE vocabulary builder
// (src/data/bpe_vocab.c): every shipped prompt maps back to its class, the shipped files are
// what the generator writes, held-out prompts use only trained words, prompt files parse with
// one-line errors, and the generated vocabulary loads in sid's CLIP tokenizer with the CLIP
// layout, one token per corpus word and no unknown token.
//
// SID_BPE_KEEP=<dir> also builds the teacher's vocabulary (from the training prompts) into <dir>
// with <dir>/c_ids.tsv (prompt TAB ids) for tools/reference/teacher_tokenizer_check.py, which
// compares against transformers' CLIPTokenizer.
#include <cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/bpe_vocab.h"
#include "data/prompts.h"
#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "io/tokenizer.h"

// ---------------------------------------------------------------- helpers

static const char *test_data(void) { return getenv("SID_TEST_DATA") ? getenv("SID_TEST_DATA") : "tests/data"; }
static const char *prompt_dir(void) {
    const char *d = getenv("SID_DATA_DIR");
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/prompts", d && d[0] ? d : "data");
    return buf;
}

static char tmp_root[256];


static void cleanup(void) {
    if (tmp_root[0]) test_remove_tree(tmp_root);
}

// A fresh folder under this run's temporary root.
static const char *tmp_dir(const char *name) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/sid_test_prompts_XXXXXX");
        if (!mkdtemp(tmp_root)) sid_die("mkdtemp failed");
        atexit(cleanup);
    }
    static char buf[4][512];
    static int k;
    char *d = buf[k++ % 4];
    snprintf(d, 512, "%s/%s", tmp_root, name);
    test_remove_tree(d);
    return d;
}

static void write_bytes(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) sid_die("cannot write %s", path);
}

// The shipped prompt file of a split, loaded; NULL-text on failure (with a test failure).
static sid_prompts load_split(sid_prompt_split split) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", prompt_dir(), split == SID_PROMPTS_TRAIN ? "fmnist_train.txt" : "fmnist_eval.txt");
    sid_prompts p;
    if (sid_prompts_load(path, &p)) test_fail(__FILE__, __LINE__, "%s", sid_error());
    return p;
}

// Words as sid_prompt_class cuts them, lower-cased, into a set (linear; the sets are small).
typedef struct {
    char w[512][32];
    int n;
} word_set;

static void add_words(word_set *s, const char *text) {
    char cur[32];
    int l = 0;
    for (const char *p = text;; p++) {
        char c = *p >= 'A' && *p <= 'Z' ? *p + 32 : *p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            if (l < 31) cur[l++] = c;
            continue;
        }
        if (l) {
            cur[l] = 0;
            int found = 0;
            for (int i = 0; i < s->n && !found; i++) found = strcmp(s->w[i], cur) == 0;
            if (!found && s->n < 512) strcpy(s->w[s->n++], cur);
            l = 0;
        }
        if (!c) break;
    }
}

static int has_word(const word_set *s, const char *w) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->w[i], w) == 0) return 1;
    return 0;
}

// ---------------------------------------------------------------- classes and prompts

static void test_class_names_and_synonyms(void) {
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    for (int c = 0; c < 10; c++) {
        EXPECT(sid_fmnist_class_name(c) && strcmp(sid_fmnist_class_name(c), names[c]) == 0, "class %d name %s", c,
               sid_fmnist_class_name(c));
        // the dataset's own label text names its class
        EXPECT(sid_prompt_class(names[c]) == c, "'%s' -> %d", names[c], sid_prompt_class(names[c]));
        EXPECT(sid_fmnist_n_synonyms(c) >= 2, "class %d has %d synonyms", c, sid_fmnist_n_synonyms(c));
        for (int k = 0; k < sid_fmnist_n_synonyms(c); k++) {
            const char *s = sid_fmnist_synonym(c, k);
            EXPECT(sid_prompt_class(s) == c, "synonym '%s' of %d -> %d", s, c, sid_prompt_class(s));
        }
        EXPECT(sid_fmnist_synonym(c, sid_fmnist_n_synonyms(c)) == NULL, "synonym past the end");
    }
    EXPECT(sid_fmnist_class_name(-1) == NULL && sid_fmnist_class_name(10) == NULL, "class name out of range");
    EXPECT(sid_fmnist_n_synonyms(10) == 0 && sid_fmnist_template(SID_PROMPTS_EVAL, 99) == NULL, "out of range");
}

static void test_prompt_class_matching(void) {
    static const struct {
        const char *text;
        int cls;
    } v[] = {
        {"a photo of a t-shirt", 0}, {"T SHIRT", 0}, {"tshirt", 0}, {"two tee-shirts", 0}, {"a tank top", 0},
        {"a pair of jeans", 1}, {"Trousers!", 1}, {"a trouser", 1},
        {"a cosy sweater", 2}, {"jumpers", 2},
        {"a dress", 3}, {"three dresses", 3},
        {"a dress shirt", 6},  // longest synonym wins over "dress"
        {"a button-down shirt", 6}, {"blouses", 6}, {"the shirt", 6},
        {"an overcoat", 4}, {"a coat", 4},
        {"flip-flops", 5}, {"sandals", 5},
        {"running shoes", 7}, {"a pair of sneakers", 7}, {"trainer", 7},
        {"tote bags", 8}, {"a purse", 8},
        {"an ankle boot", 9}, {"boots", 9}, {"Ankle Boots", 9},
        // none, or two different classes
        {"", -1}, {"   ", -1}, {"a photo of a cat", -1}, {"a shirt and a bag", -1}, {"shoe", -1},
        {"bagel", -1}, {"shirts and dress shirts", 6},  // the same class twice is fine
        {"booted", -1}, {"topless", -1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        EXPECT(sid_prompt_class(v[i].text) == v[i].cls, "'%s' -> %d, want %d", v[i].text, sid_prompt_class(v[i].text),
               v[i].cls);
    EXPECT(sid_prompt_class(NULL) == -1, "NULL prompt");
    EXPECT(sid_prompt_is_uncond("") && sid_prompt_is_uncond(NULL) && sid_prompt_is_uncond(" \t\n") &&
               !sid_prompt_is_uncond("a bag"),
           "is_uncond");
}

// Every generated prompt maps back to its class; evaluation prompts are new strings made of
// training words; the article agrees with the noun.
static void test_generated_prompts(void) {
    static word_set train_words, eval_words;
    train_words.n = eval_words.n = 0;
    char buf[256];
    int n_train = 0, n_eval = 0;
    for (int split = 0; split < 2; split++) {
        for (int t = 0; t < sid_fmnist_n_templates(split); t++)
            for (int c = 0; c < 10; c++)
                for (int s = 0; s < sid_fmnist_n_synonyms(c); s++) {
                    if (sid_fmnist_prompt(buf, sizeof buf, split, t, c, s) < 0) {
                        test_fail(__FILE__, __LINE__, "%s", sid_error());
                        return;
                    }
                    EXPECT(sid_prompt_class(buf) == c, "'%s' -> %d, want %d", buf, sid_prompt_class(buf), c);
                    EXPECT(!strstr(buf, " a a") && !strstr(buf, " a e") && !strstr(buf, " a o") && strncmp(buf, "a a", 3) &&
                               strncmp(buf, "a o", 3) && !strstr(buf, "{"),
                           "article or placeholder wrong in '%s'", buf);
                    add_words(split ? &eval_words : &train_words, buf);
                    split ? n_eval++ : n_train++;
                }
    }
    EXPECT(n_train > 300 && n_eval > 150, "%d training and %d evaluation prompts", n_train, n_eval);
    for (int i = 0; i < eval_words.n; i++)
        EXPECT(has_word(&train_words, eval_words.w[i]), "evaluation word '%s' never occurs in training", eval_words.w[i]);
    // held out: no evaluation template is a training template
    for (int e = 0; e < sid_fmnist_n_templates(SID_PROMPTS_EVAL); e++)
        for (int t = 0; t < sid_fmnist_n_templates(SID_PROMPTS_TRAIN); t++)
            EXPECT(strcmp(sid_fmnist_template(SID_PROMPTS_EVAL, e), sid_fmnist_template(SID_PROMPTS_TRAIN, t)) != 0,
                   "template '%s' in both splits", sid_fmnist_template(SID_PROMPTS_EVAL, e));
    EXPECT(sid_fmnist_prompt(buf, sizeof buf, SID_PROMPTS_TRAIN, 1, 1, 0) > 0 && strcmp(buf, "a pair of trousers") == 0,
           "'{a}' of trousers: '%s'", buf);
    EXPECT(sid_fmnist_prompt(buf, sizeof buf, SID_PROMPTS_TRAIN, 1, 9, 0) > 0 && strcmp(buf, "an ankle boot") == 0,
           "'{a}' of ankle boot: '%s'", buf);
    EXPECT(sid_fmnist_prompt(buf, 5, SID_PROMPTS_TRAIN, 2, 9, 0) == -1 && buf[0] == 0, "small buffer accepted");
    EXPECT(sid_fmnist_prompt(buf, sizeof buf, SID_PROMPTS_TRAIN, 99, 0, 0) == -1, "bad template accepted");
}

// The shipped files are exactly what the generator writes, and each line's class follows the
// generation order (class, synonym, template).
static void test_shipped_files(void) {
    const char *d = tmp_dir("gen");
    if (sid_prompts_write_fmnist(d)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    static const char *const names[2] = {"fmnist_train.txt", "fmnist_eval.txt"};
    for (int split = 0; split < 2; split++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/%s", prompt_dir(), names[split]);
        snprintf(b, sizeof b, "%s/%s", d, names[split]);
        EXPECT(test_same_file(a, b), "%s differs from what sid_prompts_write_fmnist writes (regenerate it)", a);
        sid_prompts p = load_split(split);
        int i = 0, bad = 0;
        char buf[256];
        for (int c = 0; c < 10; c++)
            for (int s = 0; s < sid_fmnist_n_synonyms(c); s++)
                for (int t = 0; t < sid_fmnist_n_templates(split); t++, i++) {
                    if (i >= p.n) continue;
                    sid_fmnist_prompt(buf, sizeof buf, split, t, c, s);
                    if (p.cls[i] != c || strcmp(p.text[i], buf) != 0) {
                        if (bad++ < 3)
                            test_fail(__FILE__, __LINE__, "%s prompt %d '%s' (class %d), generator: '%s' (class %d)",
                                      names[split], i + 1, p.text[i], p.cls[i], buf, c);
                    }
                }
        EXPECT(p.n == i, "%s: %d prompts, generator makes %d", names[split], p.n, i);
        EXPECT(bad == 0, "%s: %d prompts not of their class", names[split], bad);
        sid_prompts_free(&p);
    }
}

static void test_prompts_load(void) {
    const char *d = tmp_dir("load");
    if (sid_mkdir_p(d)) sid_die("%s", sid_error());
    char path[600];
    snprintf(path, sizeof path, "%s/p.txt", d);
    const char text[] = "\xEF\xBB\xBF# header comment\r\n"
                        "a photo of a sneaker\r\n"
                        "\n"
                        "   \t\n"
                        "  an ankle boot  \n"
                        "   # indented comment\n"
                        "\"\"\n"
                        "a cat\n"
                        "naïve bag";  // no final newline, UTF-8
    write_bytes(path, text, sizeof text - 1);
    sid_prompts p;
    if (sid_prompts_load(path, &p)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    static const char *const want[] = {"a photo of a sneaker", "an ankle boot", "", "a cat", "naïve bag"};
    static const int want_cls[] = {7, 9, -1, -1, 8};
    EXPECT(p.n == 5, "%d prompts, want 5", p.n);
    for (int i = 0; i < p.n && i < 5; i++)
        EXPECT(strcmp(p.text[i], want[i]) == 0 && p.cls[i] == want_cls[i], "prompt %d '%s' class %d", i, p.text[i],
               p.cls[i]);
    EXPECT(p.n >= 3 && sid_prompt_is_uncond(p.text[2]), "\"\" is not the empty prompt");
    sid_prompts_free(&p);
    sid_prompts_free(&p);  // twice is safe

    // failures: one line naming the file
    static const struct {
        const char *data;
        size_t n;
        const char *msg;
    } bad[] = {
#define BAD(s, m) {s, sizeof(s) - 1, m}
        BAD("# only\n\n  # comments\n", "no prompts"),
        BAD("", "no prompts"),
        BAD("fine\nbad \xC3\x28 utf8\n", "line 2: invalid UTF-8"),
        BAD("fine\n\xED\xA0\x80 surrogate\n", "line 2: invalid UTF-8"),
        BAD("fine\nover\xC0\xAFlong\n", "line 2: invalid UTF-8"),
        BAD("a\nb\nnul\0byte\n", "line 3: a NUL byte"),
#undef BAD
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_bytes(path, bad[k].data, bad[k].n);
        int rc = sid_prompts_load(path, &p);
        EXPECT(rc == -1 && strstr(sid_error(), path) && strstr(sid_error(), bad[k].msg) && !strchr(sid_error(), '\n') &&
                   p.n == 0 && p.text == NULL,
               "case %zu: rc %d, error '%s'", k, rc, sid_error());
    }
    snprintf(path, sizeof path, "%s/missing.txt", d);
    EXPECT(sid_prompts_load(path, &p) == -1 && strstr(sid_error(), path), "missing file: %s", sid_error());
}

static void test_random_prompt(void) {
    char buf[256], buf2[256];
    sid_rng r = sid_rng_new(test_seed), r2 = sid_rng_new(test_seed);
    int seen[32][8] = {{0}};
    for (int i = 0; i < 4000; i++) {
        int c = i % 10;
        if (sid_fmnist_random_prompt(&r, buf, sizeof buf, SID_PROMPTS_EVAL, c) < 0 ||
            sid_fmnist_random_prompt(&r2, buf2, sizeof buf2, SID_PROMPTS_EVAL, c) < 0) {
            test_fail(__FILE__, __LINE__, "%s", sid_error());
            return;
        }
        if (strcmp(buf, buf2) != 0 || sid_prompt_class(buf) != c) {
            test_fail(__FILE__, __LINE__, "draw %d: '%s' vs '%s', class %d", i, buf, buf2, sid_prompt_class(buf));
            return;
        }
        if (c != 8) continue;  // bag: which (template, synonym) pairs come up
        for (int t = 0; t < sid_fmnist_n_templates(SID_PROMPTS_EVAL); t++)
            for (int s = 0; s < sid_fmnist_n_synonyms(8); s++) {
                sid_fmnist_prompt(buf2, sizeof buf2, SID_PROMPTS_EVAL, t, 8, s);
                seen[t][s] += strcmp(buf, buf2) == 0;
            }
    }
    int missing = 0;
    for (int t = 0; t < sid_fmnist_n_templates(SID_PROMPTS_EVAL); t++)
        for (int s = 0; s < sid_fmnist_n_synonyms(8); s++) missing += seen[t][s] == 0;
    EXPECT(missing == 0, "%d (template, synonym) pairs never drawn in 400 draws of 28", missing);
    EXPECT(sid_fmnist_random_prompt(&r, buf, sizeof buf, SID_PROMPTS_TRAIN, 10) == -1, "class 10 accepted");
}

// ---------------------------------------------------------------- BPE vocabulary

// Loads vocab.json of dir as an id -> string array.
static char **vocab_by_id(const char *json_path, int *n) {
    cJSON *j = sid_json_load(json_path);
    if (!j) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return NULL;
    }
    int m = cJSON_GetArraySize(j);
    char **v = calloc((size_t)m, sizeof *v);
    for (const cJSON *e = j->child; e; e = e->next)
        if (e->valueint >= 0 && e->valueint < m) v[e->valueint] = strdup(e->string);
    cJSON_Delete(j);
    *n = m;
    return v;
}

static void free_vocab(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

// CLIP's pieces of an ASCII prompt (letters runs, digits, other runs): the token count when every
// word is one token.
static int clip_pieces(const char *s) {
    int n = 0;
    for (const char *p = s; *p;) {
        char c = *p >= 'A' && *p <= 'Z' ? *p + 32 : *p;
        if (c == ' ') {
            p++;
            continue;
        }
        n++;
        if (c >= 'a' && c <= 'z') {
            while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) p++;
        } else if (c >= '0' && c <= '9') {
            p++;
        } else {
            while (*p && *p != ' ' && !((*p | 32) >= 'a' && (*p | 32) <= 'z') && !(*p >= '0' && *p <= '9')) p++;
        }
    }
    return n;
}

// The training prompts as the teacher's corpus.
static const char **train_corpus(sid_prompts *p) {
    *p = load_split(SID_PROMPTS_TRAIN);
    return (const char **)p->text;
}

static void test_bpe_teacher_vocab(void) {
    sid_prompts tr, ev = load_split(SID_PROMPTS_EVAL);
    const char **corpus = train_corpus(&tr);
    const char *keep = getenv("SID_BPE_KEEP");
    const char *d = keep && keep[0] ? keep : tmp_dir("bpe");
    int merges = sid_bpe_build(corpus, tr.n, -1, d);
    EXPECT(merges > 50, "%d merges: %s", merges, merges < 0 ? sid_error() : "");
    sid_tokenizer *t = merges > 0 ? sid_tokenizer_load(d) : NULL;
    if (!t) {
        test_fail(__FILE__, __LINE__, "generated vocabulary does not load: %s", sid_error());
        goto done;
    }
    const int V = sid_tokenizer_vocab_size(t), bos = sid_tokenizer_bos_id(t), eos = sid_tokenizer_eos_id(t);
    EXPECT(V <= 512 + merges + 2 && V > 512 + 2, "vocab size %d with %d merges", V, merges);
    EXPECT(bos == V - 2 && eos == V - 1 && sid_tokenizer_pad_id(t) == eos, "bos %d eos %d pad %d of %d", bos, eos,
           sid_tokenizer_pad_id(t), V);
    EXPECT(sid_tokenizer_max_length(t) == 77, "model_max_length %d", sid_tokenizer_max_length(t));
    int32_t ids[77];
    FILE *dump = NULL;
    if (keep && keep[0]) {
        char path[1100];
        snprintf(path, sizeof path, "%s/c_ids.tsv", d);
        dump = fopen(path, "w");
    }
    for (int split = 0; split < 2; split++) {
        sid_prompts *p = split ? &ev : &tr;
        int bad = 0;
        for (int i = 0; i <= p->n; i++) {
            const char *text = i < p->n ? p->text[i] : "";  // and the unconditional prompt
            int n = sid_tokenizer_encode(t, text, ids, 77);
            // eos is also the unk token: one inside the prompt would be an unknown symbol
            int unk = 0;
            for (int k = 1; k + 1 < n; k++) unk |= ids[k] == eos || ids[k] == bos || ids[k] < 0 || ids[k] >= V;
            int want = clip_pieces(text) + 2;
            if ((n != want || unk || ids[0] != bos || ids[n - 1] != eos || (n < 77 && ids[n] != eos)) && bad++ < 3)
                test_fail(__FILE__, __LINE__, "'%s': %d tokens (want one per word: %d)%s", text, n, want,
                          unk ? ", unknown token" : "");
            if (dump) {
                fprintf(dump, "%s\t", text);
                for (int k = 0; k < 77; k++) fprintf(dump, "%d%c", ids[k], k == 76 ? '\n' : ' ');
            }
        }
        EXPECT(bad == 0, "%d %s prompts not one token per word", bad, split ? "evaluation" : "training");
    }
    if (dump) fclose(dump);
    // a prompt with words outside the corpus still encodes, byte by byte at worst, with no unknown
    int n = sid_tokenizer_encode(t, "Zebra crossing #42 ~~ {x}", ids, 77);
    int unk = 0;
    for (int k = 1; k + 1 < n; k++) unk |= ids[k] == eos;
    EXPECT(n > 8 && !unk, "out-of-corpus prompt: %d tokens%s", n, unk ? ", unknown token" : "");
    sid_tokenizer_free(t);

    // the CLIP layout: ids 0-511 are exactly CLIP's, specials last
    char path[1100], clip_path[1100];
    snprintf(path, sizeof path, "%s/vocab.json", d);
    {
        const char *cd = tmp_dir("clip");
        if (sid_mkdir_p(cd)) sid_die("%s", sid_error());
        snprintf(clip_path, sizeof clip_path, "%s/clip_vocab.json", cd);
        char gz[1100];
        snprintf(gz, sizeof gz, "%s/tokenizer/vocab.json.gz", test_data());
        gzFile g = gzopen(gz, "rb");
        if (!g) sid_die("cannot open %s (set SID_TEST_DATA to the tests/data folder)", gz);
        FILE *f = fopen(clip_path, "wb");
        char buf[65536];
        int r;
        while ((r = gzread(g, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)r, f);
        fclose(f);
        gzclose(g);
    }
    int nv, nc;
    char **v = vocab_by_id(path, &nv), **cv = vocab_by_id(clip_path, &nc);
    if (v && cv) {
        int diff = 0;
        for (int i = 0; i < 512; i++) diff += !v[i] || !cv[i] || strcmp(v[i], cv[i]) != 0;
        EXPECT(diff == 0 && nc == 49408, "%d of CLIP's first 512 ids differ", diff);
        EXPECT(nv == V && v[nv - 2] && strcmp(v[nv - 2], "<|startoftext|>") == 0 && v[nv - 1] &&
                   strcmp(v[nv - 1], "<|endoftext|>") == 0,
               "specials are not the last two ids");
        int holes = 0;
        for (int i = 0; i < nv; i++) holes += v[i] == NULL;
        EXPECT(holes == 0, "%d ids unused", holes);
    }
    free_vocab(v, nv);
    free_vocab(cv, nc);
    // merges.txt: the header, then one merge per line
    char *m;
    size_t ml;
    snprintf(path, sizeof path, "%s/merges.txt", d);
    if (sid_read_file(path, &m, &ml) == 0) {
        int lines = 0;
        for (size_t i = 0; i < ml; i++) lines += m[i] == '\n';
        EXPECT(strncmp(m, "#version: 0.2\n", 14) == 0 && lines == merges + 1, "merges.txt: %d lines for %d merges",
               lines, merges);
        free(m);
    }
    // deterministic: a second build writes the same bytes
    const char *d2 = tmp_dir("bpe2");
    EXPECT(sid_bpe_build(corpus, tr.n, -1, d2) == merges, "second build differs in merges");
    static const char *const files[] = {"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (int k = 0; k < 4; k++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/%s", d, files[k]);
        snprintf(b, sizeof b, "%s/%s", d2, files[k]);
        EXPECT(test_same_file(a, b), "%s differs between two builds", files[k]);
    }
done:
    sid_prompts_free(&tr);
    sid_prompts_free(&ev);
}

static void test_bpe_small(void) {
    // known answer: "aaa" -> (a, a) first (equal counts; "a" sorts before "a</w>"), then (aa, a</w>)
    const char *aaa[] = {"aaa"};
    const char *d = tmp_dir("aaa");
    EXPECT(sid_bpe_build(aaa, 1, -1, d) == 2, "aaa: %s", sid_error());
    char path[600], *m;
    size_t ml;
    snprintf(path, sizeof path, "%s/merges.txt", d);
    if (sid_read_file(path, &m, &ml) == 0) {
        EXPECT(strcmp(m, "#version: 0.2\na a\naa a</w>\n") == 0, "aaa merges:\n%s", m);
        free(m);
    }
    // frequency decides: "low" x3 beats "lot" x1 for the first merges, ties break by spelling
    const char *lw[] = {"low low", "low lot", "LOT!"};
    d = tmp_dir("low");
    EXPECT(sid_bpe_build(lw, 3, 1, d) == 1, "low: %s", sid_error());
    snprintf(path, sizeof path, "%s/merges.txt", d);
    if (sid_read_file(path, &m, &ml) == 0) {
        EXPECT(strcmp(m, "#version: 0.2\nl o\n") == 0, "low merges:\n%s", m);
        free(m);
    }
    // a capped vocabulary still encodes everything, in more tokens; contractions split as CLIP's
    const char *cp[] = {"don't stop the sneakers", "they'll stop"};
    d = tmp_dir("capped");
    EXPECT(sid_bpe_build(cp, 2, 5, d) == 5, "capped: %s", sid_error());
    sid_tokenizer *t = sid_tokenizer_load(d);
    if (t) {
        int32_t ids[77];
        int n = sid_tokenizer_encode(t, "don't stop the sneakers", ids, 77);
        EXPECT(n > 7, "5 merges make 'don't stop the sneakers' %d tokens", n);
        for (int k = 1; k + 1 < n; k++) EXPECT(ids[k] != sid_tokenizer_eos_id(t), "unknown token at %d", k);
        sid_tokenizer_free(t);
    } else {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
    }
    d = tmp_dir("full");
    EXPECT(sid_bpe_build(cp, 2, -1, d) > 5, "full: %s", sid_error());
    t = sid_tokenizer_load(d);
    if (t) {
        int32_t ids[77];
        EXPECT(sid_tokenizer_encode(t, "don't stop", ids, 77) == 5, "'don't stop' is not don + 't + stop");
        EXPECT(sid_tokenizer_encode(t, "They'll", ids, 77) == 4, "'They'll' is not they + 'll");
        sid_tokenizer_free(t);
    } else {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
    }
    // zero merges: the bare byte vocabulary (512 + 2)
    d = tmp_dir("zero");
    EXPECT(sid_bpe_build(cp, 2, 0, d) == 0, "zero: %s", sid_error());
    t = sid_tokenizer_load(d);
    EXPECT(t && sid_tokenizer_vocab_size(t) == 514, "zero merges: vocab size %d", t ? sid_tokenizer_vocab_size(t) : -1);
    sid_tokenizer_free(t);
    // errors
    const char *bad[] = {"fine", "caf\xC3\xA9"};
    EXPECT(sid_bpe_build(bad, 2, -1, tmp_dir("bad")) == -1 && strstr(sid_error(), "corpus text 1 is not ASCII"),
           "non-ASCII corpus: %s", sid_error());
    EXPECT(sid_bpe_build(cp, 2, -1, "/proc/sid_no_such_dir/x") == -1 && strstr(sid_error(), "/proc/sid_no_such_dir"),
           "unwritable folder: %s", sid_error());
}

TEST_LIST(T(test_class_names_and_synonyms), T(test_prompt_class_matching), T(test_generated_prompts),
          T(test_shipped_files), T(test_prompts_load), T(test_random_prompt), T(test_bpe_teacher_vocab),
          T(test_bpe_small))
TEST_MAIN("prompts")
