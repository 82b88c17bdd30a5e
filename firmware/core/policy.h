/* policy.h — the subsidy policy engine: pure code, no clock, no file, no I/O.
 *
 * A policy is a versioned JSON document pushed by the district (format in
 * firmware/core/POLICY.md). yn_policy_decide() answers, for this card, this meal, at
 * this canteen, at this moment, with this usage so far: which funding layers pay
 * how many fen, what the diner pays from the wallet and in cash — or why not.
 * Money is int64 fen; times are UTC seconds converted to Asia/Shanghai (UTC+8,
 * no daylight saving since 1991) inside the engine. */
#ifndef YN_POLICY_H
#define YN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ident.h"
#include "reason.h"
#include "status.h"

#define YN_POLICY_MAX_LAYERS 4
#define YN_NAME_MAX          24 /* names (category, period, source) incl. NUL */
#define YN_DISPLAY_CHARS     8  /* characters of a screen name ("display") */
#define YN_DISPLAY_MAX       (YN_DISPLAY_CHARS * 4 + 1) /* its bytes incl. NUL */
#define YN_STR_(x)           #x
#define YN_STR(x)            YN_STR_(x)

/* Category flags carried on the card (bit values are part of the card format). */
enum yn_card_flag {
    YN_FLAG_TEKUN = 1u << 0,             /* 特困 extreme poverty support */
    YN_FLAG_DIBAO = 1u << 1,             /* 低保 minimum living allowance */
    YN_FLAG_DIBAO_EDGE = 1u << 2,        /* 低保边缘 marginal low income */
    YN_FLAG_SANSHU_WULAO = 1u << 3,      /* 三属五老 */
    YN_FLAG_SHIDU = 1u << 4,             /* 失独 parents who lost their only child */
    YN_FLAG_DISABLED_SEVERE = 1u << 5,   /* 重度残疾 */
    YN_FLAG_DISABLED_MODERATE = 1u << 6, /* 中度失能 (assessed) */
};

/* Category flag by its name in policies and CSV files ("dibao"), 0 if unknown;
 * and the name of one flag bit, NULL if unknown. */
uint32_t yn_flag_bit(const char *name);
const char *yn_flag_name(uint32_t bit);

typedef struct yn_card_facts {
    char card_no[20];   /* printable card number, NUL-terminated */
    int32_t birth_ymd;  /* holder's birth date, YYYYMMDD */
    uint32_t flags;     /* enum yn_card_flag bits */
    uint32_t district;  /* home district, GB/T 2260 six digits, e.g. 440304 */
    uint32_t street;    /* home street, nine digits: district * 1000 + street */
    int32_t expiry_ymd; /* last valid day, YYYYMMDD (Asia/Shanghai) */
    /* A roster entry only (not a policy input): the identifier of the
     * identity-only card bound to this card number (firmware/core/ident.h), "" none */
    char ident[YN_IDENT_MAX];
} yn_card_facts;

typedef struct yn_meal {
    int64_t price_fen;          /* fixed price; or 0 when priced by weight */
    int32_t weight_g;           /* net weight when priced by weight, else 0 */
    int64_t price_per_100g_fen; /* price per 100 g when priced by weight */
} yn_meal;

typedef struct yn_canteen {
    uint32_t district; /* GB/T 2260 six digits */
    uint32_t street;   /* nine digits */
} yn_canteen;

/* Subsidised use so far, as counted by the ledger for this card. The ledger
 * counts by the period/day/month keys that yn_policy_locate() returns. */
typedef struct yn_usage {
    int32_t meals_period;      /* subsidised meals in this period today */
    int32_t meals_day;         /* subsidised meals today */
    int32_t meals_month;       /* subsidised meals this calendar month */
    int64_t subsidy_month_fen; /* subsidy received this calendar month */
} yn_usage;

typedef struct yn_layer_share {
    char source[YN_NAME_MAX]; /* funding source, e.g. "city", "district" */
    int64_t fen;              /* share paid by that source, >= 0 */
} yn_layer_share;

typedef struct yn_decision {
    bool allowed;               /* the sale may go ahead */
    enum yn_reason reason;      /* why no subsidy / refused; NONE when fully decided */
    char category[YN_NAME_MAX]; /* matched category, "" if none */
    char period[YN_NAME_MAX];   /* open meal period, "" if none */
    int64_t price_fen;          /* meal price (from weight when weighed), rounded for the diner */
    int n_layers;
    yn_layer_share layers[YN_POLICY_MAX_LAYERS];
    int64_t subsidy_fen; /* sum of layers */
    int64_t wallet_fen;  /* paid from the personal wallet */
    int64_t cash_fen;    /* paid in cash at the counter */
} yn_decision;

/* Where a moment falls: local date and the open period, for usage counting. */
typedef struct yn_moment {
    int32_t local_ymd;        /* Asia/Shanghai date YYYYMMDD */
    int32_t local_ym;         /* YYYYMM */
    int weekday;              /* 1 = Monday … 7 = Sunday */
    int32_t seconds_of_day;   /* local seconds since midnight */
    char period[YN_NAME_MAX]; /* open period or "" */
} yn_moment;

typedef struct yn_policy yn_policy;

/* Parse and validate a policy document. On error returns YN_EINVAL (YN_ENOMEM
 * if memory ran out) and writes a precise message to err, e.g.
 * "policy: line 12: subsidies[0].layers[1].cap_fen: expected an integer from
 * 0 to 100000000"; *out is untouched, so the caller's previous policy stays in
 * force. On success *out is a new policy (the previous one is not freed). */
int yn_policy_load(const char *json, size_t len, yn_policy **out, char *err,
                   size_t errlen) YN_MUST_CHECK;
/* The same from a file; messages start "policy: <path>: ". YN_ENOENT if the
 * file does not exist, YN_EIO if it cannot be read. */
int yn_policy_load_file(const char *path, yn_policy **out, char *err, size_t errlen) YN_MUST_CHECK;
void yn_policy_free(yn_policy *p);

const char *yn_policy_id(const yn_policy *p);           /* e.g. "shenzhen-2025" */
int64_t yn_policy_version(const yn_policy *p);          /* increasing integer */
uint32_t yn_policy_issuer(const yn_policy *p);          /* issuing district, e.g. 440304 */
int32_t yn_policy_reverse_window_s(const yn_policy *p); /* 冲正 window, seconds */

/* The policy's monthly limits: subsidised meals per month and subsidy per
 * month in fen (0 = no limit), for what the kiosk says is left. */
void yn_policy_month_limits(const yn_policy *p, int32_t *per_month, int64_t *month_cap_fen);

/* All the policy's limits (0 = no limit). */
typedef struct yn_policy_limit {
    int32_t per_period, per_day, per_month; /* subsidised meals */
    int64_t month_cap_fen;                  /* subsidy per calendar month */
    int32_t day_max; /* subsidised meals a day at most: per_day, else per_period x periods */
} yn_policy_limit;
void yn_policy_limits(const yn_policy *p, yn_policy_limit *out);

/* Other ways than reading the holder's 颐年卡 (POLICY.md §2, "Other ways to
 * identify the holder"; firmware/core/CARD.md §8): a card the roster binds by its
 * identifier (identity_only), and staff looking a senior up who forgot the
 * card (manual_entry, 忘带卡). Neither writes a stamp on a card, so neither
 * has the cross-canteen offline guard: while the terminal is offline such a
 * meal's subsidy is capped per card and local day. */
typedef struct yn_policy_ident_rule {
    bool accepted;            /* the policy accepts this way at all (absent: no) */
    int64_t offline_cap_fen;  /* subsidy per card per local day while offline; 0: none then */
    int32_t per_terminal_day; /* manual entry: meals per terminal per local day, >= 1 */
} yn_policy_ident_rule;
void yn_policy_identity_only(const yn_policy *p, yn_policy_ident_rule *out);
void yn_policy_manual_entry(const yn_policy *p, yn_policy_ident_rule *out);

/* What a screen calls a category, meal period or funding source: its
 * "display" in the policy; else a built-in Chinese name for the ids the
 * shipped policies use ("lunch" 午餐, "city" 市级); else the id itself. p may
 * be NULL (built-in names only); "" (no category) is 其他. */
enum yn_policy_name { YN_POLICY_CATEGORY, YN_POLICY_PERIOD, YN_POLICY_SOURCE };
const char *yn_policy_display(const yn_policy *p, enum yn_policy_name kind, const char *name);

/* Local date, weekday and open meal period of utc_s. A moment outside local
 * 1970-01-01 .. 9999-12-31 gives a zeroed *m (local_ymd 0, period ""). */
void yn_policy_locate(const yn_policy *p, int64_t utc_s, yn_moment *m);

/* The decision. wallet_balance_fen: what the personal wallet holds now.
 * Returns YN_OK with *out filled (allowed or not), or YN_EINVAL on bad input
 * (negative price, weight without price, invalid dates, …) with *out
 * untouched. Never touches anything else. Rules: firmware/core/POLICY.md. */
int yn_policy_decide(const yn_policy *p, const yn_card_facts *card, const yn_meal *meal,
                     const yn_canteen *canteen, int64_t utc_s, const yn_usage *usage,
                     int64_t wallet_balance_fen, yn_decision *out) YN_MUST_CHECK;

#endif
