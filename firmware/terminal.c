/* terminal.c — the terminal state machine.
 *
 *   IDLE ──digits──► PRICE ──Enter──► IDLE (new meal price)
 *   IDLE ──tap──► decide + durable debit (pos) / balance (kiosk) ──► RESULT
 *   RESULT ──timeout, Esc or the next tap──► IDLE
 *   IDLE ──'+'──► IDLE in weighed mode (称重) and back; '-' tares the scale
 *
 * Weighed mode (pos, with a scale and [menu] price_per_100g_fen > 0): a tap
 * first takes the weight — settled within [scale] stable_timeout_ms, confirmed
 * by a second identical reading, above 0 g, not over range, at most
 * max_weight_g — and the meal costs weight_g × price_per_100g_fen / 100,
 * rounded down to the fen (the policy engine does that: firmware/POLICY.md).
 * A weight that is not trustworthy refuses the tap before the card is read
 * (YN_REASON_WEIGHT): nothing is charged, and the diner may tap again at once.
 * Staff keying a price in weighed mode set the price per 100 g.
 *
 * A tap is a card entering the field. The same card staying in the field, or
 * coming back within debounce_ms after a decided tap, is the same tap: a
 * second presentation swallowed by a still-active listener must never charge
 * twice (and a retried tap id is idempotent in the ledger as well). After a
 * failed read the card may be tapped again at once. */
#include "terminal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "money.h"
#include "nfc_sim.h"
#include "tap.h"

enum state { ST_IDLE, ST_PRICE, ST_RESULT };

#define PRICE_TEXT_MAX 12
#define WEIGH_POLL_MS  50 /* between two readings of a scale that has not settled */

struct yn_terminal {
    const yn_config *cfg;
    yn_devices *dev;
    yn_terminal_deps deps;
    yn_tap_env env;
    enum state state;
    int64_t price_fen;               /* the meal the next tap pays for */
    bool weighed;                    /* weighed mode: the next tap is priced by weight */
    int64_t per100g_fen;             /* weighed mode: price per 100 g */
    char price_text[PRICE_TEXT_MAX]; /* staff typing a new price (yuan) */
    int64_t result_until_ms;         /* monotonic: when the result screen goes */
    yn_nfc_tag last_tag;             /* the card of the last decided tap */
    bool last_in_field;              /* that card is still in the field */
    bool last_decided;               /* the last tap reached a decision (debounce it) */
    int64_t last_seen_ms;            /* monotonic: when it was last seen in the field */
    int64_t last_tap_id;             /* tap ids are strictly increasing */
    bool done;
    int taps;
};

int yn_terminal_new(const yn_config *cfg, yn_devices *dev, const yn_terminal_deps *deps,
                    yn_terminal **out)
{
    yn_terminal *t = calloc(1, sizeof *t);
    if (!t)
        return YN_ENOMEM;
    t->cfg = cfg;
    t->dev = dev;
    t->deps = *deps;
    t->price_fen = cfg->menu.price_fen;
    /* tap ids increase across restarts too, whatever the wall clock says now */
    if (yn_ledger_tap_id_max(deps->ledger, &t->last_tap_id) != YN_OK)
        yn_warn("terminal: cannot read the highest tap id; starting from the clock");
    t->per100g_fen = cfg->menu.price_per_100g_fen;
    t->env = (yn_tap_env){
        .nfc = &dev->nfc,
        .ledger = deps->ledger,
        .policy = deps->policy,
        .master = deps->master,
        .ring = deps->ring,
        .canteen = {.district = cfg->terminal.district, .street = cfg->terminal.street},
        .canteen_code = yn_tap_canteen_code(cfg->terminal.canteen_id)};
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

int64_t yn_terminal_price_fen(const yn_terminal *t)
{
    return t->price_fen;
}

bool yn_terminal_weighed(const yn_terminal *t)
{
    return t->weighed;
}

int64_t yn_terminal_price_per_100g_fen(const yn_terminal *t)
{
    return t->per100g_fen;
}

static bool is_sim_reader(const yn_terminal *t)
{
    return t->dev->nfc.ops == &yn_nfc_sim_ops;
}

static bool is_kiosk(const yn_terminal *t)
{
    return t->cfg->terminal.mode == YN_MODE_KIOSK;
}

static void show(yn_terminal *t, yn_screen *s)
{
    int rc = yn_display_show(&t->dev->display, s);
    if (rc != YN_OK)
        yn_err("display: cannot show screen '%s': %s", s->name, yn_strerror(rc));
}

static void say(yn_terminal *t, const char *clip)
{
    yn_phrase p = {0};
    yn_phrase_add(&p, clip);
    if (yn_audio_say(&t->dev->audio, &p) != YN_OK)
        yn_debug("audio: cannot say '%s'", clip);
}

/* Pulse an output for its configured length ([io] <out>_pulse_ms, else
 * pulse_ms). The io backends never block for the pulse (hal/io.h). */
static void light(yn_terminal *t, enum yn_output out)
{
    int ms = t->cfg->io.out_pulse_ms[out] > 0 ? t->cfg->io.out_pulse_ms[out] : t->cfg->io.pulse_ms;
    int rc = yn_io_pulse(&t->dev->io, out, ms);
    if (rc != YN_OK && rc != YN_ENODEV && rc != YN_ENOTSUP) /* absent or not wired: quiet */
        yn_warn("io: %s: %s", yn_output_name(out), yn_strerror(rc));
}

static const char *period_label(const char *period)
{
    static const struct {
        const char *name, *label;
    } labels[] = {{"breakfast", "早餐"}, {"lunch", "午餐"}, {"dinner", "晚餐"}, {"supper", "晚餐"}};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (strcmp(period, labels[i].name) == 0)
            return labels[i].label;
    return period;
}

/* The status bar: terminal, records waiting for upload. */
static void footer(yn_terminal *t, yn_screen *s)
{
    int64_t count = 0, age_s = 0;
    int64_t now = yn_clock_utc_s(&t->dev->clock);
    if (yn_ledger_unsent(t->deps.ledger, now, &count, &age_s) != YN_OK)
        count = -1;
    int n = snprintf(s->footer, sizeof s->footer, "终端 %s", t->cfg->terminal.id);
    if (count > 0)
        n += snprintf(s->footer + n, sizeof s->footer - (size_t)n,
                      "  待上传 %lld 条 (最早 %lld 分钟前)", (long long)count,
                      (long long)(age_s / 60));
    else if (count == 0)
        n += snprintf(s->footer + n, sizeof s->footer - (size_t)n, "  记录已全部上传");
    if (is_sim_reader(t) && n > 0 && (size_t)n < sizeof s->footer)
        snprintf(s->footer + n, sizeof s->footer - (size_t)n, "  |  a-p 刷卡 x 拿走 q 退出");
}

static void show_idle(yn_terminal *t)
{
    yn_screen s;
    char price[32];
    yn_moment m;
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    yn_screen_init(&s, YN_SCREEN_IDLE, "idle",
                   t->cfg->terminal.canteen_name[0] ? t->cfg->terminal.canteen_name
                                                    : t->cfg->terminal.canteen_id);
    if (is_kiosk(t)) {
        yn_screen_add(&s, YN_TEXT_HUGE, "请刷卡查询余额");
    } else if (t->weighed) {
        yn_fen_format(t->per100g_fen, price, sizeof price);
        yn_screen_add(&s, YN_TEXT_NORMAL, "%s",
                      m.period[0] ? period_label(m.period) : "现在不是补贴用餐时间");
        yn_screen_add(&s, YN_TEXT_LARGE, "称重计价 %s/100克", price);
        yn_screen_add(&s, YN_TEXT_HUGE, "请放好餐盘后刷卡");
    } else {
        yn_fen_format(t->price_fen, price, sizeof price);
        yn_screen_add(&s, YN_TEXT_NORMAL, "%s",
                      m.period[0] ? period_label(m.period) : "现在不是补贴用餐时间");
        yn_screen_add(&s, YN_TEXT_LARGE, "本餐价格 %s", price);
        yn_screen_add(&s, YN_TEXT_HUGE, "请刷卡");
    }
    footer(t, &s);
    show(t, &s);
    t->state = ST_IDLE;
}

static void show_price_entry(yn_terminal *t)
{
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_PROMPT, "price", t->weighed ? "输入每100克价格" : "输入本餐价格");
    yn_screen_add(&s, YN_TEXT_HUGE, "¥%s_", t->price_text);
    yn_screen_add(&s, YN_TEXT_NORMAL, "确认键 保存   取消键 放弃");
    footer(t, &s);
    show(t, &s);
}

static void result_timer(yn_terminal *t)
{
    t->state = ST_RESULT;
    t->result_until_ms = yn_clock_mono_ms(&t->dev->clock) + t->cfg->display.result_ms;
}

/* The outcome of a counter tap, for the diner and for staff; meal is what was
 * sold (NULL in the kiosk). */
static void show_debit(yn_terminal *t, const yn_tap_outcome *o, const yn_meal *meal)
{
    yn_screen s;
    char a[32], b[32], c[32];
    const yn_decision *d = &o->result.decision;
    if (!o->charged) {
        yn_screen_init(&s, YN_SCREEN_REFUSED, "refused", "未能扣款");
        snprintf(s.name, sizeof s.name, "refused_%s", yn_reason_code(o->reason));
        yn_screen_add(&s, YN_TEXT_HUGE, "%s", yn_reason_kind(o->reason));
        yn_screen_add(&s, YN_TEXT_NORMAL, "工作人员: %s", o->detail);
        say(t, "refused");
        light(t, YN_OUT_RED);
        light(t, YN_OUT_BUZZER);
    } else {
        bool subsidised = d->subsidy_fen > 0;
        yn_screen_init(&s, YN_SCREEN_OK, subsidised ? "ok" : "ok_full_price",
                       subsidised ? "成功" : "请按原价付款");
        if (o->card_ok)
            yn_screen_add(&s, YN_TEXT_NORMAL, "卡号 %s", o->card.card_no);
        if (meal && meal->weight_g > 0) {
            yn_fen_format(meal->price_per_100g_fen, a, sizeof a);
            yn_fen_format(d->price_fen, b, sizeof b);
            yn_screen_add(&s, YN_TEXT_LARGE, "重量 %d 克  %s/100克  计 %s", (int)meal->weight_g, a,
                          b);
        }
        yn_fen_format(d->subsidy_fen, a, sizeof a);
        if (subsidised)
            yn_screen_add(&s, YN_TEXT_HUGE, "补贴 %s", a);
        else
            yn_screen_add(&s, YN_TEXT_LARGE, "%s", yn_reason_kind(d->reason));
        yn_fen_format(d->wallet_fen, a, sizeof a);
        yn_fen_format(d->cash_fen, b, sizeof b);
        yn_fen_format(o->result.wallet_after_fen, c, sizeof c);
        if (d->cash_fen > 0)
            yn_screen_add(&s, YN_TEXT_HUGE, "请付现金 %s", b);
        if (d->wallet_fen > 0)
            yn_screen_add(&s, YN_TEXT_LARGE, "卡内扣 %s  余额 %s", a, c);
        else
            yn_screen_add(&s, YN_TEXT_NORMAL, "卡内余额 %s", c);
        if (o->status == YN_EDUPLICATE)
            yn_screen_add(&s, YN_TEXT_NORMAL, "同一次刷卡，未重复扣款");
        say(t, subsidised ? "success" : "pay_full_price");
        light(t, YN_OUT_GREEN);
        light(t, YN_OUT_GATE);
    }
    footer(t, &s);
    show(t, &s);
}

/* The kiosk: what is left, what was eaten. */
static void show_balance(yn_terminal *t, const yn_tap_outcome *o)
{
    yn_screen s;
    yn_ledger_account acc;
    char a[32];
    int rc =
        yn_ledger_balance(t->deps.ledger, o->card.card_no, yn_clock_utc_s(&t->dev->clock), 5, &acc);
    if (rc != YN_OK) {
        yn_screen_init(&s, YN_SCREEN_ERROR, "error", "暂时无法查询");
        yn_screen_add(&s, YN_TEXT_LARGE, "%s", yn_reason_kind(YN_REASON_STORAGE));
        yn_screen_add(&s, YN_TEXT_NORMAL, "ledger: %s", yn_strerror(rc));
        light(t, YN_OUT_RED);
    } else {
        yn_screen_init(&s, YN_SCREEN_INFO, "balance", "余额查询");
        yn_fen_format(acc.wallet_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_HUGE, "余额 %s", a);
        yn_fen_format(acc.subsidy_month_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_LARGE, "本月补贴 %d 次 共 %s", acc.meals_month, a);
        for (int i = 0; i < acc.n_last && s.n_lines < YN_SCREEN_LINES; i++) {
            const yn_ledger_meal_line *m = &acc.last[i];
            yn_fen_format(m->paid_fen, a, sizeof a);
            yn_screen_add(&s, YN_TEXT_NORMAL, "%d-%02d-%02d %s 付 %s%s", m->local_ymd / 10000,
                          m->local_ymd / 100 % 100, m->local_ymd % 100, period_label(m->period), a,
                          m->reversed ? " (已冲正)" : "");
        }
        say(t, "balance");
        light(t, YN_OUT_GREEN);
    }
    footer(t, &s);
    show(t, &s);
}

static int64_t next_tap_id(yn_terminal *t)
{
    int64_t id = yn_clock_utc_ms(&t->dev->clock);
    if (id <= t->last_tap_id)
        id = t->last_tap_id + 1; /* the wall clock went back: stay increasing */
    t->last_tap_id = id;
    return id;
}

/* Monotonic time for waiting on the scale (the terminal's own clock may be a
 * simulated one that does not move while we wait). */
static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_real_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A weight fit to price a meal by: settled, confirmed by a second identical
 * settled reading, above 0 g, not over range, at most [scale] max_weight_g,
 * all within [scale] stable_timeout_ms. Otherwise false, with the exact reason
 * for staff in why. Never guesses: a reading it cannot trust refuses the tap. */
static bool weigh(yn_terminal *t, int32_t *net_g, char *why, size_t len)
{
    const yn_config *c = t->cfg;
    const int64_t deadline = real_ms() + c->scale.stable_timeout_ms;
    yn_weight w = {0}, prev = {0};
    bool have_prev = false, have_reading = false, confirmed = false;
    int rc;
    for (;;) {
        rc = yn_scale_read(&t->dev->scale, &w);
        if (rc == YN_ENODEV) {
            snprintf(why, len, "scale: not connected (%s); check its cable and power",
                     yn_strerror(rc));
            return false;
        }
        if (rc == YN_OK) {
            have_reading = true;
            if (w.stable && w.overload) {
                snprintf(why, len, "scale: over range (%d g); take weight off the scale",
                         (int)w.net_g);
                return false;
            }
            if (w.stable && have_prev && prev.net_g == w.net_g) {
                confirmed = true;
                break;
            }
            have_prev = w.stable;
            prev = w;
        } else {
            have_prev = false;
        }
        int64_t left = deadline - real_ms();
        if (left <= 0)
            break;
        if (!have_prev) /* a settled reading is confirmed at once */
            sleep_real_ms(left < WEIGH_POLL_MS ? left : WEIGH_POLL_MS);
    }
    if (!confirmed) {
        if (rc != YN_OK && !have_reading)
            snprintf(why, len, "scale: no reading within %d ms (%s)", c->scale.stable_timeout_ms,
                     yn_strerror(rc));
        else if (rc != YN_OK)
            snprintf(why, len, "scale: reading failed (%s); weight not settled within %d ms",
                     yn_strerror(rc), c->scale.stable_timeout_ms);
        else
            snprintf(why, len, "scale: weight not settled within %d ms (last %d g%s)",
                     c->scale.stable_timeout_ms, (int)w.net_g,
                     w.overload ? ", over range"
                     : w.stable ? ", changing"
                                : ", in motion");
        return false;
    }
    if (w.net_g <= 0) {
        snprintf(why, len,
                 "scale: net weight %d g: nothing on the scale, or a bad tare (zero the scale, "
                 "or tare with the '-' key)",
                 (int)w.net_g);
        return false;
    }
    if (w.net_g > c->scale.max_weight_g) {
        snprintf(why, len, "scale: %d g is above [scale] max_weight_g = %d", (int)w.net_g,
                 c->scale.max_weight_g);
        return false;
    }
    *net_g = w.net_g;
    return true;
}

/* A new tap: decide, record, tell. Returns whether it reached a decision. */
static bool on_tap(yn_terminal *t, const yn_nfc_tag *tag)
{
    yn_tap_outcome o;
    yn_meal meal = {.price_fen = t->price_fen};
    int32_t weight_g = 0;
    if (is_kiosk(t)) {
        if (yn_tap_identify(&t->env, tag, &o) == YN_OK)
            show_balance(t, &o);
        else
            show_debit(t, &o, NULL); /* the refusal screen: not genuine or read failed */
    } else if (t->weighed && !weigh(t, &weight_g, o.detail, sizeof o.detail)) {
        char why[sizeof o.detail];
        memcpy(why, o.detail, sizeof why);
        memset(&o, 0, sizeof o);
        memcpy(o.detail, why, sizeof o.detail);
        o.status = YN_EREFUSED;
        o.reason = YN_REASON_WEIGHT;
        yn_info("tap: weighed meal refused, nothing charged: %s", o.detail);
        show_debit(t, &o, NULL);
    } else {
        if (t->weighed)
            meal = (yn_meal){.weight_g = weight_g, .price_per_100g_fen = t->per100g_fen};
        yn_ledger_when when = {.utc_s = yn_clock_utc_s(&t->dev->clock),
                               .mono_ms = yn_clock_mono_ms(&t->dev->clock),
                               .clock_trusted = t->dev->clock.trusted};
        yn_tap_debit(&t->env, tag, &meal, next_tap_id(t), NULL, &when, &o);
        show_debit(t, &o, &meal);
    }
    int rc = yn_nfc_release(&t->dev->nfc);
    if (rc != YN_OK)
        yn_debug("reader: release: %s", yn_strerror(rc));
    result_timer(t);
    bool decided = o.reason != YN_REASON_READ_FAILED && o.reason != YN_REASON_STORAGE &&
                   o.reason != YN_REASON_WEIGHT;
    if (decided)
        t->taps++;
    return decided;
}

/* A short message for staff, then back to idle after result_ms. */
static void notice(yn_terminal *t, enum yn_screen_kind kind, const char *name, const char *title,
                   const char *line)
{
    yn_screen s;
    yn_screen_init(&s, kind, name, title);
    yn_screen_add(&s, YN_TEXT_LARGE, "%s", line);
    footer(t, &s);
    show(t, &s);
    result_timer(t);
}

/* '+': weighed mode on or off — only with a scale and a price per 100 g. */
static void toggle_weighed(yn_terminal *t)
{
    if (!t->weighed && !t->dev->scale.ops) {
        notice(t, YN_SCREEN_ERROR, "weighed_unavailable", "未配置称重",
               "没有接电子秤 ([scale] backend = none)");
        return;
    }
    if (!t->weighed && t->per100g_fen <= 0) {
        notice(t, YN_SCREEN_ERROR, "weighed_unavailable", "未配置称重",
               "没有称重单价 ([menu] price_per_100g_fen = 0)");
        return;
    }
    t->weighed = !t->weighed;
    yn_info("terminal: weighed mode %s", t->weighed ? "on" : "off");
    show_idle(t);
}

/* '-' in weighed mode: tare the scale (an empty bowl or tray on it). */
static void tare(yn_terminal *t)
{
    int rc = yn_scale_tare(&t->dev->scale);
    if (rc == YN_OK) {
        notice(t, YN_SCREEN_INFO, "tared", "已去皮", "请放上餐食后刷卡");
    } else {
        char line[96];
        snprintf(line, sizeof line, "去皮失败: %s", yn_strerror(rc));
        yn_warn("scale: tare: %s", yn_strerror(rc));
        notice(t, YN_SCREEN_ERROR, "tare_failed", "去皮失败", line);
    }
}

static void on_key(yn_terminal *t, int key)
{
    size_t n = strlen(t->price_text);
    bool digit = (key >= '0' && key <= '9') || key == YN_KEY_DOT;
    if (is_kiosk(t)) {
        if (key == YN_KEY_CANCEL && t->state == ST_RESULT)
            show_idle(t);
        return;
    }
    if (t->state != ST_PRICE) {
        if (key == YN_KEY_CANCEL && t->state == ST_RESULT)
            show_idle(t);
        if (key == YN_KEY_PLUS)
            toggle_weighed(t);
        if (key == YN_KEY_MINUS && t->weighed)
            tare(t);
        if (!digit)
            return;
        t->state = ST_PRICE;
        n = 0;
        t->price_text[0] = '\0';
    }
    if (digit && n + 1 < sizeof t->price_text) {
        t->price_text[n] = (char)key;
        t->price_text[n + 1] = '\0';
    } else if (key == YN_KEY_BACK && n > 0) {
        t->price_text[n - 1] = '\0';
    } else if (key == YN_KEY_CANCEL) {
        show_idle(t);
        return;
    } else if (key == YN_KEY_ENTER) {
        int64_t fen;
        if (yn_fen_parse_yuan(t->price_text, 100000, &fen) == YN_OK && (!t->weighed || fen > 0)) {
            *(t->weighed ? &t->per100g_fen : &t->price_fen) = fen;
            yn_info("terminal: %s set to %lld fen", t->weighed ? "price per 100 g" : "meal price",
                    (long long)fen);
            show_idle(t);
        } else {
            yn_screen s;
            yn_screen_init(&s, YN_SCREEN_ERROR, "price_invalid", "价格无效");
            yn_screen_add(&s, YN_TEXT_LARGE, "%s",
                          t->weighed ? "请输入每100克 0.01 到 1000 元，最多两位小数"
                                     : "请输入 0 到 1000 元，最多两位小数");
            show(t, &s);
            t->price_text[0] = '\0';
            result_timer(t);
        }
        return;
    }
    show_price_entry(t);
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
        on_key(t, ev->key);
        break;
    }
}

static bool same_card(const yn_nfc_tag *a, const yn_nfc_tag *b)
{
    return a->uid_len == b->uid_len && memcmp(a->uid, b->uid, a->uid_len) == 0;
}

/* Look at the field: a card that was not there before is a tap. */
static void watch_field(yn_terminal *t)
{
    yn_nfc_tag tag;
    int rc = yn_nfc_poll(&t->dev->nfc, 0, &tag);
    int64_t now = yn_clock_mono_ms(&t->dev->clock);
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
        same && (t->last_in_field ||
                 (t->last_decided && now - t->last_seen_ms < t->cfg->reader.debounce_ms));
    t->last_tag = tag;
    t->last_seen_ms = now;
    if (debounced) {
        t->last_in_field = true;
        return;
    }
    if (t->state == ST_PRICE)
        show_idle(t); /* a tap ends an unfinished price entry */
    t->last_decided = on_tap(t, &tag);
    t->last_in_field = true;
    t->last_seen_ms = yn_clock_mono_ms(&t->dev->clock);
}

void yn_terminal_start(yn_terminal *t)
{
    show_idle(t);
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
