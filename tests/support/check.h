/* check.h — the assertions and clocks of the plain (non-cmocka) integration
 * programs: CHECK counts a check and reports a failure with its line, and the
 * program ends with yn_check_summary(). */
#ifndef YN_CHECK_H
#define YN_CHECK_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

extern int yn_checks, yn_failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        yn_checks++;                                                                               \
        if (!(cond)) {                                                                             \
            yn_failures++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        CHECK(rc_ == (want), "%s = %s, want %s", #expr, yn_strerror(rc_), yn_strerror(want));      \
    } while (0)

/* CLOCK_MONOTONIC milliseconds, and a sleep that finishes. */
int64_t yn_test_now_ms(void);
void yn_test_sleep_ms(int ms);

#endif
