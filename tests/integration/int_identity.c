/* int_identity.c — identity-only cards (firmware/core/CARD.md §8) through the real
 * path: the tap pipeline (firmware/app/tap.c) and a real ledger file, the "libnfc"
 * reader backend with [reader] type_b on, libnfc 1.8.0 on a pty, and the
 * emulated PN532 holding each kind of card. The policy (shenzhen-2025) also
 * accepts identity-only cards (offline cap ¥5); the roster binds some of
 * the cards' identifiers to seniors.
 *
 *   - bound cards another issuer made — a transit DESFire, a Classic with
 *     keys not ours, a blank DESFire, a type B card by its PUPI — are served
 *     under the policy with the roster's facts and the ledger's own counts
 *     (the second lunch at full price), marked identity-only on the journal;
 *     offline, the policy's cap;
 *   - an unbound one: not_enrolled, nothing journaled;
 *   - a random UID (desfire-random, 08 …): random_uid; a type B card with a
 *     new PUPI at each activation: random_uid by the second activation;
 *   - a genuine 颐年卡 is read the normal way (stamped); its clone, whose UID
 *     the roster binds to someone, is still not genuine;
 *   - a lost identifier (blacklist): refused;
 *   - the ledger verifies.
 *
 * About 2 s. Env: BUILD, TMPDIR. Exit 0 = pass. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardfix.h"
#include "check.h"
#include "config.h"
#include "ledger.h"
#include "log.h"
#include "nfc.h"
#include "pn532emu.h"
#include "policy.h"
#include "tap.h"
#include "testkeys.h"
#include "testutil.h"

#define LUNCH_UTC 1773115200LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */

enum {
    C_GENUINE,
    C_CLONE,
    C_TRANSIT,
    C_CLASSIC,
    C_BLANK,
    C_TYPE_B,
    C_UNBOUND,
    C_PHONE,
    C_RANDOM_B,
    C_OFFLINE,
};

static char dir[PATH_MAX];
static yn_pn532emu emu;
static yn_cardfix fix;
static yn_testkeys keys;
static yn_nfc nfc;
static yn_ledger *ledger;
static yn_policy *policy;
static yn_tap_env env;
static yn_ledger_when when = {.utc_s = LUNCH_UTC, .mono_ms = 5000000, .clock_trusted = true};
static int64_t next_tap = 1;

static void hex(const uint8_t *p, size_t n, FILE *f)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

/* The emulator's cards; the genuine 颐年卡 and its clone from the fixture. */
static void write_cards(const char *path)
{
    yn_sim_card c;
    yn_cardfix_card(&fix, &c, 0x7001, "4403040300", 19450312, YN_FLAG_DIBAO, 440304001);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int clone = 0; clone < 2; clone++) {
        fprintf(f, "%s|desfire|", clone ? "clone" : "genuine");
        hex(c.tag.uid, c.tag.uid_len, f);
        fputc('|', f);
        c.key[0] ^= clone ? 0x80 : 0; /* the clone: everything copied but the key */
        hex(c.key, 16, f);
        fputc('|', f);
        hex(c.record, c.record_len, f);
        fputs("|\n", f);
    }
    fputs("transit DESFire|desfire-foreign|04f00000000009|||\n"
          "Classic, keys not ours|classic1k|5c010203|00112233445566778899aabbccddeeff||\n"
          "blank DESFire|desfire-blank|04f0000000000a|||\n"
          "type B card|iso14443b|1a2b3c4d|||\n"
          "unbound transit DESFire|desfire-foreign|04f0000000000b|||\n"
          "phone|desfire-random|04000000000099|||\n"
          "random type B|iso14443b-random|5e6f7a8b|||\n"
          "offline type B|iso14443b|2a2b2c2d|||\n",
          f);
    fclose(f);
}

static void bind(const char *card_no, const char *ident, int64_t version)
{
    yn_card_facts c = {.birth_ymd = 19450312,
                       .flags = YN_FLAG_DIBAO,
                       .district = 440304,
                       .street = 440304001,
                       .expiry_ymd = 20301231};
    snprintf(c.card_no, sizeof c.card_no, "%s", card_no);
    snprintf(c.ident, sizeof c.ident, "%s", ident);
    CHECK_RC(yn_ledger_roster_put(ledger, &c, 1, version), YN_OK);
}

/* Card i taps: presented, listed through libnfc, the whole tap pipeline. */
static int tap(int i, yn_tap_outcome *o)
{
    yn_nfc_tag tag;
    yn_pn532emu_cmd(&emu, "present %d", i);
    int rc = YN_ENOCARD;
    for (int tries = 0; tries < 20 && rc != YN_OK; tries++)
        rc = yn_nfc_poll(&nfc, 100, &tag);
    memset(o, 0, sizeof *o);
    if (rc != YN_OK)
        return rc;
    rc = yn_tap_debit(&env, &tag, &(yn_meal){.price_fen = 1500}, next_tap++, NULL, "op1", &when, o);
    if (yn_nfc_release(&nfc) != YN_OK)
        fprintf(stderr, "int_identity: release failed (ignored)\n");
    yn_pn532emu_cmd(&emu, "remove");
    when.mono_ms += 1000;
    when.utc_s += 1;
    return rc;
}

static int64_t head(void)
{
    int64_t seq = 0;
    uint8_t h[YN_LEDGER_HASH_LEN];
    CHECK_RC(yn_ledger_head(ledger, &seq, h), YN_OK);
    return seq;
}

static void served(int card, const char *ident, const char *card_no)
{
    yn_tap_outcome o;
    CHECK_RC(tap(card, &o), YN_OK);
    CHECK(o.charged && o.by == YN_LEDGER_BY_IDENT, "card %d: charged %d by %d (%s)", card,
          o.charged, o.by, o.detail);
    CHECK(strcmp(o.ident, ident) == 0, "card %d: identifier %s, want %s", card, o.ident, ident);
    CHECK(strcmp(o.card.card_no, card_no) == 0, "card %d: card %s", card, o.card.card_no);
    CHECK(o.result.decision.subsidy_fen == 1500, "card %d: subsidy %lld", card,
          (long long)o.result.decision.subsidy_fen);
    CHECK(o.stamp == YN_TAP_STAMP_NONE, "card %d: a stamp on a card that is not ours", card);
    yn_ledger_record r;
    CHECK_RC(yn_ledger_record_get(ledger, o.result.seq, &r), YN_OK);
    CHECK(r.by == YN_LEDGER_BY_IDENT && strcmp(r.ident, ident) == 0, "record %lld: by %d %s",
          (long long)r.seq, r.by, r.ident);
}

static void refused(int card, enum yn_reason want)
{
    yn_tap_outcome o;
    int64_t before = head();
    int rc = tap(card, &o);
    CHECK(rc != YN_OK && !o.charged && o.reason == want, "card %d: %s, reason %s, want %s", card,
          yn_strerror(rc), yn_reason_code(o.reason), yn_reason_code(want));
    CHECK(head() == before, "card %d: a refusal journaled something", card);
}

int main(void)
{
    yn_log_init("int_identity", YN_LOG_WARN, false);
    yn_test_tmpdir(dir, sizeof dir);
    yn_cardfix_init(&fix);
    yn_testkeys_open(&keys, dir, fix.master, NULL, 0);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cards.txt", dir);
    write_cards(path);
    yn_pn532emu_start(&emu, dir, path);

    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s", emu.link) >=
        (int)sizeof cfg.reader.connstring) {
        fprintf(stderr, "int_identity: TMPDIR too long for a connstring\n");
        return 1;
    }
    cfg.reader.timeout_ms = 200;
    cfg.reader.type_b = true;
    CHECK_RC(yn_nfc_open(&nfc, &cfg.reader), YN_OK);
    policy = yn_test_policy_ident(20);
    CHECK(policy != NULL, "the identity policy does not load");
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    yn_ledger_opts lo = {
        .path = path, .terminal_id = "T1", .min_interval_s = 0, .boot_id = "identity"};
    CHECK_RC(yn_ledger_open(&lo, &ledger), YN_OK);
    if (!policy || !ledger)
        return 1;
    CHECK_RC(yn_ledger_meta_put(ledger, "last_sync_utc_s", "1773115100"), YN_OK); /* online */
    env = (yn_tap_env){.nfc = &nfc,
                       .ledger = ledger,
                       .policy = policy,
                       .keys = &keys.ks,
                       .ring = &fix.ring,
                       .canteen = {.district = 440304, .street = 440304001},
                       .canteen_code = yn_tap_canteen_code("C-FT-001"),
                       .terminal_code = yn_card_terminal_code("T1")};
    bind("4403040200", "A:04F00000000009", 1);
    bind("4403040201", "A:5C010203", 2);
    bind("4403040202", "A:04F0000000000A", 3);
    bind("4403040203", "B:1A2B3C4D", 4);
    bind("4403040205", "B:2A2B2C2D", 5);

    /* bound cards another issuer made: served, once a lunch */
    served(C_TRANSIT, "A:04F00000000009", "4403040200");
    served(C_CLASSIC, "A:5C010203", "4403040201");
    served(C_BLANK, "A:04F0000000000A", "4403040202");
    served(C_TYPE_B, "B:1A2B3C4D", "4403040203");
    yn_tap_outcome o;
    CHECK_RC(tap(C_TRANSIT, &o), YN_OK);
    CHECK(o.reason == YN_REASON_PERIOD_USED && o.result.decision.subsidy_fen == 0,
          "second lunch: %s subsidy %lld", yn_reason_code(o.reason),
          (long long)o.result.decision.subsidy_fen);
    /* unbound, random: kind refusals */
    refused(C_UNBOUND, YN_REASON_NOT_ENROLLED);
    refused(C_PHONE, YN_REASON_RANDOM_UID);
    refused(C_RANDOM_B, YN_REASON_RANDOM_UID);
    /* a genuine 颐年卡 the normal way; its clone, its UID bound to someone: not genuine */
    CHECK_RC(tap(C_GENUINE, &o), YN_OK);
    CHECK(o.by == YN_LEDGER_BY_CARD && o.stamp == YN_TAP_STAMP_WRITTEN,
          "the 颐年卡: by %d, stamp %d", o.by, o.stamp);
    bind("4403040204", "A:04A10000007001", 6);
    refused(C_CLONE, YN_REASON_NOT_GENUINE);
    /* a lost identifier */
    yn_ledger_blacklist_entry lost = {.seq = 1, .lost = true};
    snprintf(lost.ident, sizeof lost.ident, "A:5C010203");
    CHECK_RC(yn_ledger_blacklist_apply_many(ledger, &lost, 1), YN_OK);
    refused(C_CLASSIC, YN_REASON_LOST);
    /* offline (no sync for an hour): the policy's cap for identity-only cards */
    when.utc_s += 1800;
    when.mono_ms += 1800 * 1000;
    CHECK_RC(tap(C_OFFLINE, &o), YN_OK);
    CHECK(o.result.decision.subsidy_fen == 500 && o.result.decision.cash_fen == 1000,
          "offline: subsidy %lld cash %lld", (long long)o.result.decision.subsidy_fen,
          (long long)o.result.decision.cash_fen);

    yn_ledger_verify_report rep;
    CHECK_RC(yn_ledger_verify(ledger, &rep), YN_OK);
    CHECK(head() == 7, "journal holds %lld records, want 7", (long long)head());

    yn_ledger_close(ledger);
    yn_nfc_close(&nfc);
    yn_pn532emu_stop(&emu);
    yn_policy_free(policy);
    yn_testkeys_close(&keys);
    printf("int_identity: %d checks, %d failures\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
