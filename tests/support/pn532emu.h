/* pn532emu.h — the emulated PN532 (build/…/yinian-pn532-emu) for test
 * programs: start it on a pty link with a card file and a control FIFO, send
 * it control commands, stop it. hal/nfc/READER.md §4 has its card types and its
 * control grammar. */
#ifndef YN_PN532EMU_H
#define YN_PN532EMU_H

#include <limits.h>
#include <sys/types.h>

typedef struct yn_pn532emu {
    char link[PATH_MAX];    /* libnfc: pn532_uart:<link> */
    char control[PATH_MAX]; /* the control FIFO */
    char log[PATH_MAX];     /* its stdout and stderr */
    pid_t pid;
    int ctl_fd;
} yn_pn532emu;

/* Start the emulator of $BUILD (default build/host) in dir with cards_path;
 * link, control FIFO and log are files of dir. Exits the test program when
 * it does not come up within 5 s. */
void yn_pn532emu_start(yn_pn532emu *e, const char *dir, const char *cards_path);
/* One control command ("present 3", "fault tear 2 after"), a newline added. */
void yn_pn532emu_cmd(yn_pn532emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "quit", then make sure it is gone. */
void yn_pn532emu_stop(yn_pn532emu *e);

#endif
