/* log.c — leveled logging to stderr and, optionally, syslog. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

static enum yn_log_level min_lvl = YN_LOG_INFO;
static bool use_syslog;
static bool quiet;

void yn_log_init(const char *ident, enum yn_log_level min_level, bool to_syslog)
{
    min_lvl = min_level;
    use_syslog = to_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void yn_log_set_level(enum yn_log_level min_level)
{
    min_lvl = min_level;
}

void yn_log_quiet(bool q)
{
    quiet = q;
}

void yn_log(enum yn_log_level level, const char *fmt, ...)
{
    static const char *const tag[8] = {"", "", "", "error", "warning", "", "info", "debug"};
    if (level > min_lvl)
        return;
    va_list ap;
    if (!quiet) {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(stderr, "%s %s: ", when, tag[level & 7]);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    if (use_syslog) {
        va_start(ap, fmt);
        vsyslog(level, fmt, ap);
        va_end(ap);
    }
}
