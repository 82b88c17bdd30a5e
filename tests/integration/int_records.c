/* int_records.c — POST /v1/records against a real yinian-district over TLS on
 * loopback: a terminal whose ledger lost records gets back the frames it
 * uploaded, byte for byte (so it can check its own MAC and hash chain), in
 * order, whole frames only, within max_bytes but at least one, with
 * X-YN-Held and X-YN-More; nothing when it has everything; 400, 401, 403 for a
 * malformed, unsigned or unknown request (PROTOCOL.md §6). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"

static yn_test_district D;

typedef yn_test_reply reply;

static reply post(const char *method, const char *path, const char *body, const uint8_t *key,
                  size_t key_len)
{
    return yn_test_district_post(&D, method, path, body, strlen(body), key, key_len);
}

static reply restore(long long after, long long max_bytes, const uint8_t *key, size_t key_len)
{
    char body[160];
    if (max_bytes)
        snprintf(body, sizeof body,
                 "{\"terminal\":\"T-REC\",\"after_seq\":%lld,\"max_bytes\":%lld}", after,
                 max_bytes);
    else
        snprintf(body, sizeof body, "{\"terminal\":\"T-REC\",\"after_seq\":%lld}", after);
    return post("POST", "/v1/records", body, key, key_len);
}

enum { N_RECORDS = 130, PER_BATCH = 40, N_FRAMES = 4 };
static uint8_t *frame[N_FRAMES];
static size_t frame_len[N_FRAMES];

/* The reply's body is exactly frames first..last (0-based) concatenated. */
static bool holds_frames(const reply *r, int first, int last)
{
    size_t off = 0;
    for (int i = first; i <= last; i++) {
        if (off + frame_len[i] > r->len || memcmp(r->body + off, frame[i], frame_len[i]) != 0)
            return false;
        off += frame_len[i];
    }
    return off == r->len;
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_records", YN_LOG_ERR, false);
    char dir_path[512], token[64] = "", tkey[900], ledger_path[900];
    snprintf(dir_path, sizeof dir_path, "%s/records", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0 ||
        yn_test_district_token(&D, "T-REC", token, sizeof token) != 0)
        return 1;
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    snprintf(tkey, sizeof tkey, "%s/terminal.key", D.dir);
    static yn_test_key k;
    uint8_t pub[64];
    size_t pub_len = 0;
    int rc = yn_test_district_enrol(&D, token, tkey, &k);
    const uint8_t *key = k.key; /* the district's side needs the bytes */
    size_t key_len = k.key_len;
    CHECK(rc == YN_OK, "enrol: %s", yn_strerror(rc));
    CHECK(yn_key_file_load(D.dpub, false, "district key", pub, sizeof pub, &pub_len) == YN_OK,
          "district key");

    /* 130 top-ups uploaded in batches of 40: frames 1..40, 41..80, 81..120, 121..130 */
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger.db", D.dir);
    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = "T-REC"};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return 1;
    for (int i = 0; i < N_RECORDS; i++) {
        yn_ledger_when w = {.utc_s = 1740970800 + i * 7, .mono_ms = (int64_t)i * 7000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "44030400%04d", i % 17);
        CHECK_RC(yn_ledger_topup(l, 1 + i, card, 100 + i, "op1", &w, &r), YN_OK);
    }
    yn_sync_opts so = {.url = D.url,
                       .ca_file = D.ca,
                       .terminal_id = "T-REC",
                       .keys = &k.ks,
                       .max_batch_records = PER_BATCH,
                       .timeout_ms = 10000};
    memcpy(so.district_pub, pub, 32);
    yn_sync *s;
    yn_sync_stats st;
    CHECK_RC(yn_sync_new(&so, &s), YN_OK);
    CHECK_RC(yn_sync_round(s, l, 1741000000, &st), YN_OK);
    CHECK(st.records_acked == N_RECORDS, "%lld records acknowledged", (long long)st.records_acked);
    for (int i = 0; i < N_FRAMES; i++) {
        int64_t first = 1 + (int64_t)i * PER_BATCH;
        int64_t last = first + PER_BATCH - 1 < N_RECORDS ? first + PER_BATCH - 1 : N_RECORDS;
        yn_ledger_batch b = {.id = i + 1, .first_seq = first, .last_seq = last};
        CHECK_RC(yn_sync_batch_frame(l, &b, &k.ks, &frame[i], &frame_len[i]), YN_OK);
    }
    /* a batch sent again (its acknowledgement lost) adds nothing and no frame */
    yn_ledger_close(l);

    /* everything after 0: the four frames byte for byte, each verifying */
    reply r = restore(0, 0, key, key_len);
    CHECK(r.status == 200, "restore after 0: HTTP %ld", r.status);
    CHECK(r.held == N_RECORDS && r.more == 0, "held %lld more %d", r.held, r.more);
    CHECK(holds_frames(&r, 0, N_FRAMES - 1), "the 4 frames as uploaded (%zu bytes)", r.len);
    size_t off = 0;
    for (int i = 0; i < N_FRAMES && off < r.len; i++) {
        yn_batch_header h;
        yn_ledger_record *recs = NULL;
        CHECK(yn_batch_decode((const uint8_t *)r.body + off, frame_len[i], key, key_len, &h, &recs,
                              NULL) == YN_OK,
              "frame %d verifies under the terminal's key", i);
        off += frame_len[i];
        free(recs);
    }
    free(r.body);

    /* max_bytes: whole frames only, at least one */
    r = restore(0, (long long)(frame_len[0] + frame_len[1]), key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 0, 1) && r.more == 1,
          "two frames fit: HTTP %ld, %zu bytes, more %d", r.status, r.len, r.more);
    free(r.body);
    r = restore(0, (long long)(frame_len[0] + frame_len[1] - 1), key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 0, 0) && r.more == 1,
          "one byte less: one frame: %zu bytes, more %d", r.len, r.more);
    free(r.body);
    r = restore(0, 1, key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 0, 0) && r.more == 1,
          "max_bytes 1: still the first frame: %zu bytes, more %d", r.len, r.more);
    free(r.body);

    /* after a seq inside a frame: that frame (it holds the next record) onwards */
    r = restore(45, 0, key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 1, 3) && r.more == 0, "after 45: frames 2..4");
    free(r.body);
    r = restore(80, 0, key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 2, 3) && r.held == N_RECORDS,
          "after 80: frames 3..4");
    free(r.body);
    r = restore(129, 0, key, key_len);
    CHECK(r.status == 200 && holds_frames(&r, 3, 3), "after 129: the last frame");
    free(r.body);

    /* nothing above: an empty 200 */
    r = restore(N_RECORDS, 0, key, key_len);
    CHECK(r.status == 200 && r.len == 0 && r.held == N_RECORDS && r.more == 0,
          "after held: HTTP %ld, %zu bytes, held %lld", r.status, r.len, r.held);
    free(r.body);
    r = restore(1000000, 0, key, key_len);
    CHECK(r.status == 200 && r.len == 0, "after beyond held: empty");
    free(r.body);

    /* refusals */
    uint8_t wrong[32];
    memset(wrong, 0x33, sizeof wrong);
    r = restore(0, 0, wrong, sizeof wrong);
    CHECK(r.status == 401 && r.held == -1, "bad MAC: HTTP %ld", r.status);
    free(r.body);
    r = restore(0, 0, NULL, 0);
    CHECK(r.status == 401, "no MAC: HTTP %ld", r.status);
    free(r.body);
    r = post("POST", "/v1/records", "{\"terminal\":\"T-NOBODY\",\"after_seq\":0}", key, key_len);
    CHECK(r.status == 403, "unknown terminal: HTTP %ld", r.status);
    free(r.body);
    r = post("POST", "/v1/records", "{\"terminal\":\"T-REC\",\"after_seq\":-1}", key, key_len);
    CHECK(r.status == 400, "negative after_seq: HTTP %ld", r.status);
    free(r.body);
    r = post("POST", "/v1/records", "{\"terminal\":\"T-REC\",\"after_seq\":0,\"max_bytes\":0}", key,
             key_len);
    CHECK(r.status == 400, "max_bytes 0: HTTP %ld", r.status);
    free(r.body);
    r = post("POST", "/v1/records", "{\"terminal\":\"T-REC\",\"after\":0}", key, key_len);
    CHECK(r.status == 400, "unknown key: HTTP %ld", r.status);
    free(r.body);
    r = post("GET", "/v1/records", "", NULL, 0);
    CHECK(r.status == 405, "GET: HTTP %ld", r.status);
    free(r.body);

    for (int i = 0; i < N_FRAMES; i++)
        free(frame[i]);
    yn_sync_free(s);
    yn_test_district_stop(srv, SIGTERM);
    yn_test_key_close(&k);
    printf("int_records: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
