/* files.c — bounded reads of regular files only (files.h). */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int yn_file_open_regular(const char *path, size_t max, FILE **f, size_t *size, char *err,
                         size_t errlen)
{
    *f = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path,
                 e == ELOOP ? "a symbolic link: only regular files are read" : strerror(e));
        return e == ENOENT ? YN_ENOENT : e == ELOOP ? YN_EPERM : YN_EIO;
    }
    struct stat sb;
    int rc = YN_OK;
    if (fstat(fd, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = YN_EIO;
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (a FIFO, device or directory is never read)",
                 path);
        rc = YN_EPERM;
    } else if ((uint64_t)sb.st_size > max) {
        snprintf(err, errlen, "%s: %lld bytes, over the limit of %zu", path, (long long)sb.st_size,
                 max);
        rc = YN_ELIMIT;
    }
    /* a regular file: blocking reads are fine (and what stdio expects) */
    if (rc == YN_OK && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = YN_EIO;
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

int yn_file_read_regular(const char *path, size_t max, char **data, size_t *len, char *err,
                         size_t errlen)
{
    *data = NULL;
    *len = 0;
    FILE *f;
    size_t size;
    int rc = yn_file_open_regular(path, max, &f, &size, err, errlen);
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
