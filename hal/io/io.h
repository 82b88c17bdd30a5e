/* io.h — lights, buzzer and gate (relays on a Modbus I/O module or GPIO). */
#ifndef YN_HAL_IO_H
#define YN_HAL_IO_H

#include <stdbool.h>
#include <stddef.h>

#include "hal_conf.h"
#include "status.h"

/* [io] of board.conf. */
typedef struct yn_io_conf {
    char backend[YN_BACKEND_MAX];
    yn_serial_line line; /* the relay module's RS-485 line */
    int pulse_ms;        /* length of a light/buzzer pulse */
    int coil[4];         /* coil per output, indexed by enum yn_output; -1 = none */
    int out_pulse_ms[4]; /* pulse per output, by enum yn_output; 0 = pulse_ms */
} yn_io_conf;

enum yn_output { YN_OUT_GREEN, YN_OUT_RED, YN_OUT_BUZZER, YN_OUT_GATE, YN_OUT_COUNT };

typedef struct yn_io yn_io;

typedef struct yn_io_ops {
    const char *name;
    int (*open)(yn_io *dev, const yn_io_conf *cfg);
    void (*close)(yn_io *dev);
    int (*set)(yn_io *dev, enum yn_output out, bool on);
    /* On for ms, then off by itself (backend's own timer or device pulse). */
    int (*pulse)(yn_io *dev, enum yn_output out, int ms);
    int (*describe)(yn_io *dev, char *buf, size_t len);
} yn_io_ops;

struct yn_io {
    const yn_io_ops *ops;
    void *priv;
};

int yn_io_open(yn_io *dev, const yn_io_conf *cfg) YN_MUST_CHECK;
void yn_io_close(yn_io *dev);
int yn_io_set(yn_io *dev, enum yn_output out, bool on) YN_MUST_CHECK;
int yn_io_pulse(yn_io *dev, enum yn_output out, int ms) YN_MUST_CHECK;
int yn_io_describe(yn_io *dev, char *buf, size_t len) YN_MUST_CHECK;
const char *yn_output_name(enum yn_output out);

#endif
