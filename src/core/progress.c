#define _POSIX_C_SOURCE 200809L
#include "progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double sid_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void sid_format_duration(double s, char *buf, int n) {
    if (s < 60) snprintf(buf, (size_t)n, "%.1fs", s);
    else if (s < 3600) snprintf(buf, (size_t)n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, (size_t)n, "%dh%02dm", (int)s / 3600, ((int)s / 60) % 60);
}

static void draw(sid_progress *p, double now) {
    const int width = 30;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * width);
    double el = now - p->t_start, rate = el > 0 ? (double)p->done / el : 0;
    char eta[32] = "?", elapsed[32];
    if (rate > 0) sid_format_duration((double)(p->total - p->done) / rate, eta, sizeof eta);
    sid_format_duration(el, elapsed, sizeof elapsed);
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %lld/%lld %.1f/s %s ETA %s  ", (long long)p->done, (long long)p->total, rate, elapsed, eta);
    fflush(stderr);
    p->t_drawn = now;
}

void sid_progress_start(sid_progress *p, const char *label, int64_t total) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = p->t_drawn = sid_now();
    p->enabled = isatty(STDERR_FILENO);
    if (p->enabled) draw(p, p->t_start);
}

void sid_progress_update(sid_progress *p, int64_t done) {
    p->done = done;
    if (!p->enabled) return;
    double now = sid_now();
    if (now - p->t_drawn >= 0.2 || done >= p->total) draw(p, now);
}

void sid_progress_finish(sid_progress *p) {
    if (!p->enabled) return;
    draw(p, sid_now());
    fputc('\n', stderr);
}
