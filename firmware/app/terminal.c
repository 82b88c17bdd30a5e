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
 * rounded down to the fen (the policy engine does that: firmware/core/POLICY.md).
 * A weight that is not trustworthy refuses the tap before the card is read
 * (YN_REASON_WEIGHT): nothing is charged, and the diner may tap again at once.
 * Staff keying a price in weighed mode set the price per 100 g.
 *
 * A tap is a card entering the field after the terminal is ready: a card
 * already in the field at start is not a tap until it leaves and comes back.
 * The same card staying in the field (after any outcome, a failure too), or
 * coming back within debounce_ms after a decided tap, is the same tap: a
 * second presentation swallowed by a still-active listener must never charge
 * twice (and a retried tap id is idempotent in the ledger as well). After a
 * failed read the card may be taken away and tapped again at once.
 *
 * Tap ids are boot_no × 2^32 + a counter (above the ledger's highest, so they
 * increase across restarts). While the field is empty the terminal notes in
 * the ledger, without a durable commit of its own, up to which record it has
 * shown every outcome and settled every card stamp (LEDGER.md, "Card stamps",
 * "Tap ids"); at start, the newest tap after that mark is the one whose outcome
 * may never have been shown: when its card comes back, the tap is replayed
 * with its own id and the original outcome is shown, nothing charged; and
 * every subsidised meal after the mark gets a stamp-missing notice.
 *
 * Time comes from the clock's reading (hal/clock/clock.h): never a clock known to
 * be wrong; with no evidence at all, no tap is charged and staff are told
 * (LEDGER.md, "Clock"). */
#include "terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "money.h"
#include "screens.h"
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
    /* 忘带卡, after a supervisor's id + PIN */
    ST_MANUAL_TAIL,    /* keying in the last digits of the card number */
    ST_MANUAL_BIRTH,   /* keying in the birth date */
    ST_MANUAL_CONFIRM, /* the senior found: staff check, then Enter records the meal */
};

/* What an id + PIN entry is for. */
enum auth_purpose { AUTH_LOGIN, AUTH_REVERSE, AUTH_MANUAL };

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
    yn_card_cache cache;    /* verified records: a repeat DESFire tap reads the stamp only */
    char cache_path[600];   /* where the cache outlives a restart ("" = nowhere) */
    int64_t cache_saved_ms; /* monotonic: when it was last written */
    enum state state;
    int64_t price_fen;               /* the meal the next tap pays for */
    bool weighed;                    /* weighed mode: the next tap is priced by weight */
    int64_t per100g_fen;             /* weighed mode: price per 100 g */
    char price_text[PRICE_TEXT_MAX]; /* staff typing a new price (yuan) */
    int64_t result_until_ms;         /* monotonic: when the result screen goes */
    yn_nfc_tag last_tag;             /* the card of the last decided tap */
    bool last_in_field;              /* that card is still in the field */
    bool last_decided;               /* the last tap reached a decision (debounce it) */
    bool last_random;                /* …and was refused for a random UID: while the field
                                        stays occupied, whatever UID it shows is that card */
    int64_t last_seen_ms;            /* monotonic: when it was last seen in the field */
    int64_t last_tap_id;             /* tap ids are strictly increasing */
    bool has_unshown;                /* unshown holds a tap whose outcome was never shown */
    yn_ledger_record unshown;        /* … from before the restart: its card replays it */
    int64_t done_seq;                /* every tap up to this record shown, stamp settled */
    int64_t settled_mark;            /* done_seq as last noted in the ledger */
    int64_t unshown_mark;            /* unshown.seq as last noted in the ledger (0 none) */
    int64_t notice_due[8];           /* meals whose stamp notice could not be recorded yet */
    int n_notice_due;
    char clock_noted[96];          /* the clock anchor as last noted in the ledger */
    char idle_period[YN_NAME_MAX]; /* the period the idle screen shows */
    int32_t idle_minute;           /* the local minute of day it shows */
    const char *idle_online;       /* the 在线/离线 text it shows */
    int64_t idle_looked_ms;        /* monotonic: when that text was last looked at */
    /* staff */
    bool logged_in;
    char operator_id[YN_OPERATOR_ID_MAX];  /* who is logged in ("" = nobody) */
    enum auth_purpose auth;                /* what the id + PIN being keyed in is for */
    char auth_id[YN_OPERATOR_ID_MAX];      /* the id keyed in before the PIN */
    char entry[ENTRY_MAX];                 /* digits keyed in (wiped after a PIN check) */
    int64_t rev_seq;                       /* the meal to undo */
    char manual_super[YN_OPERATOR_ID_MAX]; /* 忘带卡: the supervisor who authorised */
    char manual_tail[ENTRY_MAX];           /* 忘带卡: the card number's last digits */
    yn_card_facts manual_card;             /* 忘带卡: the roster's senior to serve */
    int wrong_pins;                        /* wrong PINs in a row */
    int64_t locked_until_ms;               /* monotonic: staff menu locked until then */
    bool done;
    int taps;
    yn_sales_stop stop; /* sales stopped (keeper.c): why; NONE while selling */
};

/* Meta keys of what the terminal notes in the ledger while idle. */
#define META_SETTLED "tap_settled_seq" /* every tap up to here shown, its stamp settled */
#define META_UNSHOWN "tap_unshown_seq" /* a tap whose outcome was never shown (0: none) */
#define META_CLOCK   "clock_anchor"    /* boot_no boot_ms utc_ms offset_ms server */
#define RECOVER_MAX  1000              /* records looked at for missing stamps at start */

static int64_t meta_i64(yn_ledger *l, const char *key, int64_t absent)
{
    char v[32];
    return yn_ledger_meta_get(l, key, v, sizeof v) == YN_OK ? strtoll(v, NULL, 10) : absent;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The clock's evidence from the ledger: no time before its last record or
 * the anchor it kept; and that anchor itself when this is the same boot
 * (the program restarted, the boot clock did not). */
static void clock_from_ledger(yn_terminal *t, int64_t head)
{
    yn_ledger *l = t->deps.ledger;
    int64_t floor_ms = 0;
    yn_ledger_record last;
    if (head > 0 && yn_ledger_record_get(l, head, &last) == YN_OK)
        floor_ms = last.utc_s * 1000;
    char v[96];
    long long boot_no = 0, boot_ms = 0, utc_ms = 0, offset_ms = 0;
    int server = 0;
    if (yn_ledger_meta_get(l, META_CLOCK, v, sizeof v) == YN_OK &&
        sscanf(v, "%lld %lld %lld %lld %d", &boot_no, &boot_ms, &utc_ms, &offset_ms, &server) ==
            5) {
        snprintf(t->clock_noted, sizeof t->clock_noted, "%s", v);
        floor_ms = max64(floor_ms, utc_ms);
        if (boot_no == yn_ledger_boot_no(l) && boot_ms <= yn_clock_boot_ms(&t->dev->clock)) {
            yn_clock_resume(&t->dev->clock, boot_ms, utc_ms, offset_ms, server != 0);
            yn_info("clock: continuing from the anchor kept in this boot (%lld ms UTC%s)", utc_ms,
                    server ? ", from the server" : "");
        }
    }
    yn_clock_set_floor(&t->dev->clock, floor_ms);
}

static void when_now(yn_terminal *t, yn_ledger_when *w, yn_clock_reading *rd)
{
    yn_clock_read(&t->dev->clock, rd);
    *w = (yn_ledger_when){.utc_s = rd->utc_ms / 1000,
                          .mono_ms = yn_clock_mono_ms(&t->dev->clock),
                          .clock_trusted = rd->trusted};
}

/* After a restart (LEDGER.md, "Card stamps"): the tap whose outcome may
 * never have been shown, and a notice for every subsidised meal whose stamp
 * outcome was not settled. */
static int resume_taps(yn_terminal *t, int64_t head)
{
    yn_ledger *l = t->deps.ledger;
    int64_t settled = meta_i64(l, META_SETTLED, -1);
    int64_t unshown = meta_i64(l, META_UNSHOWN, 0);
    if (settled < 0) /* a ledger of older firmware: its stamps were written before commit */
        settled = head;
    yn_ledger_record r;
    if (unshown > 0 && yn_ledger_record_get(l, unshown, &r) == YN_OK && r.tap_id > 0) {
        t->unshown = r;
        t->has_unshown = true;
    } else if (settled < head && yn_ledger_newest_tap(l, &r) == YN_OK && r.seq > settled &&
               r.kind == YN_LEDGER_MEAL) {
        t->unshown = r;
        t->has_unshown = true;
    }
    if (t->has_unshown) {
        yn_warn("terminal: the outcome of tap %lld (record %lld, card %s) may not have been "
                "shown before the stop: when that card comes back it is shown again, not "
                "charged",
                (long long)t->unshown.tap_id, (long long)t->unshown.seq, t->unshown.card_no);
        t->unshown_mark = unshown;
    }
    yn_ledger_when w;
    yn_clock_reading rd;
    when_now(t, &w, &rd);
    int noted = 0;
    int rc = settled < head ? yn_tap_recover(&t->env, settled, RECOVER_MAX, &w, &noted) : YN_OK;
    if (rc != YN_OK)
        return rc;
    if (noted)
        yn_warn("terminal: %d meal(s) before the stop may lack their card stamp: noted for the "
                "district, rewritten when each card comes back",
                noted);
    /* noted at once, so that a stop before the first idle moment still leaves
     * the mark of a ledger this firmware ran (its absence means older firmware) */
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)head);
    if (head != settled || meta_i64(l, META_SETTLED, -1) < 0)
        rc = yn_ledger_meta_put_lazy(l, META_SETTLED, v);
    t->settled_mark = head;
    t->done_seq = head;
    return rc;
}

/* The verified-record cache outlives a restart in <ledger>.cards (CARD.md §5):
 * a terminal switched off at night still reads only the stamp of a regular's
 * card the next day. Every record is verified again as it is loaded; a
 * missing or damaged file is only a slower first tap. */
static void cache_load(yn_terminal *t)
{
    if (!t->cfg->ledger.path[0] || !t->deps.ring ||
        snprintf(t->cache_path, sizeof t->cache_path, "%s.cards", t->cfg->ledger.path) >=
            (int)sizeof t->cache_path) {
        t->cache_path[0] = '\0';
        return;
    }
    char *buf;
    size_t len;
    int rc = yn_file_read_all(t->cache_path, YN_CARD_CACHE_FILE_MAX, &buf, &len);
    if (rc == YN_ENOENT)
        return;
    int kept = 0, dropped = 0;
    if (rc == YN_OK)
        rc = yn_card_cache_decode(&t->cache, (const uint8_t *)buf, len, t->deps.ring,
                                  yn_clock_mono_ms(&t->dev->clock), yn_clock_utc_s(&t->dev->clock),
                                  &kept, &dropped);
    free(buf);
    if (rc != YN_OK)
        yn_warn("terminal: record cache %s not used (%s): first taps read the whole card",
                t->cache_path, yn_strerror(rc));
    else
        yn_info("terminal: record cache: %d cards known, %d left out (expired or not verified)",
                kept, dropped);
}

/* While idle, at most once a minute: write the cache if it changed. */
static void cache_save(yn_terminal *t, bool now)
{
    int64_t mono = yn_clock_mono_ms(&t->dev->clock);
    if (!t->cache_path[0] || !t->cache.dirty || (!now && mono - t->cache_saved_ms < 60000))
        return;
    uint8_t *buf = malloc(YN_CARD_CACHE_FILE_MAX);
    size_t len;
    int rc = buf ? yn_card_cache_encode(&t->cache, mono, yn_clock_utc_s(&t->dev->clock), buf,
                                        YN_CARD_CACHE_FILE_MAX, &len)
                 : YN_ENOMEM;
    if (rc == YN_OK)
        rc = yn_file_write_atomic(t->cache_path, buf, len, 0600); /* personal data */
    free(buf);
    t->cache_saved_ms = mono;
    if (rc != YN_OK)
        yn_warn("terminal: record cache %s not written: %s", t->cache_path, yn_strerror(rc));
}

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
    t->per100g_fen = cfg->menu.price_per_100g_fen;
    t->env = (yn_tap_env){
        .nfc = &dev->nfc,
        .ledger = deps->ledger,
        .policy = deps->policy,
        .keys = deps->keys,
        .ring = deps->ring,
        .canteen = {.district = cfg->terminal.district, .street = cfg->terminal.street},
        .canteen_code = yn_tap_canteen_code(cfg->terminal.canteen_id),
        .terminal_code = yn_card_terminal_code(cfg->terminal.id),
        .cache = &t->cache,
        .clock = &dev->clock};
    /* tap ids: boot_no × 2^32 + n, above every id used before (whatever the
     * wall clock says); a restart within one boot continues after the highest */
    int64_t head = 0, max_tap = 0;
    uint8_t hash[YN_LEDGER_HASH_LEN];
    int rc = yn_ledger_tap_id_max(deps->ledger, &max_tap);
    if (rc == YN_OK)
        rc = yn_ledger_head(deps->ledger, &head, hash);
    if (rc == YN_OK) {
        t->last_tap_id = max64(yn_ledger_boot_no(deps->ledger) << 32, max_tap);
        clock_from_ledger(t, head);
        rc = resume_taps(t, head);
    }
    if (rc != YN_OK) {
        yn_err("terminal: cannot read the ledger at start: %s", yn_strerror(rc));
        free(t);
        return rc;
    }
    cache_load(t);
    *out = t;
    return YN_OK;
}

void yn_terminal_free(yn_terminal *t)
{
    if (t)
        cache_save(t, true);
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
 * pulse_ms). The io backends never block for the pulse (hal/io/io.h). */
static void light(yn_terminal *t, enum yn_output out)
{
    int ms = t->cfg->io.out_pulse_ms[out] > 0 ? t->cfg->io.out_pulse_ms[out] : t->cfg->io.pulse_ms;
    int rc = yn_io_pulse(&t->dev->io, out, ms);
    if (rc != YN_OK && rc != YN_ENODEV && rc != YN_ENOTSUP) /* absent or not wired: quiet */
        yn_warn("io: %s: %s", yn_output_name(out), yn_strerror(rc));
}

/* What every screen's status bar shows, and where names come from. */
static yn_screens_ctx screens_ctx(yn_terminal *t)
{
    yn_screens_ctx c = {.policy = t->deps.policy,
                        .terminal_id = t->cfg->terminal.id,
                        .operator_id = t->logged_in ? t->operator_id : ""};
    if (yn_ledger_unsent(t->deps.ledger, yn_clock_utc_s(&t->dev->clock), &c.unsent,
                         &c.unsent_age_s) != YN_OK)
        c.unsent = -1;
    return c;
}

/* The status bar: terminal, operator, records waiting for upload. */
static void footer(yn_terminal *t, yn_screen *s)
{
    yn_screens_ctx c = screens_ctx(t);
    yn_screens_footer(s, &c);
}

/* How many demo cards the card keys present (demo.h): 0 outside a demo, -1
 * when not known here. */
static int demo_cards(const yn_terminal *t)
{
    return t->deps.demo ? t->deps.demo->cards(t->deps.demo->ctx) : 0;
}

/* 在线 when the district answered within three sync intervals; the staff
 * see at a glance that records are piling up offline. */
static const char *online_text(yn_terminal *t)
{
    char v[32];
    if (!t->cfg->sync.enabled)
        return "离线模式";
    if (yn_ledger_meta_get(t->deps.ledger, "last_sync_utc_s", v, sizeof v) != YN_OK)
        return "离线（尚未同步）";
    int64_t age_s = yn_clock_utc_s(&t->dev->clock) - strtoll(v, NULL, 10);
    return age_s <= 3 * (int64_t)t->cfg->sync.interval_s ? "在线" : "离线";
}

static void show_stopped(yn_terminal *t);

static void show_idle(yn_terminal *t)
{
    yn_screen s;
    yn_moment m;
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    memcpy(t->idle_period, m.period, sizeof t->idle_period);
    t->idle_minute = m.seconds_of_day / 60;
    t->idle_looked_ms = yn_clock_mono_ms(&t->dev->clock);
    if (t->stop.why != YN_STOP_NONE) {
        show_stopped(t);
        return;
    }
    memset(t->entry, 0, sizeof t->entry);
    yn_clock_reading rd;
    yn_clock_read(&t->dev->clock, &rd);
    yn_screens_ctx c = screens_ctx(t);
    yn_idle_view v = {.canteen = t->cfg->terminal.canteen_name[0] ? t->cfg->terminal.canteen_name
                                                                  : t->cfg->terminal.canteen_id,
                      .local_ymd = m.local_ymd,
                      .seconds_of_day = m.seconds_of_day,
                      .online = t->idle_online = online_text(t),
                      .period = m.period,
                      .kiosk = is_kiosk(t),
                      .weighed = t->weighed,
                      .price_fen = t->price_fen,
                      .per100g_fen = t->per100g_fen,
                      .demo_cards = demo_cards(t),
                      .clock_unknown = rd.state == YN_CLOCK_UNKNOWN,
                      .clock_estimated = rd.state == YN_CLOCK_ESTIMATED};
    yn_screens_idle(&s, &c, &v);
    show(t, &s);
    t->state = ST_IDLE;
}

static void show_price_entry(yn_terminal *t)
{
    yn_screen s;
    yn_screens_price_entry(&s, t->weighed, t->price_text);
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
 * sold (NULL in the kiosk); staff_note an exact Chinese detail or NULL. */
static void show_debit(yn_terminal *t, const yn_tap_outcome *o, const yn_meal *meal,
                       const char *staff_note)
{
    yn_screen s;
    yn_screens_ctx c = screens_ctx(t);
    yn_screens_tap(&s, &c, o, meal, staff_note);
    say_outcome(t, o);
    if (!o->charged) {
        light(t, YN_OUT_RED);
        light(t, YN_OUT_BUZZER);
    } else {
        light(t, YN_OUT_GREEN);
        light(t, YN_OUT_GATE);
    }
    show(t, &s);
}

/* The kiosk: what is left, what was eaten — shown and said. */
static void show_balance(yn_terminal *t, const yn_tap_outcome *o)
{
    yn_screen s;
    yn_ledger_account acc;
    int rc = yn_ledger_balance(t->deps.ledger, o->card.card_no, yn_clock_utc_s(&t->dev->clock),
                               YN_SCREENS_KIOSK_MEALS, &acc);
    if (rc != YN_OK) {
        yn_err("kiosk: balance of card %s: %s", o->card.card_no, yn_strerror(rc));
        yn_screens_balance_failed(&s, rc);
        footer(t, &s);
        light(t, YN_OUT_RED);
    } else {
        yn_screens_ctx c = screens_ctx(t);
        yn_balance_view v = {.acc = &acc};
        yn_policy_limits(t->deps.policy, &v.limits);
        yn_screens_balance(&s, &c, &v);
        yn_phrase p = {0};
        yn_voice_balance(&p, &acc, &v.limits);
        say(t, &p);
        light(t, YN_OUT_GREEN);
    }
    show(t, &s);
}

static int64_t next_tap_id(yn_terminal *t)
{
    return ++t->last_tap_id;
}

/* Why a weighed tap was refused: English for the log, Chinese for staff. */
struct weigh_why {
    char log[192];
    char staff[160];
};

static void why_scale(struct weigh_why *why, int rc, const char *log_what, const char *staff_what)
{
    snprintf(why->log, sizeof why->log, "scale: %s: %s", log_what, yn_strerror(rc));
    snprintf(why->staff, sizeof why->staff, "电子秤%s：%s", staff_what, yn_screens_status_text(rc));
}

/* A weight fit to price a meal by: settled, confirmed by a second identical
 * settled reading, above 0 g, not over range, at most [scale] max_weight_g,
 * all within [scale] stable_timeout_ms. Otherwise false, with the exact reason
 * in why. Never guesses: a reading it cannot trust refuses the tap. A device
 * that answers with an error (a Modbus exception: the register map does not
 * fit the scale) is told apart from one that does not answer at all. */
static bool weigh(yn_terminal *t, int32_t *net_g, struct weigh_why *why)
{
    const yn_config *c = t->cfg;
    const int64_t deadline = yn_clock_device_ms(&t->dev->clock) + c->scale.stable_timeout_ms;
    yn_weight w = {0}, prev = {0};
    bool have_prev = false, have_reading = false, confirmed = false, quick = false;
    int rc;
    for (;;) {
        rc = yn_scale_read(&t->dev->scale, &w);
        if (rc == YN_ENODEV ||
            (rc >= YN_EDEV_FUNCTION && rc <= YN_EDEV_EXCEPTION && rc != YN_EDEV_BUSY)) {
            why_scale(why, rc, "reading refused", "读数失败");
            return false; /* no use asking again within this tap */
        }
        if (rc == YN_OK) {
            have_reading = true;
            if (w.stable && w.overload) {
                snprintf(why->log, sizeof why->log,
                         "scale: over range (%d g); take weight off the scale", (int)w.net_g);
                snprintf(why->staff, sizeof why->staff,
                         "电子秤超出量程（%d" YN_NB "克）：请拿走部分重量", (int)w.net_g);
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
        int64_t left = deadline - yn_clock_device_ms(&t->dev->clock);
        if (left <= 0)
            break;
        /* a settled reading is confirmed at once, once; otherwise the scale is
         * asked every WEIGH_POLL_MS (hal/chips/MODBUS.md), never back to back */
        quick = have_prev && !quick;
        if (!quick)
            yn_clock_device_sleep_ms(&t->dev->clock,
                                     (int)(left < WEIGH_POLL_MS ? left : WEIGH_POLL_MS));
    }
    if (!confirmed) {
        if (rc != YN_OK) {
            why_scale(why, rc, have_reading ? "reading failed; weight not settled" : "no reading",
                      have_reading ? "读数中断" : "没有读数");
        } else {
            snprintf(why->log, sizeof why->log,
                     "scale: weight not settled within %d ms (last %d g%s)",
                     c->scale.stable_timeout_ms, (int)w.net_g,
                     w.overload ? ", over range"
                     : w.stable ? ", changing"
                                : ", in motion");
            snprintf(why->staff, sizeof why->staff,
                     "重量在" YN_NB "%d" YN_NB "毫秒内没有稳定（最后" YN_NB "%d" YN_NB
                     "克）：请放稳餐盘",
                     c->scale.stable_timeout_ms, (int)w.net_g);
        }
        return false;
    }
    if (w.net_g <= 0) {
        snprintf(why->log, sizeof why->log,
                 "scale: net weight %d g: nothing on the scale, or a bad tare (zero the scale, "
                 "or tare with the '-' key)",
                 (int)w.net_g);
        snprintf(why->staff, sizeof why->staff,
                 "净重" YN_NB "%d" YN_NB "克：秤上没有餐食，或去皮不对（请清零，或按减号键去皮）",
                 (int)w.net_g);
        return false;
    }
    if (w.net_g > c->scale.max_weight_g) {
        snprintf(why->log, sizeof why->log, "scale: %d g is above [scale] max_weight_g = %d",
                 (int)w.net_g, c->scale.max_weight_g);
        snprintf(why->staff, sizeof why->staff,
                 "重量" YN_NB "%d" YN_NB "克超过设定的上限" YN_NB "%d" YN_NB "克", (int)w.net_g,
                 c->scale.max_weight_g);
        return false;
    }
    *net_g = w.net_g;
    return true;
}

/* The meal a tap or a 忘带卡 entry is priced for: as keyed, or by weight in
 * weighed mode. false: the weight was refused — o says so, shown and logged
 * with who's prefix, nothing charged. */
static bool price_meal(yn_terminal *t, const char *who, yn_meal *meal, yn_tap_outcome *o)
{
    *meal = (yn_meal){.price_fen = t->price_fen};
    if (!t->weighed)
        return true;
    int32_t weight_g = 0;
    struct weigh_why why = {.log = "", .staff = ""};
    if (!weigh(t, &weight_g, &why)) {
        *o = (yn_tap_outcome){.status = YN_EREFUSED, .reason = YN_REASON_WEIGHT};
        snprintf(o->detail, sizeof o->detail, "%s", why.log);
        yn_info("%s: weighed meal refused, nothing charged: %s", who, o->detail);
        show_debit(t, o, NULL, why.staff);
        return false;
    }
    *meal = (yn_meal){.weight_g = weight_g, .price_per_100g_fen = t->per100g_fen};
    return true;
}

/* No evidence for the time (hal/clock/clock.h, YN_CLOCK_UNKNOWN): a meal's date
 * and a senior's age cannot be told, so nothing is charged. */
static void clock_refused(const yn_terminal *t, const yn_clock_reading *rd, yn_tap_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->status = YN_EREFUSED;
    o->reason = YN_REASON_CLOCK;
    yn_moment sys, floor;
    yn_policy_locate(t->deps.policy, rd->system_ms / 1000, &sys);
    yn_policy_locate(t->deps.policy, rd->utc_ms / 1000, &floor);
    snprintf(o->detail, sizeof o->detail,
             "本机时钟 %d-%02d-%02d 早于账本最后记录 %d-%02d-%02d，尚未与区平台对时",
             (int)(sys.local_ymd / 10000), (int)(sys.local_ymd / 100 % 100),
             (int)(sys.local_ymd % 100), (int)(floor.local_ymd / 10000),
             (int)(floor.local_ymd / 100 % 100), (int)(floor.local_ymd % 100));
    yn_warn("tap refused, nothing charged: the system clock (%lld ms UTC) is before the ledger's "
            "last record (%lld ms) and the server's time is not known: connect the network or "
            "set the clock",
            (long long)rd->system_ms, (long long)rd->utc_ms);
}

/* What a finished debit leaves for later: the replayed tap is done with; a
 * stamp notice that could not be recorded is retried while idle; the records
 * up to this one are settled once the screen is up. */
static void after_debit(yn_terminal *t, const yn_tap_outcome *o)
{
    if (t->has_unshown && o->card_ok && strcmp(o->card.card_no, t->unshown.card_no) == 0)
        t->has_unshown = false;
    if (o->stamp == YN_TAP_STAMP_UNNOTED &&
        t->n_notice_due < (int)(sizeof t->notice_due / sizeof t->notice_due[0]))
        t->notice_due[t->n_notice_due++] = o->stamp_meal_seq;
    if (o->charged && o->result.seq > t->done_seq)
        t->done_seq = o->result.seq;
}

/* A new tap: decide, record, tell. Returns whether it reached a decision. */
static bool on_tap(yn_terminal *t, const yn_nfc_tag *tag)
{
    if (t->stop.why != YN_STOP_NONE) { /* not even read: nothing is charged */
        yn_info("tap: sales stopped (the ledger, see above): card not read, nothing charged");
        show_stopped(t);
        light(t, YN_OUT_RED);
        if (yn_nfc_release(&t->dev->nfc) != YN_OK)
            yn_debug("reader: release failed");
        return true;
    }
    yn_tap_outcome o;
    yn_meal meal;
    if (is_kiosk(t)) {
        if (yn_tap_identify(&t->env, tag, &o) == YN_OK)
            show_balance(t, &o);
        else
            show_debit(t, &o, NULL, NULL); /* the refusal: not genuine or read failed */
    } else if (price_meal(t, "tap", &meal, &o)) {
        yn_ledger_when when;
        yn_clock_reading rd;
        when_now(t, &when, &rd);
        if (rd.state == YN_CLOCK_UNKNOWN) {
            clock_refused(t, &rd, &o);
        } else {
            yn_tap_debit(&t->env, tag, &meal, next_tap_id(t), t->has_unshown ? &t->unshown : NULL,
                         t->logged_in ? t->operator_id : NULL, &when, &o);
            after_debit(t, &o);
        }
        show_debit(t, &o, &meal, o.reason == YN_REASON_CLOCK ? o.detail : NULL);
    }
    int rc = yn_nfc_release(&t->dev->nfc);
    if (rc != YN_OK)
        yn_debug("reader: release: %s", yn_strerror(rc));
    result_timer(t);
    bool decided = o.reason != YN_REASON_READ_FAILED && o.reason != YN_REASON_STORAGE &&
                   o.reason != YN_REASON_WEIGHT && o.reason != YN_REASON_CLOCK;
    t->last_random = o.reason == YN_REASON_RANDOM_UID;
    if (decided)
        t->taps++;
    return decided;
}

/* A short message for staff, then back to idle after result_ms. */
static void notice(yn_terminal *t, enum yn_note note, const yn_note_arg *arg)
{
    yn_screen s;
    yn_screens_note(&s, note, arg);
    footer(t, &s);
    show(t, &s);
    result_timer(t);
}

/* '+': weighed mode on or off — only with a scale and a price per 100 g. */
static void toggle_weighed(yn_terminal *t)
{
    if (!t->weighed && !t->dev->scale.ops) {
        notice(t, YN_NOTE_WEIGHED_NO_SCALE, NULL);
        return;
    }
    if (!t->weighed && t->per100g_fen <= 0) {
        notice(t, YN_NOTE_WEIGHED_NO_PRICE, NULL);
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
        notice(t, YN_NOTE_TARED, NULL);
    } else {
        yn_warn("scale: tare: %s", yn_strerror(rc));
        notice(t, YN_NOTE_TARE_FAILED, &(yn_note_arg){.rc = rc});
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
    notice(t, YN_NOTE_STAFF_LOCKED, &(yn_note_arg){.n = (lock_left_ms(t) + 999) / 1000});
}

/* 忘带卡 is offered at the counter when the policy accepts manual entry;
 * never at the kiosk (which has no staff menu at all). */
static bool manual_offered(const yn_terminal *t)
{
    yn_policy_ident_rule rule;
    yn_policy_manual_entry(t->deps.policy, &rule);
    return rule.accepted && !is_kiosk(t);
}

static void show_menu(yn_terminal *t)
{
    yn_screen s;
    yn_screens_menu(&s, manual_offered(t));
    footer(t, &s);
    show(t, &s);
    t->state = ST_MENU;
    memset(t->entry, 0, sizeof t->entry);
}

/* The screen of the digits being keyed in (ids, PINs masked, seqs). */
static void show_entry(yn_terminal *t)
{
    yn_screen s;
    static const enum yn_entry_kind ids[] = {[AUTH_LOGIN] = YN_ENTRY_LOGIN_ID,
                                             [AUTH_REVERSE] = YN_ENTRY_SUPER_ID,
                                             [AUTH_MANUAL] = YN_ENTRY_MANUAL_SUPER_ID};
    static const enum yn_entry_kind pins[] = {[AUTH_LOGIN] = YN_ENTRY_LOGIN_PIN,
                                              [AUTH_REVERSE] = YN_ENTRY_SUPER_PIN,
                                              [AUTH_MANUAL] = YN_ENTRY_MANUAL_SUPER_PIN};
    enum yn_entry_kind k = t->state == ST_STAFF_ID       ? ids[t->auth]
                           : t->state == ST_STAFF_PIN    ? pins[t->auth]
                           : t->state == ST_MANUAL_TAIL  ? YN_ENTRY_MANUAL_TAIL
                           : t->state == ST_MANUAL_BIRTH ? YN_ENTRY_MANUAL_BIRTH
                                                         : YN_ENTRY_REVERSE_SEQ;
    yn_screens_entry(&s, k, t->auth_id, t->entry);
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
            t->auth == AUTH_REVERSE  ? "冲正 authorisation"
            : t->auth == AUTH_MANUAL ? "忘带卡 authorisation"
                                     : "login",
            t->wrong_pins);
    if (t->wrong_pins >= STAFF_MAX_WRONG) {
        t->wrong_pins = 0;
        t->locked_until_ms = yn_clock_mono_ms(&t->dev->clock) + STAFF_LOCK_MS;
        yn_warn("staff: %d wrong PINs in a row; staff menu locked for %d s", STAFF_MAX_WRONG,
                STAFF_LOCK_MS / 1000);
        show_locked(t);
        return;
    }
    notice(t, YN_NOTE_PIN_WRONG, &(yn_note_arg){.n = STAFF_MAX_WRONG - t->wrong_pins});
}

/* 冲正 of t->rev_seq, authorised by supervisor sup_id. */
static void reverse(yn_terminal *t, const char *sup_id)
{
    yn_screen s;
    yn_ledger_result res;
    yn_ledger_when when;
    yn_clock_reading rd;
    when_now(t, &when, &rd);
    long long seq = (long long)t->rev_seq;
    int rc = yn_ledger_reverse(t->deps.ledger, t->deps.policy, t->rev_seq, sup_id, &when, &res);
    if (rc == YN_OK) {
        yn_ledger_record rec = {0};
        if (yn_ledger_record_get(t->deps.ledger, res.seq, &rec) != YN_OK)
            rec.card_no[0] = '\0';
        yn_info("staff: meal %lld reversed by supervisor %s (record %lld, card %s)", seq, sup_id,
                (long long)res.seq, rec.card_no);
        yn_screens_reversed(&s, t->rev_seq, rec.card_no, &res);
    } else {
        yn_warn("staff: reversal of %lld by %s refused: %s", seq, sup_id, yn_strerror(rc));
        yn_screens_reverse_refused(&s, rc, t->rev_seq, res.seq,
                                   yn_policy_reverse_window_s(t->deps.policy) / 60);
    }
    footer(t, &s);
    show(t, &s);
    result_timer(t);
}

/* --- 忘带卡: a senior who forgot the card (firmware/core/CARD.md §8) ---------------- */

/* Manual meals of this terminal today, against the policy's cap: false (and
 * the screen says so) when none is left. */
static bool manual_room(yn_terminal *t, int32_t *used, int32_t *cap)
{
    yn_policy_ident_rule rule;
    yn_policy_manual_entry(t->deps.policy, &rule);
    yn_moment m;
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    *cap = rule.per_terminal_day;
    *used = 0;
    int rc = yn_ledger_manual_count(t->deps.ledger, m.local_ymd, used);
    if (rc != YN_OK) {
        notice(t, YN_NOTE_MANUAL_FAILED, &(yn_note_arg){.rc = rc});
        return false;
    }
    if (*used >= *cap) {
        yn_info("staff: 忘带卡: this terminal's %d manual meals of the day are used", (int)*cap);
        notice(t, YN_NOTE_MANUAL_CAP, &(yn_note_arg){.n = *used, .of = *cap});
        return false;
    }
    return true;
}

/* Menu key 4: 忘带卡, if the policy accepts it and today's cap has room; a
 * supervisor other than the operator logged in authorises first. */
static void manual_start(yn_terminal *t)
{
    int32_t used, cap;
    if (!manual_offered(t)) {
        notice(t, YN_NOTE_MANUAL_OFF, NULL);
        return;
    }
    if (manual_room(t, &used, &cap))
        start_auth(t, AUTH_MANUAL);
}

/* The card-number tail and birth date keyed in: the roster's senior, if
 * exactly one matches. */
static void manual_lookup(yn_terminal *t, int32_t birth_ymd)
{
    yn_card_facts found[1];
    size_t n = 0;
    int rc = yn_ledger_roster_find(t->deps.ledger, t->manual_tail, birth_ymd, found, 1, &n);
    if (rc != YN_OK) {
        notice(t, YN_NOTE_MANUAL_FAILED, &(yn_note_arg){.rc = rc});
        return;
    }
    if (n != 1) {
        yn_info("staff: 忘带卡: %s roster card for %zu digits and the birth date given",
                n ? "more than one" : "no", strlen(t->manual_tail));
        notice(t, n ? YN_NOTE_MANUAL_MANY : YN_NOTE_MANUAL_NOT_FOUND, NULL);
        return;
    }
    int32_t used, cap;
    if (!manual_room(t, &used, &cap))
        return;
    t->manual_card = found[0];
    yn_info("staff: 忘带卡: roster card %s found by operator %s", found[0].card_no, t->operator_id);
    yn_screen s;
    yn_screens_ctx c = screens_ctx(t);
    yn_manual_view v = {.card = &t->manual_card,
                        .supervisor_id = t->manual_super,
                        .used_today = used,
                        .per_day = cap};
    yn_screens_manual_confirm(&s, &c, &v);
    show(t, &s);
    t->state = ST_MANUAL_CONFIRM;
}

/* Enter on the confirmation: the meal, under the same policy and limits as a
 * tap, priced as a tap would be (by weight in weighed mode). */
static void manual_serve(yn_terminal *t)
{
    yn_tap_outcome o;
    yn_meal meal = {.price_fen = t->price_fen};
    yn_ledger_when when;
    yn_clock_reading rd;
    when_now(t, &when, &rd);
    if (rd.state == YN_CLOCK_UNKNOWN) {
        clock_refused(t, &rd, &o);
        show_debit(t, &o, &meal, o.detail);
    } else if (price_meal(t, "staff: 忘带卡", &meal, &o)) {
        yn_tap_manual(&t->env, t->manual_card.card_no, &meal, next_tap_id(t), t->operator_id,
                      t->manual_super, &when, &o);
        after_debit(t, &o);
        show_debit(t, &o, &meal, NULL);
    }
    memset(&t->manual_card, 0, sizeof t->manual_card);
    result_timer(t);
}

/* The id and PIN keyed in: log in, or authorise the 冲正 or 忘带卡. */
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
    } else if (op->role != YN_ROLE_SUPERVISOR && t->auth == AUTH_MANUAL) {
        yn_warn("staff: operator %s is not a supervisor; 忘带卡 refused", op->id);
        notice(t, YN_NOTE_MANUAL_NOT_SUPERVISOR, &(yn_note_arg){.text = op->id});
    } else if (op->role != YN_ROLE_SUPERVISOR) {
        yn_warn("staff: operator %s is not a supervisor; reversal of %lld refused", op->id,
                (long long)t->rev_seq);
        notice(t, YN_NOTE_NOT_SUPERVISOR, &(yn_note_arg){.text = op->id});
    } else if (t->auth == AUTH_MANUAL && strcmp(op->id, t->operator_id) == 0) {
        yn_warn("staff: 忘带卡: supervisor %s is the operator logged in; another must authorise",
                op->id);
        notice(t, YN_NOTE_MANUAL_SAME_PERSON, &(yn_note_arg){.text = op->id});
    } else if (t->auth == AUTH_MANUAL) {
        yn_info("staff: 忘带卡 authorised by supervisor %s for operator %s", op->id,
                t->operator_id);
        memcpy(t->manual_super, op->id, sizeof t->manual_super);
        t->state = ST_MANUAL_TAIL;
        show_entry(t);
    } else {
        reverse(t, op->id);
    }
}

/* 日结: today's sums on screen and as CSV in [ledger] settle_dir. */
static void settle(yn_terminal *t)
{
    yn_screen s;
    yn_moment m;
    yn_ledger_settlement st;
    char path[PATH_MAX + 64];
    yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
    int rc = yn_ledger_settle(t->deps.ledger, m.local_ymd, &st);
    if (rc != YN_OK) {
        yn_err("staff: 日结 of %d: %s", (int)m.local_ymd, yn_strerror(rc));
        notice(t, YN_NOTE_SETTLE_FAILED, &(yn_note_arg){.rc = rc});
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

    const char *base = strrchr(path, '/');
    yn_screens_ctx c = screens_ctx(t);
    yn_screens_settlement(&s, &c, &st, rc == YN_OK ? (base ? base + 1 : path) : NULL, rc);
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
        notice(t, YN_NOTE_LOGGED_OUT, NULL);
        break;
    case '4':
        manual_start(t);
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
    size_t max = t->state == ST_REV_SEQ || t->state == ST_MANUAL_TAIL ? ENTRY_MAX - 1
                 : t->state == ST_MANUAL_BIRTH                        ? 8
                                                                      : YN_OPERATOR_ID_MAX - 1;
    if (key >= '0' && key <= '9') {
        if (n < max) {
            t->entry[n] = (char)key;
            t->entry[n + 1] = '\0';
        }
    } else if (key == YN_KEY_BACK) {
        if (n > 0)
            t->entry[n - 1] = '\0';
    } else if (key == YN_KEY_CANCEL) {
        if (t->logged_in && (t->state == ST_REV_SEQ || t->state == ST_MANUAL_TAIL ||
                             t->state == ST_MANUAL_BIRTH || t->auth != AUTH_LOGIN))
            show_menu(t); /* back to the menu the 冲正 or 忘带卡 started from */
        else
            show_idle(t);
        return;
    } else if (key == YN_KEY_ENTER) {
        if (n == 0 || (t->state == ST_MANUAL_TAIL && n < YN_MANUAL_TAIL_MIN) ||
            (t->state == ST_MANUAL_BIRTH && n != 8))
            return; /* not enough digits yet: the screen says how many */
        if (t->state == ST_MANUAL_TAIL) {
            memcpy(t->manual_tail, t->entry, n + 1);
            memset(t->entry, 0, sizeof t->entry);
            t->state = ST_MANUAL_BIRTH;
        } else if (t->state == ST_MANUAL_BIRTH) {
            int32_t birth = (int32_t)strtol(t->entry, NULL, 10);
            memset(t->entry, 0, sizeof t->entry);
            manual_lookup(t, birth);
            return;
        } else if (t->state == ST_STAFF_ID) {
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
           t->state == ST_REV_SEQ || t->state == ST_MANUAL_TAIL || t->state == ST_MANUAL_BIRTH ||
           t->state == ST_MANUAL_CONFIRM;
}

static void on_key(yn_terminal *t, int key)
{
    if (t->stop.why != YN_STOP_NONE)
        return; /* sales stopped: the screen stays */
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
    if (t->state == ST_MANUAL_CONFIRM) {
        if (key == YN_KEY_ENTER)
            manual_serve(t);
        else if (key == YN_KEY_CANCEL)
            show_menu(t);
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
            yn_screens_price_invalid(&s, t->weighed);
            footer(t, &s);
            show(t, &s);
            t->price_text[0] = '\0';
            result_timer(t);
        }
        return;
    }
    show_price_entry(t);
}

/* A card key with no demo card behind it: say so rather than do nothing. */
static void no_demo_card(yn_terminal *t, int card)
{
    int n = demo_cards(t);
    yn_info("demo: key %c has no demo card (there are %d)", 'a' + card, n);
    notice(t, YN_NOTE_DEMO_NO_CARD, &(yn_note_arg){.n = n});
}

static void on_event(yn_terminal *t, const yn_input_event *ev)
{
    switch (ev->type) {
    case YN_EV_QUIT:
        t->done = true;
        break;
    case YN_EV_SIM_PRESENT:
    case YN_EV_SIM_REMOVE:
        if (!t->deps.demo) {
            yn_warn("input: card keys only drive the simulated reader");
            break;
        }
        if (ev->type == YN_EV_SIM_PRESENT && demo_cards(t) >= 0 && ev->card >= demo_cards(t)) {
            no_demo_card(t, ev->card);
            break;
        }
        if (t->deps.demo->card_key(t->deps.demo->ctx,
                                   ev->type == YN_EV_SIM_PRESENT ? ev->card : -1) != YN_OK)
            no_demo_card(t, ev->card);
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

/* While the field is empty: note in the ledger (no durable commit of its
 * own) up to which record every outcome was shown and every stamp settled,
 * the tap still to be replayed, and the clock's anchor; retry stamp notices
 * that could not be recorded. */
static void idle_notes(yn_terminal *t)
{
    yn_ledger *l = t->deps.ledger;
    char v[96];
    cache_save(t, false);
    for (int i = 0; i < t->n_notice_due;) {
        yn_ledger_when w;
        yn_clock_reading rd;
        yn_ledger_result res;
        when_now(t, &w, &rd);
        int rc = yn_ledger_stamp_missing(l, t->notice_due[i], "write_failed", &w, &res);
        if (rc != YN_OK && rc != YN_EDUPLICATE)
            break; /* still failing: later */
        t->notice_due[i] = t->notice_due[--t->n_notice_due];
    }
    int64_t settled = t->done_seq;
    for (int i = 0; i < t->n_notice_due; i++)
        if (t->notice_due[i] <= settled)
            settled = t->notice_due[i] - 1;
    if (settled > t->settled_mark) {
        snprintf(v, sizeof v, "%lld", (long long)settled);
        if (yn_ledger_meta_put_lazy(l, META_SETTLED, v) == YN_OK)
            t->settled_mark = settled;
    }
    int64_t unshown = t->has_unshown ? t->unshown.seq : 0;
    if (unshown != t->unshown_mark) {
        snprintf(v, sizeof v, "%lld", (long long)unshown);
        if (yn_ledger_meta_put_lazy(l, META_UNSHOWN, v) == YN_OK)
            t->unshown_mark = unshown;
    }
    yn_clock *c = &t->dev->clock;
    if (c->anchored) {
        snprintf(v, sizeof v, "%lld %lld %lld %lld %d", (long long)yn_ledger_boot_no(l),
                 (long long)c->anchor_boot_ms, (long long)c->anchor_utc_ms, (long long)c->offset_ms,
                 c->trusted ? 1 : 0);
        if (strcmp(v, t->clock_noted) != 0 && yn_ledger_meta_put_lazy(l, META_CLOCK, v) == YN_OK)
            snprintf(t->clock_noted, sizeof t->clock_noted, "%s", v);
    }
}

/* Look at the field, waiting up to wait_ms for a card: a card that was not
 * there before is a tap. Returns the poll's status. */
static int watch_field(yn_terminal *t, int wait_ms)
{
    yn_nfc_tag tag;
    int rc = yn_nfc_poll(&t->dev->nfc, wait_ms, &tag);
    int64_t now = yn_clock_mono_ms(&t->dev->clock);
    if (rc == YN_ENOCARD) {
        t->last_in_field = false;
        idle_notes(t);
        return rc;
    }
    if (rc != YN_OK) {
        yn_debug("reader: poll: %s", yn_strerror(rc));
        return rc;
    }
    /* a random-UID card shows another UID at every listing: until the field
     * is empty it is the card just refused, not a new tap */
    bool same =
        t->last_seen_ms && (same_card(&tag, &t->last_tag) || (t->last_random && t->last_in_field));
    bool debounced =
        same && (t->last_in_field ||
                 (t->last_decided && now - t->last_seen_ms < t->cfg->reader.debounce_ms));
    t->last_tag = tag;
    t->last_seen_ms = now;
    if (debounced) {
        t->last_in_field = true;
        return rc;
    }
    if (t->state == ST_PRICE || in_staff(t))
        show_idle(t); /* a tap ends an unfinished price or staff entry */
    t->last_decided = on_tap(t, &tag);
    t->last_in_field = true;
    t->last_seen_ms = yn_clock_mono_ms(&t->dev->clock);
    return rc;
}

void yn_terminal_start(yn_terminal *t)
{
    show_idle(t);
    /* a card already in the field is not a tap: it stays "in the field" until
     * the reader sees it gone, then it may be tapped at once */
    yn_nfc_tag tag;
    if (yn_nfc_poll(&t->dev->nfc, 0, &tag) == YN_OK) {
        t->last_tag = tag;
        t->last_seen_ms = yn_clock_mono_ms(&t->dev->clock);
        t->last_in_field = true;
        t->last_decided = false;
        char uid[2 * YN_UID_MAX + 1];
        yn_nfc_uid_hex(&tag, uid, sizeof uid);
        yn_info("terminal: card %s was in the field at start: not a tap until it leaves", uid);
        notice(t, YN_NOTE_CARD_ON_READER, NULL);
    }
}

int yn_terminal_step(yn_terminal *t, int timeout_ms)
{
    /* While the field is empty the reader does the waiting: its listing loop
     * sees a card as it arrives, where a sleep before each look would add up
     * to timeout_ms to every tap (hal/nfc/READER.md "Timing"). Keys are read
     * between listings; with no reader to wait on, the keys are waited for. */
    bool reader_waits = timeout_ms > 0 && !t->last_in_field;
    yn_input_event ev;
    int rc = yn_input_next(&t->dev->input, reader_waits ? 0 : timeout_ms, &ev);
    if (rc == YN_OK)
        on_event(t, &ev);
    else if (rc != YN_ETIMEDOUT)
        yn_warn("input: %s", yn_strerror(rc));
    int prc = watch_field(t, reader_waits && rc != YN_OK ? timeout_ms : 0);
    if (reader_waits && rc != YN_OK && prc != YN_OK && prc != YN_ENOCARD &&
        yn_input_next(&t->dev->input, timeout_ms, &ev) == YN_OK)
        on_event(t, &ev);
    if (t->state == ST_RESULT && yn_clock_mono_ms(&t->dev->clock) >= t->result_until_ms) {
        show_idle(t);
    } else if (t->state == ST_IDLE) {
        /* a meal period began or ended, a minute passed, or the district
         * answered or stopped answering (looked at once a second), while the
         * screen waited: show it */
        yn_moment m;
        yn_policy_locate(t->deps.policy, yn_clock_utc_s(&t->dev->clock), &m);
        int64_t now_ms = yn_clock_mono_ms(&t->dev->clock);
        bool look = now_ms - t->idle_looked_ms >= 1000;
        if (look)
            t->idle_looked_ms = now_ms;
        if (strcmp(m.period, t->idle_period) != 0 || m.seconds_of_day / 60 != t->idle_minute ||
            (look && online_text(t) != t->idle_online))
            show_idle(t); /* and the clock on it moves on */
    }
    return YN_OK;
}

/* --- sales stopped (keeper.c says why) ----------------------------------------- */

static void show_stopped(yn_terminal *t)
{
    yn_screen s;
    yn_screens_sales_stopped(&s, &t->stop);
    footer(t, &s);
    show(t, &s);
    t->state = ST_IDLE;
}

void yn_terminal_set_stop(yn_terminal *t, const yn_sales_stop *stop)
{
    bool was_stopped = t->stop.why != YN_STOP_NONE;
    t->stop = *stop;
    int64_t restored = 0; /* restored records' tap ids count too */
    if (stop->why == YN_STOP_NONE && was_stopped &&
        yn_ledger_tap_id_max(t->deps.ledger, &restored) == YN_OK && restored > t->last_tap_id)
        t->last_tap_id = restored;
    if (stop->why != YN_STOP_NONE || t->state == ST_IDLE)
        show_idle(t);
}
