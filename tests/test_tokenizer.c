// CLIP tokenizer: exact ids against transformers' CLIPTokenizer for every prompt and config of
// tests/data/tokenizer/golden.json (written by tools/reference/tokenizer_reference.py), the
// documented test vectors, one test per load error, encode errors, and a check that the
// golden comparison does catch a wrong id.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "io/tokenizer.h"

// ---------------------------------------------------------------- fixture

static const char *const CONFIGS[] = {"sd15", "sd2", "bare", "added", "tiny"};
enum { N_CONFIGS = 5 };
static char tmp_root[256];

static const char *data_dir(void) {
    const char *d = getenv("SID_TEST_DATA");
    return d && d[0] ? d : "tests/data";
}


static void cleanup(void) {
    if (tmp_root[0]) test_remove_tree(tmp_root);
}

static void write_file(const char *path, const char *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) sid_die("cannot write %s", path);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, text, strlen(text));
}

// tmp_root/<config>/ for every config: the shared vocabulary (gunzipped) unless the config
// folder has its own, plus the config folder's files.
static const char *fixture(void) {
    if (tmp_root[0]) return tmp_root;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/sid_test_tokenizer_XXXXXX");
    if (!mkdtemp(tmp_root)) sid_die("mkdtemp failed");
    atexit(cleanup);
    char src[1024], dst[1024], dir[512];
    for (int c = 0; c < N_CONFIGS; c++) {
        snprintf(dir, sizeof dir, "%s/%s", tmp_root, CONFIGS[c]);
        if (mkdir(dir, 0700) != 0) sid_die("mkdir %s failed", dir);
        static const char *const names[] = {"vocab.json", "merges.txt", "tokenizer_config.json",
                                            "special_tokens_map.json", "added_tokens.json"};
        for (int k = 0; k < 5; k++) {
            snprintf(src, sizeof src, "%s/tokenizer/%s/%s", data_dir(), CONFIGS[c], names[k]);
            snprintf(dst, sizeof dst, "%s/%s", dir, names[k]);
            if (sid_file_exists(src)) {
                test_copy_file(src, dst);
            } else if (k < 2) {
                snprintf(src, sizeof src, "%s/tokenizer/%s.gz", data_dir(), names[k]);
                test_gunzip(src, dst);
            }
        }
    }
    return tmp_root;
}

static sid_tokenizer *load_config(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", fixture(), name);
    sid_tokenizer *t = sid_tokenizer_load(dir);
    if (!t) test_fail(__FILE__, __LINE__, "load %s: %s", name, sid_error());
    return t;
}

static cJSON *load_golden(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/golden.json", data_dir());
    cJSON *g = sid_json_load(path);
    if (!g) test_fail(__FILE__, __LINE__, "%s", sid_error());
    return g;
}

// 0 when ids[0..max_len) is the golden non-pad prefix `want` followed by pad and the returned
// count n equals its length; else 1 with the first difference in msg.
static int compare_ids(const int32_t *ids, int n, int max_len, const cJSON *want, int pad, char *msg, size_t cap) {
    int nw = cJSON_GetArraySize(want);
    if (n != nw) {
        snprintf(msg, cap, "returned %d non-pad tokens, golden has %d", n, nw);
        return 1;
    }
    const cJSON *w = want ? want->child : NULL;
    for (int i = 0; i < max_len; i++) {
        int expect = w ? w->valueint : pad;
        if (ids[i] != expect) {
            snprintf(msg, cap, "id[%d] = %d, golden %d", i, (int)ids[i], expect);
            return 1;
        }
        if (w) w = w->next;
    }
    return 0;
}

// ---------------------------------------------------------------- golden ids

static void test_doc_vectors(void) {
    sid_tokenizer *t15 = load_config("sd15"), *t2 = load_config("sd2");
    if (!t15 || !t2) goto done;
    int32_t ids[77];
    struct {
        const char *text;
        int n;
        int32_t want[8];
    } v[] = {
        {"a photo of a cat", 7, {49406, 320, 1125, 539, 320, 2368, 49407}},
        {"Hello, world!", 6, {49406, 3306, 267, 1002, 256, 49407}},
        {"A PHOTO of  a Cat!", 8, {49406, 320, 1125, 539, 320, 2368, 256, 49407}},
        {"dog", 3, {49406, 1929, 49407}},
        {"", 2, {49406, 49407}},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        int n = sid_tokenizer_encode(t15, v[k].text, ids, 77);
        EXPECT(n == v[k].n, "'%s': %d tokens, want %d", v[k].text, n, v[k].n);
        for (int i = 0; i < 77; i++) {
            int32_t want = i < v[k].n ? v[k].want[i] : 49407;
            EXPECT(ids[i] == want, "'%s' id[%d] = %d, want %d", v[k].text, i, ids[i], want);
        }
    }
    // SD2 pads with "!" (0), and "!" typed in a prompt is that added token too.
    int n = sid_tokenizer_encode(t2, "", ids, 77);
    EXPECT(n == 2 && ids[0] == 49406 && ids[1] == 49407 && ids[2] == 0 && ids[76] == 0, "SD2 empty prompt");
    n = sid_tokenizer_encode(t2, "Hello, world!", ids, 77);
    EXPECT(n == 6 && ids[4] == 0 && ids[5] == 49407, "SD2 '!' -> 0 (got n=%d id[4]=%d)", n, ids[4]);
    EXPECT(sid_tokenizer_pad_id(t15) == 49407 && sid_tokenizer_pad_id(t2) == 0, "pad ids %d %d",
           sid_tokenizer_pad_id(t15), sid_tokenizer_pad_id(t2));
    EXPECT(sid_tokenizer_bos_id(t15) == 49406 && sid_tokenizer_eos_id(t15) == 49407, "bos/eos");
    EXPECT(sid_tokenizer_vocab_size(t15) == 49408, "vocab size %d", sid_tokenizer_vocab_size(t15));
    EXPECT(sid_tokenizer_max_length(t15) == 77, "max length %d", sid_tokenizer_max_length(t15));
done:
    sid_tokenizer_free(t15);
    sid_tokenizer_free(t2);
}

static void test_golden(void) {
    cJSON *g = load_golden();
    sid_tokenizer *t[N_CONFIGS] = {0};
    for (int c = 0; c < N_CONFIGS; c++) t[c] = load_config(CONFIGS[c]);
    if (!g) goto done;
    for (int c = 0; c < N_CONFIGS; c++) {
        if (!t[c]) goto done;
        const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g, "configs"), CONFIGS[c]);
        const cJSON *pad = cJSON_GetObjectItemCaseSensitive(cfg, "pad_id");
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(cfg, "vocab_size");
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
        EXPECT(pad && sid_tokenizer_pad_id(t[c]) == pad->valueint, "%s: pad id %d", CONFIGS[c],
               sid_tokenizer_pad_id(t[c]));
        EXPECT(vs && sid_tokenizer_vocab_size(t[c]) == vs->valueint, "%s: vocab size %d", CONFIGS[c],
               sid_tokenizer_vocab_size(t[c]));
        int want_ml = ml && ml->valuedouble <= 1e6 ? ml->valueint : 0;  // transformers' "unset" is 1e30
        EXPECT(sid_tokenizer_max_length(t[c]) == want_ml, "%s: max length %d", CONFIGS[c],
               sid_tokenizer_max_length(t[c]));
    }
    int cases = 0, failures = 0;
    int32_t ids[256];
    char msg[256];
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(g, "cases");
    for (const cJSON *e = list ? list->child : NULL; e; e = e->next) {
        const char *text = cJSON_GetObjectItemCaseSensitive(e, "text")->valuestring;
        int max_len = cJSON_GetObjectItemCaseSensitive(e, "max_length")->valueint;
        if (max_len > 256) continue;
        for (int c = 0; c < N_CONFIGS; c++) {
            const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, CONFIGS[c]);
            int n = sid_tokenizer_encode(t[c], text, ids, max_len);
            cases++;
            if (n < 0 || compare_ids(ids, n, max_len, want, sid_tokenizer_pad_id(t[c]), msg, sizeof msg)) {
                if (++failures <= 10) {
                    char *quoted = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "text"));
                    test_fail(__FILE__, __LINE__, "%s %s max_len %d: %s", CONFIGS[c], quoted, max_len,
                              n < 0 ? sid_error() : msg);
                    cJSON_free(quoted);
                }
            }
        }
    }
    EXPECT(cases >= 2000, "only %d golden comparisons", cases);
    EXPECT(failures == 0, "%d of %d golden comparisons differ", failures, cases);
done:
    for (int c = 0; c < N_CONFIGS; c++) sid_tokenizer_free(t[c]);
    cJSON_Delete(g);
}

// The comparison used above must notice one wrong id, a wrong pad and a wrong length.
static void test_golden_comparison_can_fail(void) {
    cJSON *g = load_golden();
    sid_tokenizer *t = load_config("sd15");
    if (!g || !t) goto done;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(g, "cases")->child;  // "a photo of a cat"
    cJSON *want = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e, "sd15"), 1);
    int32_t ids[77];
    char msg[256];
    int n = sid_tokenizer_encode(t, cJSON_GetObjectItemCaseSensitive(e, "text")->valuestring, ids, 77);
    EXPECT(compare_ids(ids, n, 77, want, 49407, msg, sizeof msg) == 0, "unaltered golden differs: %s", msg);
    cJSON *third = cJSON_GetArrayItem(want, 3);
    cJSON_SetNumberValue(third, third->valueint + 1);
    EXPECT(compare_ids(ids, n, 77, want, 49407, msg, sizeof msg) == 1 && strstr(msg, "id[3]"),
           "an altered id went unnoticed");
    cJSON_SetNumberValue(third, third->valueint - 1);
    EXPECT(compare_ids(ids, n, 77, want, 0, msg, sizeof msg) == 1, "a wrong pad id went unnoticed");
    cJSON_DeleteItemFromArray(want, 6);
    EXPECT(compare_ids(ids, n, 77, want, 49407, msg, sizeof msg) == 1, "a shorter golden went unnoticed");
    cJSON_Delete(want);
done:
    sid_tokenizer_free(t);
    cJSON_Delete(g);
}

static void test_truncation(void) {
    sid_tokenizer *t = load_config("sd15");
    if (!t) return;
    char text[4096] = "";
    for (int i = 0; i < 200; i++) strcat(text, "cat ");
    int32_t ids[77];
    int n = sid_tokenizer_encode(t, text, ids, 77);
    EXPECT(n == 77 && ids[0] == 49406 && ids[75] == 2368 && ids[76] == 49407, "200 cats: n=%d last %d %d", n,
           ids[75], ids[76]);
    int32_t two[2];
    EXPECT(sid_tokenizer_encode(t, text, two, 2) == 2 && two[0] == 49406 && two[1] == 49407, "max_len 2");
    // One very long word: the BPE loop must stay fast and exact.
    size_t big = 100000;
    char *word = sid_malloc(big + 1);
    memset(word, 'a', big);
    word[big] = 0;
    n = sid_tokenizer_encode(t, word, ids, 77);
    EXPECT(n == 77 && ids[76] == 49407, "long word: n=%d", n);
    free(word);
    sid_tokenizer_free(t);
}

static void test_encode_errors(void) {
    sid_tokenizer *t = load_config("sd2");
    if (!t) return;
    int32_t ids[77];
    int32_t one[1] = {123};
    EXPECT(sid_tokenizer_encode(t, "cat", one, 1) == -1 && one[0] == 0, "max_len 1 must fail");
    EXPECT(strstr(sid_error(), "max_len"), "message: %s", sid_error());
    static const char *const bad[] = {"caf\xe9", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "ab\xe2\x82"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ids[5] = 7;
        EXPECT(sid_tokenizer_encode(t, bad[k], ids, 77) == -1, "invalid UTF-8 #%zu accepted", k);
        EXPECT(ids[0] == 0 && ids[5] == 0 && ids[76] == 0, "ids not padded after an error");
        EXPECT(strstr(sid_error(), "UTF-8") && !strchr(sid_error(), '\n'), "message: %s", sid_error());
    }
    EXPECT(sid_tokenizer_encode(t, NULL, ids, 77) == 2, "NULL text is the empty prompt");
    sid_tokenizer_free(t);
}

// ---------------------------------------------------------------- load errors

// A fresh folder under the fixture with a small valid vocabulary, for one broken file each.
static void small_dir(char *dir, size_t cap, const char *name) {
    snprintf(dir, cap, "%s/%s", fixture(), name);
    test_remove_tree(dir);
    if (mkdir(dir, 0700) != 0) sid_die("mkdir %s failed", dir);
    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}");
    write_text(dir, "merges.txt", "#version: 0.2\na b\n");
}

// load must fail with one line that names file.
static void expect_load_error(const char *dir, const char *file, const char *what) {
    sid_set_error("%s", "");
    sid_tokenizer *t = sid_tokenizer_load(dir);
    EXPECT(!t, "%s: load succeeded", what);
    sid_tokenizer_free(t);
    const char *m = sid_error();
    EXPECT(strstr(m, file) && !strchr(m, '\n'), "%s: message '%s' should name %s on one line", what, m, file);
}

static void test_load_errors(void) {
    char dir[512];
    small_dir(dir, sizeof dir, "small_ok");
    sid_tokenizer *t = sid_tokenizer_load(dir);
    EXPECT(t, "small vocabulary: %s", sid_error());
    if (t) {  // byte symbols missing from it are the unk token ("<|endoftext|>" = 4)
        int32_t ids[8];
        int n = sid_tokenizer_encode(t, "AB c", ids, 8);
        EXPECT(n == 5 && ids[0] == 3 && ids[1] == 0 && ids[2] == 4 && ids[3] == 4 && ids[4] == 4 && ids[5] == 4,
               "unk: n=%d %d %d %d %d", n, ids[1], ids[2], ids[3], ids[4]);
    }
    sid_tokenizer_free(t);

    expect_load_error("/nonexistent/sid/tokenizer", "/nonexistent/sid/tokenizer/vocab.json", "missing folder");

    small_dir(dir, sizeof dir, "vocab_corrupt");
    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": ");
    expect_load_error(dir, "vocab.json", "truncated vocab.json");
    small_dir(dir, sizeof dir, "vocab_array");
    write_text(dir, "vocab.json", "[\"a\", \"b\"]");
    expect_load_error(dir, "vocab.json", "vocab.json not an object");
    small_dir(dir, sizeof dir, "vocab_bad_id");
    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": \"1\"}");
    expect_load_error(dir, "vocab.json", "string id");
    small_dir(dir, sizeof dir, "vocab_neg_id");
    write_text(dir, "vocab.json", "{\"a\": 0, \"b\": -1}");
    expect_load_error(dir, "vocab.json", "negative id");
    small_dir(dir, sizeof dir, "vocab_frac_id");
    write_text(dir, "vocab.json", "{\"a\": 0.5}");
    expect_load_error(dir, "vocab.json", "fractional id");

    small_dir(dir, sizeof dir, "merges_missing");
    char path[1024];
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    unlink(path);
    expect_load_error(dir, "merges.txt", "missing merges.txt");
    small_dir(dir, sizeof dir, "merges_three");
    write_text(dir, "merges.txt", "#version: 0.2\na b\na b c\n");
    expect_load_error(dir, "merges.txt: line 3", "three tokens on a merges line");
    small_dir(dir, sizeof dir, "merges_one");
    write_text(dir, "merges.txt", "#version: 0.2\nab\n");
    expect_load_error(dir, "merges.txt: line 2", "one token on a merges line");
    small_dir(dir, sizeof dir, "merges_blank");
    write_text(dir, "merges.txt", "#version: 0.2\n\na b\n");
    expect_load_error(dir, "merges.txt: line 2", "blank merges line");
    small_dir(dir, sizeof dir, "merges_unknown");
    write_text(dir, "merges.txt", "#version: 0.2\na c\n");
    expect_load_error(dir, "merges.txt: line 2", "merge of a token not in vocab.json");
    small_dir(dir, sizeof dir, "merges_result");
    write_text(dir, "merges.txt", "#version: 0.2\nb a\n");
    expect_load_error(dir, "merges.txt: line 2", "merge whose result is not in vocab.json");

    small_dir(dir, sizeof dir, "config_corrupt");
    write_text(dir, "tokenizer_config.json", "{\"pad_token\": ");
    expect_load_error(dir, "tokenizer_config.json", "corrupt tokenizer_config.json");
    small_dir(dir, sizeof dir, "config_pad_type");
    write_text(dir, "tokenizer_config.json", "{\"pad_token\": 5}");
    expect_load_error(dir, "tokenizer_config.json", "pad_token a number");
    small_dir(dir, sizeof dir, "map_corrupt");
    write_text(dir, "special_tokens_map.json", "{]");
    expect_load_error(dir, "special_tokens_map.json", "corrupt special_tokens_map.json");
    small_dir(dir, sizeof dir, "map_no_content");
    write_text(dir, "special_tokens_map.json", "{\"eos_token\": {\"normalized\": true}}");
    expect_load_error(dir, "special_tokens_map.json", "token object without content");
    small_dir(dir, sizeof dir, "map_list");
    write_text(dir, "special_tokens_map.json", "{\"bos_token\": [\"<|startoftext|>\"]}");
    expect_load_error(dir, "special_tokens_map.json", "bos_token a list");
    small_dir(dir, sizeof dir, "added_bad");
    write_text(dir, "added_tokens.json", "{\"<x>\": \"49408\"}");
    expect_load_error(dir, "added_tokens.json", "added_tokens.json id a string");
}

// sid_tokenizer_load_bpe reads the vocabulary and merges only: SD2's configs make "!" its pad token
// (split out of the text as id 0, as transformers does); the BPE alone keeps it the word "!</w>"
// (256) as OpenAI's tokenizer, with CLIPTokenizer's default specials.
static void test_load_bpe_ignores_configs(void) {
    sid_tokenizer *cfg = load_config("sd2");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sd2", fixture());
    sid_tokenizer *bpe = sid_tokenizer_load_bpe(dir);
    EXPECT(bpe, "load_bpe: %s", sid_error());
    if (cfg && bpe) {
        int32_t a[8], b[8];
        EXPECT(sid_tokenizer_encode(cfg, "wow !", a, 8) == 4 && sid_tokenizer_encode(bpe, "wow !", b, 8) == 4,
               "encode");
        EXPECT(a[2] == 0 && b[2] == 256 && a[1] == b[1], "\"wow !\": configs %d %d, BPE alone %d %d", a[1], a[2], b[1],
               b[2]);
        EXPECT(sid_tokenizer_pad_id(cfg) == 0 && sid_tokenizer_pad_id(bpe) == 49407 && sid_tokenizer_bos_id(bpe) == 49406 &&
                   sid_tokenizer_eos_id(bpe) == 49407,
               "pad %d / %d, bos %d, eos %d", sid_tokenizer_pad_id(cfg), sid_tokenizer_pad_id(bpe),
               sid_tokenizer_bos_id(bpe), sid_tokenizer_eos_id(bpe));
    }
    sid_tokenizer_free(cfg);
    sid_tokenizer_free(bpe);
    EXPECT(!sid_tokenizer_load_bpe("/nonexistent/tok") && strstr(sid_error(), "/nonexistent/tok/vocab.json"),
           "missing folder: '%s'", sid_error());
}

TEST_LIST(T(test_doc_vectors), T(test_golden), T(test_golden_comparison_can_fail), T(test_truncation),
          T(test_encode_errors), T(test_load_errors), T(test_load_bpe_ignores_configs))
TEST_MAIN("tokenizer")
