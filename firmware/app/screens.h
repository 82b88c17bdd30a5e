/* screens.h — what every screen of the terminal says, composed from plain
 * data. Pure: no device, no ledger query, no clock, so the terminal and the
 * screen gallery (tests/unit/test_gallery.c) build the very same screens, and
 * a new screen is a new function here plus one line in the gallery.
 *
 * Rules every builder keeps (the gallery checks them on the pixels):
 *   - every word is Chinese; ids, card numbers and amounts are the only Latin
 *     text, and a label is joined to its number with a no-break space (NB)
 *     so the layout never separates them ("流水号 3");
 *   - one main figure of at least 48 px (a HUGE line, else the first LARGE);
 *   - the staff line says what happened and what to do, in Chinese; the log
 *     keeps the technician's English.
 * The layout (hal/display/layout.h) wraps and, when needed, shrinks secondary lines;
 * it never clips, so a builder may write whole sentences. */
#ifndef YN_SCREENS_H
#define YN_SCREENS_H

#include <stdbool.h>
#include <stdint.h>

#include "display.h"
#include "keeper.h"
#include "ledger.h"
#include "policy.h"
#include "tap.h"

#define YN_NB "\u00a0" /* no-break space: joins a label to its number */

/* What the status bar shows, and where names come from. */
typedef struct yn_screens_ctx {
    const yn_policy *policy; /* display names of categories, periods, sources; may be NULL */
    const char *terminal_id;
    const char *operator_id; /* "" or NULL: nobody logged in */
    int64_t unsent;          /* records waiting for upload; -1 = unknown */
    int64_t unsent_age_s;    /* age of the oldest of them, seconds */
} yn_screens_ctx;

/* The status bar (footer) of any screen. */
void yn_screens_footer(yn_screen *s, const yn_screens_ctx *c);

typedef struct yn_idle_view {
    const char *canteen;    /* canteen name (or id) */
    int32_t local_ymd;      /* the date and time shown */
    int32_t seconds_of_day; /* local */
    const char *online;     /* 在线 / 离线 / 离线模式 … */
    const char *period;     /* open period's id, "" = none */
    bool kiosk;             /* the balance kiosk, not the counter */
    bool weighed;           /* priced by weight */
    int64_t price_fen;      /* counter: the meal price */
    int64_t per100g_fen;    /* weighed: price per 100 g */
    int demo_cards;         /* > 0: demo mode, keys a.. present these many cards */
    bool clock_unknown;     /* no evidence for the wall clock: taps are paused */
    bool clock_estimated;   /* the wall clock stepped: time shown is the estimate */
} yn_idle_view;
void yn_screens_idle(yn_screen *s, const yn_screens_ctx *c, const yn_idle_view *v);

/* Staff keying a meal price (or a price per 100 g); text is what was typed. */
void yn_screens_price_entry(yn_screen *s, bool weighed, const char *text);
void yn_screens_price_invalid(yn_screen *s, bool weighed);

/* The outcome of a tap at the counter: success (subsidy, wallet, cash, full
 * price, weighed) or refusal. meal is what was sold (NULL when no sale was
 * attempted); staff_note, when not NULL, is an exact Chinese detail for staff
 * (e.g. what the scale said). */
void yn_screens_tap(yn_screen *s, const yn_screens_ctx *c, const yn_tap_outcome *o,
                    const yn_meal *meal, const char *staff_note);

/* The kiosk: what the senior has left and what was eaten (the newest
 * YN_SCREENS_KIOSK_MEALS meals of acc->last). */
#define YN_SCREENS_KIOSK_MEALS 3
typedef struct yn_balance_view {
    const yn_ledger_account *acc;
    yn_policy_limit limits;
} yn_balance_view;
void yn_screens_balance(yn_screen *s, const yn_screens_ctx *c, const yn_balance_view *v);
/* The kiosk could not read the ledger (status rc). */
void yn_screens_balance_failed(yn_screen *s, int rc);

/* The terminal's short messages: a title and one line (the main figure). */
enum yn_note {
    YN_NOTE_WEIGHED_NO_SCALE, /* weighed mode asked for, no scale configured */
    YN_NOTE_WEIGHED_NO_PRICE, /* … no price per 100 g */
    YN_NOTE_TARED,
    YN_NOTE_TARE_FAILED,    /* arg.rc: what the scale said */
    YN_NOTE_STAFF_LOCKED,   /* arg.n: seconds left */
    YN_NOTE_PIN_WRONG,      /* arg.n: tries left */
    YN_NOTE_NOT_SUPERVISOR, /* arg.text: the 工号 */
    YN_NOTE_SETTLE_FAILED,  /* arg.rc */
    YN_NOTE_LOGGED_OUT,
    YN_NOTE_DEMO_NO_CARD,       /* arg.n: demo cards there are */
    YN_NOTE_CARD_ON_READER,     /* a card already in the field: not a tap until it leaves */
    YN_NOTE_MANUAL_FAILED,      /* 忘带卡: the ledger could not be read; arg.rc */
    YN_NOTE_MANUAL_OFF,         /* 忘带卡: the policy does not accept manual entry */
    YN_NOTE_MANUAL_CAP,         /* 忘带卡: the terminal's manual meals today: arg.n of arg.of */
    YN_NOTE_MANUAL_NOT_FOUND,   /* 忘带卡: nobody with these digits and birth date */
    YN_NOTE_MANUAL_MANY,        /* 忘带卡: more than one: more digits needed */
    YN_NOTE_MANUAL_SAME_PERSON, /* 忘带卡: arg.text, the supervisor, is the operator */
    YN_NOTE_MANUAL_NOT_SUPERVISOR, /* 忘带卡: arg.text is not a supervisor */
    YN_NOTE_COUNT
};
typedef struct yn_note_arg {
    int64_t n, of;
    const char *text;
    int rc;
} yn_note_arg;
void yn_screens_note(yn_screen *s, enum yn_note note, const yn_note_arg *arg);

/* Staff. manual: the menu offers 4 忘带卡登记 (the counter, and the policy
 * accepts manual entry; never the kiosk). */
void yn_screens_menu(yn_screen *s, bool manual);
enum yn_entry_kind {
    YN_ENTRY_LOGIN_ID,         /* 工号 at login */
    YN_ENTRY_LOGIN_PIN,        /* 密码 at login (masked) */
    YN_ENTRY_SUPER_ID,         /* supervisor's 工号 for a 冲正 */
    YN_ENTRY_SUPER_PIN,        /* supervisor's 密码 (masked) */
    YN_ENTRY_REVERSE_SEQ,      /* the 流水号 to undo */
    YN_ENTRY_MANUAL_SUPER_ID,  /* 忘带卡: the supervisor's 工号 */
    YN_ENTRY_MANUAL_SUPER_PIN, /* 忘带卡: the supervisor's 密码 (masked) */
    YN_ENTRY_MANUAL_TAIL,      /* 忘带卡: the last digits of the card number */
    YN_ENTRY_MANUAL_BIRTH,     /* 忘带卡: the birth date, YYYYMMDD */
};
#define YN_MANUAL_TAIL_MIN 4 /* 忘带卡: card-number digits keyed in at least */
/* id: the 工号 keyed before a PIN; keyed: the digits so far. */
void yn_screens_entry(yn_screen *s, enum yn_entry_kind kind, const char *id, const char *keyed);
/* 忘带卡: the senior the roster gives for the digits and the birth date,
 * for staff to check with the senior before the meal is recorded. */
typedef struct yn_manual_view {
    const yn_card_facts *card; /* the roster's entry */
    const char *supervisor_id; /* who authorised */
    int32_t used_today;        /* manual meals at this terminal today */
    int32_t per_day;           /* the policy's daily cap per terminal */
} yn_manual_view;
void yn_screens_manual_confirm(yn_screen *s, const yn_screens_ctx *c, const yn_manual_view *v);

/* 冲正 done: meal seq undone by record res (negated shares), card card_no. */
void yn_screens_reversed(yn_screen *s, int64_t seq, const char *card_no,
                         const yn_ledger_result *res);
/* 冲正 refused with status rc (YN_ENOTFOUND, YN_EDUPLICATE with the earlier
 * reversal's seq, YN_EREFUSED with the window in minutes, else a ledger error). */
void yn_screens_reverse_refused(yn_screen *s, int rc, int64_t seq, int64_t earlier_seq,
                                int window_min);
/* 日结: the day's sums; csv_name the file written, or NULL with csv_rc. */
void yn_screens_settlement(yn_screen *s, const yn_screens_ctx *c, const yn_ledger_settlement *st,
                           const char *csv_name, int csv_rc);

/* Sales stopped by the ledger's keeper (keeper.h): why, what staff do, and
 * the command a technician runs. */
void yn_screens_sales_stopped(yn_screen *s, const yn_sales_stop *stop);

/* A status as staff read it (Chinese): what is wrong and what to do. */
const char *yn_screens_status_text(int rc);

#endif
