/* hal_conf.h — what the device classes' configuration structs share: the
 * sizes of a backend name and a device name, and the RS-485 line settings of
 * a Modbus RTU device (the scale and the relay module alike, hal/chips/MODBUS.md).
 * Each class declares its own struct (yn_nfc_conf, yn_scale_conf, …) in its
 * header; firmware/app/config.h composes them into board.conf's yn_config. */
#ifndef YN_HAL_CONF_H
#define YN_HAL_CONF_H

#define YN_BACKEND_MAX 16  /* backend names */
#define YN_DEV_MAX     128 /* device names, connstrings */

enum yn_parity { YN_PARITY_NONE, YN_PARITY_EVEN, YN_PARITY_ODD };
/* RS-485 line settings of a Modbus RTU device (hal/chips/MODBUS.md). */
enum yn_rs485_mode {
    YN_RS485_OFF,  /* no kernel RS-485 mode: adapter switches direction itself */
    YN_RS485_ON,   /* the UART driver must switch to RS-485 (TIOCSRS485) */
    YN_RS485_AUTO, /* try it; a port without RS-485 mode (ENOTTY) goes on */
};
enum yn_rts { YN_RTS_NONE, YN_RTS_UP, YN_RTS_DOWN }; /* libmodbus RTS toggling */

/* An RS-485 line to a Modbus RTU device: [scale] and [io] alike. */
typedef struct yn_serial_line {
    char device[YN_DEV_MAX]; /* serial port */
    int baud;
    enum yn_parity parity;
    int stop_bits;            /* 1 or 2 (8 data bits always) */
    int slave_id;             /* Modbus slave address 1..247 */
    int timeout_ms;           /* per Modbus request */
    enum yn_rs485_mode rs485; /* kernel RS-485 mode of the port */
    enum yn_rts rts;          /* libmodbus RTS toggling (rs485 = off only) */
    int rts_delay_us;         /* RTS settle time; 0 = libmodbus default */
    int reconnect_ms;         /* wait before reopening a port that failed */
} yn_serial_line;

#endif
