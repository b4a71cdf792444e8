// A progress bar with rate and ETA on stderr, drawn only when stderr is a terminal.
#ifndef SID_PROGRESS_H
#define SID_PROGRESS_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *label;
    int64_t total, done;
    double t_start, t_drawn;
    int enabled;
} sid_progress;

double sid_now(void);  // monotonic seconds
void sid_progress_start(sid_progress *p, const char *label, int64_t total);
void sid_progress_update(sid_progress *p, int64_t done);
void sid_progress_finish(sid_progress *p);
// "1h02m", "3m05s", "12.3s"
void sid_format_duration(double seconds, char *buf, int n);

#ifdef __cplusplus
}
#endif

#endif
