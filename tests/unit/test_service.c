/* test_service.c — sd_notify messages really reach a NOTIFY_SOCKET: ready
 * with status, watchdog pings at half the period, stopping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "service.h"
#include "testutil.h"

static int listen_notify(char *path, size_t len)
{
    char dir[200];
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, len, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static int receive(int fd, char *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return (int)n;
}

static void test_notify_messages(void **state)
{
    (void)state;
    char path[300], msg[512];
    int fd = listen_notify(path, sizeof path);
    setenv("NOTIFY_SOCKET", path, 1);
    char pid[32];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    setenv("WATCHDOG_USEC", "10000000", 1); /* 10 s: ping every 5 s */
    yn_service_ready("terminal T1, policy shenzhen-2025 v1");
    assert_true(receive(fd, msg, sizeof msg) > 0);
    assert_string_equal(msg, "READY=1\nSTATUS=terminal T1, policy shenzhen-2025 v1");
    yn_service_alive(1000);
    assert_true(receive(fd, msg, sizeof msg) > 0);
    assert_string_equal(msg, "WATCHDOG=1");
    yn_service_alive(4000); /* not due yet */
    assert_int_equal(receive(fd, msg, sizeof msg), -1);
    yn_service_alive(6000);
    assert_true(receive(fd, msg, sizeof msg) > 0);
    assert_string_equal(msg, "WATCHDOG=1");
    yn_service_stopping();
    assert_true(receive(fd, msg, sizeof msg) > 0);
    assert_string_equal(msg, "STOPPING=1");
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_messages),
    };
    return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
