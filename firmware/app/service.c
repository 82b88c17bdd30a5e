/* service.c — sd_notify(3) for the daemon's unit (tools/yinian-pos.service:
 * Type=notify, WatchdogSec=). A loop that stops turning stops pinging, and
 * systemd restarts the daemon. */
#include "service.h"

#include <stdbool.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "log.h"

static int64_t next_ping_ms = -1; /* monotonic; -1: not yet known */
static int64_t period_ms;         /* half the watchdog period; 0 = no watchdog */

void yn_service_ready(const char *status)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0)
        period_ms = (int64_t)(usec / 2000);
    next_ping_ms = -1;
    char msg[256];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    if (sd_notify(0, msg) > 0)
        yn_info("systemd: ready%s", period_ms ? ", watchdog on" : "");
}

void yn_service_alive(int64_t mono_ms)
{
    if (period_ms <= 0)
        return;
    if (next_ping_ms < 0 || mono_ms >= next_ping_ms) {
        sd_notify(0, "WATCHDOG=1");
        next_ping_ms = mono_ms + period_ms;
    }
}

void yn_service_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}
