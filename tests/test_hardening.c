// Inputs that used to crash sid (divisions by zero, wrapped sizes, out-of-bounds kernels,
// unbounded reads) and must now be refused with one line naming the file and the key, or
// computed correctly; plus tokenizer.json loading against the vocab.json/merges.txt path.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "core/error.h"
#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/clip_text.h"
#include "models/unet.h"
#include "models/vae.h"
#include "ops/ops.h"

static char tmp_root[256];

static const char *tmp_dir(void) {
    if (!tmp_root[0]) {
        snprintf(tmp_root, sizeof tmp_root, "/tmp/sid_hardening_%ld", (long)getpid());
        test_remove_tree(tmp_root);
        if (mkdir(tmp_root, 0700) != 0) sid_die("cannot create %s", tmp_root);
    }
    return tmp_root;
}

static int one_line_naming(const char *msg, const char *a, const char *b) {
    return msg && strstr(msg, a) && (!b || strstr(msg, b)) && !strchr(msg, '\n');
}

// base with key set to the JSON value text (NULL value: key removed), as a fresh string.
static char *with_key(const char *base, const char *key, const char *value) {
    cJSON *j = cJSON_Parse(base);
    if (!j) sid_die("bad base JSON");
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        if (!v) sid_die("bad value JSON %s", value);
        cJSON_AddItemToObject(j, key, v);
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// ---------------------------------------------------------------- UNet config

static const char *const unet_base =
    "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 4, \"out_channels\": 4, \"sample_size\": 16,"
    " \"block_out_channels\": [32, 64], \"layers_per_block\": 1, \"cross_attention_dim\": 64,"
    " \"norm_num_groups\": 8, \"attention_head_dim\": 8,"
    " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\"],"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\"]}";

static void expect_unet_refused(const char *key, const char *value, const char *named, const char *what) {
    char *text = with_key(unet_base, key, value);
    sid_unet_config c;
    sid_set_error("%s", "");
    const int rc = sid_unet_config_parse(&c, text, "unet/config.json");
    EXPECT(rc == -1, "%s: accepted", what);
    EXPECT(one_line_naming(sid_error(), "unet/config.json", named), "%s: error '%s' should name %s", what,
           sid_error(), named);
    free(text);
}

static void test_unet_config_valid(void) {
    sid_unet_config c;
    EXPECT(sid_unet_config_parse(&c, unet_base, "unet/config.json") == 0, "base config: %s", sid_error());
    EXPECT(sid_unet_param_count(&c, NULL) > 0, "no parameters");
    char path[1024];
    snprintf(path, sizeof path, "models/teacher/unet/config.json");
    if (sid_file_exists(path)) EXPECT(sid_unet_config_load(&c, path) == 0, "shipped teacher: %s", sid_error());
}

static void test_unet_config_zero_divisors(void) {
    expect_unet_refused("attention_head_dim", "0", "attention_head_dim", "zero heads (SIGFPE)");
    expect_unet_refused("attention_head_dim", "[8, 0]", "attention_head_dim", "zero heads at the mid level");
    expect_unet_refused("norm_num_groups", "0", "norm_num_groups", "zero groups (SIGFPE)");
    expect_unet_refused("norm_num_groups", "-8", "norm_num_groups", "negative groups");
    expect_unet_refused("num_attention_heads", "0", "num_attention_heads", "zero num_attention_heads");
}

static void test_unet_config_heads_divide(void) {
    expect_unet_refused("attention_head_dim", "7", "attention_head_dim", "7 heads on 32 channels");
    // Level 1 has no cross-attention block but the mid block attends there: 64 % 12 != 0.
    expect_unet_refused("attention_head_dim", "[8, 12]", "mid block", "mid block heads");
    expect_unet_refused("norm_num_groups", "12", "norm_num_groups", "groups not dividing channels");
}

static void test_unet_config_absurd_sizes(void) {
    expect_unet_refused("sample_size", "1073741824", "sample_size", "sample_size 2^30 (wraps to 0)");
    expect_unet_refused("sample_size", "0", "sample_size", "sample_size 0");
    expect_unet_refused("block_out_channels", "[32, 1048576]", "block_out_channels[1]", "huge channels");
    expect_unet_refused("block_out_channels", "[32, -64]", "block_out_channels[1]", "negative channels");
    expect_unet_refused("layers_per_block", "1000000", "layers_per_block", "huge layers_per_block");
    expect_unet_refused("cross_attention_dim", "100000000", "cross_attention_dim", "huge cross_attention_dim");
    expect_unet_refused("in_channels", "0", "in_channels", "zero in_channels");
    expect_unet_refused("out_channels", "99999999", "out_channels", "huge out_channels");
    expect_unet_refused("transformer_layers_per_block", "100000", "transformer_layers_per_block",
                        "huge transformer depth");
    // Within every bound alone, too large together: 8192 channels x 1024^2 pixels.
    char *wide = with_key(unet_base, "block_out_channels", "[8192, 8192]");
    char *text = with_key(wide, "sample_size", "1024");
    sid_unet_config c;
    EXPECT(sid_unet_config_parse(&c, text, "unet/config.json") == -1 &&
               one_line_naming(sid_error(), "unet/config.json", "sample_size"),
           "huge feature map accepted: %s", sid_error());
    free(wide);
    free(text);
}

// ---------------------------------------------------------------- VAE and CLIP configs

static const char *const vae_base =
    "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [32, 64], \"layers_per_block\": 1,"
    " \"norm_num_groups\": 8, \"latent_channels\": 4,"
    " \"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"],"
    " \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

static void expect_vae_refused(const char *key, const char *value, const char *named) {
    char *text = with_key(vae_base, key, value);
    sid_vae_config c;
    EXPECT(sid_vae_config_parse(&c, text, "vae/config.json") == -1, "vae %s = %s accepted", key, value);
    EXPECT(one_line_naming(sid_error(), "vae/config.json", named), "vae %s: error '%s'", key, sid_error());
    free(text);
}

static void test_vae_config(void) {
    sid_vae_config c;
    EXPECT(sid_vae_config_parse(&c, vae_base, "vae/config.json") == 0, "base: %s", sid_error());
    expect_vae_refused("norm_num_groups", "0", "norm_num_groups");
    expect_vae_refused("layers_per_block", "1000000000", "layers_per_block");
    expect_vae_refused("latent_channels", "100000000", "latent_channels");
    expect_vae_refused("in_channels", "-3", "in_channels");
    expect_vae_refused("block_out_channels", "[32, 1073741824]", "block_out_channels");
    EXPECT(sid_vae_config_parse(&c, "[1]", "vae/config.json") == -1 && strstr(sid_error(), "vae/config.json"),
           "array accepted");
}

static const char *const clip_base =
    "{\"architectures\": [\"CLIPTextModel\"], \"vocab_size\": 1000, \"hidden_size\": 64,"
    " \"intermediate_size\": 256, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"max_position_embeddings\": 77}";

static void expect_clip_refused(const char *key, const char *value, const char *named) {
    char *text = with_key(clip_base, key, value);
    sid_clip_config c;
    EXPECT(sid_clip_config_parse(&c, text, "text_encoder/config.json") == -1, "clip %s = %s accepted", key, value);
    EXPECT(one_line_naming(sid_error(), "text_encoder/config.json", named), "clip %s: error '%s'", key,
           sid_error());
    free(text);
}

static void test_clip_config(void) {
    sid_clip_config c;
    EXPECT(sid_clip_config_parse(&c, clip_base, "text_encoder/config.json") == 0, "base: %s", sid_error());
    expect_clip_refused("num_attention_heads", "0", "num_attention_heads");
    expect_clip_refused("num_attention_heads", "5", "num_attention_heads");  // 64 % 5
    expect_clip_refused("hidden_size", "1073741824", "hidden_size");
    expect_clip_refused("intermediate_size", "1073741824", "intermediate_size");
    expect_clip_refused("num_hidden_layers", "1000000", "num_hidden_layers");
    expect_clip_refused("max_position_embeddings", "1000000000", "max_position_embeddings");
    expect_clip_refused("vocab_size", "2147483647", "vocab_size");
    char *wide = with_key(clip_base, "hidden_size", "16384");
    char *text = with_key(wide, "vocab_size", "16000000");
    EXPECT(sid_clip_config_parse(&c, text, "text_encoder/config.json") == -1 && strstr(sid_error(), "vocab_size"),
           "2^38-value embedding accepted: %s", sid_error());
    free(wide);
    free(text);
}

// ---------------------------------------------------------------- tokenizer ids

static void tok_dir(char *dir, size_t cap, const char *name) {
    snprintf(dir, cap, "%s/%s", tmp_dir(), name);
    test_remove_tree(dir);
    if (mkdir(dir, 0700) != 0) sid_die("mkdir %s", dir);
    char p[600];
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    test_write_text(p, "#version: 0.2\na b\n");
}

static void expect_tok_refused(const char *dir, const char *file, const char *what) {
    sid_set_error("%s", "");
    sid_tokenizer *t = sid_tokenizer_load(dir);
    EXPECT(!t, "%s: loaded", what);
    sid_tokenizer_free(t);
    EXPECT(one_line_naming(sid_error(), file, NULL), "%s: error '%s' should name %s", what, sid_error(), file);
}

static void test_tokenizer_huge_ids(void) {
    char dir[512], p[600];
    tok_dir(dir, sizeof dir, "id_max");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    test_write_text(p, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 2147483647}");
    expect_tok_refused(dir, "vocab.json", "vocab.json id 2^31-1 (signed overflow)");
    test_write_text(p, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 1e300}");
    expect_tok_refused(dir, "vocab.json", "vocab.json id 1e300");
    test_write_text(p, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 16777216}");
    expect_tok_refused(dir, "vocab.json", "vocab.json id 2^24 (a huge vocabulary from one id)");

    tok_dir(dir, sizeof dir, "added_max");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    test_write_text(p, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}");
    snprintf(p, sizeof p, "%s/added_tokens.json", dir);
    test_write_text(p, "{\"<x>\": 2147483647}");
    expect_tok_refused(dir, "added_tokens.json", "added_tokens.json id 2^31-1");

    tok_dir(dir, sizeof dir, "decoder_max");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    test_write_text(p, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"<|startoftext|>\": 3, \"<|endoftext|>\": 4}");
    snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
    test_write_text(p, "{\"added_tokens_decoder\": {\"2147483647\": {\"content\": \"<x>\", \"special\": true}}}");
    expect_tok_refused(dir, "tokenizer_config.json", "added_tokens_decoder id 2^31-1");
}

// ---------------------------------------------------------------- tokenizer.json

static void gunzip_to(const char *src, const char *dst) {
    gzFile g = gzopen(src, "rb");
    FILE *f = fopen(dst, "wb");
    if (!g || !f) sid_die("cannot unpack %s to %s", src, dst);
    char buf[65536];
    int n;
    while ((n = gzread(g, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, f);
    gzclose(g);
    if (fclose(f) != 0) sid_die("cannot write %s", dst);
}

static void copy_into(const char *src_dir, const char *name, const char *dst_dir) {
    char src[600], dst[600];
    snprintf(src, sizeof src, "%s/%s", src_dir, name);
    snprintf(dst, sizeof dst, "%s/%s", dst_dir, name);
    if (!sid_file_exists(src)) return;
    char *data;
    size_t len;
    if (sid_read_file(src, &data, &len) != 0) sid_die("%s", sid_error());
    test_write_text(dst, data);
    free(data);
}

// Writes dst/tokenizer.json from src's vocab.json + merges.txt, merges as "a b" strings or as
// pairs, with the added tokens transformers 5 writes for a CLIP tokenizer.
static void write_tokenizer_json(const char *src, const char *dst, int pairs) {
    char p[600];
    snprintf(p, sizeof p, "%s/vocab.json", src);
    cJSON *vocab = sid_json_load(p);
    if (!vocab) sid_die("%s", sid_error());
    snprintf(p, sizeof p, "%s/merges.txt", src);
    char *text;
    size_t len;
    if (sid_read_file(p, &text, &len) != 0) sid_die("%s", sid_error());
    cJSON *merges = cJSON_CreateArray();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "#version", 8) == 0 || !line[0]) continue;
        char *sp = strchr(line, ' ');
        if (!pairs || !sp) {
            cJSON_AddItemToArray(merges, cJSON_CreateString(line));
            continue;
        }
        *sp = 0;
        const char *pair[2] = {line, sp + 1};
        cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
    }
    free(text);
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    static const char *const specials[2] = {"<|startoftext|>", "<|endoftext|>"};
    for (int k = 0; k < 2; k++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(vocab, specials[k]);
        if (!cJSON_IsNumber(id)) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", id->valuedouble);
        cJSON_AddStringToObject(e, "content", specials[k]);
        cJSON_AddBoolToObject(e, "normalized", k == 0);
        cJSON_AddBoolToObject(e, "special", 1);
        cJSON_AddItemToArray(added, e);
    }
    snprintf(p, sizeof p, "%s/tokenizer.json", dst);
    if (sid_json_save(p, root) != 0) sid_die("%s", sid_error());
    cJSON_Delete(root);
}

static const char *const prompts[] = {
    "a photo of an astronaut riding a horse on mars",
    "A  Photo\tOF a CAT, high-quality; 4k!!",
    "<|startoftext|>hello<|endoftext|> world",
    "it's what they'd've done... café naïve 日本語 🙂",
    "abc to ab! b",
    "",
};

static void compare_folders(const char *classic, const char *json_dir, const char *what) {
    sid_tokenizer *a = sid_tokenizer_load(classic), *b = sid_tokenizer_load(json_dir);
    EXPECT(a && b, "%s: load failed: %s", what, sid_error());
    if (!a || !b) {
        sid_tokenizer_free(a);
        sid_tokenizer_free(b);
        return;
    }
    EXPECT(sid_tokenizer_vocab_size(a) == sid_tokenizer_vocab_size(b) &&
               sid_tokenizer_bos_id(a) == sid_tokenizer_bos_id(b) &&
               sid_tokenizer_eos_id(a) == sid_tokenizer_eos_id(b) && sid_tokenizer_pad_id(a) == sid_tokenizer_pad_id(b),
           "%s: vocabulary or special ids differ", what);
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        int32_t x[77], y[77];
        const int nx = sid_tokenizer_encode(a, prompts[i], x, 77), ny = sid_tokenizer_encode(b, prompts[i], y, 77);
        EXPECT(nx == ny && nx > 0 && memcmp(x, y, sizeof x) == 0, "%s: prompt %zu: ids differ (%d vs %d tokens)",
               what, i, nx, ny);
    }
    sid_tokenizer_free(a);
    sid_tokenizer_free(b);
}

static void test_tokenizer_json_tiny(void) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/tokenizer/tiny", test_data_dir());
    for (int pairs = 0; pairs < 2; pairs++) {
        snprintf(dst, sizeof dst, "%s/tiny_json_%d", tmp_dir(), pairs);
        test_remove_tree(dst);
        mkdir(dst, 0700);
        write_tokenizer_json(src, dst, pairs);
        copy_into(src, "special_tokens_map.json", dst);
        compare_folders(src, dst, pairs ? "tiny, merges as pairs" : "tiny, merges as strings");
    }
}

static void test_tokenizer_json_clip(void) {
    char classic[512], dst[512], p[600], gz[600];
    snprintf(classic, sizeof classic, "%s/clip_classic", tmp_dir());
    test_remove_tree(classic);
    mkdir(classic, 0700);
    static const char *const big[2] = {"vocab.json", "merges.txt"};
    for (int k = 0; k < 2; k++) {
        snprintf(gz, sizeof gz, "%s/tokenizer/%s.gz", test_data_dir(), big[k]);
        snprintf(p, sizeof p, "%s/%s", classic, big[k]);
        gunzip_to(gz, p);
    }
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/tokenizer/sd15", test_data_dir());
    copy_into(cfg, "tokenizer_config.json", classic);
    copy_into(cfg, "special_tokens_map.json", classic);
    snprintf(dst, sizeof dst, "%s/clip_json", tmp_dir());
    test_remove_tree(dst);
    mkdir(dst, 0700);
    write_tokenizer_json(classic, dst, 1);
    copy_into(cfg, "tokenizer_config.json", dst);
    copy_into(cfg, "special_tokens_map.json", dst);
    compare_folders(classic, dst, "CLIP vocabulary, SD1.5 configs");
    sid_tokenizer *t = sid_tokenizer_load(dst);
    EXPECT(t && sid_tokenizer_vocab_size(t) == 49408 && sid_tokenizer_max_length(t) == 77, "CLIP from tokenizer.json");
    sid_tokenizer_free(t);
}

static void test_tokenizer_json_errors(void) {
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/tok_empty", tmp_dir());
    test_remove_tree(dir);
    mkdir(dir, 0700);
    sid_tokenizer *t = sid_tokenizer_load(dir);
    EXPECT(!t && one_line_naming(sid_error(), dir, "tokenizer.json") && strstr(sid_error(), "merges.txt"),
           "empty folder: '%s'", sid_error());
    sid_tokenizer_free(t);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    static const char *const bad[] = {
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2147483647}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\"]]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": 5}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<|startoftext|>\": 0, \"<|endoftext|>\": 1}, \"merges\": []},"
        " \"added_tokens\": [{\"id\": 4294967296, \"content\": \"x\"}]}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_write_text(p, bad[i]);
        t = sid_tokenizer_load(dir);
        EXPECT(!t && one_line_naming(sid_error(), "tokenizer.json", NULL), "bad tokenizer.json %zu: '%s'", i,
               sid_error());
        sid_tokenizer_free(t);
    }
}

static void test_tokenizer_truncated_flag(void) {
    char src[512];
    snprintf(src, sizeof src, "%s/tokenizer/tiny", test_data_dir());
    sid_tokenizer *t = sid_tokenizer_load(src);
    EXPECT(t, "%s", sid_error());
    if (!t) return;
    int32_t ids[6];
    int cut = -1;
    // "abc" -> one token: bos abc eos fits in 3 exactly; four of them need 6.
    int n = sid_tokenizer_encode_ex(t, "abc abc abc abc", ids, 6, &cut);
    EXPECT(n == 6 && cut == 0, "exact fit: n=%d truncated=%d", n, cut);
    n = sid_tokenizer_encode_ex(t, "abc abc abc abc abc", ids, 6, &cut);
    EXPECT(n == 6 && cut == 1 && ids[5] == sid_tokenizer_eos_id(t), "one too many: n=%d truncated=%d", n, cut);
    n = sid_tokenizer_encode_ex(t, "abc", ids, 6, &cut);
    EXPECT(n == 3 && cut == 0 && ids[3] == sid_tokenizer_pad_id(t), "short: n=%d truncated=%d", n, cut);
    int32_t ref[6];
    EXPECT(sid_tokenizer_encode(t, "abc abc abc abc abc", ref, 6) == 6 &&
               sid_tokenizer_encode_ex(t, "abc abc abc abc abc", ids, 6, NULL) == 6 && memcmp(ref, ids, sizeof ids) == 0,
           "encode and encode_ex differ");
    sid_tokenizer_free(t);
}

// ---------------------------------------------------------------- conv2d on tiny planes

static void naive_conv_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s,
                           int ho, int wo) {
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = b ? b[co] : 0;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                const int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += (double)w[((co * s->cin + ci) * s->k + ky) * s->k + kx] *
                                       in[((n * s->cin + ci) * s->h + iy) * s->w + ix];
                            }
                    out[((n * s->cout + co) * ho + oy) * wo + ox] = (float)acc;
                }
}

// din, dw, db of sum(out * g) by the same loops.
static void naive_conv_bwd(float *din, float *dw, float *db, const float *g, const float *in, const float *w,
                           const sid_conv2d_shape *s, int ho, int wo) {
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    const float go = g[((n * s->cout + co) * ho + oy) * wo + ox];
                    db[co] += go;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                const int iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                const size_t wi = (size_t)((co * s->cin + ci) * s->k + ky) * s->k + kx;
                                const size_t xi = (size_t)((n * s->cin + ci) * s->h + iy) * s->w + ix;
                                dw[wi] += go * in[xi];
                                din[xi] += go * w[wi];
                            }
                }
}

static float max_diff(const float *a, const float *b, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        const float d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (d > m) m = d;
    }
    return m;
}

static float *random_floats(size_t n, unsigned *state) {
    float *v = sid_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        v[i] = (float)((*state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    return v;
}

static void check_conv(sid_conv2d_shape s, unsigned seed) {
    const int ho = (s.h + 2 * s.pad - s.k) / s.stride + 1, wo = (s.w + 2 * s.pad - s.k) / s.stride + 1;
    const size_t nin = (size_t)s.n * s.cin * s.h * s.w, nw = (size_t)s.cout * s.cin * s.k * s.k,
                 nout = (size_t)s.n * s.cout * ho * wo;
    float *in = random_floats(nin, &seed), *w = random_floats(nw, &seed), *b = random_floats((size_t)s.cout, &seed);
    float *g = random_floats(nout, &seed);
    float *out = sid_calloc(nout * sizeof *out), *ref = sid_calloc(nout * sizeof *ref);
    float *din = sid_calloc(nin * sizeof *din), *dw = sid_calloc(nw * sizeof *dw), *db = sid_calloc(s.cout * sizeof *db);
    float *rdin = sid_calloc(nin * sizeof *din), *rdw = sid_calloc(nw * sizeof *dw),
          *rdb = sid_calloc(s.cout * sizeof *db);
    sid_conv2d_fwd(out, in, w, b, &s);
    naive_conv_fwd(ref, in, w, b, &s, ho, wo);
    sid_conv2d_bwd(din, dw, db, g, in, w, &s);
    naive_conv_bwd(rdin, rdw, rdb, g, in, w, &s, ho, wo);
    const float tol = 1e-3f * (float)(s.cin * s.k * s.k + s.n * ho * wo);
    EXPECT(max_diff(out, ref, nout) < tol && max_diff(din, rdin, nin) < tol && max_diff(dw, rdw, nw) < tol &&
               max_diff(db, rdb, (size_t)s.cout) < tol,
           "conv n%d cin%d %dx%d cout%d k%d s%d p%d: fwd %g din %g dw %g db %g", s.n, s.cin, s.h, s.w, s.cout, s.k,
           s.stride, s.pad, max_diff(out, ref, nout), max_diff(din, rdin, nin), max_diff(dw, rdw, nw),
           max_diff(db, rdb, (size_t)s.cout));
    free(in), free(w), free(b), free(g), free(out), free(ref), free(din), free(dw), free(db), free(rdin), free(rdw),
        free(rdb);
}

static void test_conv_tiny_planes(void) {
    static const sid_conv2d_shape shapes[] = {
        {1, 3, 1, 3, 4, 3, 1, 1},    // UNet at 8x24 latents after three downsamplers
        {1, 4, 1, 5, 4, 3, 1, 1},    // a VAE decoding a 1x5 latent
        {2, 3, 5, 1, 5, 3, 1, 1},    // one pixel wide
        {1, 2, 1, 1, 3, 3, 1, 1},    // one pixel
        {3, 3, 1, 2, 4, 3, 1, 1},    // several samples (threads may take whole samples)
        {1, 3, 1, 3, 4, 3, 2, 1},    // stride 2 on one line (a downsampler)
        {1, 3, 3, 1, 4, 3, 2, 1},
        {1, 8, 1, 8, 8, 3, 1, 1},    // the direct kernels: 8-aligned width and channels
        {2, 16, 1, 16, 8, 3, 1, 1},
        {1, 8, 2, 8, 16, 3, 1, 1},
        {1, 2, 1, 4, 3, 5, 1, 2},    // 5x5 on one line
        {1, 2, 2, 3, 2, 3, 1, 0},    // no padding, lower than the kernel: no output at all
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(shapes[i], 17u + (unsigned)i);
}

// ---------------------------------------------------------------- unbounded reads

static void test_read_devices(void) {
    char *data = (char *)1;
    size_t len = 7;
    EXPECT(sid_read_file("/dev/zero", &data, &len) == -1 && data == NULL &&
               one_line_naming(sid_error(), "/dev/zero", "limit"),
           "/dev/zero: '%s'", sid_error());
    EXPECT(sid_read_file("/dev/null", &data, &len) == 0 && len == 0, "/dev/null (an empty list): %s", sid_error());
    free(data);
    EXPECT(sid_json_load("/dev/zero") == NULL && strstr(sid_error(), "/dev/zero"), "json /dev/zero");
    sid_unet_config c;
    EXPECT(sid_unet_config_load(&c, "/dev/zero") == -1 && strstr(sid_error(), "/dev/zero"), "unet /dev/zero");
    sid_tokenizer *t = sid_tokenizer_load("/dev");  // /dev/vocab.json does not exist, /dev is no folder of ours
    EXPECT(!t, "/dev as a tokenizer");
    sid_tokenizer_free(t);
    char p[600];
    snprintf(p, sizeof p, "%s/twenty.txt", tmp_dir());
    test_write_text(p, "01234567890123456789");
    EXPECT(sid_read_file_max(p, &data, &len, 10) == -1 && one_line_naming(sid_error(), p, "limit"), "cap: '%s'",
           sid_error());
    EXPECT(sid_read_file_max(p, &data, &len, 20) == 0 && len == 20, "exactly at the cap: %s", sid_error());
    free(data);
    // The command itself, when the suite runs it with the binary at hand.
    const char *bin = getenv("SID_BIN");
    if (bin && bin[0] && access(bin, X_OK) == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "timeout 20 %s inspect /dev/zero 2>&1", bin);
        FILE *f = popen(cmd, "r");
        char line[512] = "";
        if (f && !fgets(line, sizeof line, f)) line[0] = 0;
        const int st = f ? pclose(f) : -1;
        EXPECT(st != 0 && strstr(line, "/dev/zero") && strstr(line, "regular file"),
               "sid inspect /dev/zero: status %d, '%s'", st, line);
    }
}

static void test_safetensors_header_sizes(void) {
    // A header length of 2^40 in a 16-byte file, and one a byte past the end.
    unsigned char img[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    sid_safetensors st;
    EXPECT(sid_st_parse_memory(&st, img, sizeof img, "x.safetensors") == -1 && strstr(sid_error(), "x.safetensors"),
           "2^40 header accepted");
    img[5] = 0, img[0] = 9;
    EXPECT(sid_st_parse_memory(&st, img, sizeof img, "x.safetensors") == -1 && strstr(sid_error(), "past the end"),
           "header past the end: '%s'", sid_error());
    img[0] = 8;
    EXPECT(sid_st_parse_memory(&st, img, sizeof img, "x.safetensors") == 0 && st.n == 0, "empty header: %s",
           sid_error());
    sid_st_close(&st);
    EXPECT(sid_st_parse_memory(&st, img, 5, "x.safetensors") == -1, "5-byte image accepted");
    EXPECT(sid_st_open(&st, "/dev/zero") == -1 && strstr(sid_error(), "regular file"), "st /dev/zero: '%s'",
           sid_error());
}

static void cleanup(void) {
    if (tmp_root[0]) test_remove_tree(tmp_root);
}

TEST_LIST(T(test_unet_config_valid), T(test_unet_config_zero_divisors), T(test_unet_config_heads_divide),
          T(test_unet_config_absurd_sizes), T(test_vae_config), T(test_clip_config), T(test_tokenizer_huge_ids),
          T(test_tokenizer_json_tiny), T(test_tokenizer_json_clip), T(test_tokenizer_json_errors),
          T(test_tokenizer_truncated_flag), T(test_conv_tiny_planes), T(test_read_devices),
          T(test_safetensors_header_sizes))

int main(int argc, char **argv) {
    const int rc = harness_run("hardening", all_tests, (int)(sizeof all_tests / sizeof all_tests[0]), argc, argv);
    cleanup();
    return rc;
}
