/* emu_io.h — what the project's device emulators (tools/yinian-pn532-emu,
 * tools/yinian-modbus-emu) share: a pty published as a symlink, the control
 * FIFO read line by line, messages on stdout and frame dumps on stderr, and
 * the monotonic clock. Tools only: the daemon never links tools/emu/. */
#ifndef YN_EMU_IO_H
#define YN_EMU_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages: "<name>: text" on stdout, flushed (tests read them). */
void yn_emu_set_name(const char *name);
void yn_emu_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "<name> <what>: 00 11 …" on stderr. */
void yn_emu_hexdump(const char *what, const uint8_t *p, size_t n);

int64_t yn_emu_now_us(void); /* CLOCK_MONOTONIC, microseconds */
int64_t yn_emu_now_ms(void);
void yn_emu_sleep_us(int64_t us);

/* A pty whose slave is in raw mode, published as a symlink; the emulator
 * keeps the slave open so the master never reads EIO between clients. */
typedef struct yn_emu_pty {
    const char *link; /* the symlink clients open */
    int master, slave;
    char pts[128];
    bool plugged;
} yn_emu_pty;

/* Create the pty and (atomically) the link; -1 on failure (perror'd). */
int yn_emu_pty_plug(yn_emu_pty *p);
/* Remove the link and close the pty. */
void yn_emu_pty_unplug(yn_emu_pty *p);
/* The baud rate the client set on the slave side (termios), 0 if unknown. */
unsigned yn_emu_pty_client_baud(const yn_emu_pty *p);
/* Write all of p..n to the master (drops it when unplugged). */
void yn_emu_pty_write(yn_emu_pty *p, const uint8_t *data, size_t n);

/* The control FIFO: created if missing, held open read-write so writers come
 * and go; complete lines go to a callback (false = quit). */
typedef bool (*yn_emu_line_fn)(void *arg, char *line);
typedef struct yn_emu_ctl {
    const char *path;
    int fd; /* -1: none */
    bool made;
    char buf[1024];
    size_t len;
} yn_emu_ctl;

int yn_emu_ctl_open(yn_emu_ctl *c, const char *path);
void yn_emu_ctl_close(yn_emu_ctl *c);
/* Read what is there and run every complete line; false when a line said quit. */
bool yn_emu_ctl_read(yn_emu_ctl *c, yn_emu_line_fn fn, void *arg);
/* Split a line into at most max words (in place); returns the count. */
int yn_emu_words(char *line, char **words, int max);

#endif
