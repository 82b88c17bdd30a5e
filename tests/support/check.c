/* check.c — see check.h. */
#include "check.h"

#include <errno.h>
#include <time.h>

#include "timeutil.h"

int yn_checks, yn_failures;

int64_t yn_test_now_ms(void)
{
    return yn_time_mono_ms();
}

void yn_test_sleep_ms(int ms)
{
    yn_time_sleep_ms(ms);
}
