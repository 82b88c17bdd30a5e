/* fileio.c — atomic, durable file replacement. */
#include "fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static int errno_status(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return YN_ENOSPC;
    case EROFS:
        return YN_EROFS;
    case EACCES:
    case EPERM:
        return YN_EPERM;
    case ENOENT:
        return YN_ENOENT;
    default:
        return YN_EIO;
    }
}

int yn_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp)
        return YN_EINVAL;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");

    unlink(tmp); /* a stale .new from an interrupted write */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
    if (fd < 0) {
        int e = errno;
        yn_err("cannot create '%s': %s", tmp, strerror(e));
        return errno_status(e);
    }
    const char *p = data;
    size_t left = len;
    int rc = YN_OK;
    while (left > 0 && rc == YN_OK) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = errno_status(n < 0 ? errno : EIO);
        else {
            p += n;
            left -= (size_t)n;
        }
    }
    /* the mode asked for, whatever the umask made of it */
    if (rc == YN_OK && (fchmod(fd, mode & 07777) != 0 || fsync(fd) != 0))
        rc = errno_status(errno);
    if (close(fd) != 0 && rc == YN_OK)
        rc = errno_status(errno);
    if (rc == YN_OK && rename(tmp, path) != 0)
        rc = errno_status(errno);
    if (rc != YN_OK) {
        yn_err("cannot write '%s': %s", path, yn_strerror(rc));
        unlink(tmp);
        return rc;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) != 0)
            rc = errno_status(errno);
        close(dfd);
    }
    return rc;
}

int yn_file_read_all(const char *path, size_t max_len, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? YN_EINVAL : errno_status(errno);
    struct stat st;
    int rc = YN_OK;
    if (fstat(fd, &st) != 0)
        rc = errno_status(errno);
    else if (!S_ISREG(st.st_mode))
        rc = YN_EINVAL;
    else if ((uint64_t)st.st_size > max_len)
        rc = YN_ELIMIT;
    char *buf = rc == YN_OK ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == YN_OK && !buf)
        rc = YN_ENOMEM;
    size_t got = 0;
    while (rc == YN_OK && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) /* shrank under us, or an I/O error */
            rc = n < 0 ? errno_status(errno) : YN_EIO;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != YN_OK) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return YN_OK;
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
