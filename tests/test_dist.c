// Data-parallel distillation (src/dist/): `mpirun -np N sid distill` against one process at the
// same global batch, resuming with another number of ranks, and a rank that dies or hangs ending
// the whole run in bounded time with the last state dump intact. Runs the sid command (SID_BIN)
// under mpirun; SKIPs, visibly, where sid is built without MPI or mpirun is missing.
#define _DEFAULT_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "harness.h"
#include "io/safetensors.h"

static char g_tmp[64];
static const char *g_sid;
static int g_skip = -1;  // unknown yet

static int skip(void) {
    if (g_skip >= 0) return g_skip;
    g_sid = getenv("SID_BIN");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "command -v mpirun >/dev/null && %s info 2>/dev/null | grep -q 'mpi: built'", g_sid ? g_sid : "false");
    g_skip = !g_sid || system(cmd) != 0;
    if (g_skip) printf("SKIP (%s) ", !g_sid ? "SID_BIN not set" : "sid built without MPI, or no mpirun");
    if (!g_skip && !g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/sid-dist-XXXXXX");
        if (!mkdtemp(g_tmp)) sid_die("mkdtemp");
        // OpenMPI refuses root unless told; CI runs as root
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1), setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    return g_skip;
}

// distill on the test teacher: np ranks (0: no mpirun), into tmp/name, with extra flags.
static int run(int np, const char *name, const char *extra) {
    char cmd[2000], mpi[200] = "";
    if (np) snprintf(mpi, sizeof mpi, "mpirun -np %d --oversubscribe --bind-to none ", np);
    snprintf(cmd, sizeof cmd,
             "%s%s --threads 1 distill --teacher %s/sid/teacher --out %s/%s --batch 4 --tick 0.008 --snap 1 %s "
             ">%s/%s.log 2>&1",
             mpi, g_sid, test_data_dir(), g_tmp, name, extra, g_tmp, name);
    return system(cmd);
}

// Largest |a - b| over the named tensors of two state dumps.
static double tensors_diff(const char *a, const char *b, const char *file, const char *const *names, int nn) {
    char pa[256], pb[256];
    snprintf(pa, sizeof pa, "%s/%s/%s", g_tmp, a, file);
    snprintf(pb, sizeof pb, "%s/%s/%s", g_tmp, b, file);
    sid_safetensors sa, sb;
    if (sid_st_open(&sa, pa)) return test_fail(__FILE__, __LINE__, "%s", sid_error()), INFINITY;
    if (sid_st_open(&sb, pb)) return sid_st_close(&sa), test_fail(__FILE__, __LINE__, "%s", sid_error()), INFINITY;
    double worst = 0;
    for (int k = 0; k < nn; k++) {
        const sid_st_tensor *x = sid_st_find(&sa, names[k]), *y = sid_st_find(&sb, names[k]);
        const size_t n = x ? (size_t)sid_shape_numel(x->ndim, x->shape) : 0;
        if (!x || !y || (size_t)sid_shape_numel(y->ndim, y->shape) != n) {
            worst = INFINITY;
            continue;
        }
        float *u = sid_malloc(n * 4), *v = sid_malloc(n * 4);
        sid_st_read_f32(&sa, x, u), sid_st_read_f32(&sb, y, v);
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)u[i] - v[i]));
        free(u), free(v);
    }
    sid_st_close(&sa), sid_st_close(&sb);
    return worst;
}

static double state_diff(const char *a, const char *b) {
    static const char *const names[3] = {"fake", "gen", "gen_ema"};
    return tensors_diff(a, b, "training-state.safetensors", names, 3);
}

// The ranks sum their gradients in another order than one process's batch does, and Adam's first
// steps (update ~ lr x sign(g)) turn a flipped sign of a near-zero gradient into 2 lr: so weights
// agree to a few learning-rate steps (lr 2e-4), not bit for bit.
#define DP_TOL 2e-3

static void test_ranks_match_one_process(void) {
    if (skip()) return;
    EXPECT(run(0, "one", "--kimg 0.016") == 0, "one process failed (%s/one.log)", g_tmp);
    EXPECT(run(2, "two", "--kimg 0.016") == 0, "2 ranks failed (%s/two.log)", g_tmp);
    EXPECT(run(4, "four", "--kimg 0.016") == 0, "4 ranks failed (%s/four.log)", g_tmp);
    // on the guard device (gradients staged through the host for MPI): the CPU ranks' weights exactly
    EXPECT(run(2, "two-guard", "--kimg 0.016 --device guard") == 0, "2 ranks on the guard device failed (%s/two-guard.log)",
           g_tmp);
    EXPECT(state_diff("two", "two-guard") == 0, "2 ranks on the guard device differ from 2 on the CPU");
    const double d2 = state_diff("one", "two"), d4 = state_diff("one", "four");
    EXPECT(d2 < DP_TOL, "2 ranks vs one process: weights differ by %.3g", d2);
    EXPECT(d4 < DP_TOL, "4 ranks vs one process: weights differ by %.3g", d4);
    if (getenv("SID_TEST_VERBOSE")) printf("\n  max |dw|: 2 ranks %.3g, 4 ranks %.3g ", d2, d4);
    char p[300];
    snprintf(p, sizeof p, "%s/two/stats.jsonl", g_tmp);
    FILE *f = fopen(p, "r");
    int lines = 0, ch;
    while (f && (ch = fgetc(f)) != EOF) lines += ch == '\n';
    if (f) fclose(f);
    EXPECT(lines == 2, "rank 0 alone writes stats.jsonl: %d lines, want 2", lines);
}

static void test_resume_with_other_ranks(void) {
    if (skip()) return;
    EXPECT(run(2, "half", "--kimg 0.016 --stop-after 0.008") == 0, "2 ranks, first half (%s/half.log)", g_tmp);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "%s --threads 1 distill --resume %s/half >%s/half2.log 2>&1", g_sid, g_tmp, g_tmp);
    EXPECT(system(cmd) == 0, "resumed as one process (%s/half2.log)", g_tmp);
    char one[300];
    snprintf(one, sizeof one, "%s/one/training-state.safetensors", g_tmp);
    if (access(one, F_OK) != 0) EXPECT(run(0, "one", "--kimg 0.016") == 0, "one process");
    const double d = state_diff("one", "half");
    EXPECT(d < DP_TOL, "2 ranks then 1 process vs one process: weights differ by %.3g", d);
}

// train-teacher the same way: 2 ranks at batch 4 against one process at batch 4.
static void test_teacher_ranks_match_one_process(void) {
    if (skip()) return;
    if (access("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", F_OK) != 0) {
        printf("SKIP (Fashion-MNIST not installed) ");
        return;
    }
    char cmd[1200];
    for (int np = 1; np <= 2; np++) {
        snprintf(cmd, sizeof cmd,
                 "%s %s --threads 1 train-teacher --out %s/teacher%d --steps 4 --batch 4 --snapshot-every 2 "
                 ">%s/teacher%d.log 2>&1",
                 np > 1 ? "mpirun -np 2 --oversubscribe --bind-to none" : "", g_sid, g_tmp, np, g_tmp, np);
        EXPECT(system(cmd) == 0, "train-teacher on %d rank(s) failed (%s/teacher%d.log)", np, g_tmp, np);
    }
    static const char *const names[4] = {"unet.params", "unet.ema", "text_encoder.params", "text_encoder.ema"};
    const double d = tensors_diff("teacher1", "teacher2", "train_state.safetensors", names, 4);
    EXPECT(d < DP_TOL, "train-teacher, 2 ranks vs one process: weights differ by %.3g", d);
    if (getenv("SID_TEST_VERBOSE")) printf("\n  train-teacher max |dw|: %.3g ", d);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Starts a long 2-rank run, waits for its first state dump, then hits one rank with sig; the whole
// run must end, non-zero, within the bound, and the state must still resume.
static void kill_one_rank(const char *name, int sig) {
    char cmd[1200], state[300];
    snprintf(state, sizeof state, "%s/%s/training-state.safetensors", g_tmp, name);
    const pid_t pid = fork();
    if (pid == 0) {
        setenv("SID_DIST_TIMEOUT", "5", 1);
        snprintf(cmd, sizeof cmd,
                 "exec mpirun -np 2 --oversubscribe --bind-to none %s --threads 1 distill --teacher %s/sid/teacher "
                 "--out %s/%s --batch 4 --tick 0.008 --snap 1 --kimg 100 >%s/%s.log 2>&1",
                 g_sid, test_data_dir(), g_tmp, name, g_tmp, name);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double t0 = now_s();
    while (access(state, F_OK) != 0 && now_s() - t0 < 60) usleep(100 * 1000);
    EXPECT(access(state, F_OK) == 0, "%s: no state dump within 60 s (%s/%s.log)", name, g_tmp, name);
    // the rank processes: sid distill with this run's folder, not mpirun itself
    snprintf(cmd, sizeof cmd, "pgrep -f -- '^%s --threads 1 distill .*%s/%s ' | tail -n 1", g_sid, g_tmp, name);
    FILE *p = popen(cmd, "r");
    long victim = 0;
    if (p && fscanf(p, "%ld", &victim) != 1) victim = 0;
    if (p) pclose(p);
    EXPECT(victim > 0, "%s: no rank process found", name);
    if (victim > 0) kill((pid_t)victim, sig);
    t0 = now_s();
    int status = 0, done = 0;
    while (!done && now_s() - t0 < 60) {
        done = waitpid(pid, &status, WNOHANG) == pid;
        if (!done) usleep(100 * 1000);
    }
    const double took = now_s() - t0;
    if (!done) kill(pid, SIGKILL), waitpid(pid, &status, 0);
    if (victim > 0) kill((pid_t)victim, SIGKILL);  // a stopped rank the launcher could not end
    EXPECT(done, "%s: the run did not end within 60 s of the signal", name);
    EXPECT(!WIFEXITED(status) || WEXITSTATUS(status) != 0, "%s: the run ended with exit 0", name);
    if (getenv("SID_TEST_VERBOSE")) printf("\n  %s: ended %.1f s after signal %d ", name, took, sig);
    snprintf(cmd, sizeof cmd, "%s --threads 1 distill --resume %s/%s --kimg 100 --stop-after 0.004 >%s/%s-resume.log 2>&1",
             g_sid, g_tmp, name, g_tmp, name);
    EXPECT(system(cmd) == 0, "%s: the last state dump does not resume (%s/%s-resume.log)", name, g_tmp, name);
}

static void test_dead_rank_ends_the_run(void) {
    if (skip()) return;
    kill_one_rank("killed", SIGKILL);
}

static void test_hung_rank_ends_the_run(void) {
    if (skip()) return;
    kill_one_rank("stopped", SIGSTOP);  // the other rank's watchdog (SID_DIST_TIMEOUT=5) ends it
}

static void test_cleanup(void) {
    if (g_tmp[0] && !getenv("SID_TEST_KEEP")) test_remove_tree(g_tmp);
}

TEST_LIST(T(test_ranks_match_one_process), T(test_resume_with_other_ranks), T(test_teacher_ranks_match_one_process), T(test_dead_rank_ends_the_run),
          T(test_hung_rank_ends_the_run), T(test_cleanup))
TEST_MAIN("dist")
