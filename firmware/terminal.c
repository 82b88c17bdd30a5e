/* terminal.c — the terminal state machine.
 *
 *   IDLE ──tap──► RESULT ──timeout / key / next tap──► IDLE
 *
 * A tap is a card entering the field. The same card staying in the field, or
 * coming back within debounce_ms of leaving, is the same tap (a second tap
 * swallowed by a still-active listener must never charge twice). */
#include "terminal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nfc_sim.h"

enum state { ST_IDLE, ST_RESULT };

struct yn_terminal {
    const yn_config *cfg;
    yn_devices *dev;
    enum state state;
    int64_t result_until_ms; /* monotonic: when the result screen goes */
    yn_nfc_tag last_tag;     /* the card of the last tap */
    bool last_in_field;      /* that card is still in the field */
    int64_t last_seen_ms;    /* monotonic: when it was last seen in the field */
    bool done;
    int taps;
};

int yn_terminal_new(const yn_config *cfg, yn_devices *dev, yn_terminal **out)
{
    yn_terminal *t = calloc(1, sizeof *t);
    if (!t)
        return YN_ENOMEM;
    t->cfg = cfg;
    t->dev = dev;
    *out = t;
    return YN_OK;
}

void yn_terminal_free(yn_terminal *t)
{
    free(t);
}

bool yn_terminal_done(const yn_terminal *t)
{
    return t->done;
}

int yn_terminal_taps(const yn_terminal *t)
{
    return t->taps;
}

static bool is_sim_reader(const yn_terminal *t)
{
    return t->dev->nfc.ops == &yn_nfc_sim_ops;
}

static void show(yn_terminal *t, const yn_screen *s)
{
    int rc = yn_display_show(&t->dev->display, s);
    if (rc != YN_OK)
        yn_err("display: cannot show screen '%s': %s", s->name, yn_strerror(rc));
}

static void show_idle(yn_terminal *t)
{
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_IDLE, "idle",
                   t->cfg->terminal.canteen_name[0] ? t->cfg->terminal.canteen_name
                                                    : t->cfg->terminal.canteen_id);
    yn_screen_add(&s, YN_TEXT_HUGE, "%s",
                  t->cfg->terminal.mode == YN_MODE_KIOSK ? "请刷卡查询余额" : "请刷卡");
    snprintf(s.footer, sizeof s.footer, "终端 %s", t->cfg->terminal.id);
    if (is_sim_reader(t))
        snprintf(s.footer + strlen(s.footer), sizeof s.footer - strlen(s.footer),
                 "  |  模拟读卡器: a-p 刷第1-16张卡, x 拿走, q 退出");
    show(t, &s);
    t->state = ST_IDLE;
}

static bool same_card(const yn_nfc_tag *a, const yn_nfc_tag *b)
{
    return a->uid_len == b->uid_len && memcmp(a->uid, b->uid, a->uid_len) == 0;
}

/* A new tap: for now, say which card it is. */
static void on_tap(yn_terminal *t, const yn_nfc_tag *tag)
{
    char uid[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(tag, uid, sizeof uid);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_INFO, "card", "读到卡片");
    yn_screen_add(&s, YN_TEXT_LARGE, "卡号 UID %s", uid);
    yn_screen_add(&s, YN_TEXT_NORMAL, "类型 %s", yn_tag_type_name(tag->type));
    if (is_sim_reader(t)) {
        const yn_sim_card *c = yn_nfc_sim_card(&t->dev->nfc, yn_nfc_sim_current(&t->dev->nfc));
        if (c)
            yn_screen_add(&s, YN_TEXT_NORMAL, "%s", c->label);
    }
    show(t, &s);
    t->taps++;
    t->state = ST_RESULT;
    t->result_until_ms = yn_clock_mono_ms(&t->dev->clock) + t->cfg->display.result_ms;
}

static void on_event(yn_terminal *t, const yn_input_event *ev)
{
    switch (ev->type) {
    case YN_EV_QUIT:
        t->done = true;
        break;
    case YN_EV_SIM_PRESENT:
    case YN_EV_SIM_REMOVE:
        if (!is_sim_reader(t)) {
            yn_warn("input: card keys only drive the simulated reader");
            break;
        }
        if (yn_nfc_sim_present(&t->dev->nfc, ev->type == YN_EV_SIM_PRESENT ? ev->card : -1) !=
            YN_OK)
            yn_warn("reader: there is no virtual card %d", ev->card + 1);
        break;
    case YN_EV_KEY:
        if (ev->key == YN_KEY_CANCEL && t->state == ST_RESULT)
            show_idle(t);
        break;
    }
}

/* Look at the field: a card that was not there before is a tap. */
static void watch_field(yn_terminal *t)
{
    yn_nfc_tag tag;
    int64_t now = yn_clock_mono_ms(&t->dev->clock);
    int rc = yn_nfc_poll(&t->dev->nfc, 0, &tag);
    if (rc == YN_ENOCARD) {
        t->last_in_field = false;
        return;
    }
    if (rc != YN_OK) {
        yn_debug("reader: poll: %s", yn_strerror(rc));
        return;
    }
    bool same = t->last_seen_ms && same_card(&tag, &t->last_tag);
    bool debounced =
        same && (t->last_in_field || now - t->last_seen_ms < t->cfg->reader.debounce_ms);
    t->last_tag = tag;
    t->last_seen_ms = now;
    t->last_in_field = true;
    if (!debounced)
        on_tap(t, &tag);
}

int yn_terminal_step(yn_terminal *t, int timeout_ms)
{
    yn_input_event ev;
    int rc = yn_input_next(&t->dev->input, timeout_ms, &ev);
    if (rc == YN_OK)
        on_event(t, &ev);
    else if (rc != YN_ETIMEDOUT)
        yn_warn("input: %s", yn_strerror(rc));
    watch_field(t);
    if (t->state == ST_RESULT && yn_clock_mono_ms(&t->dev->clock) >= t->result_until_ms)
        show_idle(t);
    return YN_OK;
}

void yn_terminal_start(yn_terminal *t)
{
    show_idle(t);
}
