/* rules.h — the one set of rules every journal record and every district entry
 * obeys (sync/PROTOCOL.md §3.5 and §5.3), shared by the terminal and the
 * district server: the ledger checks a record with them before it journals
 * it, the batch decoder after it decodes one, the district server at the door
 * of every upload and of every admin command, and again before it publishes
 * an entry to terminals, whose update parser uses the same functions. So
 * nothing the district takes in is refused by a terminal, and nothing a
 * terminal journals is refused by the district.
 *
 * Pure code: no clock, no file, no I/O. A refusal names the field (the
 * protocol's name for it) and says why in one static sentence.
 *
 * Record kinds are a table (rules.c, `kinds[]`): adding a kind is one line
 * there with its signs, layers, tap id, reference and ref rules. */
#ifndef YN_RULES_H
#define YN_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "status.h"

#define YN_RULES_MAX_FEN         100000000               /* |any amount in a record|, ¥1,000,000 */
#define YN_RULES_MAX_BALANCE_FEN 1000000000000           /* |wallet_after_fen|, ¥10,000,000,000 */
#define YN_RULES_MAX_WEIGHT_G    1000000                 /* weight of a weighed meal */
#define YN_RULES_MAX_UTC_S       253402300799            /* 9999-12-31T23:59:59Z */
#define YN_RULES_CARD_NO_MAX     19                      /* card number bytes */
#define YN_RULES_ID_MAX          16                      /* terminal and operator id bytes */
#define YN_RULES_NAME_MAX        (YN_NAME_MAX - 1)       /* category, period, source bytes */
#define YN_RULES_REF_MAX         (YN_LEDGER_REF_MAX - 1) /* allocation id bytes */

/* Why a value was refused: the field's protocol name and one sentence. */
typedef struct yn_rules_fault {
    const char *field; /* e.g. "price_fen", "layers[1].source", "card_no" */
    const char *why;   /* e.g. "a meal's amounts are >= 0" */
} yn_rules_fault;

/* How a kind may reference an earlier record through reverses_seq. */
enum yn_rules_ref {
    YN_RULES_REF_NONE,    /* reverses_seq = 0 */
    YN_RULES_REF_UNDO,    /* a meal of the same card, undone once: every share negated */
    YN_RULES_REF_MENTION, /* names a meal of the same card (a notice about it) */
};

/* What a kind's ref holds. */
enum yn_rules_text {
    YN_RULES_TEXT_EMPTY,      /* "" */
    YN_RULES_TEXT_ALLOCATION, /* the id of an allocation the district published */
    YN_RULES_TEXT_NOTE,       /* a code saying why (1..64 bytes of graphic ASCII) */
};

/* Sign of an amount field for a kind. */
enum yn_rules_sign { YN_SIGN_ZERO, YN_SIGN_GE0, YN_SIGN_LE0, YN_SIGN_GT0, YN_SIGN_LT0 };

/* What a record kind allows (one row of the table). */
typedef struct yn_rules_kind {
    int kind;         /* enum yn_ledger_kind value (stored and hashed) */
    const char *name; /* "meal", "reversal", … for messages and reports */
    enum yn_rules_sign price, subsidy, wallet, cash, layer; /* sign of each amount */
    int min_layers, max_layers;                             /* n_layers range */
    bool tap_id;                /* a tap id >= 1 (meals, top-ups) or 0 */
    enum yn_rules_ref reverses; /* what reverses_seq may name */
    enum yn_rules_text ref;     /* what ref holds */
} yn_rules_kind;

/* The row of a kind, NULL for a kind no rule knows. */
const yn_rules_kind *yn_rules_kind_of(int kind);

/* --- fields ------------------------------------------------------------- */

/* 1..19 bytes of graphic ASCII (0x21..0x7E): what a card holds and every
 * terminal accepts. */
bool yn_rules_card_no(const char *s);
/* Terminal and operator ids: 1..16 bytes of graphic ASCII. */
bool yn_rules_id(const char *s);
/* Category, period and funding-source names: 1..23 bytes of graphic ASCII. */
bool yn_rules_name(const char *s);
/* Allocation ids and other references: 1..64 bytes of graphic ASCII. */
bool yn_rules_ref(const char *s);
/* A six-digit GB/T 2260 county-level code with a valid province prefix. */
bool yn_rules_district(uint32_t district);
/* district * 1000 + NNN, NNN 001..999. */
bool yn_rules_street(uint32_t street, uint32_t district);
/* Valid UTF-8 (RFC 3629: shortest form, no surrogates, <= U+10FFFF) with no
 * C0/C1 control character and no DEL. */
bool yn_rules_utf8(const void *s, size_t len);
/* A strict decimal integer in lo..hi: optional '-', digits only, no
 * leading '+', space or trailing byte ("12abc" and "" are refused). */
bool yn_rules_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* --- whole entries ------------------------------------------------------ */

/* Every rule of one journal record on its own (PROTOCOL.md §3.5): kind,
 * ranges, signs, shares adding up, layer sources distinct, references below
 * seq. What needs other records (a reversal's meal, an allocation's district
 * entry) is the caller's: the ledger by construction, the district at ingest.
 * YN_OK, or YN_EINVAL with *f filled (f may be NULL). */
int yn_rules_record(const yn_ledger_record *r, yn_rules_fault *f) YN_MUST_CHECK;
/* How the holder of a record was identified (LEDGER.md, "How the holder
 * was identified"; part of yn_rules_record): by 0 or 1 (the card) with no
 * identifier and no supervisor; only a meal otherwise — 2 (identity-only)
 * with a valid identifier (firmware/core/ident.h) and no supervisor, 3 (manual
 * entry) with a supervisor id and an operator who differ, no identifier. */
int yn_rules_identified(const yn_ledger_record *r, yn_rules_fault *f) YN_MUST_CHECK;
/* An undo (YN_RULES_REF_UNDO) of meal: same card, the meal's kind is meal,
 * every share negated, and the same layer sources each with its share
 * negated (in any order: sources are distinct). */
int yn_rules_undo(const yn_ledger_record *undo, const yn_ledger_record *meal,
                  yn_rules_fault *f) YN_MUST_CHECK;

/* A roster card as the district sends it (PROTOCOL.md §5.3): the card
 * format's rules for card_no, birth (0 = use the card's), flags, district,
 * street and expiry; ident "" or an identifier (firmware/core/ident.h), and then
 * a real birth date (nothing is read from such a card). */
int yn_rules_roster_card(const yn_card_facts *c, yn_rules_fault *f) YN_MUST_CHECK;
/* A blacklist change: seq >= 1, a card number or an identifier (one of the
 * two: a lost identity-only card is blacklisted by its identifier). */
int yn_rules_blacklist(const yn_ledger_blacklist_entry *e, yn_rules_fault *f) YN_MUST_CHECK;
/* An allocation: id, card number, source name, amount 1..YN_RULES_MAX_FEN. */
int yn_rules_alloc(const yn_ledger_alloc *a, yn_rules_fault *f) YN_MUST_CHECK;

#endif
