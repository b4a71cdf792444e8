#include "io/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

static void set_open_error(const char *path, int err) {
    if (err == ENOENT)
        sid_set_error("%s: no such file", path);
    else
        sid_set_error("%s: cannot open: %s", path, strerror(err));
}

int sid_read_file(const char *path, char **data, size_t *len) {
    return sid_read_file_max(path, data, len, SID_READ_FILE_MAX);
}

int sid_read_file_max(const char *path, char **data, size_t *len, size_t max_bytes) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_open_error(path, errno);
        return -1;
    }
    struct stat sb;
    size_t hint = 4096;
    if (fstat(fileno(f), &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            fclose(f);
            sid_set_error("%s: is a directory, expected a file", path);
            return -1;
        }
        // Character devices (/dev/null as an empty list, a terminal) and pipes (process
        // substitution) are read, bounded by max_bytes below, so /dev/zero ends in an error
        // rather than in exhausted memory; block devices and sockets are no input files.
        if (!S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode) && !S_ISCHR(sb.st_mode)) {
            fclose(f);
            sid_set_error("%s: not a regular file", path);
            return -1;
        }
        if (S_ISREG(sb.st_mode) && (uintmax_t)sb.st_size > max_bytes) {
            fclose(f);
            sid_set_error("%s: file is %jd bytes, more than the %zu-byte limit for this kind of file", path,
                          (intmax_t)sb.st_size, max_bytes);
            return -1;
        }
        // Only a hint: pipes and /proc files report 0.
        if (sb.st_size > 0) hint = (size_t)sb.st_size;
    }
    size_t cap = hint + 1, n = 0;
    char *buf = sid_malloc(cap);
    int too_long = 0;
    for (;;) {
        size_t want = cap - 1 - n, got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want) break;
        // Full: probe for one more byte before doubling, so a file whose size
        // fstat reported exactly is never copied into a buffer twice its size.
        int c = fgetc(f);
        if (c == EOF) break;
        if (n >= max_bytes) {  // a file that grew, a pipe or a /proc file past the limit
            too_long = 1;
            break;
        }
        cap = cap > max_bytes / 2 ? max_bytes + 1 : cap * 2;
        char *grown = realloc(buf, cap);
        if (!grown) sid_die("out of memory reading %s", path);
        buf = grown;
        buf[n++] = (char)c;
    }
    int failed = ferror(f);
    int err = errno;
    fclose(f);
    if (too_long || n > max_bytes) {
        free(buf);
        sid_set_error("%s: more than the %zu-byte limit for this kind of file", path, max_bytes);
        return -1;
    }
    if (failed) {
        free(buf);
        sid_set_error("%s: read error: %s", path, strerror(err));
        return -1;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

FILE *sid_atomic_begin(const char *path, char *tmp_path, size_t tmp_cap) {
    int k = snprintf(tmp_path, tmp_cap, "%s.tmp.%ld", path, (long)getpid());
    if (k < 0 || (size_t)k >= tmp_cap) {
        sid_set_error("%s: path too long", path);
        return NULL;
    }
    FILE *f = fopen(tmp_path, "wb");
    if (!f) {
        int err = errno;
        if (err == ENOENT)
            sid_set_error("%s: cannot write: the folder does not exist", path);
        else
            sid_set_error("%s: cannot write: %s", path, strerror(err));
        return NULL;
    }
    return f;
}

// Makes the rename itself durable; a failure here loses nothing already
// written, so it is not reported.
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

int sid_atomic_commit(FILE *f, const char *tmp_path, const char *path) {
    const char *what = NULL;
    int err = 0;
    if (ferror(f)) {
        what = "write error";
        err = errno;
    } else if (fflush(f) != 0) {
        what = "write error";
        err = errno;
    } else if (fsync(fileno(f)) != 0 && errno != EINVAL) {  // EINVAL: a file system without fsync
        what = "fsync failed";
        err = errno;
    }
    if (fclose(f) != 0 && !what) {
        what = "close failed";
        err = errno;
    }
    if (!what && rename(tmp_path, path) != 0) {
        what = "rename failed";
        err = errno;
    }
    if (what) {
        remove(tmp_path);
        sid_set_error("%s: %s: %s", path, what, err ? strerror(err) : "unknown cause");
        return -1;
    }
    sync_parent_dir(path);
    return 0;
}

void sid_atomic_abort(FILE *f, const char *tmp_path) {
    if (f) fclose(f);
    remove(tmp_path);
}

int sid_mkdir_p(const char *path) {
    size_t n = strlen(path);
    if (n == 0) {
        sid_set_error("mkdir: empty path");
        return -1;
    }
    char *buf = sid_malloc(n + 1);
    memcpy(buf, path, n + 1);
    // Visit each prefix ending before a '/', then the whole path.
    for (size_t i = 1; i <= n; i++) {
        if (i < n && buf[i] != '/') continue;
        if (i < n && buf[i - 1] == '/') continue;  // "a//b": the prefix was already made
        char saved = buf[i];
        buf[i] = '\0';
        int rc = mkdir(buf, 0777);
        int err = errno;
        struct stat sb;
        if (rc != 0 && !(err == EEXIST && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            if (err == EEXIST)
                sid_set_error("%s: cannot create folder: %s exists and is not a folder", path, buf);
            else
                sid_set_error("%s: cannot create folder %s: %s", path, buf, strerror(err));
            free(buf);
            return -1;
        }
        buf[i] = saved;
    }
    free(buf);
    return 0;
}

int sid_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

int sid_remove_partial_files(const char *dir, int depth) {
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    int n = 0;
    char p[4096];
    struct stat sb;
    for (struct dirent *e; (e = readdir(dd));) {
        if (e->d_name[0] == '.') continue;
        if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= sizeof p) continue;
        if (lstat(p, &sb)) continue;
        if (S_ISREG(sb.st_mode) && strstr(e->d_name, ".tmp.")) n += unlink(p) == 0;
        else if (depth > 0 && S_ISDIR(sb.st_mode)) n += sid_remove_partial_files(p, depth - 1);
    }
    closedir(dd);
    return n;
}
