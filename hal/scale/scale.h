/* scale.h — the weighing scale for pay-by-weight meals. */
#ifndef YN_HAL_SCALE_H
#define YN_HAL_SCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_conf.h"
#include "status.h"

/* Scale register map (hal/chips/MODBUS.md). */
enum yn_reg_type { YN_REG_HOLDING, YN_REG_INPUT }; /* function 03 or 04 */
enum yn_weight_type { YN_WEIGHT_INT16, YN_WEIGHT_INT32, YN_WEIGHT_FLOAT32 };
enum yn_byte_order { YN_ORDER_ABCD, YN_ORDER_CDAB, YN_ORDER_BADC, YN_ORDER_DCBA };
enum yn_weight_unit { YN_UNIT_G, YN_UNIT_KG };
enum yn_stable_when {
    YN_STABLE_WHEN_SET,
    YN_STABLE_WHEN_CLEAR
}; /* the bit means stable / motion */

/* [scale] of board.conf. */
typedef struct yn_scale_conf {
    char backend[YN_BACKEND_MAX];
    yn_serial_line line;       /* the scale's RS-485 line */
    int stable_timeout_ms;     /* how long to wait for a stable weight */
    enum yn_reg_type reg_type; /* weight and status: holding or input */
    int weight_register;       /* 0-based PDU address of the net weight */
    enum yn_weight_type weight_type;
    enum yn_byte_order byte_order; /* of 16- and 32-bit values */
    enum yn_weight_unit weight_unit;
    int weight_decimals;             /* raw integer / 10^decimals = weight in unit */
    int status_register;             /* -1 = none */
    int stable_bit;                  /* bit of status_register; -1 = judge by readings */
    enum yn_stable_when stable_when; /* stable_bit set = stable, or set = in motion */
    int overload_bit;                /* bit of status_register; -1 = none */
    int stable_band_g;               /* stable_bit -1: 3 readings within this many g */
    int max_weight_g;                /* above this a weighed meal is refused */
    int zero_coil, tare_coil;        /* coil written 1 to zero / tare; -1 = none */
    int command_register;            /* register a command value is written to; -1 = none */
    int zero_command, tare_command;  /* values for command_register */
} yn_scale_conf;

typedef struct yn_weight {
    int32_t net_g; /* net weight in grams (may be negative after a bad tare) */
    bool stable;   /* the scale reports the reading as settled */
    bool overload; /* over range: the figure is not to be trusted */
} yn_weight;

typedef struct yn_scale yn_scale;

typedef struct yn_scale_ops {
    const char *name;
    int (*open)(yn_scale *dev, const yn_scale_conf *cfg);
    void (*close)(yn_scale *dev);
    int (*read)(yn_scale *dev, yn_weight *w);
    int (*tare)(yn_scale *dev);
    int (*zero)(yn_scale *dev);
    int (*describe)(yn_scale *dev, char *buf, size_t len);
} yn_scale_ops;

struct yn_scale {
    const yn_scale_ops *ops;
    void *priv;
};

/* cfg->scale.backend "none" leaves dev->ops NULL: every call is YN_ENODEV. */
int yn_scale_open(yn_scale *dev, const yn_scale_conf *cfg) YN_MUST_CHECK;
void yn_scale_close(yn_scale *dev);
int yn_scale_read(yn_scale *dev, yn_weight *w) YN_MUST_CHECK;
int yn_scale_tare(yn_scale *dev) YN_MUST_CHECK;
int yn_scale_zero(yn_scale *dev) YN_MUST_CHECK;
int yn_scale_describe(yn_scale *dev, char *buf, size_t len) YN_MUST_CHECK;
/* What a technician should do about a failed read or tare (English, one
 * sentence): no answer, a Modbus exception, a bad CRC and a missing port each
 * get their own advice. */
const char *yn_scale_advice(int status);

#endif
