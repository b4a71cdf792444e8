// Threads: OpenMP, with a passive wait policy. Spinning workers were measured
// to run up to 8x slower on 2 cores when another process shares them, and
// libgomp reads the policy only at start-up, so sid_threads_init re-executes
// the program once with OMP_WAIT_POLICY=PASSIVE when the user has not chosen.
#ifndef SID_THREADS_H
#define SID_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

void sid_threads_init(int argc, char **argv);
void sid_threads_set(int n);  // n <= 0: all cores
int sid_threads_get(void);

#ifdef __cplusplus
}
#endif

#endif
