/* client.h — the terminal's side of sync (sync/PROTOCOL.md): upload batches
 * of unsent records over HTTPS (libcurl, server certificate verified against
 * the CA file, optional client certificate), mark a batch sent only on a valid
 * acknowledgement, fetch signed update documents and apply them to the
 * ledger. Runs on its own thread with its own ledger handle (SQLite WAL), so
 * the counter never waits for the network. */
#ifndef YN_SYNC_CLIENT_H
#define YN_SYNC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "keystore.h"
#include "ledger.h"
#include "status.h"
#include "update.h"

typedef struct yn_sync_opts {
    const char *url;         /* https://host[:port], no trailing slash; http:// is refused */
    const char *ca_file;     /* CA that signed the server certificate (required) */
    const char *client_cert; /* optional PEM client certificate (with client_key) */
    const char *client_key;
    const char *terminal_id;
    yn_keystore *keys; /* MACs or signs as the terminal (its key may be inside a token) */
    uint8_t district_pub[YN_UPDATE_PUBKEY_LEN];
    int64_t max_batch_records;  /* 0 = 5000 */
    int32_t timeout_ms;         /* per request; 0 = 30000 */
    int64_t clock_max_step_ms;  /* passed to on_server_time; see yn_clock_correct */
    int max_requests_per_round; /* bound on requests in one round; 0 = 1000 */
    /* Called with the server's time from a verified update (the caller owns
     * the clock and decides within its bounds). May be NULL. */
    void (*on_server_time)(void *arg, int64_t server_utc_ms);
    /* Called (from the sync thread) when the district refused records
     * first..last because it holds other records under those seqs (409):
     * uploads stop; the caller stops sales. May be NULL. */
    void (*on_conflict)(void *arg, int64_t first_seq, int64_t last_seq);
    /* The time to stamp sync marks (last sync, acknowledgements, allocations)
     * with, from the caller's clock: its estimate while the wall clock is
     * known to be wrong, the same time the counter's records get — so the
     * offline cap compares like with like (hal/clock/clock.h). Called from the sync
     * thread: must be thread-safe. NULL: the system's wall clock. */
    int64_t (*now_utc_s)(void *arg);
    void *arg; /* passed to the three callbacks */
} yn_sync_opts;

typedef struct yn_sync yn_sync;

/* What one round did. */
typedef struct yn_sync_stats {
    int64_t batches_acked;
    int64_t records_acked;
    int64_t updates_applied;
    int64_t updates_refused; /* verified-bad documents (logged with the reason) */
    int64_t requests;
    int64_t records_restored; /* lost by the ledger, back from the district */
    int last_error;           /* enum yn_status of the last failure in the round, YN_OK if none */
    bool conflict;            /* the district refused records as conflicting: nothing more sent */
    int64_t conflict_first, conflict_last; /* those records */
} yn_sync_stats;

int yn_sync_new(const yn_sync_opts *opts, yn_sync **out) YN_MUST_CHECK;
void yn_sync_free(yn_sync *s);

/* Check the ledger (its tail and the high-water mark: nothing is sent from
 * a damaged one); restore the records it lost from the district
 * (POST /v1/records, LEDGER.md "Restore"); upload every unsent batch, the
 * high-water mark raised before each; then fetch and apply updates. Stops at
 * the first failure (returned; the next round retries). Re-sending is
 * harmless. A batch the district refuses as conflicting (409) stops every
 * later round of this handle (YN_EREFUSED, stats->conflict). */
int yn_sync_round(yn_sync *s, yn_ledger *l, int64_t now_utc_s, yn_sync_stats *stats) YN_MUST_CHECK;
/* One batch: YN_ENOTFOUND when nothing is unsent; YN_EREFUSED when the
 * district refused it as conflicting (409) or did so before. */
int yn_sync_upload_one(yn_sync *s, yn_ledger *l, int64_t now_utc_s, int64_t *records) YN_MUST_CHECK;
/* The frame of ledger batch b (PROTOCOL.md §3) MACed or signed by the
 * keystore with the terminal key (§10): exactly what yn_sync_upload_one
 * sends, also written to a USB stick by `yinian-diag export`. *frame is
 * malloc'd (free() it). */
int yn_sync_batch_frame(yn_ledger *l, const yn_ledger_batch *b, yn_keystore *keys, uint8_t **frame,
                        size_t *len) YN_MUST_CHECK;
/* Check an acknowledgement document (PROTOCOL.md §4) against the batch it
 * answers: h->terminal, batch_id, first_seq, last_seq and head_hash must all
 * match, and it must be of the terminal's kind and verify: MACed under the
 * shared key (v 1), or for a key-pair terminal signed by the district key
 * district_pub (v 2, §10). YN_OK, YN_EAUTH (MAC or signature), YN_EPROTO
 * (malformed, of the other kind, or names another batch or range), or the
 * keystore's failure. No log: the caller says why. */
int yn_sync_ack_verify(const char *ack, size_t len, yn_keystore *keys,
                       const uint8_t district_pub[YN_UPDATE_PUBKEY_LEN],
                       const yn_batch_header *h) YN_MUST_CHECK;
/* Verify and decode a frame as this terminal's own (restore, and a USB
 * export's own check): its MAC through the keystore, or its signature under
 * the terminal's public key (read from the keystore); a frame of the other
 * kind is refused (YN_EAUTH). Then as yn_batch_verify_cred: *recs malloc'd. */
int yn_sync_frame_own(yn_keystore *keys, const uint8_t *frame, size_t len, yn_batch_header *h,
                      yn_ledger_record **recs, const char **why) YN_MUST_CHECK;
/* One update request, verified and applied. *more: the server holds more. */
int yn_sync_update_one(yn_sync *s, yn_ledger *l, bool *more) YN_MUST_CHECK;

/* Apply a verified document to the ledger in ONE transaction
 * (yn_ledger_apply_update): every part and the document version, or nothing
 * (then the same document is asked for again). Parts applied before (a
 * re-sent document) are skipped. */
int yn_sync_apply(yn_ledger *l, const yn_update *u, int64_t now_utc_s) YN_MUST_CHECK;

/* Delay before retry number attempt (0, 1, …): exponential from base_ms,
 * capped at cap_ms, with full jitter in [delay/2, delay]. */
int64_t yn_sync_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms);

/* Enrol: trade a one-time token for this terminal's identity and key
 * (PROTOCOL.md §2). A shared key goes straight into the keystore
 * (yn_keystore_store, replacing the one there): a 0600 file, or a
 * non-extractable token object never written to a file. A key-pair terminal
 * (terminal_key_type = ecdsa-p256) makes a new pair in its keystore and
 * posts the public half, signed by it (§10); the pair before it is destroyed
 * once the district took the new one, and used again if it did not. */
int yn_sync_enrol(const char *url, const char *ca_file, const char *token, yn_keystore *keys,
                  char *terminal_id, size_t id_size) YN_MUST_CHECK;

/* The background thread: a round every interval_s (sooner after progress,
 * backing off after failures) on its own ledger handle opened from ledger_opts. */
typedef struct yn_sync_thread yn_sync_thread;
int yn_sync_thread_start(const yn_sync_opts *opts, const yn_ledger_opts *ledger_opts,
                         int interval_s, yn_sync_thread **out) YN_MUST_CHECK;
void yn_sync_thread_stop(yn_sync_thread *t);

#endif
