// `sid eval-coco`: the zero-shot COCO-2014 protocol of the SiD-LSG paper (FID, KID, CLIP score of a
// generator, docs/coco.md), and `sid fid-ref-stats`: the reference statistics of an image folder.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/flags.h"
#include "core/error.h"
#include "eval/coco.h"
#include "io/file.h"

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

int cmd_eval_coco(int argc, char **argv) {
    sid_coco_opts o = {.work = "out/coco"};
    const char *device = NULL;
    double n = 30000, batch = 8, kid_ref = 5000, steps = 25, cfg = 3;
    const sid_flag flags[] = {
        {"--model", SID_FLAG_STR, &o.model, 0, 0, "generator folder (sid distill's generator), or a pipeline (DDIM)"},
        {"--captions", SID_FLAG_STR, &o.captions, 0, 0, "captions file, one per line (the protocol's captions.txt)"},
        {"--coco-val", SID_FLAG_STR, &o.coco_val, 0, 0, "folder of the COCO val2014 images (reference statistics)"},
        {"--ref-stats", SID_FLAG_STR, &o.ref_stats, 0, 0, "reference statistics file (sid fid-ref-stats) instead"},
        {"--inception", SID_FLAG_STR, &o.inception, 0, 0, "FID Inception safetensors (docs/coco.md); random[:SEED] for tests"},
        {"--clip", SID_FLAG_STR, &o.clip, 0, 0, "CLIP model folder (transformers CLIPModel); absent: no CLIP score"},
        {"--work", SID_FLAG_STR, &o.work, 0, 0, "work folder: images, feature shards, manifest (default out/coco)"},
        {"--n", SID_FLAG_INT, &n, 2, 1e7, "images, caption i with seed i (default 30000)"},
        {"--batch", SID_FLAG_INT, &batch, 1, 4096, "images per network call (default 8)"},
        {"--kid-ref", SID_FLAG_INT, &kid_ref, 0, 1e7, "reference features kept for KID (default 5000)"},
        {"--steps", SID_FLAG_INT, &steps, 1, 1000, "DDIM steps when --model is a pipeline (default 25)"},
        {"--cfg", SID_FLAG_NUM, &cfg, 0, 100, "guidance when --model is a pipeline (default 3)"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("eval-coco", flags, sizeof flags / sizeof flags[0], argc, argv, NULL)) sid_die("%s", sid_error());
    if (!o.model || !o.captions) sid_die("eval-coco: give --model DIR and --captions FILE (sid eval-coco --help)");
    if (!o.coco_val == !o.ref_stats) sid_die("eval-coco: give one of --coco-val DIR and --ref-stats FILE");
    if (!o.inception)
        sid_die("eval-coco: give --inception FILE: pytorch-fid's Inception weights converted with "
                "tools/reference/convert_fid_inception.py (docs/coco.md)");
    o.n = (int64_t)n, o.batch = (int)batch, o.kid_ref = (int64_t)kid_ref, o.steps = (int)steps, o.cfg = (float)cfg;
    o.be = sid_cli_device("eval-coco", device, 0);
    sid_coco_result r;
    if (sid_coco_eval(&o, &r)) sid_die("%s", sid_error());
    printf("{\"protocol\": \"coco2014-zero-shot\", \"model\": ");
    json_string(stdout, o.model);
    printf(", \"n\": %lld, \"ref_n\": %lld, \"fid\": %.4f", (long long)r.n, (long long)r.ref_n, r.fid);
    if (r.has_kid)
        printf(", \"kid\": %.6f, \"kid_se\": %.6f, \"kid_ref_n\": %lld", r.kid, r.kid_se, (long long)r.kid_ref_n);
    else
        printf(", \"kid\": null");
    if (r.has_clip)
        printf(", \"clip_score\": %.5f", r.clip_score);
    else
        printf(", \"clip_score\": null");
    printf(", \"generated\": %lld, \"reused\": %lld, \"generate_s\": %.2f, \"features_s\": %.2f}\n",
           (long long)r.generated, (long long)r.reused, r.gen_seconds, r.feature_seconds);
    return 0;
}

int cmd_fid_ref_stats(int argc, char **argv) {
    const char *images = NULL, *inception = NULL, *out = NULL, *work = NULL, *device = NULL;
    double batch = 8, kid_ref = 5000;
    const sid_flag flags[] = {
        {"--images", SID_FLAG_STR, &images, 0, 0, "folder of reference images (.png, .jpg; COCO val2014)"},
        {"--inception", SID_FLAG_STR, &inception, 0, 0, "FID Inception safetensors (docs/coco.md); random[:SEED] for tests"},
        {"--out", SID_FLAG_STR, &out, 0, 0, "statistics file to write (.safetensors)"},
        {"--work", SID_FLAG_STR, &work, 0, 0, "keeps feature shards so that an interrupted run resumes"},
        {"--batch", SID_FLAG_INT, &batch, 1, 4096, "images per network call (default 8)"},
        {"--kid-ref", SID_FLAG_INT, &kid_ref, 0, 1e7, "features kept for KID (default 5000)"},
        {SID_DEVICE_FLAG(&device)},
    };
    if (sid_flags_parse("fid-ref-stats", flags, sizeof flags / sizeof flags[0], argc, argv, NULL))
        sid_die("%s", sid_error());
    if (!images || !inception || !out) sid_die("fid-ref-stats: give --images DIR, --inception FILE and --out FILE");
    const sid_backend *be = sid_cli_device("fid-ref-stats", device, 0);
    if (work && sid_mkdir_p(work)) sid_die("%s", sid_error());
    sid_fid_stats s;
    if (sid_coco_ref_stats(images, inception, work, (int64_t)kid_ref, be, (int)batch, &s) ||
        sid_fid_stats_save(&s, out))
        sid_die("%s", sid_error());
    printf("{\"out\": ");
    json_string(stdout, out);
    printf(", \"n\": %lld, \"features\": %d, \"kid_features\": %lld}\n", (long long)s.g.n, s.g.d, (long long)s.kid_n);
    sid_fid_stats_free(&s);
    return 0;
}
