/* fileio.c — durable files: atomic replacement, the fsyncs that make it
 * durable, bounded reads of regular files, and the fault hook of the tests. */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* ---- the fault hook ------------------------------------------------------ */

static struct {
    unsigned ops; /* armed kinds (enum yn_file_op); 0 = disarmed */
    long nth;     /* the one that fails, counted from 1 */
    long seen;    /* operations of the armed kinds since arming */
    int err;      /* errno of the failure */
    bool fired;
} fault;

void yn_file_fault(unsigned ops, long nth, int err)
{
    __atomic_store_n(&fault.ops, 0, __ATOMIC_SEQ_CST);
    fault.nth = nth;
    fault.err = err;
    __atomic_store_n(&fault.seen, 0, __ATOMIC_SEQ_CST);
    fault.fired = false;
    __atomic_store_n(&fault.ops, nth > 0 ? ops : 0u, __ATOMIC_SEQ_CST);
}

long yn_file_fault_count(void)
{
    return __atomic_load_n(&fault.seen, __ATOMIC_SEQ_CST);
}

bool yn_file_fault_fired(void)
{
    return fault.fired;
}

/* Before an operation of kind op: false (errno set) when it is the one to fail. */
static bool may(enum yn_file_op op)
{
    if (!(__atomic_load_n(&fault.ops, __ATOMIC_SEQ_CST) & op))
        return true;
    if (__atomic_add_fetch(&fault.seen, 1, __ATOMIC_SEQ_CST) != fault.nth)
        return true;
    fault.fired = true;
    errno = fault.err;
    return false;
}

/* ---- the steps ----------------------------------------------------------- */

void yn_file_dir_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        *(slash == out ? slash + 1 : slash) = '\0';
}

int yn_file_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        if (!may(YN_FILE_OP_WRITE))
            return yn_status_of_errno(errno);
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? yn_status_of_errno(errno) : YN_EIO;
        p += n;
        len -= (size_t)n;
    }
    return YN_OK;
}

int yn_file_sync(int fd)
{
    if (!may(YN_FILE_OP_SYNC) || fsync(fd) != 0)
        return yn_status_of_errno(errno);
    return YN_OK;
}

/* fsync what path names (a file, or with O_DIRECTORY a directory). */
static int sync_named(const char *path, int flags, const char *what)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0) {
        int e = errno;
        yn_err("cannot open %s '%s' to sync it: %s", what, path, strerror(e));
        return yn_status_of_errno(e);
    }
    int rc = yn_file_sync(fd);
    if (rc != YN_OK)
        yn_err("cannot sync %s '%s': %s", what, path, strerror(errno));
    close(fd);
    return rc;
}

int yn_file_sync_path(const char *path)
{
    return sync_named(path, 0, "file");
}

int yn_file_sync_dir(const char *dir)
{
    return sync_named(dir, O_DIRECTORY, "folder");
}

int yn_file_sync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    yn_file_dir_of(path, dir, sizeof dir);
    return yn_file_sync_dir(dir);
}

int yn_file_rename(const char *from, const char *to)
{
    if (!may(YN_FILE_OP_RENAME) || rename(from, to) != 0) {
        int e = errno;
        yn_err("cannot rename '%s' to '%s': %s", from, to, strerror(e));
        return yn_status_of_errno(e);
    }
    return yn_file_sync_dir_of(to);
}

int yn_file_mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return YN_ELIMIT;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat sb;
        if (mkdir(buf, mode & 07777) == 0) {
            int rc = yn_file_sync_dir_of(buf);
            if (rc != YN_OK)
                return rc;
        } else if (errno != EEXIST) {
            int e = errno;
            yn_err("cannot create folder '%s': %s", buf, strerror(e));
            return yn_status_of_errno(e);
        } else if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            yn_err("cannot create folder '%s': something else is in the way", buf);
            return YN_EINVAL;
        }
        *p = saved;
        if (!saved)
            return YN_OK;
    }
}

/* ---- atomic replacement -------------------------------------------------- */

int yn_file_atomic_open(yn_file_atomic *f, const char *path, unsigned mode)
{
    f->fd = -1;
    f->mode = mode & 07777;
    f->status = YN_OK;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
        snprintf(f->tmp, sizeof f->tmp, "%s.new", path) >= (int)sizeof f->tmp)
        return YN_ELIMIT;
    unlink(f->tmp); /* a stale .new from an interrupted write */
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, f->mode);
    if (f->fd < 0) {
        int e = errno;
        yn_err("cannot create '%s': %s", f->tmp, strerror(e));
        return yn_status_of_errno(e);
    }
    return YN_OK;
}

int yn_file_atomic_write(yn_file_atomic *f, const void *data, size_t len)
{
    if (f->status == YN_OK && f->fd >= 0)
        f->status = yn_file_write_all(f->fd, data, len);
    return f->fd < 0 ? YN_EINVAL : f->status;
}

void yn_file_atomic_abort(yn_file_atomic *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    unlink(f->tmp);
}

int yn_file_atomic_commit(yn_file_atomic *f)
{
    if (f->fd < 0)
        return YN_EINVAL;
    int rc = f->status;
    /* the mode asked for, whatever the umask made of it */
    if (rc == YN_OK && fchmod(f->fd, f->mode) != 0)
        rc = yn_status_of_errno(errno);
    if (rc == YN_OK)
        rc = yn_file_sync(f->fd);
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0 && rc == YN_OK)
        rc = yn_status_of_errno(errno);
    if (rc != YN_OK) {
        yn_err("cannot write '%s': %s", f->path, yn_strerror(rc));
        unlink(f->tmp);
        return rc;
    }
    if (!may(YN_FILE_OP_RENAME) || rename(f->tmp, f->path) != 0) {
        rc = yn_status_of_errno(errno);
        yn_err("cannot put '%s' in place: %s", f->path, yn_strerror(rc));
        unlink(f->tmp);
        return rc;
    }
    return yn_file_sync_dir_of(f->path);
}

int yn_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    yn_file_atomic f;
    int rc = yn_file_atomic_open(&f, path, mode);
    if (rc != YN_OK)
        return rc;
    rc = yn_file_atomic_write(&f, data, len);
    if (rc != YN_OK) {
        yn_err("cannot write '%s': %s", path, yn_strerror(rc));
        yn_file_atomic_abort(&f);
        return rc;
    }
    return yn_file_atomic_commit(&f);
}

/* ---- reading ------------------------------------------------------------- */

int yn_file_open_regular(const char *path, size_t max_len, FILE **f, size_t *size, char *err,
                         size_t errlen)
{
    char none[8];
    if (!err) {
        err = none;
        errlen = sizeof none;
    }
    *f = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path,
                 e == ELOOP ? "a symbolic link: only regular files are read" : strerror(e));
        return e == ELOOP ? YN_EINVAL : yn_status_of_errno(e);
    }
    struct stat sb;
    int rc = YN_OK;
    if (fstat(fd, &sb) != 0) {
        rc = yn_status_of_errno(errno);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (a FIFO, device or directory is never read)",
                 path);
        rc = YN_EINVAL;
    } else if ((uint64_t)sb.st_size > max_len) {
        snprintf(err, errlen, "%s: %lld bytes, over the limit of %zu", path, (long long)sb.st_size,
                 max_len);
        rc = YN_ELIMIT;
    }
    /* a regular file: blocking reads are fine (and what stdio expects) */
    if (rc == YN_OK && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        rc = yn_status_of_errno(errno);
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (rc == YN_OK && !(*f = fdopen(fd, "rb"))) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = YN_ENOMEM;
    }
    if (rc != YN_OK) {
        close(fd);
        return rc;
    }
    *size = (size_t)sb.st_size;
    return YN_OK;
}

int yn_file_read_regular(const char *path, size_t max_len, char **data, size_t *len, char *err,
                         size_t errlen)
{
    char none[8];
    if (!err) {
        err = none;
        errlen = sizeof none;
    }
    *data = NULL;
    *len = 0;
    FILE *f;
    size_t size;
    int rc = yn_file_open_regular(path, max_len, &f, &size, err, errlen);
    if (rc != YN_OK)
        return rc;
    char *buf = malloc(size + 1);
    size_t got = buf ? fread(buf, 1, size + 1, f) : 0; /* one more: a file that grew */
    bool failed = !buf || ferror(f) || got != size;
    fclose(f);
    if (failed) {
        snprintf(err, errlen, "%s: %s", path,
                 !buf         ? "out of memory"
                 : got > size ? "grew while read"
                              : "read failed");
        free(buf);
        return !buf ? YN_ENOMEM : YN_EIO;
    }
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return YN_OK;
}

int yn_file_read_all(const char *path, size_t max_len, char **data, size_t *len)
{
    return yn_file_read_regular(path, max_len, data, len, NULL, 0);
}

int yn_file_remove_stale(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    size_t plen = strlen(prefix);
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < plen + 4 || strncmp(e->d_name, prefix, plen) != 0 ||
            strcmp(e->d_name + n - 4, ".new") != 0)
            continue;
        char path[PATH_MAX];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (unlink(path) == 0) {
            yn_info("removed %s, left by an interrupted write", path);
            removed++;
        } else {
            yn_warn("cannot remove %s, left by an interrupted write: %s", path, strerror(errno));
        }
    }
    closedir(d);
    return removed;
}
