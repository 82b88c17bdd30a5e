/* ingest.h — a batch frame into the district, exactly once (PROTOCOL.md §3):
 * every check runs before one write transaction that stores the whole batch
 * or nothing — its new records, their layers, the frame as uploaded, the
 * terminal's held seq and hash. Shared by POST /v1/batches and `import` of a
 * USB stick, so both treat a frame the same way.
 *
 * Order: the frame (413, 400 bad_frame), the terminal (403), CRC and chain
 * (400 bad_crc_or_chain), the MAC or signature against the terminal's
 * enrolled credential (401, also for a frame of the other kind), the body (400 bad_body, 413 for a
 * zip bomb), every record by the shared rules (400 bad_record with seq and
 * field), then in the transaction what is held (409 conflict for a gap, a
 * prev_hash or a replayed record that differs) and the rules that need other
 * records (400 bad_record: a reversal of a meal this terminal holds, once,
 * its shares negated; an allocation the district published, as published).
 * A lock not obtained within the busy budget is 503 with nothing stored; a
 * batch already held is 200 again (never 500 on a retry). The acknowledgement
 * of a shared-key terminal is MACed with its key; a key-pair terminal's is
 * signed with the district's Ed25519 key (PROTOCOL.md §4, §10). */
#ifndef YN_DISTRICT_INGEST_H
#define YN_DISTRICT_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "db.h"
#include "terminals.h"

#define YN_INGEST_GROUP_RECORDS 50000 /* records one group commit takes at most */

typedef struct yn_ingest {
    unsigned status;     /* 200, or the refusal's HTTP status */
    const char *code;    /* "" for 200, else the error code (PROTOCOL.md §1.3) */
    char message[240];   /* what was stored, or why refused */
    int64_t seq;         /* bad_record: the record refused; 0 otherwise */
    char field[48];      /* bad_record: its field; "" otherwise */
    char *ack;           /* 200: the acknowledgement (malloc'd; yn_ingest_done); NULL when a
                            key-pair terminal's batch was stored without a district key */
    yn_batch_header hdr; /* valid from the header check on */
    int64_t stored;      /* records new to the district (0: all held already) */
    /* between check and store */
    const uint8_t *frame; /* the caller's, kept until the reply */
    size_t frame_len;
    yn_ledger_record *recs;       /* decoded (malloc'd) */
    yn_terminal_cred cred;        /* the terminal's, as enrolled */
    const uint8_t *district_priv; /* signs a key-pair terminal's acknowledgement; may be NULL */
} yn_ingest;

/* Ingest one frame received at now_utc_s in its own transaction. 0 when
 * stored or held already (out->status 200, out->ack set unless a key-pair
 * terminal's batch came without district_priv, the Ed25519 seed that signs
 * its acknowledgement), -1 when refused (out says why). yn_ingest_done()
 * afterwards in either case. */
int yn_ingest_frame(yn_db *db, const uint8_t *frame, size_t len, const uint8_t *district_priv,
                    int64_t now_utc_s, yn_ingest *out);
void yn_ingest_done(yn_ingest *g);

/* The two halves, for callers that group batches: check the frame by itself
 * (no write; 0, or -1 refused), then, inside an open write transaction,
 * check it against what is held and store it (returns a storage status; a
 * refusal is YN_OK with g->status set, and wrote nothing). */
int yn_ingest_check(yn_db *db, const uint8_t *frame, size_t len, const uint8_t *district_priv,
                    yn_ingest *g);
int yn_ingest_store(yn_db *db, yn_ingest *g, int64_t now_utc_s) YN_MUST_CHECK;
/* A checked frame stored in its own transaction (as yn_ingest_frame). */
int yn_ingest_commit(yn_db *db, yn_ingest *g, int64_t now_utc_s);

/* Group commit: concurrent uploads that wait for the database are stored in
 * one transaction (a savepoint each, so a refused batch leaves the others
 * in) and one fsync — with SQLite a commit's fsync, not the work, bounds the
 * rate. The first waiting thread leads a group with its own handle; the
 * others wait for their result. For a frame yn_ingest_check passed; same
 * result as yn_ingest_commit. */
typedef struct yn_ingest_queue yn_ingest_queue;
yn_ingest_queue *yn_ingest_queue_new(void);
void yn_ingest_queue_free(yn_ingest_queue *q);
int yn_ingest_queued(yn_ingest_queue *q, yn_db *db, yn_ingest *g, int64_t now_utc_s);

/* HTTP status and code for a storage status: 503 unavailable for YN_EBUSY,
 * else 500 storage. */
unsigned yn_ingest_storage_status(int status, const char **code);

#endif
