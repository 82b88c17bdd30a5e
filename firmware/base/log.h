/* log.h — a small leveled logger: stderr always, syslog when enabled. */
#ifndef YN_LOG_H
#define YN_LOG_H

#include <stdbool.h>

enum yn_log_level { YN_LOG_ERR = 3, YN_LOG_WARN = 4, YN_LOG_INFO = 6, YN_LOG_DEBUG = 7 };

/* ident: syslog identity; min_level: messages above it are dropped. */
void yn_log_init(const char *ident, enum yn_log_level min_level, bool to_syslog);
void yn_log_set_level(enum yn_log_level min_level);
/* Silence stderr (tests that provoke errors on purpose); syslog unaffected. */
void yn_log_quiet(bool quiet);
void yn_log(enum yn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define yn_err(...)   yn_log(YN_LOG_ERR, __VA_ARGS__)
#define yn_warn(...)  yn_log(YN_LOG_WARN, __VA_ARGS__)
#define yn_info(...)  yn_log(YN_LOG_INFO, __VA_ARGS__)
#define yn_debug(...) yn_log(YN_LOG_DEBUG, __VA_ARGS__)

#endif
