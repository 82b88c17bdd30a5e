/* rules.c — the rules of journal records and district entries (rules.h),
 * shared by the terminal and the district server. */
#include "rules.h"

#include <string.h>

#include "card.h"
#include "ident.h"
#include "timeutil.h"

/* One row per record kind; the values are stored and hashed: never renumber.
 * A new kind is one more row. */
static const yn_rules_kind kinds[] = {
    {.kind = YN_LEDGER_MEAL,
     .name = "meal",
     .price = YN_SIGN_GE0,
     .subsidy = YN_SIGN_GE0,
     .wallet = YN_SIGN_GE0,
     .cash = YN_SIGN_GE0,
     .layer = YN_SIGN_GE0,
     .min_layers = 0,
     .max_layers = YN_POLICY_MAX_LAYERS,
     .tap_id = true,
     .reverses = YN_RULES_REF_NONE},
    {.kind = YN_LEDGER_REVERSAL,
     .name = "reversal",
     .price = YN_SIGN_LE0,
     .subsidy = YN_SIGN_LE0,
     .wallet = YN_SIGN_LE0,
     .cash = YN_SIGN_LE0,
     .layer = YN_SIGN_LE0,
     .min_layers = 0,
     .max_layers = YN_POLICY_MAX_LAYERS,
     .reverses = YN_RULES_REF_UNDO},
    {.kind = YN_LEDGER_ALLOCATION,
     .name = "allocation",
     .price = YN_SIGN_ZERO,
     .subsidy = YN_SIGN_GT0,
     .wallet = YN_SIGN_LT0,
     .cash = YN_SIGN_ZERO,
     .layer = YN_SIGN_GT0,
     .min_layers = 1,
     .max_layers = 1,
     .reverses = YN_RULES_REF_NONE,
     .ref = YN_RULES_TEXT_ALLOCATION},
    {.kind = YN_LEDGER_TOPUP,
     .name = "top-up",
     .price = YN_SIGN_ZERO,
     .subsidy = YN_SIGN_ZERO,
     .wallet = YN_SIGN_LT0,
     .cash = YN_SIGN_GT0,
     .layer = YN_SIGN_ZERO,
     .min_layers = 0,
     .max_layers = 0,
     .tap_id = true,
     .reverses = YN_RULES_REF_NONE},
    /* the card stamp of a subsidised meal was not written or its outcome is
     * unknown (LEDGER.md "Card stamps"): a notice naming the meal, no money,
     * its cause in ref */
    {.kind = YN_LEDGER_STAMP_MISSING,
     .name = "stamp missing",
     .price = YN_SIGN_ZERO,
     .subsidy = YN_SIGN_ZERO,
     .wallet = YN_SIGN_ZERO,
     .cash = YN_SIGN_ZERO,
     .layer = YN_SIGN_ZERO,
     .min_layers = 0,
     .max_layers = 0,
     .reverses = YN_RULES_REF_MENTION,
     .ref = YN_RULES_TEXT_NOTE},
};

const yn_rules_kind *yn_rules_kind_of(int kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

/* --- fields --------------------------------------------------------------- */

static bool graphic(const char *s, size_t min, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool yn_rules_card_no(const char *s)
{
    return graphic(s, 1, YN_RULES_CARD_NO_MAX);
}

bool yn_rules_id(const char *s)
{
    return graphic(s, 1, YN_RULES_ID_MAX);
}

bool yn_rules_name(const char *s)
{
    return graphic(s, 1, YN_RULES_NAME_MAX);
}

bool yn_rules_ref(const char *s)
{
    return graphic(s, 1, YN_RULES_REF_MAX);
}

bool yn_rules_district(uint32_t district)
{
    /* GB/T 2260 province-level prefixes (11 Beijing … 65 Xinjiang, 71, 81, 82) */
    static const uint8_t provinces[] = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34,
                                        35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
                                        53, 54, 61, 62, 63, 64, 65, 71, 81, 82};
    if (district < 100000 || district > 999999 || district % 10000 == 0)
        return false;
    for (size_t i = 0; i < sizeof provinces; i++)
        if (provinces[i] == district / 10000)
            return true;
    return false;
}

bool yn_rules_street(uint32_t street, uint32_t district)
{
    return street / 1000 == district && street % 1000 != 0;
}

bool yn_rules_utf8(const void *data, size_t len)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
        if (n == 0 || c > 0xf4 || i + n > len)
            return false;
        uint32_t cp = c & (0x7f >> n);
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0))
            return false;
        i += n;
    }
    return true;
}

bool yn_rules_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s)
        return false;
    bool neg = *s == '-';
    const char *p = s + neg;
    if (!*p || strlen(p) > 19)
        return false;
    uint64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (uint64_t)(*p - '0'); /* 19 digits fit in 64 bits */
    }
    if (v > (uint64_t)INT64_MAX + neg)
        return false;
    int64_t x = neg ? (int64_t)(0 - v) : (int64_t)v;
    if (x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

/* --- whole entries ---------------------------------------------------------- */

static int refuse(yn_rules_fault *f, const char *field, const char *why)
{
    if (f) {
        f->field = field;
        f->why = why;
    }
    return YN_EINVAL;
}

static bool sign_ok(enum yn_rules_sign s, int64_t v)
{
    if (v < -YN_RULES_MAX_FEN || v > YN_RULES_MAX_FEN)
        return false;
    switch (s) {
    case YN_SIGN_ZERO:
        return v == 0;
    case YN_SIGN_GE0:
        return v >= 0;
    case YN_SIGN_LE0:
        return v <= 0;
    case YN_SIGN_GT0:
        return v > 0;
    case YN_SIGN_LT0:
        return v < 0;
    }
    return false;
}

static const char *sign_why(enum yn_rules_sign s)
{
    static const char *const why[] = {
        [YN_SIGN_ZERO] = "must be 0 for this kind",
        [YN_SIGN_GE0] = "must be 0..100000000 for this kind",
        [YN_SIGN_LE0] = "must be -100000000..0 for this kind",
        [YN_SIGN_GT0] = "must be 1..100000000 for this kind",
        [YN_SIGN_LT0] = "must be -100000000..-1 for this kind",
    };
    return why[s];
}

static bool optional(const char *s, bool (*rule)(const char *))
{
    return !*s || rule(s);
}

static const char *const layer_field[YN_POLICY_MAX_LAYERS][2] = {
    {"layers[0].source", "layers[0].fen"},
    {"layers[1].source", "layers[1].fen"},
    {"layers[2].source", "layers[2].fen"},
    {"layers[3].source", "layers[3].fen"},
};

int yn_rules_record(const yn_ledger_record *r, yn_rules_fault *f)
{
    const yn_rules_kind *k = yn_rules_kind_of(r->kind);
    if (!k)
        return refuse(f, "kind", "not a record kind of this protocol");
    if (r->seq < 1)
        return refuse(f, "seq", "must be >= 1");
    if (!yn_rules_id(r->terminal))
        return refuse(f, "terminal", "must be 1..16 bytes of graphic ASCII");
    if (k->tap_id ? r->tap_id < 1 : r->tap_id != 0)
        return refuse(f, "tap_id", k->tap_id ? "must be >= 1 for this kind" : "must be 0");
    if (!yn_rules_card_no(r->card_no))
        return refuse(f, "card_no", "must be 1..19 bytes of graphic ASCII");
    if (!optional(r->category, yn_rules_name))
        return refuse(f, "category", "must be empty or 1..23 bytes of graphic ASCII");
    if (!optional(r->period, yn_rules_name))
        return refuse(f, "period", "must be empty or 1..23 bytes of graphic ASCII");
    if (!yn_time_ymd_valid(r->local_ymd))
        return refuse(f, "local_ymd", "must be a real day YYYYMMDD, 19000101..99991231");
    if (!sign_ok(k->price, r->price_fen))
        return refuse(f, "price_fen", sign_why(k->price));
    if (!sign_ok(k->subsidy, r->subsidy_fen))
        return refuse(f, "subsidy_fen", sign_why(k->subsidy));
    if (!sign_ok(k->wallet, r->wallet_fen))
        return refuse(f, "wallet_fen", sign_why(k->wallet));
    if (!sign_ok(k->cash, r->cash_fen))
        return refuse(f, "cash_fen", sign_why(k->cash));
    if (r->n_layers < k->min_layers || r->n_layers > k->max_layers)
        return refuse(f, "n_layers", "out of range for this kind");
    int64_t sum = 0; /* each |fen| <= 1e8: no overflow */
    for (int i = 0; i < r->n_layers; i++) {
        if (!yn_rules_name(r->layers[i].source))
            return refuse(f, layer_field[i][0], "must be 1..23 bytes of graphic ASCII");
        for (int j = 0; j < i; j++)
            if (strcmp(r->layers[j].source, r->layers[i].source) == 0)
                return refuse(f, layer_field[i][0], "the same source twice in one record");
        if (!sign_ok(k->layer, r->layers[i].fen))
            return refuse(f, layer_field[i][1], sign_why(k->layer));
        sum += r->layers[i].fen;
    }
    if (sum != r->subsidy_fen)
        return refuse(f, "subsidy_fen", "differs from the sum of the layers");
    if (r->subsidy_fen + r->wallet_fen + r->cash_fen != r->price_fen)
        return refuse(f, "price_fen", "differs from subsidy_fen + wallet_fen + cash_fen");
    if (r->weight_g < 0 || r->weight_g > YN_RULES_MAX_WEIGHT_G)
        return refuse(f, "weight_g", "must be 0..1000000");
    if (r->price_per_100g_fen < 0 || r->price_per_100g_fen > YN_RULES_MAX_FEN)
        return refuse(f, "price_per_100g_fen", "must be 0..100000000");
    if ((int)r->reason < 0 || r->reason >= YN_REASON_COUNT)
        return refuse(f, "reason", "not a reason code of this protocol");
    if (!optional(r->operator_id, yn_rules_id))
        return refuse(f, "operator", "must be empty or 1..16 bytes of graphic ASCII");
    if (r->utc_s < 0 || r->utc_s > YN_RULES_MAX_UTC_S)
        return refuse(f, "utc_s", "must be 0..253402300799");
    if (r->mono_ms < 0)
        return refuse(f, "mono_ms", "must be >= 0");
    if (r->boot_no < 0)
        return refuse(f, "boot_no", "must be >= 0");
    if (k->reverses == YN_RULES_REF_NONE ? r->reverses_seq != 0
                                         : r->reverses_seq < 1 || r->reverses_seq >= r->seq)
        return refuse(f, "reverses_seq",
                      k->reverses == YN_RULES_REF_NONE ? "must be 0 for this kind"
                                                       : "must name an earlier record (1..seq-1)");
    if (k->ref != YN_RULES_TEXT_EMPTY ? !yn_rules_ref(r->ref) : r->ref[0] != '\0')
        return refuse(f, "ref",
                      k->ref != YN_RULES_TEXT_EMPTY ? "must be 1..64 bytes of graphic ASCII"
                                                    : "must be empty for this kind");
    if (r->policy_version < 0)
        return refuse(f, "policy_version", "must be >= 0");
    if (r->wallet_after_fen < -YN_RULES_MAX_BALANCE_FEN ||
        r->wallet_after_fen > YN_RULES_MAX_BALANCE_FEN)
        return refuse(f, "wallet_after_fen", "must be within +-1000000000000");
    if (r->card_prev_seq < 0 || r->card_prev_seq >= r->seq)
        return refuse(f, "card_prev_seq", "must be 0 or an earlier record (1..seq-1)");
    return yn_rules_identified(r, f);
}

int yn_rules_identified(const yn_ledger_record *r, yn_rules_fault *f)
{
    switch (r->by) {
    case 0:
    case YN_LEDGER_BY_CARD:
        if (r->ident[0])
            return refuse(f, "ident", "must be empty for a holder identified by the card");
        if (r->supervisor_id[0])
            return refuse(f, "supervisor", "must be empty unless identified by manual entry");
        return YN_OK;
    case YN_LEDGER_BY_IDENT:
    case YN_LEDGER_BY_MANUAL:
        break;
    default:
        return refuse(f, "identified", "must be 1 (card), 2 (identity-only) or 3 (manual)");
    }
    if (r->kind != YN_LEDGER_MEAL)
        return refuse(f, "identified", "only a meal is identified otherwise than by the card");
    if (r->by == YN_LEDGER_BY_IDENT) {
        if (!yn_ident_valid(r->ident))
            return refuse(f, "ident", yn_ident_fault(r->ident));
        if (r->supervisor_id[0])
            return refuse(f, "supervisor", "must be empty unless identified by manual entry");
        return YN_OK;
    }
    if (r->ident[0])
        return refuse(f, "ident", "must be empty for a manual entry");
    if (!yn_rules_id(r->supervisor_id))
        return refuse(f, "supervisor", "a manual entry names its supervisor (1..16 bytes)");
    if (!yn_rules_id(r->operator_id) || strcmp(r->operator_id, r->supervisor_id) == 0)
        return refuse(f, "operator",
                      "a manual entry names its operator, another person than the supervisor");
    return YN_OK;
}

int yn_rules_undo(const yn_ledger_record *undo, const yn_ledger_record *meal, yn_rules_fault *f)
{
    if (meal->kind != YN_LEDGER_MEAL)
        return refuse(f, "reverses_seq", "names a record that is not a meal");
    if (strcmp(meal->card_no, undo->card_no) != 0)
        return refuse(f, "card_no", "differs from the card of the meal it undoes");
    if (undo->price_fen != -meal->price_fen || undo->subsidy_fen != -meal->subsidy_fen ||
        undo->wallet_fen != -meal->wallet_fen || undo->cash_fen != -meal->cash_fen ||
        undo->n_layers != meal->n_layers)
        return refuse(f, "price_fen", "shares are not those of the meal negated");
    for (int i = 0; i < undo->n_layers; i++) { /* sources are distinct: match by name */
        int j = 0;
        while (j < meal->n_layers && strcmp(undo->layers[i].source, meal->layers[j].source) != 0)
            j++;
        if (j == meal->n_layers || undo->layers[i].fen != -meal->layers[j].fen)
            return refuse(f, layer_field[i][1], "not the meal's layer of that source negated");
    }
    return YN_OK;
}

int yn_rules_roster_card(const yn_card_facts *c, yn_rules_fault *f)
{
    if (!yn_rules_card_no(c->card_no))
        return refuse(f, "card_no", "must be 1..19 bytes of graphic ASCII");
    if (c->birth_ymd != 0 && !yn_time_ymd_valid(c->birth_ymd))
        return refuse(f, "birth_ymd", "must be 0 (use the card's) or a real day YYYYMMDD");
    if (c->flags & ~YN_CARD_FLAGS_KNOWN)
        return refuse(f, "flags", "has bits no category flag defines (known: 0x7f)");
    if (!yn_rules_district(c->district))
        return refuse(f, "district", "must be a six-digit GB/T 2260 county code");
    if (!yn_rules_street(c->street, c->district))
        return refuse(f, "street", "must be district * 1000 + NNN (001..999)");
    if (!yn_time_ymd_valid(c->expiry_ymd))
        return refuse(f, "expiry_ymd", "must be a real day YYYYMMDD");
    if (c->ident[0] && !yn_ident_valid(c->ident))
        return refuse(f, "ident", yn_ident_fault(c->ident));
    if (c->ident[0] && c->birth_ymd == 0)
        return refuse(f, "birth_ymd", "must be a real day for a card bound by its identifier");
    return YN_OK;
}

int yn_rules_blacklist(const yn_ledger_blacklist_entry *e, yn_rules_fault *f)
{
    if (e->seq < 1)
        return refuse(f, "seq", "must be >= 1");
    if (e->ident[0]) {
        if (e->card_no[0])
            return refuse(f, "ident", "a change names a card number or an identifier, not both");
        if (!yn_ident_valid(e->ident))
            return refuse(f, "ident", yn_ident_fault(e->ident));
        return YN_OK;
    }
    if (!yn_rules_card_no(e->card_no))
        return refuse(f, "card_no", "must be 1..19 bytes of graphic ASCII");
    return YN_OK;
}

int yn_rules_alloc(const yn_ledger_alloc *a, yn_rules_fault *f)
{
    if (!yn_rules_ref(a->id))
        return refuse(f, "id", "must be 1..64 bytes of graphic ASCII");
    if (!yn_rules_card_no(a->card_no))
        return refuse(f, "card_no", "must be 1..19 bytes of graphic ASCII");
    if (!yn_rules_name(a->source))
        return refuse(f, "source", "must be 1..23 bytes of graphic ASCII");
    if (a->amount_fen < 1 || a->amount_fen > YN_RULES_MAX_FEN)
        return refuse(f, "amount_fen", "must be 1..100000000 fen");
    return YN_OK;
}
