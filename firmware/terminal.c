/* terminal.c — the terminal state machine.
 *
 *   IDLE ──digits──► PRICE ──Enter──► IDLE (new meal price)
 *   IDLE ──tap──► decide + durable debit (pos) / balance (kiosk) ──► RESULT
 *   RESULT ──timeout, Esc or the next tap──► IDLE
 *   IDLE ──'+'──► IDLE in weighed mode (称重) and back; '-' tares the scale
 *   IDLE ──'*'──► staff: 工号 + 密码 (login) ──► MENU: 1 冲正  2 日结  3 退出登录
 *   MENU ──1──► 流水号 ──► supervisor 工号 + 密码 ──► yn_ledger_reverse ──► RESULT
 *   MENU ──2──► today's yn_ledger_settle on screen + CSV in [ledger] settle_dir
 *
 * Staff and PINs ([operators] in board.conf): a PIN is checked against
 * SHA-256(salt ‖ PIN); it is never logged nor kept after the check. After
 * STAFF_MAX_WRONG wrong PINs in a row (login or 冲正 authorisation, unknown
 * ids included) the staff menu is locked for STAFF_LOCK_MS on the monotonic
 * clock; every wrong PIN is logged with the operator id. Diners may tap with
 * nobody logged in (the lunch rush must not wait for staff): such records
 * carry no operator id; after login every record carries the operator's.
 * A 冲正 record carries the supervisor who authorised it.
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

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "money.h"
#include "nfc_sim.h"
#include "tap.h"
#include "voice.h"

enum state {
    ST_IDLE,
    ST_PRICE,
    ST_RESULT,
    ST_STAFF_ID,  /* keying in an operator id */
    ST_STAFF_PIN, /* keying in that operator's PIN */
    ST_MENU,      /* the staff menu */
    ST_REV_SEQ,   /* keying in the journal seq to undo */
};

/* What an id + PIN entry is for. */
enum auth_purpose { AUTH_LOGIN, AUTH_REVERSE };

#define STAFF_MAX_WRONG 3     /* wrong PINs in a row before the lock */
#define STAFF_LOCK_MS   60000 /* how long the staff menu stays locked */
#define ENTRY_MAX       13    /* digits keyed in: ids, PINs, seqs (+ NUL) */
#define SETTLE_SHOW_MS  60000 /* the 日结 screen stays this long (or until Esc) */

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
    char idle_period[YN_NAME_MAX];   /* the period the idle screen shows */
    int32_t idle_minute;             /* the local minute of day it shows */
    /* staff */
    bool logged_in;
    char operator_id[YN_OPERATOR_ID_MAX]; /* who is logged in ("" = nobody) */
    enum auth_purpose auth;               /* what the id + PIN being keyed in is for */
    char auth_id[YN_OPERATOR_ID_MAX];     /* the id keyed in before the PIN */
    char entry[ENTRY_MAX];                /* digits keyed in (wiped after a PIN check) */
    int64_t rev_seq;                      /* the meal to undo */
    int wrong_pins;                       /* wrong PINs in a row */
    int64_t locked_until_ms;              /* monotonic: staff menu locked until then */
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
        .keys = deps->keys,
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

static void say(yn_terminal *t, const yn_phrase *p)
{
    if (yn_audio_say(&t->dev->audio, p) != YN_OK)
        yn_debug("audio: cannot say a phrase of %d clips starting '%s'", p->n,
                 p->n ? p->clips[0] : "");
}

/* What the diner hears after a tap: the refusal's sentence; or, for a sale,
 * 扣款成功 补贴 X元 [请付现金 Y元] [卡内余额 Z元] — or, without subsidy, the
 * reason's sentence and 请付现金 Y元 [卡内余额 Z元]. */
static void say_outcome(yn_terminal *t, const yn_tap_outcome *o)
{
    yn_phrase p = {0};
    const yn_decision *d = &o->result.decision;
    if (!o->charged) {
        yn_voice_reason(&p, o->reason);
    } else {
        if (d->subsidy_fen > 0) {
            yn_phrase_add(&p, "success");
            yn_phrase_add(&p, "butie");
            yn_voice_amount(&p, d->subsidy_fen);
        } else {
            yn_voice_reason(&p, d->reason);
        }
        if (d->cash_fen > 0) {
            yn_phrase_add(&p, "qing_fu_xianjin");
            yn_voice_amount(&p, d->cash_fen);
        }
        if (d->wallet_fen > 0) {
            yn_phrase_add(&p, "ka_nei_yu_e");
            yn_voice_amount(&p, o->result.wallet_after_fen);
        }
    }
    say(t, &p);
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
    if (t->logged_in)
        n += snprintf(s->footer + n, sizeof s->footer - (size_t)n, "  操作员 %s", t->operator_id);
    if (count > 0)
        n += snprintf(s->footer + n, sizeof s->footer - (size_t)n,
                      "  待上传 %lld 条 (最早 %lld 分钟前)", (long long)count,
                      (long long)(age_s / 60));
    else if (count == 0)
        n += snprintf(s->footer + n, sizeof s->footer - (size_t)n, "  记录已全部上传");
    if ((is_sim_reader(t) || t->cfg->reader.demo_control[0]) && n > 0 &&
        (size_t)n < sizeof s->footer)
        snprintf(s->footer + n, sizeof s->footer - (size_t)n, "  |  a-p 刷卡 x 拿走 q 退出");
}

/* 在线 when the district answered within three sync intervals; the staff
 * see at a glance that records are piling up offline. */
static const char *online_text(yn_terminal *t)
{
    char v[32];
    if (!t->cfg->sync.enabled)
        return "离线模式";
    if (yn_ledger_meta_get(t->deps.ledger, "last_sync_utc_s", v, sizeof v) != YN_OK)
        return "离线 (尚未同步)";
    int64_t age_s = yn_clock_utc_s(&t->dev->clock) - strtoll(v, NULL, 10);
    return age_s <= 3 * (int64_t)t->cfg->sync.interval_s ? "在线" : "离线";
}

static void show_idle(yn_terminal *t)
{
    yn_screen s;
    char price[32];
    yn_moment m;
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    memcpy(t->idle_period, m.period, sizeof t->idle_period);
    t->idle_minute = m.seconds_of_day / 60;
    memset(t->entry, 0, sizeof t->entry);
    yn_screen_init(&s, YN_SCREEN_IDLE, "idle",
                   t->cfg->terminal.canteen_name[0] ? t->cfg->terminal.canteen_name
                                                    : t->cfg->terminal.canteen_id);
    yn_screen_add(&s, YN_TEXT_NORMAL, "%d-%02d-%02d %02d:%02d  %s", m.local_ymd / 10000,
                  m.local_ymd / 100 % 100, m.local_ymd % 100, m.seconds_of_day / 3600,
                  m.seconds_of_day / 60 % 60, online_text(t));
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

static void result_timer_ms(yn_terminal *t, int ms)
{
    t->state = ST_RESULT;
    t->result_until_ms = yn_clock_mono_ms(&t->dev->clock) + ms;
}

static void result_timer(yn_terminal *t)
{
    result_timer_ms(t, t->cfg->display.result_ms);
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
        say_outcome(t, o);
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
        if (o->result.seq > 0)
            yn_screen_add(&s, YN_TEXT_NORMAL, "流水号 %lld", (long long)o->result.seq);
        say_outcome(t, o);
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
        int32_t per_month;
        int64_t cap_fen;
        char b[32];
        yn_policy_month_limits(t->deps.policy, &per_month, &cap_fen);
        yn_fen_format(cap_fen > acc.subsidy_month_fen ? cap_fen - acc.subsidy_month_fen : 0, b,
                      sizeof b);
        if (per_month > 0 && cap_fen > 0)
            yn_screen_add(&s, YN_TEXT_LARGE, "本月还可补贴 %d 次 %s",
                          per_month > acc.meals_month ? per_month - acc.meals_month : 0, b);
        else if (per_month > 0)
            yn_screen_add(&s, YN_TEXT_LARGE, "本月还可补贴 %d 次",
                          per_month > acc.meals_month ? per_month - acc.meals_month : 0);
        else if (cap_fen > 0)
            yn_screen_add(&s, YN_TEXT_LARGE, "本月补贴额度还剩 %s", b);
        else
            yn_screen_add(&s, YN_TEXT_NORMAL, "本月补贴不限次数");
        for (int i = 0; i < acc.n_last && i < 5 && s.n_lines < YN_SCREEN_LINES; i++) {
            const yn_ledger_meal_line *m = &acc.last[i];
            yn_fen_format(m->paid_fen, a, sizeof a);
            yn_fen_format(m->subsidy_fen, b, sizeof b);
            yn_screen_add(&s, YN_TEXT_NORMAL, "%d-%02d-%02d %s %s 补贴 %s 付 %s%s",
                          m->local_ymd / 10000, m->local_ymd / 100 % 100, m->local_ymd % 100,
                          period_label(m->period), m->terminal, b, a,
                          m->reversed ? " (已冲正)" : "");
        }
        yn_phrase p = {0};
        yn_phrase_add(&p, "yu_e");
        yn_voice_amount(&p, acc.wallet_fen);
        say(t, &p);
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
        yn_tap_debit(&t->env, tag, &meal, next_tap_id(t), t->logged_in ? t->operator_id : NULL,
                     &when, &o);
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

/* --- staff: login, 冲正, 日结 ------------------------------------------------ */

static int64_t lock_left_ms(yn_terminal *t)
{
    int64_t left = t->locked_until_ms - yn_clock_mono_ms(&t->dev->clock);
    return left > 0 ? left : 0;
}

static void show_locked(yn_terminal *t)
{
    char line[96];
    snprintf(line, sizeof line, "密码错误次数过多，请 %lld 秒后再试",
             (long long)((lock_left_ms(t) + 999) / 1000));
    notice(t, YN_SCREEN_ERROR, "staff_locked", "管理功能已锁定", line);
}

static void show_menu(yn_terminal *t)
{
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_PROMPT, "staff_menu", "管理菜单");
    yn_screen_add(&s, YN_TEXT_LARGE, "1 冲正");
    yn_screen_add(&s, YN_TEXT_LARGE, "2 日结");
    yn_screen_add(&s, YN_TEXT_LARGE, "3 退出登录");
    yn_screen_add(&s, YN_TEXT_NORMAL, "取消键 返回");
    footer(t, &s);
    show(t, &s);
    t->state = ST_MENU;
    memset(t->entry, 0, sizeof t->entry);
}

/* The screen of the digits being keyed in (ids, PINs masked, seqs). */
static void show_entry(yn_terminal *t)
{
    yn_screen s;
    char masked[ENTRY_MAX];
    size_t n = strlen(t->entry);
    const char *title = t->auth == AUTH_REVERSE ? "冲正 主管授权" : "工作人员登录";
    switch (t->state) {
    case ST_STAFF_ID:
        yn_screen_init(&s, YN_SCREEN_PROMPT, "staff_id", title);
        yn_screen_add(&s, YN_TEXT_HUGE, "%s %s_", t->auth == AUTH_REVERSE ? "主管工号" : "工号",
                      t->entry);
        break;
    case ST_STAFF_PIN:
        memset(masked, '*', n);
        masked[n] = '\0';
        yn_screen_init(&s, YN_SCREEN_PROMPT, "staff_pin", title);
        yn_screen_add(&s, YN_TEXT_NORMAL, "工号 %s", t->auth_id);
        yn_screen_add(&s, YN_TEXT_HUGE, "密码 %s_", masked);
        break;
    default:
        yn_screen_init(&s, YN_SCREEN_PROMPT, "reverse_seq", "冲正");
        yn_screen_add(&s, YN_TEXT_HUGE, "流水号 %s_", t->entry);
        yn_screen_add(&s, YN_TEXT_NORMAL, "输入成功画面上的流水号");
        break;
    }
    yn_screen_add(&s, YN_TEXT_NORMAL, "确认键 继续   取消键 返回");
    footer(t, &s);
    show(t, &s);
}

static void start_auth(yn_terminal *t, enum auth_purpose why)
{
    t->auth = why;
    t->auth_id[0] = '\0';
    memset(t->entry, 0, sizeof t->entry);
    t->state = ST_STAFF_ID;
    show_entry(t);
}

/* '*': the staff menu, after a login when nobody is logged in. */
static void open_staff(yn_terminal *t)
{
    if (lock_left_ms(t) > 0)
        show_locked(t);
    else if (t->logged_in)
        show_menu(t);
    else
        start_auth(t, AUTH_LOGIN);
}

/* A wrong PIN (or an unknown id): count it, log it, lock after too many. */
static void wrong_pin(yn_terminal *t)
{
    t->wrong_pins++;
    yn_warn("staff: wrong PIN for operator %s (%s; %d in a row)", t->auth_id,
            t->auth == AUTH_REVERSE ? "冲正 authorisation" : "login", t->wrong_pins);
    if (t->wrong_pins >= STAFF_MAX_WRONG) {
        t->wrong_pins = 0;
        t->locked_until_ms = yn_clock_mono_ms(&t->dev->clock) + STAFF_LOCK_MS;
        yn_warn("staff: %d wrong PINs in a row; staff menu locked for %d s", STAFF_MAX_WRONG,
                STAFF_LOCK_MS / 1000);
        show_locked(t);
        return;
    }
    char line[64];
    snprintf(line, sizeof line, "还可以再试 %d 次", STAFF_MAX_WRONG - t->wrong_pins);
    notice(t, YN_SCREEN_ERROR, "pin_wrong", "工号或密码错误", line);
}

/* 冲正 of t->rev_seq, authorised by supervisor sup_id. */
static void reverse(yn_terminal *t, const char *sup_id)
{
    yn_screen s;
    yn_ledger_result res;
    yn_ledger_when when = {.utc_s = yn_clock_utc_s(&t->dev->clock),
                           .mono_ms = yn_clock_mono_ms(&t->dev->clock),
                           .clock_trusted = t->dev->clock.trusted};
    long long seq = (long long)t->rev_seq;
    int rc = yn_ledger_reverse(t->deps.ledger, t->deps.policy, t->rev_seq, sup_id, &when, &res);
    if (rc == YN_OK) {
        char a[32];
        yn_ledger_record rec = {0};
        if (yn_ledger_record_get(t->deps.ledger, res.seq, &rec) != YN_OK)
            rec.card_no[0] = '\0';
        yn_info("staff: meal %lld reversed by supervisor %s (record %lld, card %s)", seq, sup_id,
                (long long)res.seq, rec.card_no);
        yn_screen_init(&s, YN_SCREEN_OK, "reversed", "冲正成功");
        yn_screen_add(&s, YN_TEXT_LARGE, "流水号 %lld 已冲正", seq);
        yn_screen_add(&s, YN_TEXT_NORMAL, "卡号 %s  冲正流水号 %lld", rec.card_no,
                      (long long)res.seq);
        yn_fen_format(-res.decision.subsidy_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_NORMAL, "补贴退回 %s", a);
        yn_fen_format(-res.decision.wallet_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_LARGE, "退回卡内 %s", a);
        yn_fen_format(-res.decision.cash_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_LARGE, "退还现金 %s", a);
        yn_fen_format(res.wallet_after_fen, a, sizeof a);
        yn_screen_add(&s, YN_TEXT_NORMAL, "卡内余额 %s", a);
    } else {
        char line[128];
        switch (rc) {
        case YN_ENOTFOUND:
            snprintf(line, sizeof line, "没有流水号 %lld", seq);
            break;
        case YN_EDUPLICATE:
            snprintf(line, sizeof line, "流水号 %lld 已经冲正过 (冲正流水号 %lld)", seq,
                     (long long)res.seq);
            break;
        case YN_EREFUSED:
            snprintf(line, sizeof line,
                     "流水号 %lld 不能冲正: 不是餐费记录，或已超过冲正时限 (%d 分钟)", seq,
                     yn_policy_reverse_window_s(t->deps.policy) / 60);
            break;
        default:
            snprintf(line, sizeof line, "账本错误: %s", yn_strerror(rc));
            break;
        }
        yn_warn("staff: reversal of %lld by %s refused: %s", seq, sup_id, yn_strerror(rc));
        yn_screen_init(&s, YN_SCREEN_ERROR, "reverse_refused", "未冲正");
        yn_screen_add(&s, YN_TEXT_LARGE, "%s", line);
    }
    footer(t, &s);
    show(t, &s);
    result_timer(t);
}

/* The id and PIN keyed in: log in, or authorise the 冲正. */
static void check_pin(yn_terminal *t)
{
    const yn_operator *op = yn_config_operator(t->cfg, t->auth_id);
    bool ok = op && yn_operator_pin_ok(op, t->entry);
    memset(t->entry, 0, sizeof t->entry); /* the PIN goes no further */
    if (!ok) {
        wrong_pin(t);
        return;
    }
    t->wrong_pins = 0;
    if (t->auth == AUTH_LOGIN) {
        t->logged_in = true;
        memcpy(t->operator_id, op->id, sizeof t->operator_id);
        yn_info("staff: operator %s logged in (%s)", op->id,
                op->role == YN_ROLE_SUPERVISOR ? "supervisor" : "operator");
        show_menu(t);
    } else if (op->role != YN_ROLE_SUPERVISOR) {
        char line[96];
        yn_warn("staff: operator %s is not a supervisor; reversal of %lld refused", op->id,
                (long long)t->rev_seq);
        snprintf(line, sizeof line, "工号 %s 不是主管，不能冲正", op->id);
        notice(t, YN_SCREEN_ERROR, "not_supervisor", "需要主管授权", line);
    } else {
        reverse(t, op->id);
    }
}

/* A name and its count for a summary line: "低保 3". */
static void sum_list(char *out, size_t len, const char *label, const yn_ledger_sum *sums, int n,
                     bool money)
{
    int w = snprintf(out, len, "%s", label);
    for (int i = 0; i < n && w > 0 && (size_t)w < len; i++) {
        char a[32];
        yn_fen_format(sums[i].subsidy_fen, a, sizeof a);
        if (money)
            w += snprintf(out + w, len - (size_t)w, " %s %s", sums[i].name[0] ? sums[i].name : "-",
                          a);
        else
            w += snprintf(out + w, len - (size_t)w, " %s %lld",
                          sums[i].name[0] ? sums[i].name : "-", (long long)sums[i].count);
    }
}

/* 日结: today's sums on screen and as CSV in [ledger] settle_dir. */
static void settle(yn_terminal *t)
{
    yn_screen s;
    yn_moment m;
    yn_ledger_settlement st;
    char a[32], b[32], c[32], d[32], path[PATH_MAX + 64];
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    int rc = yn_ledger_settle(t->deps.ledger, m.local_ymd, &st);
    if (rc != YN_OK) {
        yn_err("staff: 日结 of %d: %s", (int)m.local_ymd, yn_strerror(rc));
        char line[96];
        snprintf(line, sizeof line, "账本错误: %s", yn_strerror(rc));
        notice(t, YN_SCREEN_ERROR, "settle_failed", "日结失败", line);
        return;
    }
    snprintf(path, sizeof path, "%s/settle-%s-%d.csv", t->cfg->ledger.settle_dir,
             t->cfg->terminal.id, (int)m.local_ymd);
    if (mkdir(t->cfg->ledger.settle_dir, 0755) != 0 && errno != EEXIST)
        rc = YN_EIO;
    else
        rc = yn_ledger_settle_csv_path(t->deps.ledger, m.local_ymd, path);
    if (rc != YN_OK)
        yn_err("staff: 日结: cannot write %s: %s", path, yn_strerror(rc));
    else
        yn_info("staff: 日结 of %d by operator %s written to %s", (int)m.local_ymd, t->operator_id,
                path);

    char title[64], line[YN_SCREEN_TEXT];
    snprintf(title, sizeof title, "日结 %d-%02d-%02d", (int)(m.local_ymd / 10000),
             (int)(m.local_ymd / 100 % 100), (int)(m.local_ymd % 100));
    yn_screen_init(&s, YN_SCREEN_INFO, "settlement", title);
    yn_fen_format(st.total.price_fen, a, sizeof a);
    yn_screen_add(&s, YN_TEXT_LARGE, "餐数 %lld  金额 %s", (long long)st.total.count, a);
    yn_fen_format(st.total.subsidy_fen, a, sizeof a);
    yn_fen_format(st.total.wallet_fen, b, sizeof b);
    yn_fen_format(st.total.cash_fen, c, sizeof c);
    yn_screen_add(&s, YN_TEXT_NORMAL, "补贴 %s  卡内 %s  现金 %s", a, b, c);
    yn_fen_format(-st.reversals.price_fen, a, sizeof a);
    yn_fen_format(-st.topups.wallet_fen, b, sizeof b);
    yn_fen_format(-st.allocations.wallet_fen, d, sizeof d);
    yn_screen_add(&s, YN_TEXT_NORMAL, "冲正 %lld 笔 %s  充值 %s  拨款 %s",
                  (long long)-st.reversals.count, a, b, d);
    sum_list(line, sizeof line, "类别:", st.categories, st.n_categories, false);
    yn_screen_add(&s, YN_TEXT_NORMAL, "%s", line);
    sum_list(line, sizeof line, "餐次:", st.periods, st.n_periods, false);
    yn_screen_add(&s, YN_TEXT_NORMAL, "%s", line);
    sum_list(line, sizeof line, "补贴来源:", st.sources, st.n_sources, true);
    yn_screen_add(&s, YN_TEXT_NORMAL, "%s", line);
    if (rc == YN_OK) {
        const char *base = strrchr(path, '/');
        yn_screen_add(&s, YN_TEXT_NORMAL, "已保存 %s", base ? base + 1 : path);
    } else {
        yn_screen_add(&s, YN_TEXT_NORMAL, "CSV 未能保存: %s", yn_strerror(rc));
    }
    footer(t, &s);
    show(t, &s);
    result_timer_ms(t, SETTLE_SHOW_MS);
}

static void menu_key(yn_terminal *t, int key)
{
    switch (key) {
    case '1':
        t->state = ST_REV_SEQ;
        memset(t->entry, 0, sizeof t->entry);
        show_entry(t);
        break;
    case '2':
        settle(t);
        break;
    case '3':
        yn_info("staff: operator %s logged out", t->operator_id);
        t->logged_in = false;
        t->operator_id[0] = '\0';
        notice(t, YN_SCREEN_INFO, "logged_out", "已退出登录", "请刷卡");
        break;
    case YN_KEY_CANCEL:
        show_idle(t);
        break;
    default:
        break;
    }
}

/* Keys while an id, PIN or seq is keyed in. */
static void entry_key(yn_terminal *t, int key)
{
    size_t n = strlen(t->entry);
    size_t max = t->state == ST_REV_SEQ ? ENTRY_MAX - 1 : YN_OPERATOR_ID_MAX - 1;
    if (key >= '0' && key <= '9') {
        if (n < max) {
            t->entry[n] = (char)key;
            t->entry[n + 1] = '\0';
        }
    } else if (key == YN_KEY_BACK) {
        if (n > 0)
            t->entry[n - 1] = '\0';
    } else if (key == YN_KEY_CANCEL) {
        if (t->logged_in && (t->state == ST_REV_SEQ || t->auth == AUTH_REVERSE))
            show_menu(t); /* back to the menu the 冲正 started from */
        else
            show_idle(t);
        return;
    } else if (key == YN_KEY_ENTER) {
        if (n == 0)
            return;
        if (t->state == ST_STAFF_ID) {
            memcpy(t->auth_id, t->entry, n + 1);
            memset(t->entry, 0, sizeof t->entry);
            t->state = ST_STAFF_PIN;
        } else if (t->state == ST_STAFF_PIN) {
            check_pin(t);
            return;
        } else {
            t->rev_seq = strtoll(t->entry, NULL, 10);
            start_auth(t, AUTH_REVERSE);
            return;
        }
    } else {
        return;
    }
    show_entry(t);
}

static bool in_staff(const yn_terminal *t)
{
    return t->state == ST_STAFF_ID || t->state == ST_STAFF_PIN || t->state == ST_MENU ||
           t->state == ST_REV_SEQ;
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
    if (t->state == ST_MENU) {
        menu_key(t, key);
        return;
    }
    if (in_staff(t)) {
        entry_key(t, key);
        return;
    }
    if (key == YN_KEY_MENU && t->state != ST_PRICE) {
        open_staff(t);
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

/* [reader] demo_control: the card keys drive an emulated reader (the PN532
 * emulator's control FIFO) instead of the simulated one. */
static void demo_control(yn_terminal *t, const yn_input_event *ev)
{
    char line[32];
    int n = ev->type == YN_EV_SIM_PRESENT ? snprintf(line, sizeof line, "present %d\n", ev->card)
                                          : snprintf(line, sizeof line, "remove\n");
    int fd = open(t->cfg->reader.demo_control, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        yn_warn("reader: demo_control %s: %s", t->cfg->reader.demo_control, strerror(errno));
        return;
    }
    if (write(fd, line, (size_t)n) != n)
        yn_warn("reader: demo_control %s: write: %s", t->cfg->reader.demo_control, strerror(errno));
    close(fd);
}

static void on_event(yn_terminal *t, const yn_input_event *ev)
{
    switch (ev->type) {
    case YN_EV_QUIT:
        t->done = true;
        break;
    case YN_EV_SIM_PRESENT:
    case YN_EV_SIM_REMOVE:
        if (!is_sim_reader(t) && t->cfg->reader.demo_control[0]) {
            demo_control(t, ev);
            break;
        }
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
    if (t->state == ST_PRICE || in_staff(t))
        show_idle(t); /* a tap ends an unfinished price or staff entry */
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
    if (t->state == ST_RESULT && yn_clock_mono_ms(&t->dev->clock) >= t->result_until_ms) {
        show_idle(t);
    } else if (t->state == ST_IDLE) {
        /* a meal period began or ended, or a minute passed, while the screen
         * waited: show it */
        yn_moment m;
        yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
        if (strcmp(m.period, t->idle_period) != 0 || m.seconds_of_day / 60 != t->idle_minute)
            show_idle(t); /* and the clock on it moves on */
    }
    return YN_OK;
}
