/* int_keypair.c — a terminal whose own key is a key pair (sync/PROTOCOL.md
 * §10) against a real yinian-district process over TLS, on the run's
 * storage backend (SQLite or PostgreSQL) and keystore (YN_KEYS_BACKEND: key
 * files or a SoftHSM2 token). The pair is made in the keystore before
 * enrolment (as yinian-flash provision does); enrolment sends its public
 * half; signed batches, signed update requests and district-signed
 * acknowledgements then work, and the pair survives reopening the keystore.
 * Refused with 401, storing nothing: a batch signed by another pair, a
 * MACed batch, an X-YN-MAC request and one with neither header from the
 * key-pair terminal, and an enrolment whose public key comes without its
 * signature. A terminal
 * with a shared HMAC key syncs to the same server meanwhile. About 3 s. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "district.h"
#include "hex.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"
#include "sig.h"
#include "testkeys.h"

#define NOW_UTC 1740990000

static yn_test_district D;
static const uint8_t mac_key[32] = {9, 9, 9}; /* a shared key no terminal has */

/* n top-ups by terminal's ledger; *made counts them. */
static void add_records(yn_ledger *l, int n, int64_t *made)
{
    for (int i = 0; i < n; i++) {
        yn_ledger_when w = {.utc_s = 1740970800 + *made * 11, .mono_ms = *made * 11000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "4403040010%04d", (int)(*made % 300));
        int rc = yn_ledger_topup(l, 1000 + *made, card, 500, "staff01", &w, &r);
        CHECK(rc == YN_OK, "topup: %s", yn_strerror(rc));
        (*made)++;
    }
}

static int sync_until_done(yn_sync *s, yn_ledger *l)
{
    for (int round = 0; round < 5; round++) {
        yn_sync_stats st;
        int rc = yn_sync_round(s, l, NOW_UTC, &st);
        int64_t count, age;
        if (rc == YN_OK && yn_ledger_unsent(l, NOW_UTC, &count, &age) == YN_OK && count == 0)
            return YN_OK;
        usleep(100000);
    }
    return YN_ETIMEDOUT;
}

static long long held(const char *terminal)
{
    long long t[YN_TOT_N];
    yn_test_district_totals(&D, terminal, t);
    return t[YN_TOT_RECORDS];
}

static yn_ledger *ledger_of(const char *terminal)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.db", D.dir, terminal);
    yn_ledger_opts lo = {.path = path, .terminal_id = terminal};
    yn_ledger *l = NULL;
    CHECK(yn_ledger_open(&lo, &l) == YN_OK, "ledger of %s", terminal);
    return l;
}

static yn_sync *sync_of(const yn_sync_opts *base, const char *terminal, yn_keystore *ks)
{
    yn_sync_opts o = *base;
    o.terminal_id = terminal;
    o.keys = ks;
    yn_sync *s = NULL;
    CHECK(yn_sync_new(&o, &s) == YN_OK, "sync for %s", terminal);
    return s;
}

/* The next unsent batch of l as keys frame it, posted raw: the reply. */
static yn_test_reply post_batch(yn_ledger *l, yn_keystore *keys)
{
    yn_ledger_batch b;
    uint8_t *frame = NULL;
    size_t len = 0;
    CHECK(yn_ledger_batch_next(l, 40, NOW_UTC, &b) == YN_OK, "a batch to send");
    CHECK(yn_sync_batch_frame(l, &b, keys, &frame, &len) == YN_OK, "frame built");
    yn_test_reply r = yn_test_district_post(&D, "POST", "/v1/batches", frame, len, NULL, 0);
    free(frame);
    return r;
}

int main(void)
{
    yn_log_init("int_keypair", YN_LOG_WARN, false);
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    char dir_path[512], token[64] = "", token_hmac[64] = "", token_unsigned[64] = "";
    snprintf(dir_path, sizeof dir_path, "%s/keypair", tmp && *tmp ? tmp : "/tmp");
    if (yn_test_district_init(&D, build ? build : "build/host", dir_path) != 0 ||
        yn_test_district_token(&D, "T-KP", token, sizeof token) != 0 ||
        yn_test_district_token(&D, "T-HM", token_hmac, sizeof token_hmac) != 0 ||
        yn_test_district_token(&D, "T-KQ", token_unsigned, sizeof token_unsigned) != 0)
        return 1;
    pid_t srv = yn_test_district_start(&D, D.dkey, "none");

    /* the pair, made in the keystore before enrolment (yinian-flash provision) */
    char kdir[600], hdir[600], odir[600];
    snprintf(kdir, sizeof kdir, "%s/kp", D.dir);
    snprintf(hdir, sizeof hdir, "%s/hm", D.dir);
    snprintf(odir, sizeof odir, "%s/other", D.dir);
    mkdir(kdir, 0700);
    mkdir(hdir, 0700);
    mkdir(odir, 0700);
    yn_testkeys kp;
    uint8_t pub[YN_KEYSTORE_PUB_LEN], again[YN_KEYSTORE_PUB_LEN];
    yn_testkeys_open_pair(&kp, yn_testkeys_backend(), kdir, NULL, pub);
    char term[YN_LEDGER_ID_MAX], fp[YN_SIG_FINGERPRINT_LEN + 1];
    int rc = yn_sync_enrol(D.url, D.ca, token, &kp.ks, term, sizeof term);
    CHECK(rc == YN_OK && strcmp(term, "T-KP") == 0, "enrol with the key pair: %s", yn_strerror(rc));
    CHECK(yn_keystore_public_key(&kp.ks, again) == YN_OK && memcmp(again, pub, sizeof pub) == 0,
          "enrolment kept the pair made before it");
    yn_sig_fingerprint(pub, fp);
    CHECK(yn_test_sh("grep -q 'T-KP enrolled at .* with a key pair, public key %s' '%s/server.log'",
                     fp, D.dir) == 0,
          "the district enrolled public key %s", fp);
    /* a public key without the signature that proves its private half: 401,
     * and the token stays unspent */
    char body[512], pub_hex[2 * YN_KEYSTORE_PUB_LEN + 1];
    yn_hex_encode(pub, sizeof pub, pub_hex);
    snprintf(body, sizeof body, "{\"token\":\"%s\",\"pubkey\":\"%s\"}", token_unsigned, pub_hex);
    yn_test_reply r = yn_test_district_post(&D, "POST", "/v1/enrol", body, strlen(body), NULL, 0);
    CHECK(r.status == 401, "enrolment with a public key and no X-YN-SIG: %ld", r.status);
    yn_test_reply_free(&r);
    r = yn_test_district_post(&D, "POST", "/v1/enrol", body, strlen(body), mac_key, sizeof mac_key);
    CHECK(r.status == 401, "enrolment with a public key and X-YN-MAC: %ld", r.status);
    yn_test_reply_free(&r);
    /* the HMAC terminal, as before */
    yn_testkeys hm;
    yn_testkeys_open_as(&hm, "file", hdir, NULL, NULL, 0);
    rc = yn_sync_enrol(D.url, D.ca, token_hmac, &hm.ks, term, sizeof term);
    CHECK(rc == YN_OK && strcmp(term, "T-HM") == 0, "enrol with a shared key: %s", yn_strerror(rc));

    uint8_t dpub[64];
    size_t dpl;
    CHECK(yn_key_file_load(D.dpub, false, "district key", dpub, sizeof dpub, &dpl) == YN_OK &&
              dpl == 32,
          "district public key");
    yn_sync_opts so = {.url = D.url, .ca_file = D.ca, .max_batch_records = 40, .timeout_ms = 3000};
    memcpy(so.district_pub, dpub, 32);

    /* signed batches, district-signed acknowledgements, signed update requests */
    yn_ledger *l = ledger_of("T-KP"), *lh = ledger_of("T-HM");
    int64_t made = 0, made_h = 0;
    yn_sync *s = sync_of(&so, "T-KP", &kp.ks), *sh = sync_of(&so, "T-HM", &hm.ks);
    add_records(l, 100, &made);
    add_records(lh, 30, &made_h);
    CHECK(sync_until_done(s, l) == YN_OK, "the key-pair terminal syncs");
    CHECK(sync_until_done(sh, lh) == YN_OK, "the shared-key terminal syncs alongside");
    CHECK(held("T-KP") == made && held("T-HM") == made_h, "held %lld/%lld and %lld/%lld",
          held("T-KP"), (long long)made, held("T-HM"), (long long)made_h);
    bool more = false;
    CHECK(yn_sync_update_one(s, l, &more) == YN_OK, "an update request signed by the pair");

    /* refused: another pair's signature, a MAC from a key-pair terminal */
    add_records(l, 5, &made);
    yn_testkeys other;
    yn_testkeys_open_pair(&other, "file", odir, NULL, NULL);
    r = post_batch(l, &other.ks);
    CHECK(r.status == 401 && r.body && strstr(r.body, "bad_mac"), "a forged signature: %ld %s",
          r.status, r.body ? r.body : "");
    yn_test_reply_free(&r);
    yn_testkeys mac;
    snprintf(odir + strlen(odir), sizeof odir - strlen(odir), "-mac");
    mkdir(odir, 0700);
    yn_testkeys_open_as(&mac, "file", odir, NULL, mac_key, sizeof mac_key);
    r = post_batch(l, &mac.ks);
    CHECK(r.status == 401 && r.body && strstr(r.body, "enrolled with a key pair"),
          "a MACed frame from the key-pair terminal: %ld %s", r.status, r.body ? r.body : "");
    yn_test_reply_free(&r);
    static const char req[] = "{\"terminal\":\"T-KP\",\"after_seq\":0}";
    r = yn_test_district_post(&D, "POST", "/v1/records", req, strlen(req), mac_key, sizeof mac_key);
    CHECK(r.status == 401, "an X-YN-MAC request from the key-pair terminal: %ld", r.status);
    yn_test_reply_free(&r);
    r = yn_test_district_post(&D, "POST", "/v1/records", req, strlen(req), NULL, 0);
    CHECK(r.status == 401, "a request with neither header: %ld", r.status);
    yn_test_reply_free(&r);
    CHECK(held("T-KP") == made - 5, "nothing of the refused batches stored");

    /* the pair outlives the keystore: reopened, it signs on */
    yn_sync_free(s);
    yn_testkeys_close(&kp);
    yn_testkeys_open_pair(&kp, yn_testkeys_backend(), kdir, NULL, again);
    CHECK(memcmp(again, pub, sizeof pub) == 0, "the same pair after reopening the keystore");
    s = sync_of(&so, "T-KP", &kp.ks);
    CHECK(sync_until_done(s, l) == YN_OK && held("T-KP") == made, "sync after reopening");

    yn_test_district_stop(srv, SIGTERM);
    yn_sync_free(s);
    yn_sync_free(sh);
    yn_testkeys_close(&kp);
    yn_testkeys_close(&hm);
    yn_testkeys_close(&other);
    yn_testkeys_close(&mac);
    yn_ledger_close(l);
    yn_ledger_close(lh);
    if (yn_failures)
        fprintf(stderr, "int_keypair: %d failures\n", yn_failures);
    else
        printf("int_keypair: ok (%lld records signed, keys: %s)\n", (long long)made,
               yn_testkeys_backend());
    return yn_failures ? 1 : 0;
}
