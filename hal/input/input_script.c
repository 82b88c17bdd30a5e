/* input_script.c — keys and card events from a script: a file named in
 * board.conf ([input] script) and/or tokens pushed by a test. Tokens are
 * separated by whitespace; '#' starts a comment to the end of the line; the
 * grammar is yn_input_parse_token's. "wait:MS" holds the next event back.
 * When the script is exhausted, `next` times out for ever after. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "input.h"
#include "input_script.h"
#include "log.h"
#include "timeutil.h"

#define QUEUE_MAX 4096

struct item {
    yn_input_event ev;
    int wait_ms; /* >= 0: a pause instead of an event */
};

struct script {
    struct item q[QUEUE_MAX];
    int head, tail;
    int64_t returned_ms; /* monotonic: when next last returned (0: never) */
};

static int push_text(struct script *s, const char *text, const char *origin)
{
    char buf[64];
    int line = 1;
    const char *p = text;
    while (*p) {
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            line += *p == '\n';
            p++;
            continue;
        }
        size_t n = strcspn(p, " \t\r\n#");
        if (n >= sizeof buf) {
            yn_err("%s:%d: token too long", origin, line);
            return YN_EINVAL;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        p += n;
        if (s->tail >= QUEUE_MAX) {
            yn_err("%s:%d: script longer than %d events", origin, line, QUEUE_MAX);
            return YN_ELIMIT;
        }
        struct item *it = &s->q[s->tail];
        if (yn_input_parse_token(buf, &it->ev, &it->wait_ms) != YN_OK) {
            yn_err("%s:%d: unknown token '%s'; expected a digit, enter, esc, back, menu, . + - /, "
                   "card:N, remove, wait:MS or quit",
                   origin, line, buf);
            return YN_EINVAL;
        }
        s->tail++;
    }
    return YN_OK;
}

static int script_open(yn_input *dev, const yn_input_conf *cfg)
{
    struct script *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    dev->priv = s;
    if (!cfg || !cfg->script[0])
        return YN_OK;
    FILE *f = fopen(cfg->script, "r");
    if (!f) {
        yn_err("input: cannot open script '%s': %s", cfg->script, strerror(errno));
        free(s);
        dev->priv = NULL;
        return YN_ENOENT;
    }
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    int rc = push_text(s, text, cfg->script);
    if (rc != YN_OK) {
        free(s);
        dev->priv = NULL;
    }
    return rc;
}

static void script_close(yn_input *dev)
{
    free(dev->priv);
    dev->priv = NULL;
}

static int script_next(yn_input *dev, int timeout_ms, yn_input_event *ev)
{
    struct script *s = dev->priv;
    int rc = YN_ETIMEDOUT;
    /* a pause also passes while the caller is elsewhere (the terminal waits
     * in the reader's poll between looks at the keys) */
    if (s->head < s->tail && s->q[s->head].wait_ms > 0 && s->returned_ms) {
        int64_t away = yn_time_mono_ms() - s->returned_ms;
        struct item *it = &s->q[s->head];
        it->wait_ms -= away < it->wait_ms ? (int)away : it->wait_ms;
        if (it->wait_ms == 0)
            s->head++;
    }
    while (s->head < s->tail) {
        struct item *it = &s->q[s->head];
        if (it->wait_ms < 0) {
            s->head++;
            *ev = it->ev;
            rc = YN_OK;
            timeout_ms = 0;
            break;
        }
        /* a pause: spend what the caller allows, keep the rest for later */
        int slice = it->wait_ms < timeout_ms ? it->wait_ms : timeout_ms;
        yn_time_sleep_ms(slice);
        it->wait_ms -= slice;
        if (it->wait_ms == 0)
            s->head++;
        timeout_ms -= slice;
        if (timeout_ms == 0 && it->wait_ms > 0)
            break;
    }
    yn_time_sleep_ms(timeout_ms);
    s->returned_ms = yn_time_mono_ms();
    return rc;
}

const yn_input_ops yn_input_script_ops = {
    .name = "script",
    .open = script_open,
    .close = script_close,
    .next = script_next,
};

int yn_input_script_push(yn_input *dev, const char *tokens)
{
    return push_text(dev->priv, tokens, "script");
}
