/* time64.h — the build's time contract: time_t, struct timespec and off_t are
 * 64-bit on every board, so nothing wraps in January 2038 and no file offset
 * is cut at 2 GiB. 64-bit boards have it by default; 32-bit ones (armhf) get
 * it from -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64 (glibc >= 2.34), which the
 * Makefile passes to every file, with this header forced in (-include).
 * A file compiled without them stops here, loudly. Which library calls may
 * not take a time_t from us (Debian 12's armhf libraries keep a 32-bit one):
 * README.md "Cross-compiling", checked by tests/time-abi. */
#ifndef YN_TIME64_H
#define YN_TIME64_H

#include <sys/types.h>
#include <time.h>

_Static_assert(sizeof(time_t) == 8, "time_t must be 64-bit: build with -D_TIME_BITS=64 "
                                    "-D_FILE_OFFSET_BITS=64 (see the Makefile)");
_Static_assert(sizeof(((struct timespec *)0)->tv_sec) == 8,
               "struct timespec must carry a 64-bit tv_sec: build with -D_TIME_BITS=64");
_Static_assert(sizeof(off_t) == 8, "off_t must be 64-bit: build with -D_FILE_OFFSET_BITS=64");

#endif
