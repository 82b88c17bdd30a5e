/* scale.h — the weighing scale for pay-by-weight meals. */
#ifndef YN_HAL_SCALE_H
#define YN_HAL_SCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct yn_config;

typedef struct yn_weight {
    int32_t net_g; /* net weight in grams (may be negative after a bad tare) */
    bool stable;   /* the scale reports the reading as settled */
    bool overload; /* over range: the figure is not to be trusted */
} yn_weight;

typedef struct yn_scale yn_scale;

typedef struct yn_scale_ops {
    const char *name;
    int (*open)(yn_scale *dev, const struct yn_config *cfg);
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
int yn_scale_open(yn_scale *dev, const struct yn_config *cfg) YN_MUST_CHECK;
void yn_scale_close(yn_scale *dev);
int yn_scale_read(yn_scale *dev, yn_weight *w) YN_MUST_CHECK;
int yn_scale_tare(yn_scale *dev) YN_MUST_CHECK;
int yn_scale_zero(yn_scale *dev) YN_MUST_CHECK;
int yn_scale_describe(yn_scale *dev, char *buf, size_t len) YN_MUST_CHECK;
/* What a technician should do about a failed read or tare (English, one
 * sentence): no answer, a Modbus exception, a bad CRC and a missing port each
 * get their own advice. */
const char *yn_scale_advice(int status);

/* sim backend: set what the scale reads, or make it fail. */
extern const yn_scale_ops yn_scale_sim_ops;
void yn_scale_sim_set(yn_scale *dev, int32_t net_g, bool stable, bool overload);
void yn_scale_sim_fail(yn_scale *dev, int status); /* YN_OK clears */

#endif
