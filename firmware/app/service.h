/* service.h — telling systemd how the daemon is doing (sd_notify): ready for
 * the first tap, alive (the watchdog), stopping. Without a NOTIFY_SOCKET
 * (not started by systemd) every call does nothing. */
#ifndef YN_SERVICE_H
#define YN_SERVICE_H

#include <stdint.h>

/* Ready for taps; status is a one-line summary shown by systemctl. */
void yn_service_ready(const char *status);
/* Call every turn of the main loop: pings the watchdog at half its period. */
void yn_service_alive(int64_t mono_ms);
void yn_service_stopping(void);

#endif
