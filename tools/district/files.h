/* files.h — reading files an operator or a USB stick hands the district:
 * only regular files, never through a symbolic link (O_NOFOLLOW), never
 * blocking on a FIFO or a device (O_NONBLOCK, then fstat), the size checked
 * before a byte is read. */
#ifndef YN_DISTRICT_FILES_H
#define YN_DISTRICT_FILES_H

#include <stddef.h>
#include <stdio.h>

#include "status.h"

/* Open path for reading if it is a regular file of at most max bytes: *f is
 * a stdio stream on it (fclose it), *size its size. YN_ENOENT (missing),
 * YN_EPERM (a link, a FIFO, a device, a directory: not a regular file),
 * YN_ELIMIT (over max), YN_EIO; err says which in a sentence. */
int yn_file_open_regular(const char *path, size_t max, FILE **f, size_t *size, char *err,
                         size_t errlen) YN_MUST_CHECK;

/* The whole regular file (as above), NUL-terminated, malloc'd into *data. */
int yn_file_read_regular(const char *path, size_t max, char **data, size_t *len, char *err,
                         size_t errlen) YN_MUST_CHECK;

#endif
