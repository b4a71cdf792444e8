// SiD-LSG against a PyTorch transcription of the reference (tools/reference/sid_reference.py): one
// fake-score round and one generator round from the same prompts, noise and timesteps, for kappa 1
// and 2 and alpha 1 and 1.2: losses, sampled gradients and the weights after each Adam step.
// Also: resume continues exactly, and bad settings fail before any work.
#define _DEFAULT_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "ops/guard/guard.h"
#include "sid/distill.h"


static void *tensor(const sid_safetensors *st, const char *name, size_t *n) {
    const sid_st_tensor *t = sid_st_find(st, name);
    if (!t) sid_die("%s: no tensor '%s' (regenerate with tools/reference/sid_reference.py)", st->path, name);
    *n = (size_t)sid_shape_numel(t->ndim, t->shape);
    void *x = sid_malloc(*n * 4 + 4);
    if (t->dtype == SID_I32) memcpy(x, t->data, *n * 4);
    else if (sid_st_read_f32(st, t, x)) sid_die("%s", sid_error());
    return x;
}

// Offsets in sid's block of PyTorch's flat parameter order (names from the golden's metadata).
static size_t *flat_to_block(const sid_params *ps, const sid_safetensors *st, size_t *total) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(st->metadata, "param_names");
    if (!cJSON_IsString(m)) sid_die("%s: no param_names metadata", st->path);
    size_t *map = sid_malloc(ps->total * sizeof(size_t)), k = 0;
    char *names = strdup(m->valuestring), *save = NULL;
    for (char *nm = strtok_r(names, ",", &save); nm; nm = strtok_r(NULL, ",", &save)) {
        int i = sid_params_find(ps, nm);
        if (i < 0) sid_die("golden parameter '%s' not in sid's UNet", nm);
        for (size_t j = 0; j < ps->items[i].numel; j++) map[k++] = ps->items[i].offset + j;
    }
    free(names);
    *total = k;
    return map;
}

static double rel(const float *got, const float *want, size_t n) {
    double scale = 1e-30, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - want[i]));
    return err / scale;
}

// loss_tol: the relative loss tolerance; the clip case's generator loss is a small difference of
// predictions that are mostly clamped to the same bound, so float rounding shows more there.
static void run_case(int k, const sid_safetensors *st, const char *teacher, double loss_tol) {
    char name[64];
    size_t n;
    float *kap = tensor(st, "kappa", &n), *alp = tensor(st, "alpha", &n);
    sid_distill_cfg c = sid_distill_defaults();
    c.teacher_dir = teacher, c.batch = c.micro = 4, c.lr = c.glr = 1e-4f, c.alpha = alp[k];
    for (int i = 0; i < 4; i++) c.kappa[i] = kap[k];
    free(kap), free(alp);
    sid_distill *d = sid_distill_open(&c);
    if (!d) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    size_t total, npick;
    size_t *map = flat_to_block(sid_distill_fake(d), st, &total);
    snprintf(name, sizeof name, "case%d.pick", k);
    int32_t *pick = tensor(st, name, &npick);
    float *got = sid_malloc(npick * 4);
    const char *phase[2] = {"f", "g"}, *net[2] = {"fake", "gen"};
    for (int ph = 0; ph < 2; ph++) {
        size_t np, nz, ne, ntt, nl;
        snprintf(name, sizeof name, "case%d.%s.prompt", k, phase[ph]);
        int32_t *prompt = tensor(st, name, &np);
        snprintf(name, sizeof name, "case%d.%s.z", k, phase[ph]);
        float *z = tensor(st, name, &nz);
        snprintf(name, sizeof name, "case%d.%s.eps", k, phase[ph]);
        float *eps = tensor(st, name, &ne);
        snprintf(name, sizeof name, "case%d.%s.t", k, phase[ph]);
        int32_t *t = tensor(st, name, &ntt);
        snprintf(name, sizeof name, "case%d.%s.loss", k, phase[ph]);
        float *loss = tensor(st, name, &nl);
        int prompts[4];
        for (int i = 0; i < 4; i++) prompts[i] = prompt[i];
        sid_round_inputs in = {4, prompts, z, eps, NULL, t};
        sid_iter_stats s = {0};
        if (ph == 0) sid_distill_fake_round(d, &in, &s);
        else sid_distill_gen_round(d, &in, &s);
        sid_distill_read_stats(d, &s);
        const double l = ph == 0 ? s.loss_fake : s.loss_gen, el = fabs(l - loss[0]) / fabs(loss[0]);
        EXPECT(el < loss_tol, "case %d %s loss %.6g vs PyTorch %.6g (%.2g)", k, net[ph], l, loss[0], el);
        const sid_params *ps = ph == 0 ? sid_distill_fake(d) : sid_distill_gen(d);
        for (size_t i = 0; i < npick; i++) got[i] = ps->grad[map[pick[i]]];
        snprintf(name, sizeof name, "case%d.%s.grad", k, net[ph]);
        float *want = tensor(st, name, &n);
        const double eg = rel(got, want, npick);
        EXPECT(eg < 1e-4, "case %d (kappa %g alpha %g): %s gradients differ from PyTorch by %.3g", k, c.kappa[0], c.alpha,
               net[ph], eg);
        // Adam's first step is lr * sign(g); where PyTorch's |g| is within rounding of 0 (below 1e-5
        // of the largest; the gradients above agree to a few 1e-6 of it), rounding alone picks the
        // sign. Those weights take PyTorch's step in the fake round (a flipped step would change the
        // fake net the generator round sees: it did, once, with two threads), and the weight check
        // skips them in both rounds.
        double gmax = 0;
        for (size_t i = 0; i < npick; i++) gmax = fmax(gmax, fabs(want[i]));
        char *noise_level = calloc(npick ? npick : 1, 1);
        for (size_t i = 0; i < npick; i++) noise_level[i] = fabs(want[i]) <= 1e-5 * gmax;
        free(want);
        if (ph == 0) sid_distill_fake_update(d, &s);
        else sid_distill_gen_update(d, &s);
        if (ph == 0) {
            size_t ntiny, nafter;
            snprintf(name, sizeof name, "case%d.fake.tiny", k);
            int32_t *tiny = tensor(st, name, &ntiny);
            snprintf(name, sizeof name, "case%d.fake.tiny_after", k);
            float *tiny_after = tensor(st, name, &nafter);
            for (size_t i = 0; i < ntiny && i < nafter; i++) ps->data[map[tiny[i]]] = tiny_after[i];
            free(tiny), free(tiny_after);
        }
        snprintf(name, sizeof name, "case%d.%s.after", k, net[ph]);
        want = tensor(st, name, &n);
        for (size_t i = 0; i < npick; i++) got[i] = noise_level[i] ? want[i] : ps->data[map[pick[i]]];
        free(noise_level);
        const double ew = rel(got, want, npick);
        EXPECT(ew < 1e-4, "case %d: %s weights after Adam differ from PyTorch by %.3g", k, net[ph], ew);
        if (getenv("SID_TEST_VERBOSE"))
            printf("\n  case %d kappa %g alpha %g %-4s: loss %.2e grads %.2e weights %.2e", k, c.kappa[0], c.alpha, net[ph], el,
                   eg, ew);
        free(want), free(prompt), free(z), free(eps), free(t), free(loss);
    }
    free(got), free(pick), free(map);
    sid_distill_close(d);
    (void)total;
}

static void test_one_iteration_matches_pytorch(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/sid/golden.safetensors", test_data_dir());
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    char teacher[512];
    snprintf(teacher, sizeof teacher, "%s/sid/teacher", test_data_dir());
    for (int k = 0; k < 4; k++) run_case(k, &st, teacher, 1e-4);
    sid_st_close(&st);
}

// A copy of the test teacher whose scheduler config has no clip_sample key: DDPMScheduler's default,
// true, so every x0 prediction is clamped to [-1, 1] as the official loop's scheduler does.
static void test_clip_sample_matches_pytorch(void) {
    char path[512], tmp[] = "/tmp/sid-clip-XXXXXX", src[600], dst[600];
    if (!mkdtemp(tmp)) sid_die("mkdtemp");
    static const char *const parts[] = {"unet", "text_encoder", "tokenizer", "model_index.json"};
    for (int i = 0; i < 4; i++) {
        snprintf(src, sizeof src, "%s/sid/teacher/%s", test_data_dir(), parts[i]);
        snprintf(dst, sizeof dst, "%s/%s", tmp, parts[i]);
        char *abs = realpath(src, NULL);
        EXPECT(abs && symlink(abs, dst) == 0, "link %s", dst);
        free(abs);
    }
    snprintf(dst, sizeof dst, "%s/scheduler", tmp);
    EXPECT(sid_mkdir_p(dst) == 0, "%s", sid_error());
    snprintf(dst, sizeof dst, "%s/scheduler/scheduler_config.json", tmp);
    test_write_text(dst, "{\"_class_name\": \"DDPMScheduler\", \"beta_start\": 0.00085, \"beta_end\": 0.012,\n"
                                "\"beta_schedule\": \"scaled_linear\", \"num_train_timesteps\": 1000,\n"
                                "\"prediction_type\": \"epsilon\", \"timestep_spacing\": \"trailing\"}\n");
    snprintf(path, sizeof path, "%s/sid/golden_clip.safetensors", test_data_dir());
    sid_safetensors st;
    if (sid_st_open(&st, path)) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
    } else {
        run_case(0, &st, tmp, 1e-3);
        sid_st_close(&st);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    EXPECT(system(cmd) == 0, "cleanup");
}

static sid_distill *open_small(int m) {
    static char teacher[512];
    snprintf(teacher, sizeof teacher, "%s/sid/teacher", test_data_dir());
    sid_distill_cfg c = sid_distill_defaults();
    c.teacher_dir = teacher, c.batch = c.micro = m;
    sid_distill *d = sid_distill_open(&c);
    if (!d) sid_die("%s", sid_error());
    return d;
}

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

// A sample whose forward is NaN is dropped, and the other samples train exactly as a round without it
// would: before, its NaN activations turned every weight gradient NaN (0 x NaN) and the whole update
// was sanitised away.
static void test_dropped_sample_leaves_the_others(void) {
    sid_distill *d = open_small(3);
    const size_t D = sid_distill_sample_size(d);
    float *z = sid_malloc(3 * D * 4), *eps = sid_malloc(3 * D * 4);
    sid_rng r = sid_rng_new(5);
    sid_rng_normal(&r, z, 3 * D), sid_rng_normal(&r, eps, 3 * D);
    z[D + 7] = NAN;  // sample 1
    int prompt[3] = {0, 1, 2}, prompt2[2] = {0, 2};
    int32_t t[3] = {100, 500, 900}, t2[2] = {100, 900};
    float *z2 = sid_malloc(2 * D * 4), *eps2 = sid_malloc(2 * D * 4);
    memcpy(z2, z, D * 4), memcpy(z2 + D, z + 2 * D, D * 4), memcpy(eps2, eps, D * 4), memcpy(eps2 + D, eps + 2 * D, D * 4);
    for (int ph = 0; ph < 2; ph++) {
        sid_params *ps = (sid_params *)(ph ? sid_distill_gen(d) : sid_distill_fake(d));
        sid_round_inputs in = {3, prompt, z, eps, NULL, t}, in2 = {2, prompt2, z2, eps2, NULL, t2};
        sid_iter_stats st = {0}, st2 = {0};
        if (ph) sid_distill_gen_round(d, &in, &st);
        else sid_distill_fake_round(d, &in, &st);
        sid_distill_read_stats(d, &st);
        float *g = sid_malloc(ps->total * 4);
        memcpy(g, ps->grad, ps->total * 4);
        memset(ps->grad, 0, ps->total * 4);
        if (ph) sid_distill_gen_round(d, &in2, &st2);
        else sid_distill_fake_round(d, &in2, &st2);
        sid_distill_read_stats(d, &st2);
        EXPECT((ph ? st.dropped_gen : st.dropped_fake) == 1, "phase %d: %d dropped, want 1", ph,
               ph ? st.dropped_gen : st.dropped_fake);
        EXPECT(all_finite(g, ps->total), "phase %d: the dropped sample poisoned the gradients", ph);
        EXPECT(memcmp(g, ps->grad, ps->total * 4) == 0, "phase %d: gradients differ from the round without the sample", ph);
        EXPECT((ph ? st.loss_gen - st2.loss_gen : st.loss_fake - st2.loss_fake) == 0, "phase %d: losses differ", ph);
        memset(ps->grad, 0, ps->total * 4);
        free(g);
    }
    // every sample NaN: nothing to train on, and the run's verdict stops it
    for (size_t i = 0; i < 3 * D; i++) z[i] = NAN;
    sid_round_inputs in = {3, prompt, z, eps, NULL, t};
    sid_iter_stats st = {0};
    sid_distill_gen_round(d, &in, &st);
    EXPECT(st.dropped_gen == 3 && all_finite(sid_distill_gen(d)->grad, sid_distill_gen(d)->total), "all dropped: %d",
           st.dropped_gen);
    const char *v = sid_distill_verdict(d, &st);
    EXPECT(v && strstr(v, "every generator sample"), "verdict: %s", v ? v : "(none)");
    sid_iter_stats ok = {.loss_fake = 1, .loss_gen = 1, .dropped_gen = 2};
    EXPECT(sid_distill_verdict(d, &ok) == NULL, "two of three dropped must not stop the run");
    sid_iter_stats sanit = {.nonfinite_gen = sid_distill_gen(d)->total / 2 + 1};
    EXPECT(sid_distill_verdict(d, &sanit) != NULL, "most gradients sanitised must stop the run");
    free(z), free(eps), free(z2), free(eps2);
    sid_distill_close(d);
}

// One iteration (both phases, kappa 2, an extra generator step) with every buffer in a device's
// memory: on the guard device, whose memory the host cannot read between ops, the same weights as on
// the CPU bit for bit (one thread on both sides: the CPU splits batches over threads), and nothing
// comes back to the host but each round's NaN flags and the iteration's stats block; on a GPU, where
// one is usable, within a few Adam steps of the CPU's (|dw| < 2e-3: Adam's first step moves a weight
// by about lr x sign(g), and other summation orders can flip the sign of a near-zero gradient).
static void iterate(const char *teacher, const sid_backend *be, float *after[3], size_t *total, size_t *downloads,
                    size_t *down_bytes) {
    sid_distill_cfg c = sid_distill_defaults();
    c.teacher_dir = teacher, c.batch = c.micro = 3, c.gen_steps = 2;
    for (int i = 0; i < 4; i++) c.kappa[i] = 2.0f;
    c.be = be;
    sid_distill *d = sid_distill_open(&c);
    if (!d) {
        test_fail(__FILE__, __LINE__, "%s", sid_error());
        return;
    }
    const size_t D = sid_distill_sample_size(d);
    float *z = sid_malloc(3 * D * 4), *eps = sid_malloc(3 * D * 4), *zx = sid_malloc(3 * D * 4);
    sid_rng r = sid_rng_new(11);
    sid_rng_normal(&r, z, 3 * D), sid_rng_normal(&r, eps, 3 * D), sid_rng_normal(&r, zx, 3 * D);
    int prompt[3] = {0, -1, 5};
    int32_t t[3] = {40, 500, 950};
    sid_round_inputs in = {3, prompt, z, eps, zx, t};
    sid_iter_stats st = {0};
    if (be == &sid_backend_guard) sid_guard_stats_reset();
    sid_distill_fake_round(d, &in, &st), sid_distill_fake_update(d, &st);
    sid_distill_gen_round(d, &in, &st), sid_distill_gen_update(d, &st);
    sid_distill_ema(d);
    sid_distill_read_stats(d, &st);
    if (be == &sid_backend_guard) sid_guard_stats(NULL, NULL, downloads, down_bytes);
    const sid_params *nets[3] = {sid_distill_fake(d), sid_distill_gen(d), sid_distill_gen_ema(d)};
    *total = nets[0]->total;
    for (int j = 0; j < 3; j++) {
        after[j] = sid_malloc(*total * 4);
        sid_backend_or_cpu(be)->download(after[j], nets[j]->data, *total * 4);
    }
    EXPECT(isfinite(st.loss_fake) && isfinite(st.loss_gen) && st.loss_gen != 0, "%s: losses %g %g",
           sid_backend_or_cpu(be)->name, st.loss_fake, st.loss_gen);
    free(z), free(eps), free(zx);
    sid_distill_close(d);
}

static void test_iteration_on_devices_matches_cpu(void) {
    char teacher[512];
    snprintf(teacher, sizeof teacher, "%s/sid/teacher", test_data_dir());
    const int threads = sid_threads_get();
    sid_threads_set(1);
    float *cpu[3] = {0};
    size_t total = 0, downloads = 0, down_bytes = 0;
    iterate(teacher, NULL, cpu, &total, &downloads, &down_bytes);
    static const char *const names[3] = {"fake net", "generator", "EMA"};
    for (int b = 0; sid_backend_at(b) && cpu[2]; b++) {
        const sid_backend *be = sid_backend_at(b);
        if (be == &sid_backend_cpu) continue;
        if (!be->available()) {
            printf("SKIP %s (not usable here) ", be->name);
            continue;
        }
        float *dev[3] = {0};
        iterate(teacher, be, dev, &total, &downloads, &down_bytes);
        for (int j = 0; j < 3 && dev[j]; j++) {
            if (be == &sid_backend_guard) {
                EXPECT(memcmp(cpu[j], dev[j], total * 4) == 0, "%s on the guard device differs from the CPU", names[j]);
            } else {
                double worst = 0;
                for (size_t i = 0; i < total; i++) worst = fmax(worst, fabs((double)cpu[j][i] - dev[j][i]));
                EXPECT(worst < 2e-3, "%s on %s differs from the CPU by %.3g", names[j], be->name, worst);
            }
        }
        if (be == &sid_backend_guard)
            EXPECT(downloads == 3 && down_bytes == 2 * 3 * sizeof(float) + 4 * sizeof(double),
                   "an iteration downloaded %zu times, %zu bytes (want 3: two rounds' NaN flags and the stats block)",
                   downloads, down_bytes);
        for (int j = 0; j < 3; j++) free(dev[j]);
    }
    sid_threads_set(threads);
    for (int j = 0; j < 3; j++) free(cpu[j]);
}

static void test_bad_settings_fail_first(void) {
    sid_distill_cfg c = sid_distill_defaults();
    c.kappa[0] = -1;
    EXPECT(sid_distill_validate(&c) == -1 && strstr(sid_error(), "kappa1"), "%s", sid_error());
    c = sid_distill_defaults();
    c.tmin = 500, c.tmax = 400;
    EXPECT(sid_distill_validate(&c) == -1 && strstr(sid_error(), "tmin"), "%s", sid_error());
    c = sid_distill_defaults();
    c.batch = 10, c.micro = 4;
    EXPECT(sid_distill_validate(&c) == -1 && strstr(sid_error(), "multiple"), "%s", sid_error());
    c = sid_distill_defaults();
    c.batch = c.micro = SID_DISTILL_MAX_BATCH + 1;
    EXPECT(sid_distill_validate(&c) == -1 && strstr(sid_error(), "--batch"), "%s", sid_error());
    c = sid_distill_defaults();
    c.teacher_dir = "/nonexistent/teacher";
    EXPECT(sid_distill_open(&c) == NULL && strstr(sid_error(), "/nonexistent/teacher"), "%s", sid_error());
    c = sid_distill_defaults();
    char teacher[512];
    snprintf(teacher, sizeof teacher, "%s/sid/teacher", test_data_dir());
    c.teacher_dir = teacher, c.prompts_file = "/dev/null";
    EXPECT(sid_distill_open(&c) == NULL && strstr(sid_error(), "/dev/null"), "empty prompt file: %s", sid_error());
}

static void test_resume_is_exact(void) {
    char tmp[] = "/tmp/sid-distill-XXXXXX", a[128], b[128], pa[256], pb[256], teacher[512];
    if (!mkdtemp(tmp)) sid_die("mkdtemp");
    snprintf(teacher, sizeof teacher, "%s/sid/teacher", test_data_dir());
    snprintf(a, sizeof a, "%s/straight", tmp), snprintf(b, sizeof b, "%s/resumed", tmp);
    sid_distill_cfg c = sid_distill_defaults();
    c.teacher_dir = teacher, c.batch = c.micro = 2, c.duration_img = 8, c.tick_img = 2, c.snapshot_ticks = 2;
    c.out_dir = a;
    EXPECT(sid_distill_run(&c) == 0, "%s", sid_error());
    c.out_dir = b, c.stop_after_img = 4;
    EXPECT(sid_distill_run(&c) == 0, "%s", sid_error());
    c.resume = 1, c.stop_after_img = 0;
    EXPECT(sid_distill_run(&c) == 0, "%s", sid_error());
    snprintf(pa, sizeof pa, "%s/training-state.safetensors", a), snprintf(pb, sizeof pb, "%s/training-state.safetensors", b);
    EXPECT(test_same_file(pa, pb), "state after 4 + 4 resumed images differs from 8 straight");
    snprintf(pa, sizeof pa, "%s/generator/unet/diffusion_pytorch_model.safetensors", a);
    snprintf(pb, sizeof pb, "%s/generator/unet/diffusion_pytorch_model.safetensors", b);
    EXPECT(test_same_file(pa, pb), "exported generator differs after resuming");
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    EXPECT(system(cmd) == 0, "cleanup");
}

TEST_LIST(T(test_bad_settings_fail_first), T(test_one_iteration_matches_pytorch), T(test_clip_sample_matches_pytorch),
          T(test_dropped_sample_leaves_the_others), T(test_iteration_on_devices_matches_cpu), T(test_resume_is_exact))
TEST_MAIN("distill")
