/* policy.c — the subsidy policy engine: load and validate a policy document
 * (JSON, via Jansson), then decide taps with integer arithmetic only.
 *
 * The format and every rule applied here are specified in firmware/core/POLICY.md.
 * No clock, no file (except yn_policy_load_file), no floating point: local time
 * is UTC+8 computed with the civil-from-days arithmetic of timeutil.h. */
#include "policy.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

#define POLICY_FORMAT   1 /* the document format this firmware reads */
#define MAX_CATEGORIES  16
#define MAX_PERIODS     8
#define MAX_DATES       128 /* per closed_dates / open_dates list */
#define MAX_RULES       (MAX_CATEGORIES * MAX_PERIODS)
#define MAX_MONEY_FEN   100000000LL /* ¥1,000,000: any price, cap or total */
#define MAX_MEALS       1000        /* largest per-period/day/month limit */
#define MAX_AGE         150
#define MAX_REVERSE_S   86400
#define MAX_DOC_BYTES   (1024 * 1024)
#define MAX_DESCRIPTION 1000
#define ID_MAX          64 /* policy id incl. NUL */
#define MAX_SOURCES     16
#define PATH_DEPTH      8

#define TZ_OFFSET_S YN_TIME_SHANGHAI_OFFSET_S
#define DAY_S       YN_TIME_DAY_S
/* Moments the engine handles: local time 1970-01-01 00:00:00 .. 9999-12-31 23:59:59. */
#define MIN_UTC_S (-(int64_t)TZ_OFFSET_S)
#define MAX_UTC_S (253402300799LL - TZ_OFFSET_S)

enum locality { LOC_ANY, LOC_SAME_DISTRICT, LOC_SAME_STREET };
enum copay { COPAY_WALLET_CASH, COPAY_WALLET, COPAY_CASH };

struct layer {
    char source[YN_NAME_MAX];
    int64_t nominal_fen; /* what the layer pays on a large enough meal, >= 0 */
    bool cap_at_price;   /* true: pays min(nominal, price left); false: all or nothing */
    enum locality locality;
};

struct category {
    char name[YN_NAME_MAX];
    char display[YN_DISPLAY_MAX]; /* screen name, "" = built-in or the name */
    int min_age;                  /* years, inclusive; -1 = no lower bound */
    int max_age;                  /* years, inclusive; -1 = no upper bound */
    uint32_t flags_any;           /* holder needs one of these (0 = no condition) */
    uint32_t flags_all;           /* holder needs all of these (0 = no condition) */
};

struct period {
    char name[YN_NAME_MAX];
    char display[YN_DISPLAY_MAX]; /* screen name, "" = built-in or the name */
    int32_t start_s;              /* local seconds of day, inclusive */
    int32_t end_s;                /* local seconds of day, exclusive, <= 86400 */
    unsigned weekday_set;         /* bit w set: open on weekday w (1 = Monday) */
    int n_closed, n_open;
    int32_t closed_ymd[MAX_DATES]; /* holidays: closed although a listed weekday */
    int32_t open_ymd[MAX_DATES];   /* 调休 working days: open whatever the weekday */
};

struct rule {
    int n_layers;
    struct layer layers[YN_POLICY_MAX_LAYERS];
};

struct yn_policy {
    char id[ID_MAX];
    int64_t version;
    uint32_t issuer; /* district code, six digits */
    bool sell_without_subsidy;
    int32_t reverse_window_s;
    enum copay copay;
    int64_t min_price_fen;              /* no subsidy below this price */
    int32_t per_period;                 /* subsidised meals per period per day; 0 = no limit */
    int32_t per_day;                    /* 0 = no limit */
    int32_t per_month;                  /* 0 = no limit */
    int64_t month_cap_fen;              /* subsidy per calendar month; 0 = no limit */
    yn_policy_ident_rule identity_only; /* cards bound by identifier in the roster */
    yn_policy_ident_rule manual_entry;  /* 忘带卡: staff look the senior up */
    int n_categories, n_periods, n_rules, n_sources;
    struct category categories[MAX_CATEGORIES];
    struct {
        char name[YN_NAME_MAX];
        char display[YN_DISPLAY_MAX];
    } sources[MAX_SOURCES]; /* screen names of funding sources */
    struct period periods[MAX_PERIODS];
    int rule_of[MAX_CATEGORIES][MAX_PERIODS]; /* 1 + index into rules; 0 = none */
    struct rule rules[MAX_RULES];
};

/* ---- calendar ----------------------------------------------------------- */

/* Age in whole years on date ymd: N from the Nth birthday on. A 29 February
 * birthday falls on 1 March in common years: comparing (month, day) with
 * (2, 29) gives exactly that, since no common-year date lies between. */
static int age_on(int32_t birth_ymd, int32_t ymd)
{
    int32_t by = birth_ymd / 10000, y = ymd / 10000;
    int bm = (int)(birth_ymd / 100 % 100), bd = (int)(birth_ymd % 100);
    int m = (int)(ymd / 100 % 100), d = (int)(ymd % 100);
    int age = (int)(y - by);
    if (m < bm || (m == bm && d < bd))
        age--;
    return age;
}

static bool date_listed(const int32_t *list, int n, int32_t ymd)
{
    for (int i = 0; i < n; i++)
        if (list[i] == ymd)
            return true;
    return false;
}

static bool period_open(const struct period *per, int32_t ymd, int weekday, int32_t sod)
{
    if (sod < per->start_s || sod >= per->end_s)
        return false;
    if (date_listed(per->open_ymd, per->n_open, ymd))
        return true;
    if (!(per->weekday_set & (1u << weekday)))
        return false;
    return !date_listed(per->closed_ymd, per->n_closed, ymd);
}

/* Fills m and returns the index of the open period, -1 if none. */
static int locate(const yn_policy *p, int64_t utc_s, yn_moment *m)
{
    memset(m, 0, sizeof *m);
    if (utc_s < MIN_UTC_S || utc_s > MAX_UTC_S)
        return -1;
    int64_t local_s = utc_s + TZ_OFFSET_S;
    int64_t days = local_s / DAY_S; /* local_s >= 0 */
    m->local_ymd = yn_time_ymd_of_days(days);
    m->local_ym = m->local_ymd / 100;
    m->weekday = yn_time_weekday_of_days(days);
    m->seconds_of_day = (int32_t)(local_s - days * DAY_S);
    for (int i = 0; p && i < p->n_periods; i++) {
        if (period_open(&p->periods[i], m->local_ymd, m->weekday, m->seconds_of_day)) {
            memcpy(m->period, p->periods[i].name, sizeof m->period);
            return i;
        }
    }
    return -1;
}

/* ---- validation context: path and line of the value being checked -------- */

struct seg {
    json_t *parent;  /* object or array holding the value */
    const char *key; /* member name, or NULL for an array element */
    size_t index;    /* array index when key is NULL */
};

struct ctx {
    const char *text; /* the document, for line numbers */
    size_t len;
    const char *origin; /* file name or NULL */
    char *err;
    size_t errlen;
    int depth;
    struct seg path[PATH_DEPTH];
};

static void push_key(struct ctx *c, json_t *parent, const char *key)
{
    if (c->depth < PATH_DEPTH)
        c->path[c->depth] = (struct seg){parent, key, 0};
    c->depth++;
}

static void push_index(struct ctx *c, json_t *parent, size_t index)
{
    if (c->depth < PATH_DEPTH)
        c->path[c->depth] = (struct seg){parent, NULL, index};
    c->depth++;
}

static void pop(struct ctx *c)
{
    c->depth--;
}

static bool is_ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && is_ws(s[i]))
        i++;
    return i;
}

static size_t skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i < n ? i + 1 : n;
}

static size_t skip_value(const char *s, size_t n, size_t i)
{
    if (i >= n)
        return n;
    if (s[i] == '"')
        return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < n) {
            char ch = s[i];
            if (ch == '"') {
                i = skip_string(s, n, i);
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return n;
    }
    while (i < n && !is_ws(s[i]) && s[i] != ',' && s[i] != ']' && s[i] != '}')
        i++;
    return i;
}

/* Offset of the ordinal-th member value (or element) of the container at i. */
static size_t child_at(const char *s, size_t n, size_t i, size_t ordinal)
{
    if (i >= n || (s[i] != '{' && s[i] != '['))
        return SIZE_MAX;
    bool object = s[i] == '{';
    i++;
    for (size_t k = 0;; k++) {
        i = skip_ws(s, n, i);
        if (i >= n || s[i] == '}' || s[i] == ']')
            return SIZE_MAX;
        if (object) {
            i = skip_ws(s, n, skip_string(s, n, i));
            if (i < n && s[i] == ':')
                i++;
            i = skip_ws(s, n, i);
        }
        if (k == ordinal)
            return i;
        i = skip_ws(s, n, skip_value(s, n, i));
        if (i >= n || s[i] != ',')
            return SIZE_MAX;
        i++;
    }
}

/* Line of the deepest value on the current path that exists in the text.
 * Jansson keeps object members in document order, so a member is found by
 * its ordinal. Only runs when reporting an error. */
static int path_line(const struct ctx *c)
{
    size_t at = skip_ws(c->text, c->len, 0);
    for (int i = 0; i < c->depth && i < PATH_DEPTH; i++) {
        const struct seg *sg = &c->path[i];
        size_t ordinal = sg->index;
        if (sg->key) {
            const char *k;
            json_t *v;
            bool found = false;
            ordinal = 0;
            json_object_foreach(sg->parent, k, v)
            {
                if (strcmp(k, sg->key) == 0) {
                    found = true;
                    break;
                }
                ordinal++;
            }
            if (!found)
                break;
        }
        size_t next = child_at(c->text, c->len, at, ordinal);
        if (next == SIZE_MAX)
            break;
        at = next;
    }
    int line = 1;
    for (size_t i = 0; i < at && i < c->len; i++)
        if (c->text[i] == '\n')
            line++;
    return line;
}

/* Appends a key to buf, printable ASCII only, at most 32 characters. */
static void put_key(char *buf, size_t size, size_t *used, const char *key)
{
    size_t n = 0;
    for (const unsigned char *k = (const unsigned char *)key; *k && *used + 4 < size; k++, n++) {
        if (n == 32) {
            memcpy(buf + *used, "...", 3);
            *used += 3;
            break;
        }
        buf[(*used)++] = (*k >= 0x20 && *k < 0x7f && *k != '"' && *k != '\\') ? (char)*k : '?';
    }
    buf[*used] = '\0';
}

static void path_text(const struct ctx *c, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->depth && i < PATH_DEPTH; i++) {
        const struct seg *sg = &c->path[i];
        if (sg->key) {
            if (i > 0 && used + 2 < size) {
                buf[used++] = '.';
                buf[used] = '\0';
            }
            put_key(buf, size, &used, sg->key);
        } else {
            int w = snprintf(buf + used, size - used, "[%zu]", sg->index);
            if (w > 0)
                used = (size_t)w < size - used ? used + (size_t)w : size - 1;
        }
    }
}

/* Writes "policy: [origin: ]line N: path: message" and returns YN_EINVAL. */
__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c, const char *fmt, ...)
{
    if (c->err && c->errlen > 0) {
        char path[160], msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        path_text(c, path, sizeof path);
        snprintf(c->err, c->errlen, "policy: %s%sline %d: %s%s%s", c->origin ? c->origin : "",
                 c->origin ? ": " : "", path_line(c), path, path[0] ? ": " : "", msg);
    }
    return YN_EINVAL;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != YN_OK)                                                                          \
            return rc_;                                                                            \
    } while (0)

/* ---- field readers: each reports its own precise error -------------------- */

static int check_keys(struct ctx *c, json_t *obj, const char *const *allowed, const char *list)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, k) == 0)
                known = true;
        if (!known) {
            push_key(c, obj, k);
            return fail(c, "unknown key (expected %s)", list);
        }
    }
    return YN_OK;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "value";
}

/* Member `key` of obj, pushed on the path; NULL (path still pushed) if absent. */
static json_t *enter(struct ctx *c, json_t *obj, const char *key)
{
    push_key(c, obj, key);
    return json_object_get(obj, key);
}

static int get_int(struct ctx *c, json_t *obj, const char *key, bool required, long long lo,
                   long long hi, long long *out)
{
    json_t *v = enter(c, obj, key);
    if (!v) {
        if (required)
            return fail(c, "missing (expected an integer from %lld to %lld)", lo, hi);
        pop(c);
        return YN_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return fail(c, "expected an integer from %lld to %lld", lo, hi);
    *out = json_integer_value(v);
    pop(c);
    return YN_OK;
}

static int get_bool(struct ctx *c, json_t *obj, const char *key, bool *out)
{
    json_t *v = enter(c, obj, key);
    if (!v)
        return fail(c, "missing (expected true or false)");
    if (!json_is_boolean(v))
        return fail(c, "expected true or false, got %s", type_name(v));
    *out = json_is_true(v);
    pop(c);
    return YN_OK;
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

/* A required string member of obj; *out points into the document. */
static int get_string(struct ctx *c, json_t *obj, const char *key, const char *expected,
                      const char **out)
{
    json_t *v = enter(c, obj, key);
    if (!v)
        return fail(c, "missing (expected %s)", expected);
    if (!json_is_string(v))
        return fail(c, "expected %s, got %s", expected, type_name(v));
    *out = json_string_value(v);
    pop(c);
    return YN_OK;
}

/* A required name: 1..size-1 characters of [A-Za-z0-9_.-], copied to buf. */
static int get_name(struct ctx *c, json_t *obj, const char *key, char *buf, size_t size)
{
    char expected[96];
    const char *s;
    snprintf(expected, sizeof expected, "a name of 1 to %zu characters [A-Za-z0-9_.-]", size - 1);
    TRY(get_string(c, obj, key, expected, &s));
    if (!name_ok(s, size)) {
        push_key(c, obj, key);
        return fail(c, "expected %s", expected);
    }
    memcpy(buf, s, strlen(s) + 1);
    return YN_OK;
}

/* An optional screen name ("display"): valid UTF-8 (Jansson checks that),
 * 1 to YN_DISPLAY_CHARS characters, no control characters, no space at either
 * end — short enough for the screens' lists (the gallery test lays them out). */
static int get_display(struct ctx *c, json_t *obj, char *buf)
{
    static const char expected[] =
        "a screen name of 1 to " YN_STR(YN_DISPLAY_CHARS) " characters, e.g. \"低保\"";
    json_t *v = enter(c, obj, "display");
    if (!v) {
        pop(c);
        return YN_OK;
    }
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    if (!s)
        return fail(c, "expected %s, got %s", expected, type_name(v));
    size_t chars = 0, len = strlen(s);
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u < 0x20 || *u == 0x7f)
            return fail(c, "control character in a screen name (expected %s)", expected);
        chars += (*u & 0xC0) != 0x80;
    }
    if (chars == 0 || chars > YN_DISPLAY_CHARS || len >= YN_DISPLAY_MAX || s[0] == ' ' ||
        s[len - 1] == ' ')
        return fail(c, "expected %s", expected);
    memcpy(buf, s, len + 1);
    pop(c);
    return YN_OK;
}

/* An object member that must be an array of lo..hi elements; path stays pushed. */
static int enter_array(struct ctx *c, json_t *obj, const char *key, bool required, size_t lo,
                       size_t hi, const char *what, json_t **out)
{
    json_t *v = enter(c, obj, key);
    *out = v;
    if (!v) {
        if (required)
            return fail(c, "missing (expected an array of %zu to %zu %s)", lo, hi, what);
        return YN_OK;
    }
    if (!json_is_array(v))
        return fail(c, "expected an array of %zu to %zu %s, got %s", lo, hi, what, type_name(v));
    if (json_array_size(v) < lo || json_array_size(v) > hi)
        return fail(c, "expected an array of %zu to %zu %s, got %zu", lo, hi, what,
                    json_array_size(v));
    return YN_OK;
}

/* "HH:MM" or "HH:MM:SS"; 24:00[:00] only when allow_24 (an end time). */
static bool parse_hms(const char *s, bool allow_24, int32_t *out_s)
{
    size_t n = strlen(s);
    if (n != 5 && n != 8)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool colon = i == 2 || i == 5;
        if (colon ? s[i] != ':' : (s[i] < '0' || s[i] > '9'))
            return false;
    }
    int h = (s[0] - '0') * 10 + (s[1] - '0');
    int m = (s[3] - '0') * 10 + (s[4] - '0');
    int sec = n == 8 ? (s[6] - '0') * 10 + (s[7] - '0') : 0;
    if (m > 59 || sec > 59 || h > 24 || (h == 24 && (!allow_24 || m != 0 || sec != 0)))
        return false;
    *out_s = h * 3600 + m * 60 + sec;
    return true;
}

/* "YYYY-MM-DD", a real date. */
static bool parse_date(const char *s, int32_t *out_ymd)
{
    if (strlen(s) != 10)
        return false;
    int32_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (s[i] != '-')
                return false;
            continue;
        }
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (!yn_time_ymd_valid(v))
        return false;
    *out_ymd = v;
    return true;
}

/* ---- the document's sections -------------------------------------------- */

static const struct {
    const char *name;
    uint32_t bit;
} flag_names[] = {
    {"tekun", YN_FLAG_TEKUN},
    {"dibao", YN_FLAG_DIBAO},
    {"dibao_edge", YN_FLAG_DIBAO_EDGE},
    {"sanshu_wulao", YN_FLAG_SANSHU_WULAO},
    {"shidu", YN_FLAG_SHIDU},
    {"disabled_severe", YN_FLAG_DISABLED_SEVERE},
    {"disabled_moderate", YN_FLAG_DISABLED_MODERATE},
};
#define FLAG_LIST                                                                                  \
    "tekun, dibao, dibao_edge, sanshu_wulao, shidu, disabled_severe, disabled_moderate"
#define N_FLAGS (sizeof flag_names / sizeof flag_names[0])

uint32_t yn_flag_bit(const char *name)
{
    for (size_t f = 0; f < N_FLAGS; f++)
        if (strcmp(name, flag_names[f].name) == 0)
            return flag_names[f].bit;
    return 0;
}

const char *yn_flag_name(uint32_t bit)
{
    for (size_t f = 0; f < N_FLAGS; f++)
        if (flag_names[f].bit == bit)
            return flag_names[f].name;
    return NULL;
}

static int get_flags(struct ctx *c, json_t *obj, const char *key, uint32_t *out)
{
    json_t *arr;
    TRY(enter_array(c, obj, key, false, 1, N_FLAGS, "category flags", &arr));
    if (arr) {
        for (size_t i = 0; i < json_array_size(arr); i++) {
            json_t *v = json_array_get(arr, i);
            push_index(c, arr, i);
            uint32_t bit = json_is_string(v) ? yn_flag_bit(json_string_value(v)) : 0;
            if (!bit)
                return fail(c, "unknown category flag (expected one of " FLAG_LIST ")");
            if (*out & bit)
                return fail(c, "duplicate category flag");
            *out |= bit;
            pop(c);
        }
    }
    pop(c);
    return YN_OK;
}

static int parse_category(struct ctx *c, json_t *obj, yn_policy *p, struct category *cat)
{
    static const char *const keys[] = {"name",      "display",   "min_age", "max_age",
                                       "flags_any", "flags_all", NULL};
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, keys, "name, display, min_age, max_age, flags_any, flags_all"));
    TRY(get_name(c, obj, "name", cat->name, sizeof cat->name));
    TRY(get_display(c, obj, cat->display));
    for (struct category *o = p->categories; o < cat; o++) {
        if (strcmp(o->name, cat->name) == 0) {
            push_key(c, obj, "name");
            return fail(c, "duplicate category name \"%s\"", cat->name);
        }
    }
    long long min_age = -1, max_age = -1;
    TRY(get_int(c, obj, "min_age", false, 0, MAX_AGE, &min_age));
    TRY(get_int(c, obj, "max_age", false, 0, MAX_AGE, &max_age));
    if (min_age >= 0 && max_age >= 0 && max_age < min_age) {
        push_key(c, obj, "max_age");
        return fail(c, "less than min_age (%lld)", min_age);
    }
    cat->min_age = (int)min_age;
    cat->max_age = (int)max_age;
    TRY(get_flags(c, obj, "flags_any", &cat->flags_any));
    TRY(get_flags(c, obj, "flags_all", &cat->flags_all));
    return YN_OK;
}

static int get_dates(struct ctx *c, json_t *obj, const char *key, int32_t *list, int *n)
{
    json_t *arr;
    TRY(enter_array(c, obj, key, false, 0, MAX_DATES, "dates \"YYYY-MM-DD\"", &arr));
    for (size_t i = 0; arr && i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        int32_t ymd;
        push_index(c, arr, i);
        if (!json_is_string(v) || !parse_date(json_string_value(v), &ymd))
            return fail(c, "expected a date \"YYYY-MM-DD\"");
        if (date_listed(list, *n, ymd))
            return fail(c, "duplicate date");
        list[(*n)++] = ymd;
        pop(c);
    }
    pop(c);
    return YN_OK;
}

static int parse_period(struct ctx *c, json_t *obj, yn_policy *p, struct period *per)
{
    static const char *const keys[] = {"name",     "display",      "start",      "end",
                                       "weekdays", "closed_dates", "open_dates", NULL};
    const char *s;
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, keys, "name, display, start, end, weekdays, closed_dates, open_dates"));
    TRY(get_name(c, obj, "name", per->name, sizeof per->name));
    TRY(get_display(c, obj, per->display));
    for (struct period *o = p->periods; o < per; o++) {
        if (strcmp(o->name, per->name) == 0) {
            push_key(c, obj, "name");
            return fail(c, "duplicate period name \"%s\"", per->name);
        }
    }
    TRY(get_string(c, obj, "start", "\"HH:MM\" or \"HH:MM:SS\", 00:00 to 23:59:59", &s));
    if (!parse_hms(s, false, &per->start_s)) {
        push_key(c, obj, "start");
        return fail(c, "expected \"HH:MM\" or \"HH:MM:SS\", 00:00 to 23:59:59");
    }
    TRY(get_string(c, obj, "end", "\"HH:MM\" or \"HH:MM:SS\", 00:00:01 to 24:00", &s));
    if (!parse_hms(s, true, &per->end_s)) {
        push_key(c, obj, "end");
        return fail(c, "expected \"HH:MM\" or \"HH:MM:SS\", 00:00:01 to 24:00");
    }
    if (per->end_s <= per->start_s) {
        push_key(c, obj, "end");
        return fail(c, "must be later than start (a period cannot cross midnight)");
    }
    json_t *arr;
    TRY(enter_array(c, obj, "weekdays", true, 0, 7, "weekdays 1 (Monday) to 7 (Sunday)", &arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *v = json_array_get(arr, i);
        push_index(c, arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 7)
            return fail(c, "expected a weekday 1 (Monday) to 7 (Sunday)");
        unsigned bit = 1u << json_integer_value(v);
        if (per->weekday_set & bit)
            return fail(c, "duplicate weekday");
        per->weekday_set |= bit;
        pop(c);
    }
    pop(c);
    TRY(get_dates(c, obj, "closed_dates", per->closed_ymd, &per->n_closed));
    TRY(get_dates(c, obj, "open_dates", per->open_ymd, &per->n_open));
    json_t *open = json_object_get(obj, "open_dates");
    for (int i = 0; i < per->n_open; i++) {
        if (date_listed(per->closed_ymd, per->n_closed, per->open_ymd[i])) {
            push_key(c, obj, "open_dates");
            push_index(c, open, (size_t)i);
            return fail(c, "date is also in closed_dates");
        }
    }
    if (per->weekday_set == 0 && per->n_open == 0) {
        push_key(c, obj, "weekdays");
        return fail(c, "period is never open (no weekdays and no open_dates)");
    }
    return YN_OK;
}

static int parse_layer(struct ctx *c, json_t *obj, struct rule *r, struct layer *l)
{
    static const char *const keys[] = {"source",       "cap_fen",  "remainder_of_total_fen",
                                       "cap_at_price", "locality", NULL};
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, keys,
                   "source, cap_fen, remainder_of_total_fen, cap_at_price, locality"));
    TRY(get_name(c, obj, "source", l->source, sizeof l->source));
    int64_t before_fen = 0;
    for (struct layer *o = r->layers; o < l; o++) {
        if (strcmp(o->source, l->source) == 0) {
            push_key(c, obj, "source");
            return fail(c, "duplicate source \"%s\" in this subsidy", l->source);
        }
        before_fen += o->nominal_fen;
    }
    bool has_cap = json_object_get(obj, "cap_fen") != NULL;
    bool has_rest = json_object_get(obj, "remainder_of_total_fen") != NULL;
    if (has_cap == has_rest)
        return fail(c, "expected exactly one of cap_fen and remainder_of_total_fen");
    long long fen = 0;
    if (has_cap) {
        TRY(get_int(c, obj, "cap_fen", true, 0, MAX_MONEY_FEN, &fen));
        l->nominal_fen = fen;
    } else {
        TRY(get_int(c, obj, "remainder_of_total_fen", true, 0, MAX_MONEY_FEN, &fen));
        if (fen < before_fen) {
            push_key(c, obj, "remainder_of_total_fen");
            return fail(c, "less than the %lld fen of the layers before it", (long long)before_fen);
        }
        l->nominal_fen = fen - before_fen;
    }
    if (before_fen + l->nominal_fen > MAX_MONEY_FEN)
        return fail(c, "layers add up to more than %lld fen", MAX_MONEY_FEN);
    TRY(get_bool(c, obj, "cap_at_price", &l->cap_at_price));
    const char *loc;
    TRY(get_string(c, obj, "locality", "\"any\", \"same_district\" or \"same_street\"", &loc));
    if (strcmp(loc, "any") == 0) {
        l->locality = LOC_ANY;
    } else if (strcmp(loc, "same_district") == 0) {
        l->locality = LOC_SAME_DISTRICT;
    } else if (strcmp(loc, "same_street") == 0) {
        l->locality = LOC_SAME_STREET;
    } else {
        push_key(c, obj, "locality");
        return fail(c, "unknown locality (expected \"any\", \"same_district\" or \"same_street\")");
    }
    return YN_OK;
}

static int find_name(struct ctx *c, json_t *obj, const char *key, const char *what,
                     const char *names, size_t stride, int n, int *out)
{
    const char *s;
    TRY(get_string(c, obj, key, what, &s));
    for (int i = 0; i < n; i++) {
        if (strcmp(names + (size_t)i * stride, s) == 0) {
            *out = i;
            return YN_OK;
        }
    }
    push_key(c, obj, key);
    return fail(c, "no %s of that name", what);
}

static int parse_subsidy(struct ctx *c, json_t *obj, yn_policy *p, struct rule *r)
{
    static const char *const keys[] = {"category", "period", "layers", NULL};
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, keys, "category, period, layers"));
    int ci = 0, pi = 0;
    TRY(find_name(c, obj, "category", "category", p->categories[0].name, sizeof p->categories[0],
                  p->n_categories, &ci));
    TRY(find_name(c, obj, "period", "period", p->periods[0].name, sizeof p->periods[0],
                  p->n_periods, &pi));
    if (p->rule_of[ci][pi]) {
        push_key(c, obj, "period");
        return fail(c, "duplicate subsidy for category \"%s\" in period \"%s\"",
                    p->categories[ci].name, p->periods[pi].name);
    }
    json_t *arr;
    TRY(enter_array(c, obj, "layers", true, 1, YN_POLICY_MAX_LAYERS, "funding layers", &arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        push_index(c, arr, i);
        TRY(parse_layer(c, json_array_get(arr, i), r, &r->layers[i]));
        r->n_layers++;
        pop(c);
    }
    pop(c);
    p->rule_of[ci][pi] = (int)(r - p->rules) + 1;
    return YN_OK;
}

static int parse_copay(struct ctx *c, json_t *root, yn_policy *p)
{
    static const char expected[] = "[\"wallet\", \"cash\"], [\"wallet\"] or [\"cash\"]";
    json_t *v = enter(c, root, "copay");
    if (!v)
        return fail(c, "missing (expected %s)", expected);
    const char *a = json_is_array(v) ? json_string_value(json_array_get(v, 0)) : NULL;
    const char *b = json_is_array(v) ? json_string_value(json_array_get(v, 1)) : NULL;
    size_t n = json_is_array(v) ? json_array_size(v) : 0;
    if (n == 2 && a && b && strcmp(a, "wallet") == 0 && strcmp(b, "cash") == 0)
        p->copay = COPAY_WALLET_CASH;
    else if (n == 1 && a && strcmp(a, "wallet") == 0)
        p->copay = COPAY_WALLET;
    else if (n == 1 && a && strcmp(a, "cash") == 0)
        p->copay = COPAY_CASH;
    else
        return fail(c, "expected %s", expected);
    pop(c);
    return YN_OK;
}

static int parse_limits(struct ctx *c, json_t *root, yn_policy *p)
{
    static const char *const keys[] = {"per_period", "per_day", "per_month", "month_cap_fen", NULL};
    json_t *obj = enter(c, root, "limits");
    if (!obj) {
        pop(c);
        return YN_OK;
    }
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, keys, "per_period, per_day, per_month, month_cap_fen"));
    long long v = 0;
    TRY(get_int(c, obj, "per_period", false, 1, MAX_MEALS, &v));
    p->per_period = (int32_t)v;
    v = 0;
    TRY(get_int(c, obj, "per_day", false, 1, MAX_MEALS, &v));
    p->per_day = (int32_t)v;
    v = 0;
    TRY(get_int(c, obj, "per_month", false, 1, MAX_MEALS, &v));
    p->per_month = (int32_t)v;
    v = 0;
    TRY(get_int(c, obj, "month_cap_fen", false, 1, MAX_MONEY_FEN, &v));
    p->month_cap_fen = v;
    pop(c);
    return YN_OK;
}

/* "identity_only" and "manual_entry" (POLICY.md §2, "Other ways to identify
 * the holder"): absent = not accepted. Both carry the offline cap; manual
 * entry its daily cap per terminal as well. */
static int parse_ident_rule(struct ctx *c, json_t *root, const char *key, bool manual,
                            yn_policy_ident_rule *out)
{
    static const char *const keys_id[] = {"offline_cap_fen", NULL};
    static const char *const keys_manual[] = {"offline_cap_fen", "per_terminal_day", NULL};
    json_t *obj = enter(c, root, key);
    memset(out, 0, sizeof *out);
    if (!obj) {
        pop(c);
        return YN_OK;
    }
    if (!json_is_object(obj))
        return fail(c, "expected an object, got %s", type_name(obj));
    TRY(check_keys(c, obj, manual ? keys_manual : keys_id,
                   manual ? "offline_cap_fen, per_terminal_day" : "offline_cap_fen"));
    long long v = 0;
    TRY(get_int(c, obj, "offline_cap_fen", true, 0, MAX_MONEY_FEN, &v));
    out->offline_cap_fen = v;
    if (manual) {
        TRY(get_int(c, obj, "per_terminal_day", true, 1, MAX_MEALS, &v));
        out->per_terminal_day = (int32_t)v;
    }
    out->accepted = true;
    pop(c);
    return YN_OK;
}

/* "sources": the screen names of funding sources, [{"name", "display"}]. */
static int parse_sources(struct ctx *c, json_t *root, yn_policy *p)
{
    static const char *const keys[] = {"name", "display", NULL};
    json_t *arr;
    TRY(enter_array(c, root, "sources", false, 1, MAX_SOURCES, "funding sources", &arr));
    for (size_t i = 0; arr && i < json_array_size(arr); i++) {
        json_t *obj = json_array_get(arr, i);
        push_index(c, arr, i);
        if (!json_is_object(obj))
            return fail(c, "expected an object, got %s", type_name(obj));
        TRY(check_keys(c, obj, keys, "name, display"));
        TRY(get_name(c, obj, "name", p->sources[i].name, sizeof p->sources[i].name));
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->sources[j].name, p->sources[i].name) == 0) {
                push_key(c, obj, "name");
                return fail(c, "duplicate source name \"%s\"", p->sources[i].name);
            }
        }
        if (!json_object_get(obj, "display")) {
            push_key(c, obj, "display");
            return fail(c, "missing (a source is listed here only for its screen name)");
        }
        TRY(get_display(c, obj, p->sources[i].display));
        p->n_sources++;
        pop(c);
    }
    pop(c);
    return YN_OK;
}

/* Identity first: a document without it is refused before anything else. */
static int parse_identity(struct ctx *c, json_t *root, yn_policy *p)
{
    static const char why[] = "a policy must carry format, id, version and issuer";
    static const char *const ident[] = {"format", "id", "version", "issuer"};
    for (size_t i = 0; i < sizeof ident / sizeof ident[0]; i++) {
        if (!json_object_get(root, ident[i])) {
            push_key(c, root, ident[i]);
            return fail(c, "missing: %s; refusing an unsigned-looking document", why);
        }
    }
    long long v = 0;
    TRY(get_int(c, root, "format", true, POLICY_FORMAT, POLICY_FORMAT, &v));
    TRY(get_name(c, root, "id", p->id, sizeof p->id));
    TRY(get_int(c, root, "version", true, 1, INT64_MAX, &v));
    p->version = v;
    TRY(get_int(c, root, "issuer", true, 110000, 829999, &v));
    p->issuer = (uint32_t)v;
    return YN_OK;
}

static int parse_policy(struct ctx *c, json_t *root, yn_policy *p)
{
    static const char *const keys[] = {"format",           "id",          "version",
                                       "issuer",           "description", "sell_without_subsidy",
                                       "reverse_window_s", "copay",       "min_price_fen",
                                       "limits",           "categories",  "periods",
                                       "subsidies",        "sources",     "identity_only",
                                       "manual_entry",     NULL};
    if (!json_is_object(root))
        return fail(c, "expected a JSON object at the top level, got %s", type_name(root));
    TRY(check_keys(c, root, keys,
                   "format, id, version, issuer, description, sell_without_subsidy, "
                   "reverse_window_s, copay, min_price_fen, limits, categories, periods, "
                   "subsidies, sources, identity_only, manual_entry"));
    TRY(parse_identity(c, root, p));

    json_t *v = enter(c, root, "description");
    if (v && (!json_is_string(v) || strlen(json_string_value(v)) > MAX_DESCRIPTION))
        return fail(c, "expected a string of at most %d bytes", MAX_DESCRIPTION);
    pop(c);

    long long n = 0;
    TRY(get_bool(c, root, "sell_without_subsidy", &p->sell_without_subsidy));
    TRY(get_int(c, root, "reverse_window_s", true, 0, MAX_REVERSE_S, &n));
    p->reverse_window_s = (int32_t)n;
    TRY(parse_copay(c, root, p));
    n = 0;
    TRY(get_int(c, root, "min_price_fen", false, 0, MAX_MONEY_FEN, &n));
    p->min_price_fen = n;
    TRY(parse_limits(c, root, p));
    TRY(parse_sources(c, root, p));
    TRY(parse_ident_rule(c, root, "identity_only", false, &p->identity_only));
    TRY(parse_ident_rule(c, root, "manual_entry", true, &p->manual_entry));

    json_t *arr;
    TRY(enter_array(c, root, "categories", true, 1, MAX_CATEGORIES, "categories", &arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        push_index(c, arr, i);
        TRY(parse_category(c, json_array_get(arr, i), p, &p->categories[i]));
        p->n_categories++;
        pop(c);
    }
    pop(c);

    TRY(enter_array(c, root, "periods", true, 1, MAX_PERIODS, "meal periods", &arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        push_index(c, arr, i);
        TRY(parse_period(c, json_array_get(arr, i), p, &p->periods[i]));
        p->n_periods++;
        pop(c);
    }
    pop(c);

    TRY(enter_array(c, root, "subsidies", true, 1, MAX_RULES, "subsidies", &arr));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        push_index(c, arr, i);
        TRY(parse_subsidy(c, json_array_get(arr, i), p, &p->rules[i]));
        p->n_rules++;
        pop(c);
    }
    pop(c);
    return YN_OK;
}

static int load(const char *json, size_t len, yn_policy **out, char *err, size_t errlen,
                const char *origin)
{
    struct ctx c = {.text = json, .len = len, .origin = origin, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    if (!json || !out)
        return fail(&c, "no document");
    if (len > MAX_DOC_BYTES)
        return fail(&c, "document larger than %d bytes", MAX_DOC_BYTES);

    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (err && errlen) {
            snprintf(err, errlen, "policy: %s%sline %d: %s", origin ? origin : "",
                     origin ? ": " : "", jerr.line, jerr.text);
            for (char *e = err; *e; e++) /* Jansson quotes the input: keep logs clean */
                if ((unsigned char)*e < 0x20 || *e == 0x7f)
                    *e = '?';
        }
        return YN_EINVAL;
    }
    yn_policy *p = calloc(1, sizeof *p);
    if (!p) {
        json_decref(root);
        if (err && errlen)
            snprintf(err, errlen, "policy: out of memory");
        return YN_ENOMEM;
    }
    int rc = parse_policy(&c, root, p);
    json_decref(root);
    if (rc != YN_OK) {
        free(p);
        return rc;
    }
    *out = p;
    return YN_OK;
}

int yn_policy_load(const char *json, size_t len, yn_policy **out, char *err, size_t errlen)
{
    return load(json, len, out, err, errlen, NULL);
}

int yn_policy_load_file(const char *path, yn_policy **out, char *err, size_t errlen)
{
    if (!path || !out) {
        if (err && errlen)
            snprintf(err, errlen, "policy: no file given");
        return YN_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (err && errlen)
            snprintf(err, errlen, "policy: %s: %s", path, strerror(e));
        return e == ENOENT ? YN_ENOENT : YN_EIO;
    }
    char *buf = malloc(MAX_DOC_BYTES + 1);
    if (!buf) {
        fclose(f);
        if (err && errlen)
            snprintf(err, errlen, "policy: out of memory");
        return YN_ENOMEM;
    }
    size_t n = fread(buf, 1, MAX_DOC_BYTES + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    int rc;
    if (bad) {
        if (err && errlen)
            snprintf(err, errlen, "policy: %s: read error", path);
        rc = YN_EIO;
    } else {
        rc = load(buf, n, out, err, errlen, path);
    }
    free(buf);
    return rc;
}

void yn_policy_free(yn_policy *p)
{
    free(p);
}

const char *yn_policy_id(const yn_policy *p)
{
    return p->id;
}

int64_t yn_policy_version(const yn_policy *p)
{
    return p->version;
}

uint32_t yn_policy_issuer(const yn_policy *p)
{
    return p->issuer;
}

int32_t yn_policy_reverse_window_s(const yn_policy *p)
{
    return p->reverse_window_s;
}

void yn_policy_month_limits(const yn_policy *p, int32_t *per_month, int64_t *month_cap_fen)
{
    *per_month = p->per_month;
    *month_cap_fen = p->month_cap_fen;
}

void yn_policy_limits(const yn_policy *p, yn_policy_limit *out)
{
    *out = (yn_policy_limit){.per_period = p->per_period,
                             .per_day = p->per_day,
                             .per_month = p->per_month,
                             .month_cap_fen = p->month_cap_fen,
                             .day_max = p->per_day ? p->per_day : p->per_period * p->n_periods};
}

void yn_policy_identity_only(const yn_policy *p, yn_policy_ident_rule *out)
{
    *out = p->identity_only;
}

void yn_policy_manual_entry(const yn_policy *p, yn_policy_ident_rule *out)
{
    *out = p->manual_entry;
}

/* Screen names for the ids the shipped policies use, for documents that give
 * none (format 1 documents written before "display" existed). */
static const struct {
    enum yn_policy_name kind;
    const char *name, *display;
} builtin_names[] = {
    {YN_POLICY_CATEGORY, "key_group", "重点群体"},
    {YN_POLICY_CATEGORY, "age_100_plus", "百岁老人"},
    {YN_POLICY_CATEGORY, "age_70_99", "70至99岁"},
    {YN_POLICY_CATEGORY, "age_80_plus", "80岁以上"},
    {YN_POLICY_CATEGORY, "age_60_79", "60至79岁"},
    {YN_POLICY_CATEGORY, "age_60_plus", "60岁以上"},
    {YN_POLICY_CATEGORY, "low_income_60_plus", "低收入长者"},
    {YN_POLICY_CATEGORY, "tekun", "特困"},
    {YN_POLICY_CATEGORY, "dibao", "低保"},
    {YN_POLICY_CATEGORY, "dibao_edge", "低保边缘"},
    {YN_POLICY_CATEGORY, "sanshu_wulao", "三属五老"},
    {YN_POLICY_CATEGORY, "shidu", "失独"},
    {YN_POLICY_CATEGORY, "disabled_severe", "重度残疾"},
    {YN_POLICY_CATEGORY, "disabled_moderate", "中度失能"},
    {YN_POLICY_PERIOD, "breakfast", "早餐"},
    {YN_POLICY_PERIOD, "lunch", "午餐"},
    {YN_POLICY_PERIOD, "dinner", "晚餐"},
    {YN_POLICY_PERIOD, "supper", "夜宵"},
    {YN_POLICY_SOURCE, "province", "省级"},
    {YN_POLICY_SOURCE, "city", "市级"},
    {YN_POLICY_SOURCE, "district", "区级"},
    {YN_POLICY_SOURCE, "street", "街道"},
};

const char *yn_policy_display(const yn_policy *p, enum yn_policy_name kind, const char *name)
{
    if (!name[0])
        return "其他";
    for (int i = 0; p && kind == YN_POLICY_CATEGORY && i < p->n_categories; i++)
        if (strcmp(p->categories[i].name, name) == 0 && p->categories[i].display[0])
            return p->categories[i].display;
    for (int i = 0; p && kind == YN_POLICY_PERIOD && i < p->n_periods; i++)
        if (strcmp(p->periods[i].name, name) == 0 && p->periods[i].display[0])
            return p->periods[i].display;
    for (int i = 0; p && kind == YN_POLICY_SOURCE && i < p->n_sources; i++)
        if (strcmp(p->sources[i].name, name) == 0)
            return p->sources[i].display;
    for (size_t i = 0; i < sizeof builtin_names / sizeof builtin_names[0]; i++)
        if (builtin_names[i].kind == kind && strcmp(builtin_names[i].name, name) == 0)
            return builtin_names[i].display;
    return name;
}

void yn_policy_locate(const yn_policy *p, int64_t utc_s, yn_moment *m)
{
    (void)locate(p, utc_s, m);
}

/* ---- the decision ------------------------------------------------------- */

static bool locality_ok(enum locality l, const yn_card_facts *card, const yn_canteen *canteen)
{
    switch (l) {
    case LOC_ANY:
        return true;
    case LOC_SAME_DISTRICT:
        return card->district != 0 && card->district == canteen->district;
    case LOC_SAME_STREET:
        return card->street != 0 && card->street == canteen->street;
    }
    return false;
}

static bool category_matches(const struct category *cat, int age, uint32_t flags)
{
    if (cat->min_age >= 0 && age < cat->min_age)
        return false;
    if (cat->max_age >= 0 && age > cat->max_age)
        return false;
    if (cat->flags_any && !(flags & cat->flags_any))
        return false;
    return (flags & cat->flags_all) == cat->flags_all;
}

static bool meal_price(const yn_meal *meal, int64_t *price_fen)
{
    if (meal->price_fen < 0 || meal->weight_g < 0 || meal->price_per_100g_fen < 0)
        return false;
    if (meal->weight_g == 0 && meal->price_per_100g_fen == 0) {
        *price_fen = meal->price_fen;
        return meal->price_fen <= MAX_MONEY_FEN;
    }
    /* weighed: both weight and unit price, and no fixed price besides */
    if (meal->weight_g == 0 || meal->price_per_100g_fen == 0 || meal->price_fen != 0 ||
        meal->price_per_100g_fen > MAX_MONEY_FEN)
        return false;
    *price_fen =
        (int64_t)meal->weight_g * meal->price_per_100g_fen / 100; /* down: diner's favour */
    return *price_fen <= MAX_MONEY_FEN;
}

/* Shares of the rule's layers for this price and place; returns false when
 * the locality rules leave no layer. */
static bool compute_layers(const struct rule *r, const yn_card_facts *card,
                           const yn_canteen *canteen, yn_decision *d)
{
    int64_t left_fen = d->price_fen;
    bool any_local = false;
    d->n_layers = r->n_layers;
    for (int i = 0; i < r->n_layers; i++) {
        const struct layer *l = &r->layers[i];
        int64_t share = 0;
        memcpy(d->layers[i].source, l->source, sizeof d->layers[i].source);
        if (locality_ok(l->locality, card, canteen)) {
            any_local = true;
            if (l->cap_at_price)
                share = l->nominal_fen < left_fen ? l->nominal_fen : left_fen;
            else
                share = l->nominal_fen <= left_fen ? l->nominal_fen : 0;
        }
        d->layers[i].fen = share;
        left_fen -= share;
        d->subsidy_fen += share;
    }
    return any_local;
}

/* Trim the subsidy to the room left under the monthly cap, last layer first
 * (the most local funder gives way first). */
static void apply_month_cap(const yn_policy *p, const yn_usage *usage, yn_decision *d)
{
    if (p->month_cap_fen == 0)
        return;
    int64_t room_fen = p->month_cap_fen - usage->subsidy_month_fen;
    int64_t excess_fen = d->subsidy_fen - room_fen;
    for (int i = d->n_layers - 1; i >= 0 && excess_fen > 0; i--) {
        int64_t cut = d->layers[i].fen < excess_fen ? d->layers[i].fen : excess_fen;
        d->layers[i].fen -= cut;
        d->subsidy_fen -= cut;
        excess_fen -= cut;
    }
}

static void pay_rest(const yn_policy *p, int64_t wallet_balance_fen, yn_decision *d)
{
    int64_t due_fen = d->price_fen - d->subsidy_fen;
    switch (p->copay) {
    case COPAY_WALLET_CASH:
        d->wallet_fen = wallet_balance_fen < due_fen ? wallet_balance_fen : due_fen;
        d->cash_fen = due_fen - d->wallet_fen;
        break;
    case COPAY_WALLET:
        if (wallet_balance_fen < due_fen) {
            d->allowed = false;
            d->reason = YN_REASON_INSUFFICIENT;
        } else {
            d->wallet_fen = due_fen;
        }
        break;
    case COPAY_CASH:
        d->cash_fen = due_fen;
        break;
    }
}

/* Subsidy for a tap in an open period by a holder of a category. Returns
 * the reason the subsidy is removed, NONE when it is granted (possibly
 * trimmed). Order of checks: POLICY.md. */
static enum yn_reason subsidise(const yn_policy *p, int ci, int pi, const yn_card_facts *card,
                                const yn_canteen *canteen, const yn_usage *usage, yn_decision *d)
{
    int ri = p->rule_of[ci][pi];
    if (ri == 0)
        return YN_REASON_NOT_ELIGIBLE;
    if (d->price_fen < p->min_price_fen)
        return YN_REASON_BELOW_MIN_PRICE;
    if (p->per_period && usage->meals_period >= p->per_period)
        return YN_REASON_PERIOD_USED;
    if (p->per_day && usage->meals_day >= p->per_day)
        return YN_REASON_DAY_USED;
    if (p->per_month && usage->meals_month >= p->per_month)
        return YN_REASON_MONTH_USED;
    if (p->month_cap_fen && usage->subsidy_month_fen >= p->month_cap_fen)
        return YN_REASON_MONTH_CAP;
    if (!compute_layers(&p->rules[ri - 1], card, canteen, d))
        return YN_REASON_OUTSIDE_AREA;
    if (d->subsidy_fen == 0)
        return YN_REASON_BELOW_MIN_PRICE; /* fixed amounts larger than the meal */
    apply_month_cap(p, usage, d);
    return YN_REASON_NONE;
}

int yn_policy_decide(const yn_policy *p, const yn_card_facts *card, const yn_meal *meal,
                     const yn_canteen *canteen, int64_t utc_s, const yn_usage *usage,
                     int64_t wallet_balance_fen, yn_decision *out)
{
    if (!p || !card || !meal || !canteen || !usage || !out)
        return YN_EINVAL;
    if (utc_s < MIN_UTC_S || utc_s > MAX_UTC_S || wallet_balance_fen < 0)
        return YN_EINVAL;
    if (usage->meals_period < 0 || usage->meals_day < 0 || usage->meals_month < 0 ||
        usage->subsidy_month_fen < 0)
        return YN_EINVAL;
    if (!yn_time_ymd_valid(card->birth_ymd) || !yn_time_ymd_valid(card->expiry_ymd))
        return YN_EINVAL;

    yn_decision d;
    memset(&d, 0, sizeof d);
    if (!meal_price(meal, &d.price_fen))
        return YN_EINVAL;
    yn_moment m;
    int pi = locate(p, utc_s, &m);
    if (card->birth_ymd > m.local_ymd)
        return YN_EINVAL;
    memcpy(d.period, m.period, sizeof d.period);
    d.allowed = true;

    if (m.local_ymd > card->expiry_ymd) {
        d.allowed = false;
        d.reason = YN_REASON_EXPIRED;
        *out = d;
        return YN_OK;
    }
    int age = age_on(card->birth_ymd, m.local_ymd);
    int ci = -1;
    for (int i = 0; i < p->n_categories && ci < 0; i++)
        if (category_matches(&p->categories[i], age, card->flags))
            ci = i;
    if (ci >= 0)
        memcpy(d.category, p->categories[ci].name, sizeof d.category);

    enum yn_reason r;
    if (pi < 0)
        r = YN_REASON_NO_PERIOD;
    else if (ci < 0)
        r = YN_REASON_NOT_ELIGIBLE;
    else
        r = subsidise(p, ci, pi, card, canteen, usage, &d);
    if (r != YN_REASON_NONE) { /* no subsidy: sold at full price, or refused */
        d.reason = r;
        d.allowed = p->sell_without_subsidy;
        d.n_layers = 0;
        d.subsidy_fen = 0;
        memset(d.layers, 0, sizeof d.layers);
    }
    if (d.allowed)
        pay_rest(p, wallet_balance_fen, &d);
    if (!d.allowed) { /* refused: nothing is paid by anyone */
        d.n_layers = 0;
        d.subsidy_fen = d.wallet_fen = d.cash_fen = 0;
        memset(d.layers, 0, sizeof d.layers);
    }
    *out = d;
    return YN_OK;
}
