// The guard device (guard.h, docs/engine.md "The guard device"): the CPU kernels behind a
// memory model as strict as a GPU's.
//
// Memory layout. Each allocation is one anonymous mmap: its data pages, then one guard page
// that is never accessible. The buffer starts 16-byte aligned (malloc's alignment, so the
// kernels see the same alignment as on the CPU backend) and ends within 15 bytes of the guard
// page - exactly at it when the size is a multiple of 16, as float buffers of 4k elements are.
// The regions live in a table sorted by address, under a mutex; each has a count of the ops and
// transfers using it now. Between ops the data pages are PROT_NONE; an op (or transfer) makes the
// regions of its own arguments PROT_READ|PROT_WRITE for its duration (the count makes this
// correct when several threads run ops on shared buffers side by side), so a kernel that touches
// a buffer it was not given faults as well.
//
// A SIGSEGV handler (installed at the first allocation, chained to the one before it) prints one
// line naming the guard buffer that a faulting address falls in, and a backtrace, then lets the
// access fault again under the default action, so the process dies by SIGSEGV at the faulting
// line (a debugger or core file shows it). Faults elsewhere go to the previous handler.
#define _DEFAULT_SOURCE
#include "ops/guard/guard.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct {
    char *map;        // mapping start, page-aligned
    size_t data;      // bytes of the data pages; the guard page follows
    char *user;       // the buffer: 16-byte aligned, ending within 15 bytes of the guard page
    size_t size;      // bytes requested
    int open;         // ops and transfers using it now; PROT_NONE when 0
} region;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static region **regions;  // sorted by map
static size_t n_regions, cap_regions, live_bytes;
static size_t st_up, st_up_bytes, st_down, st_down_bytes;
static size_t page;
static const char *volatile current_op;  // the op running now (a hint for the fault message)
static struct sigaction old_segv;
static pthread_once_t once = PTHREAD_ONCE_INIT;

// ---------------------------------------------------------------- the region table
// The region whose mapping (data and guard page) holds p, or NULL. Caller holds the lock (or is
// the fault handler, which reads without it: the process is going down).
static region *by_map(const void *p) {
    const char *c = p;
    size_t lo = 0, hi = n_regions;  // first index whose map > c
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (regions[mid]->map <= c) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    region *r = regions[lo - 1];
    return c < r->map + r->data + page ? r : NULL;
}

static void insert(region *r) {
    if (n_regions == cap_regions) {
        cap_regions = cap_regions ? 2 * cap_regions : 256;
        region **n = realloc(regions, cap_regions * sizeof *regions);
        if (!n) sid_die("guard: out of memory growing the region table");
        regions = n;
    }
    size_t i = n_regions;
    while (i > 0 && regions[i - 1]->map > r->map) i--;  // new mappings usually come at either end
    memmove(regions + i + 1, regions + i, (n_regions - i) * sizeof *regions);
    regions[i] = r;
    n_regions++;
    live_bytes += r->size;
}


// ---------------------------------------------------------------- the fault handler
static void say(const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
    const char *a = si->si_addr;
    region *r = by_map(a);
    if (r) {
        char line[320];
        const char *op = current_op;
        if (a >= r->user && a < r->user + r->size)
            snprintf(line, sizeof line,
                     "guard: host access to device memory at %p (byte %zu of the %zu-byte guard buffer %p)%s%s%s\n",
                     (const void *)a, (size_t)(a - r->user), r->size, (void *)r->user, op ? " during " : "",
                     op ? op : "", op ? " (a buffer it was not given)" : "; device memory is readable only in ops and transfers");
        else if (a >= r->user)
            snprintf(line, sizeof line, "guard: access %zu bytes past the end of the %zu-byte guard buffer %p%s%s\n",
                     (size_t)(a - (r->user + r->size)), r->size, (void *)r->user, op ? " during " : "", op ? op : "");
        else
            snprintf(line, sizeof line, "guard: access %zu bytes before the %zu-byte guard buffer %p%s%s\n",
                     (size_t)(r->user - a), r->size, (void *)r->user, op ? " during " : "", op ? op : "");
        say(line);
        void *bt[32];
        int n = backtrace(bt, 32);
        say("guard: backtrace; the frame after the signal trampoline is the access, and\n"
            "guard: addr2line -f -e PROGRAM OFFSET (the +0x... in parentheses) gives its line:\n");
        backtrace_symbols_fd(bt, n, 2);
        signal(SIGSEGV, SIG_DFL);  // fault again, now fatal: death by SIGSEGV at the access
        return;
    } else if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) {
        old_segv.sa_sigaction(sig, si, ctx);
        return;
    } else if (!(old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
        return;
    }
    sigaction(SIGSEGV, &old_segv, NULL);  // fault again under the previous (default) action
}

static void init(void) {
    page = (size_t)sysconf(_SC_PAGESIZE);
    void *bt[1];
    backtrace(bt, 1);  // loads libgcc now, not inside the handler
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

// ---------------------------------------------------------------- memory
static void *guard_alloc(size_t bytes) {
    pthread_once(&once, init);
    if (bytes > SIZE_MAX / 4) sid_die("guard: allocation of %zu bytes is absurd", bytes);
    size_t body = ((bytes ? bytes : 1) + 15) / 16 * 16, data = (body + page - 1) / page * page;
    char *m = mmap(NULL, data + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) sid_die("guard: cannot map %zu bytes (%s)", bytes, strerror(errno));
    region *r = malloc(sizeof *r);
    if (!r) sid_die("guard: out of memory");
    *r = (region){.map = m, .data = data, .user = m + data - body, .size = bytes};
    pthread_mutex_lock(&lock);
    insert(r);
    pthread_mutex_unlock(&lock);
    return r->user;  // zero-filled: fresh anonymous pages
}

static void guard_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&lock);
    region *r = by_map(p);
    if (!r || r->user != (char *)p) {
        fprintf(stderr, "guard: free: %p is not the start of a guard buffer%s\n", p,
                r ? " (it points inside one)" : " (a host pointer, or freed twice)");
        abort();
    }
    if (r->open) {
        fprintf(stderr, "guard: free: the %zu-byte guard buffer %p is in use by an op\n", r->size, p);
        abort();
    }
    size_t i = 0;
    while (regions[i] != r) i++;
    memmove(regions + i, regions + i + 1, (n_regions - i - 1) * sizeof *regions);
    n_regions--;
    live_bytes -= r->size;
    pthread_mutex_unlock(&lock);
    if (munmap(r->map, r->data + page) != 0) sid_die("guard: munmap failed");
    free(r);
}

// ---------------------------------------------------------------- argument checks
typedef struct {
    const char *name;
    const void *p;
    int64_t bytes;  // extent the op touches from p; negative: a negative size argument
    region *r;
    int act;        // an activation (or activation-gradient) output: rounded to bf16 in bf16 mode
} garg;

// bf16 mode (sid_guard_set_bf16): after each op, its activation outputs are rounded to bf16
// (round to nearest even), as bf16 activation buffers would store them; statistics, losses,
// parameter gradients and the SiD arithmetic stay fp32.
static int bf16_mode;
void sid_guard_set_bf16(int on) { bf16_mode = on != 0; }
int sid_guard_bf16(void) { return bf16_mode; }
static void round_to_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = sid_bf16_to_f32(sid_f32_to_bf16(x[i]));
}

static int64_t cnt(int64_t a, int64_t b) {  // a * b; -1 when either is negative, saturating
    if (a < 0 || b < 0) return -1;
    int64_t c;
    return __builtin_mul_overflow(a, b, &c) ? INT64_MAX : c;
}
static int64_t sz(size_t n) { return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n; }

// Caller holds the lock. Dies with one line naming op, argument and pointer.
static region *check(const char *op, const char *name, const void *p, int64_t bytes) {
    const char *c = p;
    region *r = by_map(p);
    char why[200];
    if (!r)
        snprintf(why, sizeof why, "is not device memory (a host pointer, or a freed guard buffer)");
    else if (c < r->user)
        snprintf(why, sizeof why, "lies %zu bytes before the %zu-byte guard buffer %p", (size_t)(r->user - c), r->size,
                 (void *)r->user);
    else if (c > r->user + r->size)
        snprintf(why, sizeof why, "lies %zu bytes past the end of the %zu-byte guard buffer %p",
                 (size_t)(c - r->user - r->size), r->size, (void *)r->user);
    else if (bytes < 0)
        snprintf(why, sizeof why, "has a negative extent (a negative size argument)");
    else if ((uint64_t)bytes > (uint64_t)(r->user + r->size - c))
        snprintf(why, sizeof why, ": the op touches %lld bytes from it, but its %zu-byte guard buffer %p holds %zu from there",
                 (long long)bytes, r->size, (void *)r->user, (size_t)(r->user + r->size - c));
    else
        return r;
    fprintf(stderr, "guard: %s: argument '%s' = %p%s%s\n", op, name, p, why[0] == ':' ? "" : " ", why);
    abort();
}

// Opens or closes only the pages of an argument's extent: a protection change costs time in
// proportion to the pages it covers, and an op touches a small part of a large buffer (an arena,
// a table of text embeddings); reading past the extent faults at page granularity.
static void set_prot_extent(const garg *a, int prot) {
    if (!a->r || a->bytes <= 0) return;
    const uintptr_t base = (uintptr_t)a->r->map, end = base + a->r->data;
    uintptr_t lo = (uintptr_t)a->p & ~(uintptr_t)(page - 1), hi = ((uintptr_t)a->p + (uintptr_t)a->bytes + page - 1) & ~(uintptr_t)(page - 1);
    if (lo < base) lo = base;
    if (hi > end) hi = end;
    if (hi > lo && mprotect((void *)lo, hi - lo, prot) != 0)
        sid_die("guard: mprotect of %zu bytes of a %zu-byte buffer failed (%s; more live guard buffers than "
                "vm.max_map_count allows?)",
                (size_t)(hi - lo), a->r->size, strerror(errno));
}

static void enter(const char *op, garg *a, int n) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n; i++) a[i].r = a[i].p ? check(op, a[i].name, a[i].p, a[i].bytes) : NULL;
    for (int i = 0; i < n; i++)
        if (a[i].r) a[i].r->open++, set_prot_extent(&a[i], PROT_READ | PROT_WRITE);
    current_op = op;
    pthread_mutex_unlock(&lock);
}

static void leave(garg *a, int n) {
    pthread_mutex_lock(&lock);
    if (bf16_mode)
        for (int i = 0; i < n; i++)
            if (a[i].act && a[i].r && a[i].bytes > 0) round_to_bf16((float *)a[i].p, a[i].bytes / 4);
    for (int i = 0; i < n; i++)
        if (a[i].r) a[i].r->open--, set_prot_extent(&a[i], PROT_NONE);
    current_op = NULL;
    pthread_mutex_unlock(&lock);
}

#define F32(nm, ptr, n) {nm, ptr, cnt(n, 4), NULL, 0}
#define ACT(nm, ptr, n) {nm, ptr, cnt(n, 4), NULL, 1}
#define N3(a, b, c) cnt(cnt(a, b), c)
#define N4(a, b, c, d) cnt(N3(a, b, c), d)
#define RUN(op, call, ...)                              \
    do {                                                \
        garg a_[] = {__VA_ARGS__};                      \
        const int n_ = (int)(sizeof a_ / sizeof a_[0]); \
        enter(op, a_, n_);                              \
        call;                                           \
        leave(a_, n_);                                  \
    } while (0)

// ---------------------------------------------------------------- transfers
static void host_side(const char *op, const char *name, const void *p, size_t bytes) {
    if (!bytes) return;
    pthread_mutex_lock(&lock);
    region *first = by_map(p), *last = by_map((const char *)p + bytes - 1);
    pthread_mutex_unlock(&lock);
    if (first || last) {
        fprintf(stderr, "guard: %s: argument '%s' = %p is device memory, not host memory\n", op, name, p);
        abort();
    }
}

static void guard_upload(void *dst, const void *host_src, size_t bytes) {
    host_side("upload", "host_src", host_src, bytes);
    RUN("upload", memcpy(dst, host_src, bytes), {"dst", dst, sz(bytes), NULL});
    pthread_mutex_lock(&lock);
    st_up++, st_up_bytes += bytes;
    pthread_mutex_unlock(&lock);
}

static void guard_download(void *host_dst, const void *src, size_t bytes) {
    host_side("download", "host_dst", host_dst, bytes);
    RUN("download", memcpy(host_dst, src, bytes), {"src", src, sz(bytes), NULL});
    pthread_mutex_lock(&lock);
    st_down++, st_down_bytes += bytes;
    pthread_mutex_unlock(&lock);
}

static void guard_sync(void) {}
static int guard_available(void) { return 1; }

void *sid_guard_alloc_poisoned(size_t bytes) {
    void *p = guard_alloc(bytes);
    const uint32_t nan = 0x7fc0deadu;
    RUN("alloc_poisoned",
        {
            uint32_t *w = p;
            for (size_t i = 0; i < bytes / 4; i++) w[i] = nan;
            memset((char *)p + bytes / 4 * 4, 0xff, bytes % 4);
        },
        {"p", p, sz(bytes), NULL});
    return p;
}

void sid_guard_stats(size_t *uploads, size_t *upload_bytes, size_t *downloads, size_t *download_bytes) {
    pthread_mutex_lock(&lock);
    if (uploads) *uploads = st_up;
    if (upload_bytes) *upload_bytes = st_up_bytes;
    if (downloads) *downloads = st_down;
    if (download_bytes) *download_bytes = st_down_bytes;
    pthread_mutex_unlock(&lock);
}

void sid_guard_stats_reset(void) {
    pthread_mutex_lock(&lock);
    st_up = st_up_bytes = st_down = st_down_bytes = 0;
    pthread_mutex_unlock(&lock);
}

void sid_guard_live(size_t *buffers, size_t *bytes) {
    pthread_mutex_lock(&lock);
    if (buffers) *buffers = n_regions;
    if (bytes) *bytes = live_bytes;
    pthread_mutex_unlock(&lock);
}

int sid_guard_owns(const void *p) {
    pthread_mutex_lock(&lock);
    region *r = by_map(p);
    int own = r && (const char *)p >= r->user && (const char *)p < r->user + r->size;
    pthread_mutex_unlock(&lock);
    return own;
}

// ---------------------------------------------------------------- the ops
// Each wrapper names every pointer argument with the extent the op touches (ops.h shapes),
// checks and opens them, runs the CPU kernel, and closes them again.
static void g_linear_fwd(float *out, const float *in, const float *w, const float *b, int M, int K, int N) {
    RUN("linear_fwd", sid_linear_fwd(out, in, w, b, M, K, N), ACT("out", out, cnt(M, N)), F32("in", in, cnt(M, K)),
        F32("w", w, cnt(N, K)), F32("b", b, N));
}
static void g_linear_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w, int M,
                         int K, int N) {
    RUN("linear_bwd", sid_linear_bwd(din, dw, db, dout, in, w, M, K, N), ACT("din", din, cnt(M, K)),
        F32("dw", dw, cnt(N, K)), F32("db", db, N), F32("dout", dout, cnt(M, N)), F32("in", in, cnt(M, K)),
        F32("w", w, cnt(N, K)));
}

// conv2d: the shape is a host struct; its sizes give the extents.
typedef struct {
    int64_t in, w, out;
} conv_ext;
static conv_ext conv_extents(const char *op, const sid_conv2d_shape *s) {
    if (!s) {
        fprintf(stderr, "guard: %s: argument 's' (the shape) is NULL\n", op);
        abort();
    }
    if (s->stride <= 0 || s->k <= 0 || s->pad < 0 || s->kw < 0 || sid_conv2d_padw(s) < 0) {
        fprintf(stderr, "guard: %s: argument 's' = %p has kernel %dx%d, stride %d, pad %dx%d\n", op, (const void *)s,
                s->k, sid_conv2d_kw(s), s->stride, s->pad, sid_conv2d_padw(s));
        abort();
    }
    int ho = sid_conv2d_hout(s), wo = sid_conv2d_wout(s);
    return (conv_ext){N4(s->n, s->cin, s->h, s->w), N4(s->cout, s->cin, s->k, sid_conv2d_kw(s)),
                      ho < 0 || wo < 0 ? -1 : N4(s->n, s->cout, ho, wo)};
}
static void g_conv2d_fwd(float *out, const float *in, const float *w, const float *b, const sid_conv2d_shape *s) {
    conv_ext e = conv_extents("conv2d_fwd", s);
    RUN("conv2d_fwd", sid_conv2d_fwd(out, in, w, b, s), ACT("out", out, e.out), F32("in", in, e.in),
        F32("w", w, e.w), F32("b", b, s->cout));
}
static void g_conv2d_bwd(float *din, float *dw, float *db, const float *dout, const float *in, const float *w,
                         const sid_conv2d_shape *s) {
    conv_ext e = conv_extents("conv2d_bwd", s);
    RUN("conv2d_bwd", sid_conv2d_bwd(din, dw, db, dout, in, w, s), ACT("din", din, e.in), F32("dw", dw, e.w),
        F32("db", db, s->cout), F32("dout", dout, e.out), F32("in", in, e.in), F32("w", w, e.w));
}

static void g_groupnorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int N, int C, int HW, int G, float eps) {
    RUN("groupnorm_fwd", sid_groupnorm_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps),
        ACT("out", out, N3(N, C, HW)), F32("mean", mean, cnt(N, G)), F32("rstd", rstd, cnt(N, G)),
        F32("in", in, N3(N, C, HW)), F32("gamma", gamma, C), F32("beta", beta, C));
}
static void g_groupnorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int N, int C, int HW, int G) {
    RUN("groupnorm_bwd", sid_groupnorm_bwd(din, dgamma, dbeta, dout, in, gamma, mean, rstd, N, C, HW, G),
        ACT("din", din, N3(N, C, HW)), F32("dgamma", dgamma, C), F32("dbeta", dbeta, C),
        F32("dout", dout, N3(N, C, HW)), F32("in", in, N3(N, C, HW)), F32("gamma", gamma, C),
        F32("mean", mean, cnt(N, G)), F32("rstd", rstd, cnt(N, G)));
}
static void g_groupnorm_silu_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                                 const float *beta, int N, int C, int HW, int G, float eps) {
    RUN("groupnorm_silu_fwd", sid_groupnorm_silu_fwd(out, mean, rstd, in, gamma, beta, N, C, HW, G, eps),
        ACT("out", out, N3(N, C, HW)), F32("mean", mean, cnt(N, G)), F32("rstd", rstd, cnt(N, G)),
        F32("in", in, N3(N, C, HW)), F32("gamma", gamma, C), F32("beta", beta, C));
}
static void g_groupnorm_silu_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                                 const float *gamma, const float *beta, const float *mean, const float *rstd, int N,
                                 int C, int HW, int G) {
    RUN("groupnorm_silu_bwd",
        sid_groupnorm_silu_bwd(din, dgamma, dbeta, dout, in, gamma, beta, mean, rstd, N, C, HW, G),
        ACT("din", din, N3(N, C, HW)), F32("dgamma", dgamma, C), F32("dbeta", dbeta, C),
        F32("dout", dout, N3(N, C, HW)), F32("in", in, N3(N, C, HW)), F32("gamma", gamma, C),
        F32("beta", beta, C), F32("mean", mean, cnt(N, G)), F32("rstd", rstd, cnt(N, G)));
}
static void g_layernorm_fwd(float *out, float *mean, float *rstd, const float *in, const float *gamma,
                            const float *beta, int M, int C, float eps) {
    RUN("layernorm_fwd", sid_layernorm_fwd(out, mean, rstd, in, gamma, beta, M, C, eps), ACT("out", out, cnt(M, C)),
        F32("mean", mean, M), F32("rstd", rstd, M), F32("in", in, cnt(M, C)), F32("gamma", gamma, C),
        F32("beta", beta, C));
}
static void g_layernorm_bwd(float *din, float *dgamma, float *dbeta, const float *dout, const float *in,
                            const float *gamma, const float *mean, const float *rstd, int M, int C) {
    RUN("layernorm_bwd", sid_layernorm_bwd(din, dgamma, dbeta, dout, in, gamma, mean, rstd, M, C),
        ACT("din", din, cnt(M, C)), F32("dgamma", dgamma, C), F32("dbeta", dbeta, C), F32("dout", dout, cnt(M, C)),
        F32("in", in, cnt(M, C)), F32("gamma", gamma, C), F32("mean", mean, M), F32("rstd", rstd, M));
}

static void g_act_fwd(sid_act a, float *out, const float *in, size_t n) {
    RUN("act_fwd", sid_act_fwd(a, out, in, n), ACT("out", out, sz(n)), F32("in", in, sz(n)));
}
static void g_act_bwd(sid_act a, float *din, const float *dout, const float *in, size_t n) {
    RUN("act_bwd", sid_act_bwd(a, din, dout, in, n), ACT("din", din, sz(n)), F32("dout", dout, sz(n)),
        F32("in", in, sz(n)));
}
static void g_geglu_fwd(float *out, const float *in, int M, int H) {
    RUN("geglu_fwd", sid_geglu_fwd(out, in, M, H), ACT("out", out, cnt(M, H)), F32("in", in, N3(M, 2, H)));
}
static void g_geglu_bwd(float *din, const float *dout, const float *in, int M, int H) {
    RUN("geglu_bwd", sid_geglu_bwd(din, dout, in, M, H), ACT("din", din, N3(M, 2, H)), F32("dout", dout, cnt(M, H)),
        F32("in", in, N3(M, 2, H)));
}
static void g_softmax_fwd(float *out, const float *in, int M, int C) {
    RUN("softmax_fwd", sid_softmax_fwd(out, in, M, C), ACT("out", out, cnt(M, C)), F32("in", in, cnt(M, C)));
}
static void g_softmax_bwd(float *din, const float *dout, const float *out, int M, int C) {
    RUN("softmax_bwd", sid_softmax_bwd(din, dout, out, M, C), ACT("din", din, cnt(M, C)),
        F32("dout", dout, cnt(M, C)), ACT("out", out, cnt(M, C)));
}

static void g_attention_fwd(float *out, float *lse, const float *q, const float *k, const float *v, int B, int Nq,
                            int Nk, int H, int dh, int causal) {
    const int64_t nq = N4(B, Nq, H, dh), nk = N4(B, Nk, H, dh);
    RUN("attention_fwd", sid_attention_fwd(out, lse, q, k, v, B, Nq, Nk, H, dh, causal), ACT("out", out, nq),
        F32("lse", lse, N3(B, H, Nq)), F32("q", q, nq), F32("k", k, nk), F32("v", v, nk));
}
static void g_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, const float *out, const float *lse, int B, int Nq, int Nk, int H, int dh,
                            int causal) {
    const int64_t nq = N4(B, Nq, H, dh), nk = N4(B, Nk, H, dh);
    RUN("attention_bwd", sid_attention_bwd(dq, dk, dv, dout, q, k, v, out, lse, B, Nq, Nk, H, dh, causal),
        ACT("dq", dq, nq), ACT("dk", dk, nk), ACT("dv", dv, nk), F32("dout", dout, nq), F32("q", q, nq),
        F32("k", k, nk), F32("v", v, nk), ACT("out", out, nq), F32("lse", lse, N3(B, H, Nq)));
}

static void g_upsample2x_fwd(float *out, const float *in, int NC, int H, int W) {
    RUN("upsample2x_fwd", sid_upsample2x_fwd(out, in, NC, H, W), ACT("out", out, cnt(N3(NC, H, W), 4)),
        F32("in", in, N3(NC, H, W)));
}
static void g_upsample2x_bwd(float *din, const float *dout, int NC, int H, int W) {
    RUN("upsample2x_bwd", sid_upsample2x_bwd(din, dout, NC, H, W), ACT("din", din, N3(NC, H, W)),
        F32("dout", dout, cnt(N3(NC, H, W), 4)));
}
// pool2d: the shape is a host struct, as for conv2d.
static int64_t pool_out(const char *op, const sid_pool2d_shape *s) {
    if (!s) {
        fprintf(stderr, "guard: %s: argument 's' (the shape) is NULL\n", op);
        abort();
    }
    if (s->stride <= 0 || s->k <= 0 || s->pad < 0 || (s->kind != SID_POOL_MAX && s->kind != SID_POOL_AVG)) {
        fprintf(stderr, "guard: %s: argument 's' = %p has kernel %d, stride %d, pad %d, kind %d\n", op, (const void *)s,
                s->k, s->stride, s->pad, (int)s->kind);
        abort();
    }
    const int ho = sid_pool2d_hout(s), wo = sid_pool2d_wout(s);
    return ho < 0 || wo < 0 ? -1 : N3(s->nc, ho, wo);
}
static void g_pool2d_fwd(float *out, const float *in, const sid_pool2d_shape *s) {
    const int64_t no = pool_out("pool2d_fwd", s);
    RUN("pool2d_fwd", sid_pool2d_fwd(out, in, s), ACT("out", out, no), F32("in", in, N3(s->nc, s->h, s->w)));
}
static void g_pool2d_bwd(float *din, const float *dout, const float *in, const sid_pool2d_shape *s) {
    const int64_t no = pool_out("pool2d_bwd", s), ni = N3(s->nc, s->h, s->w);
    RUN("pool2d_bwd", sid_pool2d_bwd(din, dout, in, s), ACT("din", din, ni), F32("dout", dout, no), F32("in", in, ni));
}
static void g_concat_fwd(float *out, const float *a, const float *b, int N, int Ca, int Cb, int HW) {
    const int64_t C = Ca < 0 || Cb < 0 ? -1 : (int64_t)Ca + Cb;
    RUN("concat_fwd", sid_concat_fwd(out, a, b, N, Ca, Cb, HW), ACT("out", out, N3(N, C, HW)),
        F32("a", a, N3(N, Ca, HW)), F32("b", b, N3(N, Cb, HW)));
}
static void g_concat_bwd(float *da, float *db, const float *dout, int N, int Ca, int Cb, int HW) {
    const int64_t C = Ca < 0 || Cb < 0 ? -1 : (int64_t)Ca + Cb;
    RUN("concat_bwd", sid_concat_bwd(da, db, dout, N, Ca, Cb, HW), ACT("da", da, N3(N, Ca, HW)),
        ACT("db", db, N3(N, Cb, HW)), F32("dout", dout, N3(N, C, HW)));
}
static void g_transpose_fwd(float *out, const float *in, int N, int R, int C) {
    RUN("transpose_fwd", sid_transpose_fwd(out, in, N, R, C), ACT("out", out, N3(N, R, C)),
        F32("in", in, N3(N, R, C)));
}
static void g_transpose_bwd(float *din, const float *dout, int N, int R, int C) {
    RUN("transpose_bwd", sid_transpose_bwd(din, dout, N, R, C), ACT("din", din, N3(N, R, C)),
        F32("dout", dout, N3(N, R, C)));
}

static void g_add_fwd(float *out, const float *a, const float *b, size_t n) {
    RUN("add_fwd", sid_add_fwd(out, a, b, n), ACT("out", out, sz(n)), F32("a", a, sz(n)), F32("b", b, sz(n)));
}
static void g_add_bwd(float *da, float *db, const float *dout, size_t n) {
    RUN("add_bwd", sid_add_bwd(da, db, dout, n), ACT("da", da, sz(n)), ACT("db", db, sz(n)),
        F32("dout", dout, sz(n)));
}
static void g_fill(float *x, float value, size_t n) { RUN("fill", sid_fill(x, value, n), F32("x", x, sz(n))); }
static void g_scale_fwd(float *out, const float *in, float alpha, size_t n) {
    RUN("scale_fwd", sid_scale_fwd(out, in, alpha, n), ACT("out", out, sz(n)), F32("in", in, sz(n)));
}
static void g_scale_bwd(float *din, const float *dout, float alpha, size_t n) {
    RUN("scale_bwd", sid_scale_bwd(din, dout, alpha, n), ACT("din", din, sz(n)), F32("dout", dout, sz(n)));
}
static void g_mul_fwd(float *out, const float *a, const float *b, size_t n) {
    RUN("mul_fwd", sid_mul_fwd(out, a, b, n), ACT("out", out, sz(n)), F32("a", a, sz(n)), F32("b", b, sz(n)));
}
static void g_mul_bwd(float *da, float *db, const float *dout, const float *a, const float *b, size_t n) {
    RUN("mul_bwd", sid_mul_bwd(da, db, dout, a, b, n), ACT("da", da, sz(n)), ACT("db", db, sz(n)),
        F32("dout", dout, sz(n)), F32("a", a, sz(n)), F32("b", b, sz(n)));
}
static void g_add_channel_bias_fwd(float *out, const float *in, const float *bias, int N, int C, int HW) {
    RUN("add_channel_bias_fwd", sid_add_channel_bias_fwd(out, in, bias, N, C, HW), ACT("out", out, N3(N, C, HW)),
        F32("in", in, N3(N, C, HW)), F32("bias", bias, cnt(N, C)));
}
static void g_add_channel_bias_bwd(float *din, float *dbias, const float *dout, int N, int C, int HW) {
    RUN("add_channel_bias_bwd", sid_add_channel_bias_bwd(din, dbias, dout, N, C, HW), ACT("din", din, N3(N, C, HW)),
        F32("dbias", dbias, cnt(N, C)), F32("dout", dout, N3(N, C, HW)));
}

static void g_timestep_embedding_fwd(float *out, const float *t, int N, int dim, int flip_sin_to_cos, float freq_shift,
                                     float max_period) {
    RUN("timestep_embedding_fwd", sid_timestep_embedding_fwd(out, t, N, dim, flip_sin_to_cos, freq_shift, max_period),
        ACT("out", out, cnt(N, dim)), F32("t", t, N));
}
static void g_timestep_embedding_bwd(float *dt, const float *dout, const float *t, int N, int dim, int flip_sin_to_cos,
                                     float freq_shift, float max_period) {
    RUN("timestep_embedding_bwd",
        sid_timestep_embedding_bwd(dt, dout, t, N, dim, flip_sin_to_cos, freq_shift, max_period), F32("dt", dt, N),
        F32("dout", dout, cnt(N, dim)), F32("t", t, N));
}

// The token table's extent is (largest id + 1) rows, read from the ids themselves (the op does
// not take the vocabulary size); a negative id is an out-of-bounds read as well.
static int64_t id_rows(const char *op, const int32_t *ids, int64_t n) {
    if (!ids) return 0;
    int64_t rows = 0, bad = -1;
    RUN(op,
        for (int64_t i = 0; i < n && bad < 0; i++) {
            if (ids[i] < 0) bad = i;
            else if (ids[i] + (int64_t)1 > rows) rows = ids[i] + (int64_t)1;
        },
        F32("ids", ids, n));
    if (bad >= 0) {
        fprintf(stderr, "guard: %s: argument 'ids' = %p holds a negative id at [%lld]\n", op, (const void *)ids,
                (long long)bad);
        abort();
    }
    return rows;
}
static void g_embedding_fwd(float *out, const int32_t *ids, const float *tok, const float *pos, int B, int T, int C) {
    const int64_t rows = id_rows("embedding_fwd", ids, cnt(B, T));
    RUN("embedding_fwd", sid_embedding_fwd(out, ids, tok, pos, B, T, C), ACT("out", out, N3(B, T, C)),
        F32("ids", ids, cnt(B, T)), F32("tok", tok, cnt(rows, C)), F32("pos", pos, cnt(T, C)));
}
static void g_embedding_bwd(float *dtok, float *dpos, const float *dout, const int32_t *ids, int B, int T, int C) {
    const int64_t rows = id_rows("embedding_bwd", ids, cnt(B, T));
    RUN("embedding_bwd", sid_embedding_bwd(dtok, dpos, dout, ids, B, T, C), F32("dtok", dtok, cnt(rows, C)),
        F32("dpos", dpos, cnt(T, C)), F32("dout", dout, N3(B, T, C)), F32("ids", ids, cnt(B, T)));
}

#define REDUCE(op)                                                                                                \
    static void g_##op##_fwd(float *out, const float *a, const float *b, int N, int D) {                         \
        RUN(#op "_fwd", sid_##op##_fwd(out, a, b, N, D), F32("out", out, N), F32("a", a, cnt(N, D)),              \
            F32("b", b, cnt(N, D)));                                                                              \
    }                                                                                                             \
    static void g_##op##_bwd(float *da, float *db, const float *dout, const float *a, const float *b, int N, int D) { \
        RUN(#op "_bwd", sid_##op##_bwd(da, db, dout, a, b, N, D), F32("da", da, cnt(N, D)), F32("db", db, cnt(N, D)), \
            F32("dout", dout, N), F32("a", a, cnt(N, D)), F32("b", b, cnt(N, D)));                               \
    }
REDUCE(mse)
REDUCE(mean_abs)
REDUCE(dot)
#undef REDUCE

// ---- SiD-LSG arithmetic: coefficients a, s are [N]; tensors [N, D]; losses and counts one double.
#define F64(nm, ptr, n) {nm, ptr, cnt(n, 8), NULL}
static int64_t szi(int N, size_t D) { return N < 0 ? -1 : cnt(N, sz(D)); }
static void g_cfg_combine_fwd(float *out, const float *uncond, const float *cond, float kappa, size_t n) {
    RUN("cfg_combine_fwd", sid_cfg_combine_fwd(out, uncond, cond, kappa, n), F32("out", out, sz(n)),
        F32("uncond", uncond, sz(n)), F32("cond", cond, sz(n)));
}
static void g_cfg_combine_bwd(float *duncond, float *dcond, const float *dout, float kappa, size_t n) {
    RUN("cfg_combine_bwd", sid_cfg_combine_bwd(duncond, dcond, dout, kappa, n), F32("duncond", duncond, sz(n)),
        F32("dcond", dcond, sz(n)), F32("dout", dout, sz(n)));
}
static void g_add_noise_fwd(float *xt, const float *x0, const float *eps, const float *a, const float *s, int N,
                            size_t D) {
    RUN("add_noise_fwd", sid_add_noise_fwd(xt, x0, eps, a, s, N, D), F32("xt", xt, szi(N, D)),
        F32("x0", x0, szi(N, D)), F32("eps", eps, szi(N, D)), F32("a", a, N), F32("s", s, N));
}
static void g_add_noise_bwd(float *dx0, float *deps, const float *dxt, const float *a, const float *s, int N,
                            size_t D) {
    RUN("add_noise_bwd", sid_add_noise_bwd(dx0, deps, dxt, a, s, N, D), F32("dx0", dx0, szi(N, D)),
        F32("deps", deps, szi(N, D)), F32("dxt", dxt, szi(N, D)), F32("a", a, N), F32("s", s, N));
}
static void g_x0_from_eps_fwd(float *x0, const float *xt, const float *eps, const float *a, const float *s, int N,
                              size_t D) {
    RUN("x0_from_eps_fwd", sid_x0_from_eps_fwd(x0, xt, eps, a, s, N, D), F32("x0", x0, szi(N, D)),
        F32("xt", xt, szi(N, D)), F32("eps", eps, szi(N, D)), F32("a", a, N), F32("s", s, N));
}
static void g_x0_from_eps_bwd(float *dxt, float *deps, const float *dx0, const float *a, const float *s, int N,
                              size_t D) {
    RUN("x0_from_eps_bwd", sid_x0_from_eps_bwd(dxt, deps, dx0, a, s, N, D), F32("dxt", dxt, szi(N, D)),
        F32("deps", deps, szi(N, D)), F32("dx0", dx0, szi(N, D)), F32("a", a, N), F32("s", s, N));
}
static void g_clamp_fwd(float *out, const float *in, float lo, float hi, size_t n) {
    RUN("clamp_fwd", sid_clamp_fwd(out, in, lo, hi, n), F32("out", out, sz(n)), F32("in", in, sz(n)));
}
static void g_clamp_bwd(float *din, const float *dout, const float *in, float lo, float hi, size_t n) {
    RUN("clamp_bwd", sid_clamp_bwd(din, dout, in, lo, hi, n), F32("din", din, sz(n)), F32("dout", dout, sz(n)),
        F32("in", in, sz(n)));
}
static void g_dsm_loss_fwd(double *loss, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    RUN("dsm_loss_fwd", sid_dsm_loss_fwd(loss, eps_hat, eps, scale, N, D), F64("loss", loss, 1),
        F32("eps_hat", eps_hat, szi(N, D)), F32("eps", eps, szi(N, D)));
}
static void g_dsm_loss_bwd(float *deps_hat, const float *eps_hat, const float *eps, float scale, int N, size_t D) {
    RUN("dsm_loss_bwd", sid_dsm_loss_bwd(deps_hat, eps_hat, eps, scale, N, D), F32("deps_hat", deps_hat, szi(N, D)),
        F32("eps_hat", eps_hat, szi(N, D)), F32("eps", eps, szi(N, D)));
}
static void g_sid_loss_fwd(double *loss, const float *xg, const float *yr, const float *yf, float alpha, float scale,
                           int N, size_t D) {
    RUN("sid_loss_fwd", sid_sid_loss_fwd(loss, xg, yr, yf, alpha, scale, N, D), F64("loss", loss, 1),
        F32("xg", xg, szi(N, D)), F32("yr", yr, szi(N, D)), F32("yf", yf, szi(N, D)));
}
static void g_sid_loss_bwd(float *dxg, float *dyr, float *dyf, const float *xg, const float *yr, const float *yf,
                           float alpha, float scale, int N, size_t D) {
    RUN("sid_loss_bwd", sid_sid_loss_bwd(dxg, dyr, dyf, xg, yr, yf, alpha, scale, N, D), F32("dxg", dxg, szi(N, D)),
        F32("dyr", dyr, szi(N, D)), F32("dyf", dyf, szi(N, D)), F32("xg", xg, szi(N, D)), F32("yr", yr, szi(N, D)),
        F32("yf", yf, szi(N, D)));
}
static void g_nan_rows(float *flags, const float *x, int N, size_t D) {
    RUN("nan_rows", sid_nan_rows(flags, x, N, D), F32("flags", flags, N), F32("x", x, szi(N, D)));
}
static void g_sanitize(float *x, size_t n, float posinf, float neginf, double *count) {
    RUN("sanitize", sid_sanitize(x, n, posinf, neginf, count), F32("x", x, sz(n)), F64("count", count, 1));
}
static void g_adam(float *w, const float *g, float *m, float *v, size_t n, float lr, float beta1, float beta2,
                   float eps, float weight_decay, int decoupled, int64_t step) {
    RUN("adam", sid_adam(w, g, m, v, n, lr, beta1, beta2, eps, weight_decay, decoupled, step), F32("w", w, sz(n)),
        F32("g", g, sz(n)), F32("m", m, sz(n)), F32("v", v, sz(n)));
}
static void g_ema(float *ema, const float *w, size_t n, float beta) {
    RUN("ema", sid_ema(ema, w, n, beta), F32("ema", ema, sz(n)), F32("w", w, sz(n)));
}
// The table's extent is (largest index + 1) rows, read from the indices (as the embedding's ids).
static void g_gather_rows(float *out, const float *table, const int32_t *idx, int m, size_t row) {
    const int64_t rows = id_rows("gather_rows", idx, m);
    RUN("gather_rows", sid_gather_rows(out, table, idx, m, row), F32("out", out, szi(m, row)),
        F32("table", table, cnt(rows, sz(row))), F32("idx", idx, m));
}

#define X(name) .name = g_##name,
const sid_backend sid_backend_guard = {
    .name = "guard", .available = guard_available, .alloc = guard_alloc, .free = guard_free,
    .upload = guard_upload, .download = guard_download, .sync = guard_sync,
    SID_OPS(X)
};
#undef X
