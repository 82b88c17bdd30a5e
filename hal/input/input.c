/* input.c — dispatch to the keypad backend, and the script token grammar
 * shared by the script and terminal backends. */
#include "input.h"

#include <stdlib.h>
#include <string.h>

#include "hal.h"
#include "log.h"

int yn_input_open(yn_input *dev, const yn_input_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = yn_hal_find(YN_HAL_INPUT, cfg->backend);
    if (!dev->ops)
        return YN_ENODEV;
    int rc = dev->ops->open(dev, cfg);
    if (rc != YN_OK) {
        yn_err("input: %s backend failed to open: %s", dev->ops->name, yn_strerror(rc));
        dev->ops = NULL;
    }
    return rc;
}

void yn_input_close(yn_input *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
}

int yn_input_next(yn_input *dev, int timeout_ms, yn_input_event *ev)
{
    return dev->ops ? dev->ops->next(dev, timeout_ms, ev) : YN_ENODEV;
}

int yn_input_parse_token(const char *tok, yn_input_event *ev, int *wait_ms)
{
    static const struct {
        const char *name;
        int key;
    } named[] = {{"enter", YN_KEY_ENTER}, {"esc", YN_KEY_CANCEL}, {"cancel", YN_KEY_CANCEL},
                 {"back", YN_KEY_BACK},   {"menu", YN_KEY_MENU},  {"*", YN_KEY_MENU},
                 {"/", YN_KEY_F1},        {"-", YN_KEY_MINUS},    {"+", YN_KEY_PLUS},
                 {".", YN_KEY_DOT}};
    char *end;
    *wait_ms = -1;
    memset(ev, 0, sizeof *ev);
    if (tok[0] >= '0' && tok[0] <= '9' && tok[1] == '\0') {
        ev->type = YN_EV_KEY;
        ev->key = tok[0];
        return YN_OK;
    }
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        if (strcmp(tok, named[i].name) == 0) {
            ev->type = YN_EV_KEY;
            ev->key = named[i].key;
            return YN_OK;
        }
    if (strncmp(tok, "card:", 5) == 0) {
        long n = strtol(tok + 5, &end, 10);
        if (tok[5] == '\0' || *end || n < 0 || n > 999)
            return YN_EINVAL;
        ev->type = YN_EV_SIM_PRESENT;
        ev->card = (int)n;
        return YN_OK;
    }
    if (strcmp(tok, "remove") == 0) {
        ev->type = YN_EV_SIM_REMOVE;
        return YN_OK;
    }
    if (strcmp(tok, "quit") == 0) {
        ev->type = YN_EV_QUIT;
        return YN_OK;
    }
    if (strncmp(tok, "wait:", 5) == 0) {
        long n = strtol(tok + 5, &end, 10);
        if (tok[5] == '\0' || *end || n < 0 || n > 600000)
            return YN_EINVAL;
        *wait_ms = (int)n;
        return YN_OK;
    }
    return YN_EINVAL;
}
