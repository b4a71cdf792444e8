// Command-line flags: a table per command, parsed with one-line errors for unknown flags,
// missing values, non-numbers and out-of-range values, before any work starts.
#ifndef SID_FLAGS_H
#define SID_FLAGS_H

// SID_FLAG_INT is a SID_FLAG_NUM that must be a whole number ("--batch 16.9" is refused, not cut).
typedef enum { SID_FLAG_STR, SID_FLAG_NUM, SID_FLAG_INT, SID_FLAG_BOOL } sid_flag_kind;

typedef struct {
    const char *name;
    sid_flag_kind kind;
    void *dst;          // const char ** / double * (NUM and INT) / int *
    double min, max;    // inclusive range for numbers
    const char *help;
} sid_flag;

// Parses argv[0..argc) (the arguments after the command name). Non-flag arguments go to
// positional[] in order when it is given (at most 8; NULL-terminated), else they are an error.
// "--help" prints the table and exits 0. 0, or -1 with sid_error() set.
int sid_flags_parse(const char *cmd, const sid_flag *flags, int n, int argc, char **argv, const char **positional);
// The same, also setting given[i] = 1 for each flag i that the command line named (given: n ints,
// zeroed here), so that a caller can tell a default from a value the user chose.
int sid_flags_parse_given(const char *cmd, const sid_flag *flags, int n, int argc, char **argv, const char **positional,
                          int *given);

// The backend a command runs on: --device NAME, else $SID_DEVICE, else the CPU; one line naming
// the device when it is not compiled in or not usable here ("cuda" without a GPU). A command that
// cannot run on a device yet passes cpu_only, and then anything but "cpu" is refused in one line.
struct sid_backend;
const struct sid_backend *sid_cli_device(const char *cmd, const char *device, int cpu_only);
// The --device flag of every command that takes one: {SID_DEVICE_FLAG(&device)}.
#define SID_DEVICE_FLAG(ptr) \
    "--device", SID_FLAG_STR, (ptr), 0, 0, "cpu (default), guard, guard-bf16 or cuda (env SID_DEVICE)"

#endif
