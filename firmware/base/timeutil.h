/* timeutil.h — time and calendar helpers (base layer).
 *
 * The monotonic clock for code outside a yn_clock (threads, tools, backends
 * below the clock HAL: hal/clock/clock.h is the terminal's time, with its evidence
 * and its sim), and the project's one calendar arithmetic: proleptic
 * Gregorian dates as YYYYMMDD integers (H. Hinnant's days_from_civil and
 * civil_from_days, integers only), and the Asia/Shanghai civil date of a UTC
 * moment. China has kept UTC+8 without daylight saving since 1991; records
 * are UTC and meal periods, days and months are Asia/Shanghai. */
#ifndef YN_TIMEUTIL_H
#define YN_TIMEUTIL_H

#include <stdbool.h>
#include <stdint.h>

#define YN_TIME_SHANGHAI_OFFSET_S (8 * 3600) /* Asia/Shanghai: UTC+8, no DST since 1991 */
#define YN_TIME_DAY_S             86400

/* CLOCK_MONOTONIC in ms: never steps with the wall clock. */
int64_t yn_time_mono_ms(void);
/* Sleep ms of real time (EINTR resumed). */
void yn_time_sleep_ms(int64_t ms);

/* Days since 1970-01-01 of a date YYYYMMDD, and back. Any year, also before
 * 1970 (negative days); the caller validates dates it takes in. */
int64_t yn_time_days_of_ymd(int32_t ymd);
int32_t yn_time_ymd_of_days(int64_t days);
/* A real calendar day YYYYMMDD, years 1900..9999. */
bool yn_time_ymd_valid(int32_t ymd);
/* Day of the week of a day count: 1 Monday .. 7 Sunday. */
int yn_time_weekday_of_days(int64_t days);
/* The Asia/Shanghai civil date YYYYMMDD of a UTC moment (seconds). */
int32_t yn_time_local_ymd(int64_t utc_s);

#endif
