// Whole-file reads and crash-safe writes. A writer that dies halfway (power
// loss, full disk, ^C) must never leave a half-written checkpoint under the
// real name, so every output goes to "<path>.tmp.<pid>" and is renamed over
// the old file only after its bytes are on disk.
#ifndef SID_IO_FILE_H
#define SID_IO_FILE_H
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// The most sid_read_file reads: every file read whole is a config, a tokenizer file or a
// prompt list, and a larger one is a mistake (or /proc/kcore) that must not exhaust memory.
#define SID_READ_FILE_MAX ((size_t)64 << 20)

// Reads the whole file into a fresh buffer with a NUL appended (not counted in
// *len), so text formats can be parsed in place. Free with free(). Refuses
// block devices and sockets, and anything over SID_READ_FILE_MAX bytes (checked
// before reading a regular file, while reading a pipe or character device such
// as /dev/zero), with one line naming the file.
int sid_read_file(const char *path, char **data, size_t *len);
// The same with another limit.
int sid_read_file_max(const char *path, char **data, size_t *len, size_t max_bytes);

// Opens path.tmp.<pid> for writing and stores its name in tmp_path. NULL (with
// an error naming path) when it cannot be created, e.g. the folder is missing.
FILE *sid_atomic_begin(const char *path, char *tmp_path, size_t tmp_cap);
// Checks the stream for earlier write errors, flushes, fsyncs, closes and
// renames tmp_path over path. Always consumes f; on failure the temp file is
// removed and the old path is untouched.
int sid_atomic_commit(FILE *f, const char *tmp_path, const char *path);
// Closes f and removes the temp file; for writers that fail midway.
void sid_atomic_abort(FILE *f, const char *tmp_path);
// Removes the "<name>.tmp.<pid>" files that killed writers left in dir and its subfolders down to
// `depth` levels; returns how many. For a run folder at the start of a run: its only writer.
int sid_remove_partial_files(const char *dir, int depth);

// mkdir -p: creates every missing folder of path; existing folders are fine.
int sid_mkdir_p(const char *path);
// 1 if anything exists at path, else 0.
int sid_file_exists(const char *path);

#ifdef __cplusplus
}
#endif

#endif
