/* pn532emu.c — see pn532emu.h. */
#include "pn532emu.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

void yn_pn532emu_start(yn_pn532emu *e, const char *dir, const char *cards_path)
{
    const char *build = getenv("BUILD");
    char prog[PATH_MAX];
    snprintf(prog, sizeof prog, "%s/yinian-pn532-emu", build && *build ? build : "build/host");
    snprintf(e->link, sizeof e->link, "%s/pn532", dir);
    snprintf(e->control, sizeof e->control, "%s/pn532.ctl", dir);
    snprintf(e->log, sizeof e->log, "%s/pn532.log", dir);
    unlink(e->link);
    e->pid = fork();
    if (e->pid == 0) {
        int fd = open(e->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(prog, prog, "--link", e->link, "--cards", cards_path, "--control", e->control,
              (char *)NULL);
        perror(prog);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(e->link, F_OK) != 0; i++)
        yn_test_sleep_ms(10);
    e->ctl_fd = open(e->control, O_WRONLY | O_CLOEXEC);
    if (access(e->link, F_OK) != 0 || e->ctl_fd < 0) {
        fprintf(stderr, "the PN532 emulator did not come up (%s, log %s)\n", prog, e->log);
        exit(1);
    }
}

void yn_pn532emu_cmd(yn_pn532emu *e, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    if (write(e->ctl_fd, line, strlen(line)) != (ssize_t)strlen(line))
        perror("pn532 emulator control");
    yn_test_sleep_ms(2); /* read before the reader's next frame */
}

void yn_pn532emu_stop(yn_pn532emu *e)
{
    yn_pn532emu_cmd(e, "quit");
    int status;
    for (int i = 0; i < 200 && waitpid(e->pid, &status, WNOHANG) == 0; i++)
        yn_test_sleep_ms(10);
    kill(e->pid, SIGKILL);
    waitpid(e->pid, &status, 0);
    close(e->ctl_fd);
}
