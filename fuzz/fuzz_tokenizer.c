// Tokenizer folders: the input is split at "\n--8<--\n" into, in order, vocab.json,
// merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// added_tokens.json and a prompt; each part that is present and non-empty is written to a
// fresh folder (so both the vocab.json/merges.txt and the tokenizer.json paths run), the
// folder is loaded, and the prompt encoded at three lengths.
#include <sys/stat.h>

#include "fuzz/fuzz.h"
#include "io/tokenizer.h"

static const char sep[] = "\n--8<--\n";
static const char *const files[6] = {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                                     "special_tokens_map.json", "added_tokens.json"};

static const uint8_t *find_sep(const uint8_t *p, const uint8_t *end) {
    const size_t k = sizeof sep - 1;
    for (; p + k <= end; p++)
        if (memcmp(p, sep, k) == 0) return p;
    return NULL;
}

SID_FUZZ_TARGET(tokenizer) {
    char dir[128], path[256];
    snprintf(dir, sizeof dir, "%s/tok", fuzz_tmp_dir());
    mkdir(dir, 0700);
    const uint8_t *p = data, *end = data + size, *prompt = NULL;
    size_t prompt_len = 0;
    int written[6] = {0};
    for (int part = 0; part < 7 && p <= end; part++) {
        const uint8_t *s = find_sep(p, end), *stop = s ? s : end;
        const size_t n = (size_t)(stop - p);
        if (part < 6 && n) {
            snprintf(path, sizeof path, "%s/%s", dir, files[part]);
            fuzz_write(path, p, n);
            written[part] = 1;
        } else if (part == 6) {
            prompt = p, prompt_len = n;
        }
        if (!s) break;
        p = s + sizeof sep - 1;
    }
    sid_tokenizer *t = sid_tokenizer_load(dir);
    if (t) {
        char *text = prompt ? fuzz_cstr(prompt, prompt_len) : fuzz_cstr((const uint8_t *)"a photo of a cat", 16);
        static const int lens[3] = {2, 5, 77};
        for (int i = 0; i < 3; i++) {
            int32_t ids[77];
            int truncated = -1;
            const int n = sid_tokenizer_encode_ex(t, text, ids, lens[i], &truncated);
            if (n > lens[i] || (n >= 0 && (truncated < 0 || truncated > 1))) abort();
            for (int k = 0; n >= 0 && k < lens[i]; k++)
                if (ids[k] < 0 || ids[k] >= sid_tokenizer_vocab_size(t)) abort();
        }
        free(text);
        sid_tokenizer_free(t);
    }
    for (int k = 0; k < 6; k++)
        if (written[k]) {
            snprintf(path, sizeof path, "%s/%s", dir, files[k]);
            unlink(path);
        }
    return 0;
}
