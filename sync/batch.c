/* batch.c — encode and decode the batch frame (sync/PROTOCOL.md §3).
 *
 * The body is a string table then 25 columns (28 in a version 2 frame, which
 * carries how the holder of each meal was identified), each holding one field of every
 * record in order, as LEB128 varints; signed values are zigzag-encoded and
 * most fields are deltas from the previous record. A column of one field
 * repeats itself (same period, same day, seq + 1, time + a few seconds), which
 * is what lets zlib bring a meal record under 16 bytes. All delta arithmetic is
 * modulo 2^64 so hostile input cannot overflow. */
#include "batch.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "reason.h"
#include "rules.h"
#include "sig.h"

/* A record costs at least one byte in every column but the layers (none
 * when n_layers = 0): 24 bytes. The smallest string table (one empty
 * string) is 2 bytes. */
#define MIN_RECORD_RAW 24
#define MIN_TABLE_RAW  2
#define STR_MAX        255

/* --- growable byte buffer ---------------------------------------------------- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static void buf_reserve(buf *b, size_t more)
{
    if (b->oom || b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void buf_put(buf *b, const void *data, size_t n)
{
    buf_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_uv(buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            tmp[n] |= 0x80;
        n++;
    } while (v);
    buf_put(b, tmp, n);
}

static uint64_t zz(uint64_t v) /* zigzag of the two's-complement value v */
{
    return (v << 1) ^ (uint64_t)(-(int64_t)(v >> 63));
}

static uint64_t unzz(uint64_t u)
{
    return (u >> 1) ^ (uint64_t)(-(int64_t)(u & 1));
}

static void put_sv(buf *b, int64_t v)
{
    put_uv(b, zz((uint64_t)v));
}

static void be_put(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t be_get(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

void yn_batch_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                   uint8_t out[YN_BATCH_MAC_LEN])
{
    unsigned int n = YN_BATCH_MAC_LEN;
    if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n))
        memset(out, 0, YN_BATCH_MAC_LEN); /* never matches a real MAC */
}

size_t yn_batch_ack_text(int v, const char *terminal, int64_t batch_id, int64_t first_seq,
                         int64_t last_seq, const char *head_hex, char *out, size_t cap)
{
    int n = snprintf(out, cap, "YNACK%d %s %lld %lld %lld %s", v, terminal, (long long)batch_id,
                     (long long)first_seq, (long long)last_seq, head_hex);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* --- string table (encoder) -------------------------------------------------- */

typedef struct strtab {
    const char **str; /* in order of first use */
    uint32_t n, cap;
    uint32_t *slot; /* open addressing: index + 1, 0 = empty */
    uint32_t mask;
} strtab;

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int strtab_init(strtab *t, size_t max_strings)
{
    size_t size = 64;
    while (size < 2 * max_strings)
        size *= 2;
    t->str = calloc(max_strings ? max_strings : 1, sizeof *t->str);
    t->slot = calloc(size, sizeof *t->slot);
    t->n = 0;
    t->cap = (uint32_t)max_strings;
    t->mask = (uint32_t)size - 1;
    return t->str && t->slot ? YN_OK : YN_ENOMEM;
}

static void strtab_free(strtab *t)
{
    free(t->str);
    free(t->slot);
}

static uint32_t strtab_index(strtab *t, const char *s)
{
    uint32_t h = str_hash(s) & t->mask;
    while (t->slot[h]) {
        if (strcmp(t->str[t->slot[h] - 1], s) == 0)
            return t->slot[h] - 1;
        h = (h + 1) & t->mask;
    }
    /* the caller sized the table for every string it can add */
    t->str[t->n] = s;
    t->slot[h] = ++t->n;
    return t->n - 1;
}

/* card_no in numeric form: canonical decimal (no leading zero) below 2^63. */
static bool card_numeric(const char *s, uint64_t *v)
{
    size_t n = strlen(s);
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (x > (UINT64_C(0x7fffffffffffffff) - (uint64_t)(s[i] - '0')) / 10)
            return false;
        x = x * 10 + (uint64_t)(s[i] - '0');
    }
    *v = x;
    return true;
}

static bool str_fits(const char *s, size_t field_size)
{
    return memchr(s, '\0', field_size) != NULL;
}

/* --- encode ------------------------------------------------------------------ */

static int check_record(const yn_ledger_record *r, const yn_ledger_record *first, size_t i)
{
    if (r->seq != first->seq + (int64_t)i || strcmp(r->terminal, first->terminal) != 0)
        return YN_EINVAL;
    if (!yn_rules_kind_of(r->kind) || r->n_layers < 0 || r->n_layers > YN_POLICY_MAX_LAYERS ||
        (int)r->reason < 0 || r->reason >= YN_REASON_COUNT)
        return YN_EINVAL;
    if (!str_fits(r->card_no, sizeof r->card_no) || !str_fits(r->category, YN_NAME_MAX) ||
        !str_fits(r->period, YN_NAME_MAX) || !str_fits(r->operator_id, YN_LEDGER_ID_MAX) ||
        !str_fits(r->ref, YN_LEDGER_REF_MAX))
        return YN_EINVAL;
    for (int k = 0; k < r->n_layers; k++)
        if (!str_fits(r->layers[k].source, YN_NAME_MAX))
            return YN_EINVAL;
    if (r->reverses_seq < 0 || r->reverses_seq >= r->seq || r->card_prev_seq < 0 ||
        r->card_prev_seq >= r->seq)
        return YN_EINVAL;
    if (!str_fits(r->ident, YN_IDENT_MAX) || !str_fits(r->supervisor_id, YN_LEDGER_ID_MAX) ||
        yn_rules_identified(r, NULL) != YN_OK)
        return YN_EINVAL;
    return YN_OK;
}

/* A frame is version 2 only when a record's holder was not identified by
 * the card: frames of card meals stay as every district server reads them. */
static int frame_version(const yn_ledger_record *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].by > YN_LEDGER_BY_CARD)
            return 2;
    return 1;
}

static void put_str_index(buf *b, strtab *t, const char *s)
{
    put_uv(b, strtab_index(t, s));
}

/* The 25 columns (PROTOCOL.md §3.2), in order, and 26-28 for version 2. */
static void put_columns(buf *b, strtab *t, const yn_ledger_record *r, size_t n, int version)
{
    int64_t first = r[0].seq;
    uint64_t prev;
    for (size_t i = 0; i < n; i++) /* C1 kind */
        put_uv(b, (uint64_t)r[i].kind);
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C2 tap_id */
        put_uv(b, zz((uint64_t)r[i].tap_id - prev));
        prev = (uint64_t)r[i].tap_id;
    }
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C3 card_no */
        uint64_t v;
        if (card_numeric(r[i].card_no, &v)) {
            put_uv(b, zz(v - prev) + 1); /* zz(...) < 2^64 - 1: |delta| < 2^63 */
            prev = v;
        } else {
            put_uv(b, 0);
            put_str_index(b, t, r[i].card_no);
        }
    }
    for (size_t i = 0; i < n; i++) /* C4 category */
        put_str_index(b, t, r[i].category);
    for (size_t i = 0; i < n; i++) /* C5 period */
        put_str_index(b, t, r[i].period);
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C6 local_ymd */
        put_uv(b, zz((uint64_t)(int64_t)r[i].local_ymd - prev));
        prev = (uint64_t)(int64_t)r[i].local_ymd;
    }
    for (size_t i = 0; i < n; i++) /* C7 price */
        put_sv(b, r[i].price_fen);
    for (size_t i = 0; i < n; i++) /* C8 subsidy */
        put_sv(b, r[i].subsidy_fen);
    for (size_t i = 0; i < n; i++) /* C9 wallet */
        put_sv(b, r[i].wallet_fen);
    for (size_t i = 0; i < n; i++) /* C10 cash */
        put_sv(b, r[i].cash_fen);
    for (size_t i = 0; i < n; i++) /* C11 n_layers */
        put_uv(b, (uint64_t)r[i].n_layers);
    for (size_t i = 0; i < n; i++) /* C12 layers */
        for (int k = 0; k < r[i].n_layers; k++) {
            put_str_index(b, t, r[i].layers[k].source);
            put_sv(b, r[i].layers[k].fen);
        }
    for (size_t i = 0; i < n; i++) /* C13 weight */
        put_sv(b, r[i].weight_g);
    for (size_t i = 0; i < n; i++) /* C14 price per 100 g */
        put_sv(b, r[i].price_per_100g_fen);
    for (size_t i = 0; i < n; i++) /* C15 reason code */
        put_str_index(b, t, r[i].reason == YN_REASON_NONE ? "" : yn_reason_code(r[i].reason));
    for (size_t i = 0; i < n; i++) /* C16 operator */
        put_str_index(b, t, r[i].operator_id);
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C17 utc_s */
        put_uv(b, zz((uint64_t)r[i].utc_s - prev));
        prev = (uint64_t)r[i].utc_s;
    }
    uint64_t prev_utc = 0, prev_mono = 0;
    for (size_t i = 0; i < n; i++) { /* C18 mono_ms, relative to the wall clock's step */
        uint64_t d_utc_ms = ((uint64_t)r[i].utc_s - prev_utc) * 1000u;
        put_uv(b, zz((uint64_t)r[i].mono_ms - prev_mono - d_utc_ms));
        prev_utc = (uint64_t)r[i].utc_s;
        prev_mono = (uint64_t)r[i].mono_ms;
    }
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C19 boot_no */
        put_uv(b, zz((uint64_t)r[i].boot_no - prev));
        prev = (uint64_t)r[i].boot_no;
    }
    for (size_t i = 0; i < n; i++) /* C20 clock_trusted */
        put_uv(b, r[i].clock_trusted ? 1 : 0);
    for (size_t i = 0; i < n; i++) /* C21 reverses_seq */
        put_uv(b, r[i].reverses_seq ? (uint64_t)(r[i].seq - r[i].reverses_seq) : 0);
    for (size_t i = 0; i < n; i++) /* C22 ref */
        put_str_index(b, t, r[i].ref);
    prev = 0;
    for (size_t i = 0; i < n; i++) { /* C23 policy_version */
        put_uv(b, zz((uint64_t)r[i].policy_version - prev));
        prev = (uint64_t)r[i].policy_version;
    }
    for (size_t i = 0; i < n; i++) { /* C24 wallet_after, predicted within the batch */
        uint64_t predicted = 0;
        if (r[i].card_prev_seq >= first)
            predicted = (uint64_t)r[r[i].card_prev_seq - first].wallet_after_fen -
                        (uint64_t)r[i].wallet_fen;
        put_uv(b, zz((uint64_t)r[i].wallet_after_fen - predicted));
    }
    for (size_t i = 0; i < n; i++) /* C25 card_prev_seq */
        put_uv(b, r[i].card_prev_seq ? (uint64_t)(r[i].seq - r[i].card_prev_seq) : 0);
    if (version < 2)
        return;
    for (size_t i = 0; i < n; i++) /* C26 identified */
        put_uv(b, r[i].by ? (uint64_t)r[i].by : YN_LEDGER_BY_CARD);
    for (size_t i = 0; i < n; i++) /* C27 ident */
        put_str_index(b, t, r[i].ident);
    for (size_t i = 0; i < n; i++) /* C28 supervisor */
        put_str_index(b, t, r[i].supervisor_id);
}

size_t yn_batch_trailer_len(enum yn_batch_auth auth)
{
    return auth == YN_BATCH_AUTH_ECDSA_P256 ? YN_BATCH_SIG_LEN : YN_BATCH_MAC_LEN;
}

int yn_batch_encode_unsigned(int64_t batch_id, const yn_ledger_record *recs, size_t n,
                             enum yn_batch_auth auth, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t tlen = recs && n ? strlen(recs[0].terminal) : 0;
    if (!recs || n == 0 || n > YN_BATCH_MAX_RECORDS || batch_id < 1 || recs[0].seq < 1 ||
        tlen == 0 || tlen >= YN_LEDGER_ID_MAX)
        return YN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (check_record(&recs[i], &recs[0], i) != YN_OK)
            return YN_EINVAL;

    strtab t;
    buf cols = {0}, raw = {0};
    int version = frame_version(recs, n);
    int rc = strtab_init(&t, n * (8 + YN_POLICY_MAX_LAYERS) + 1);
    if (rc == YN_OK) {
        strtab_index(&t, ""); /* index 0: the empty string */
        put_columns(&cols, &t, recs, n, version);
        put_uv(&raw, t.n);
        for (uint32_t i = 0; i < t.n; i++) {
            size_t sl = strlen(t.str[i]);
            put_uv(&raw, sl);
            buf_put(&raw, t.str[i], sl);
        }
        buf_put(&raw, cols.p, cols.len);
        rc = raw.oom || cols.oom ? YN_ENOMEM : YN_OK;
    }
    strtab_free(&t);
    free(cols.p);
    if (rc == YN_OK && raw.len > YN_BATCH_MAX_RAW)
        rc = YN_ELIMIT;
    uLongf body_cap = rc == YN_OK ? compressBound((uLong)raw.len) : 0;
    size_t trailer = yn_batch_trailer_len(auth);
    uint8_t *frame = rc == YN_OK ? malloc(YN_BATCH_HEADER_LEN + body_cap + trailer) : NULL;
    if (rc == YN_OK && !frame)
        rc = YN_ENOMEM;
    if (rc == YN_OK && compress2(frame + YN_BATCH_HEADER_LEN, &body_cap, raw.p, (uLong)raw.len,
                                 Z_BEST_COMPRESSION) != Z_OK)
        rc = YN_ENOMEM;
    if (rc == YN_OK && body_cap > YN_BATCH_MAX_BODY)
        rc = YN_ELIMIT;
    if (rc != YN_OK) {
        free(frame);
        free(raw.p);
        return rc;
    }
    uint8_t *h = frame;
    memset(h, 0, YN_BATCH_HEADER_LEN);
    memcpy(h, YN_BATCH_MAGIC, 4);
    be_put(h + 4, (uint64_t)version, 2);
    be_put(h + 6, auth == YN_BATCH_AUTH_ECDSA_P256 ? YN_BATCH_FLAG_SIGNED : 0, 2); /* flags */
    memcpy(h + 8, recs[0].terminal, tlen);
    be_put(h + 24, (uint64_t)batch_id, 8);
    be_put(h + 32, (uint64_t)recs[0].seq, 8);
    be_put(h + 40, (uint64_t)recs[n - 1].seq, 8);
    be_put(h + 48, n, 4);
    be_put(h + 52, raw.len, 4);
    be_put(h + 56, body_cap, 4);
    be_put(h + 60, crc32(0L, frame + YN_BATCH_HEADER_LEN, (uInt)body_cap), 4);
    memcpy(h + 64, recs[0].prev_hash, YN_LEDGER_HASH_LEN);
    memcpy(h + 96, recs[n - 1].hash, YN_LEDGER_HASH_LEN);
    size_t signed_len = YN_BATCH_HEADER_LEN + body_cap;
    memset(frame + signed_len, 0, trailer);
    free(raw.p);
    *out = frame;
    *out_len = signed_len + trailer;
    return YN_OK;
}

int yn_batch_encode(int64_t batch_id, const yn_ledger_record *recs, size_t n, const uint8_t *key,
                    size_t key_len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!key || key_len < YN_BATCH_KEY_MIN)
        return YN_EINVAL;
    int rc = yn_batch_encode_unsigned(batch_id, recs, n, YN_BATCH_AUTH_HMAC, out, out_len);
    if (rc == YN_OK)
        yn_batch_hmac(key, key_len, *out, *out_len - YN_BATCH_MAC_LEN,
                      *out + *out_len - YN_BATCH_MAC_LEN);
    return rc;
}

/* --- decode ------------------------------------------------------------------ */

int yn_batch_peek(const uint8_t *f, size_t len, yn_batch_header *hdr)
{
    memset(hdr, 0, sizeof *hdr);
    if (!f || len < YN_BATCH_HEADER_LEN + YN_BATCH_MAC_LEN || memcmp(f, YN_BATCH_MAGIC, 4) != 0)
        return YN_EPROTO;
    hdr->version = (int)be_get(f + 4, 2);
    uint64_t flags = be_get(f + 6, 2); /* bit 0: signed; whatever the version */
    if (hdr->version < 1 || hdr->version > YN_BATCH_VERSION ||
        (flags & ~(uint64_t)YN_BATCH_FLAG_SIGNED))
        return YN_EPROTO;
    hdr->auth = flags & YN_BATCH_FLAG_SIGNED ? YN_BATCH_AUTH_ECDSA_P256 : YN_BATCH_AUTH_HMAC;
    /* terminal: 1..16 bytes of graphic ASCII, NUL-padded */
    size_t tlen = 0;
    while (tlen < 16 && f[8 + tlen])
        tlen++;
    if (tlen == 0)
        return YN_EPROTO;
    for (size_t i = 0; i < 16; i++)
        if ((i < tlen && (f[8 + i] < 0x21 || f[8 + i] > 0x7e)) || (i >= tlen && f[8 + i]))
            return YN_EPROTO;
    memcpy(hdr->terminal, f + 8, tlen);
    uint64_t id = be_get(f + 24, 8), first = be_get(f + 32, 8), last = be_get(f + 40, 8);
    if (id < 1 || id > INT64_MAX || first < 1 || last < first || last > INT64_MAX)
        return YN_EPROTO;
    hdr->batch_id = (int64_t)id;
    hdr->first_seq = (int64_t)first;
    hdr->last_seq = (int64_t)last;
    hdr->count = (uint32_t)be_get(f + 48, 4);
    hdr->raw_len = (uint32_t)be_get(f + 52, 4);
    hdr->body_len = (uint32_t)be_get(f + 56, 4);
    hdr->crc32 = (uint32_t)be_get(f + 60, 4);
    memcpy(hdr->prev_hash, f + 64, YN_LEDGER_HASH_LEN);
    memcpy(hdr->head_hash, f + 96, YN_LEDGER_HASH_LEN);
    if (hdr->count < 1 || last - first + 1 != hdr->count)
        return YN_EPROTO;
    if (hdr->count > YN_BATCH_MAX_RECORDS || hdr->raw_len > YN_BATCH_MAX_RAW ||
        hdr->body_len > YN_BATCH_MAX_BODY)
        return YN_ELIMIT;
    if ((uint64_t)hdr->count * MIN_RECORD_RAW + MIN_TABLE_RAW > hdr->raw_len || hdr->body_len == 0)
        return YN_EPROTO;
    if (len != (size_t)YN_BATCH_HEADER_LEN + hdr->body_len + yn_batch_trailer_len(hdr->auth))
        return YN_EPROTO;
    return YN_OK;
}

int yn_batch_frame_len(const uint8_t *f, size_t len, size_t *frame_len)
{
    *frame_len = 0;
    if (!f || len < YN_BATCH_HEADER_LEN + YN_BATCH_MAC_LEN || memcmp(f, YN_BATCH_MAGIC, 4) != 0)
        return YN_EPROTO;
    uint64_t body_len = be_get(f + 56, 4);
    if (body_len > YN_BATCH_MAX_BODY)
        return YN_ELIMIT;
    size_t n =
        YN_BATCH_HEADER_LEN + (size_t)body_len +
        yn_batch_trailer_len(be_get(f + 6, 2) & YN_BATCH_FLAG_SIGNED ? YN_BATCH_AUTH_ECDSA_P256
                                                                     : YN_BATCH_AUTH_HMAC);
    if (n > len)
        return YN_EPROTO;
    *frame_len = n;
    return YN_OK;
}

/* Inflate exactly raw_len bytes from the body, never more (the zip-bomb cap). */
static int inflate_exact(const uint8_t *body, uint32_t body_len, uint8_t *raw, uint32_t raw_len,
                         const char **why)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return YN_ENOMEM;
    z.next_in = (Bytef *)body;
    z.avail_in = body_len;
    z.next_out = raw;
    z.avail_out = raw_len;
    int zr = inflate(&z, Z_FINISH);
    int rc = YN_OK;
    if (zr == Z_STREAM_END) {
        if (z.total_out != raw_len || z.avail_in != 0) {
            *why = "body does not inflate to exactly raw_len bytes";
            rc = YN_EPROTO;
        }
    } else if (zr == Z_BUF_ERROR && z.avail_out == 0 && z.avail_in > 0) {
        *why = "body inflates beyond its declared raw_len";
        rc = YN_ELIMIT;
    } else if (zr == Z_MEM_ERROR) {
        rc = YN_ENOMEM;
    } else {
        *why = "body is not a complete zlib stream";
        rc = YN_EPROTO;
    }
    inflateEnd(&z);
    return rc;
}

typedef struct reader {
    const uint8_t *p, *end;
    bool bad;
    const char *why;
    const uint8_t **str; /* string table: start of each string */
    uint32_t *str_len;
    uint32_t n_str;
} reader;

static uint64_t get_uv(reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) {
            r->bad = true;
            r->why = r->why ? r->why : "body ends inside a value";
            return 0;
        }
        uint8_t byte = *r->p++;
        if (shift == 63 && byte > 1) {
            r->bad = true;
            r->why = r->why ? r->why : "varint longer than 64 bits";
            return 0;
        }
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            if (byte == 0 && shift > 0) {
                r->bad = true;
                r->why = r->why ? r->why : "varint not in its shortest form";
                return 0;
            }
            return v;
        }
    }
    r->bad = true;
    return 0;
}

static void fail(reader *r, const char *why)
{
    if (!r->bad)
        r->why = why;
    r->bad = true;
}

/* A string from the table into a field of field_size bytes (incl. NUL). */
static void get_str(reader *r, char *dst, size_t field_size)
{
    uint64_t i = get_uv(r);
    if (r->bad)
        return;
    if (i >= r->n_str) {
        fail(r, "string index beyond the string table");
        return;
    }
    if (r->str_len[i] >= field_size) {
        fail(r, "string too long for its field");
        return;
    }
    memcpy(dst, r->str[i], r->str_len[i]);
    dst[r->str_len[i]] = '\0';
}

static int64_t get_sv(reader *r)
{
    return (int64_t)unzz(get_uv(r));
}

static int reason_from_code(const char *code)
{
    if (!*code)
        return YN_REASON_NONE;
    for (int k = 1; k < YN_REASON_COUNT; k++)
        if (strcmp(code, yn_reason_code((enum yn_reason)k)) == 0)
            return k;
    return -1;
}

static void get_columns(reader *r, yn_ledger_record *rec, size_t n, int version)
{
    int64_t first = rec[0].seq;
    uint64_t prev;
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t kind = get_uv(r);
        if (kind > INT32_MAX || !yn_rules_kind_of((int)kind))
            fail(r, "unknown record kind");
        rec[i].kind = (int)kind;
    }
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        prev += unzz(get_uv(r));
        rec[i].tap_id = (int64_t)prev;
    }
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t u = get_uv(r);
        if (u == 0) {
            get_str(r, rec[i].card_no, sizeof rec[i].card_no);
            uint64_t dummy;
            if (!r->bad && card_numeric(rec[i].card_no, &dummy))
                fail(r, "numeric card number sent as a string");
        } else {
            prev += unzz(u - 1);
            if (prev > (uint64_t)INT64_MAX)
                fail(r, "card number out of range");
            snprintf(rec[i].card_no, sizeof rec[i].card_no, "%llu", (unsigned long long)prev);
        }
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        get_str(r, rec[i].category, YN_NAME_MAX);
    for (size_t i = 0; i < n && !r->bad; i++)
        get_str(r, rec[i].period, YN_NAME_MAX);
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        prev += unzz(get_uv(r));
        if ((int64_t)prev < 0 || (int64_t)prev > 99991231)
            fail(r, "local date out of range");
        rec[i].local_ymd = (int32_t)prev;
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        rec[i].price_fen = get_sv(r);
    for (size_t i = 0; i < n && !r->bad; i++)
        rec[i].subsidy_fen = get_sv(r);
    for (size_t i = 0; i < n && !r->bad; i++)
        rec[i].wallet_fen = get_sv(r);
    for (size_t i = 0; i < n && !r->bad; i++)
        rec[i].cash_fen = get_sv(r);
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t nl = get_uv(r);
        if (nl > YN_POLICY_MAX_LAYERS)
            fail(r, "too many funding layers");
        rec[i].n_layers = (int)nl;
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        for (int k = 0; k < rec[i].n_layers && !r->bad; k++) {
            get_str(r, rec[i].layers[k].source, YN_NAME_MAX);
            rec[i].layers[k].fen = get_sv(r);
        }
    for (size_t i = 0; i < n && !r->bad; i++) {
        int64_t w = get_sv(r);
        if (w < INT32_MIN || w > INT32_MAX)
            fail(r, "weight out of range");
        rec[i].weight_g = (int32_t)w;
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        rec[i].price_per_100g_fen = get_sv(r);
    for (size_t i = 0; i < n && !r->bad; i++) {
        char code[YN_NAME_MAX];
        get_str(r, code, sizeof code);
        int reason = r->bad ? 0 : reason_from_code(code);
        if (reason < 0)
            fail(r, "unknown reason code");
        rec[i].reason = (enum yn_reason)(reason < 0 ? 0 : reason);
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        get_str(r, rec[i].operator_id, YN_LEDGER_ID_MAX);
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        prev += unzz(get_uv(r));
        rec[i].utc_s = (int64_t)prev;
    }
    uint64_t prev_utc = 0, prev_mono = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t d_utc_ms = ((uint64_t)rec[i].utc_s - prev_utc) * 1000u;
        prev_mono += unzz(get_uv(r)) + d_utc_ms;
        rec[i].mono_ms = (int64_t)prev_mono;
        prev_utc = (uint64_t)rec[i].utc_s;
    }
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        prev += unzz(get_uv(r));
        rec[i].boot_no = (int64_t)prev;
    }
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t t = get_uv(r);
        if (t > 1)
            fail(r, "clock_trusted is not 0 or 1");
        rec[i].clock_trusted = t == 1;
    }
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t d = get_uv(r);
        if (d >= (uint64_t)rec[i].seq)
            fail(r, "reversal points outside the journal");
        rec[i].reverses_seq = d ? rec[i].seq - (int64_t)d : 0;
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        get_str(r, rec[i].ref, YN_LEDGER_REF_MAX);
    prev = 0;
    for (size_t i = 0; i < n && !r->bad; i++) {
        prev += unzz(get_uv(r));
        rec[i].policy_version = (int64_t)prev;
    }
    /* C25 comes after C24: resolve the prediction once card_prev_seq is known */
    uint64_t *resid = calloc(n, sizeof *resid);
    if (!resid) {
        fail(r, "out of memory");
        return;
    }
    for (size_t i = 0; i < n && !r->bad; i++)
        resid[i] = unzz(get_uv(r));
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t d = get_uv(r);
        if (d >= (uint64_t)rec[i].seq)
            fail(r, "previous record of the card outside the journal");
        rec[i].card_prev_seq = d ? rec[i].seq - (int64_t)d : 0;
    }
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint64_t predicted = 0;
        if (rec[i].card_prev_seq >= first)
            predicted = (uint64_t)rec[rec[i].card_prev_seq - first].wallet_after_fen -
                        (uint64_t)rec[i].wallet_fen;
        rec[i].wallet_after_fen = (int64_t)(predicted + resid[i]);
    }
    free(resid);
    for (size_t i = 0; i < n && !r->bad; i++) { /* C26, version 2: identified */
        uint64_t by = version < 2 ? YN_LEDGER_BY_CARD : get_uv(r);
        if (by < YN_LEDGER_BY_CARD || by > YN_LEDGER_BY_MAX)
            fail(r, "unknown way of identifying the holder");
        rec[i].by = (int)by;
    }
    for (size_t i = 0; version >= 2 && i < n && !r->bad; i++) /* C27 ident */
        get_str(r, rec[i].ident, YN_IDENT_MAX);
    for (size_t i = 0; version >= 2 && i < n && !r->bad; i++) /* C28 supervisor */
        get_str(r, rec[i].supervisor_id, YN_LEDGER_ID_MAX);
}

static int decode_body(const uint8_t *raw, uint32_t raw_len, const yn_batch_header *hdr,
                       yn_ledger_record *recs, const char **why)
{
    reader r = {.p = raw, .end = raw + raw_len};
    uint64_t n_str = get_uv(&r);
    /* every string takes at least one byte */
    if (!r.bad && (n_str == 0 || n_str > (uint64_t)(r.end - r.p)))
        fail(&r, "string table count out of range");
    if (!r.bad) {
        r.str = calloc(n_str, sizeof *r.str);
        r.str_len = calloc(n_str, sizeof *r.str_len);
        if (!r.str || !r.str_len)
            fail(&r, "out of memory");
    }
    for (uint64_t i = 0; i < n_str && !r.bad; i++) {
        uint64_t sl = get_uv(&r);
        if (r.bad)
            break;
        if (sl > STR_MAX || sl > (uint64_t)(r.end - r.p)) {
            fail(&r, "string length out of range");
            break;
        }
        if (!yn_rules_utf8(r.p, sl))
            fail(&r, "string not UTF-8 without control characters");
        if (i == 0 && sl != 0)
            fail(&r, "string 0 is not the empty string");
        r.str[i] = r.p;
        r.str_len[i] = (uint32_t)sl;
        r.p += sl;
    }
    r.n_str = (uint32_t)n_str;
    for (size_t i = 0; i < hdr->count; i++) {
        recs[i].seq = hdr->first_seq + (int64_t)i;
        memcpy(recs[i].terminal, hdr->terminal, sizeof recs[i].terminal);
    }
    if (!r.bad)
        get_columns(&r, recs, hdr->count, hdr->version);
    if (!r.bad && r.p != r.end)
        fail(&r, "bytes left after the last column");
    free(r.str);
    free(r.str_len);
    if (r.bad) {
        *why = r.why ? r.why : "malformed body";
        return YN_EPROTO;
    }
    return YN_OK;
}

/* The one place a frame is authenticated, against the terminal's enrolled
 * credential: a frame of the other scheme is refused whatever its trailer;
 * an HMAC-SHA256 trailer under the shared key is compared in constant time;
 * an ECDSA P-256 signature of SHA-256(header ‖ body) is verified under the
 * enrolled public key by OpenSSL (sig.h). */
static bool frame_authentic(const uint8_t *f, const yn_batch_header *hdr, const yn_batch_cred *c,
                            const char **why)
{
    size_t signed_len = YN_BATCH_HEADER_LEN + hdr->body_len;
    if (c && hdr->auth != c->auth) {
        *why = c->auth == YN_BATCH_AUTH_ECDSA_P256
                   ? "frame MACed with a shared key, but the terminal is enrolled with a key pair"
                   : "frame signed with a key pair, but the terminal is enrolled with a shared key";
        return false;
    }
    if (c && c->auth == YN_BATCH_AUTH_ECDSA_P256) {
        *why = "signature does not verify under the terminal's enrolled public key";
        return c->key && c->key_len == YN_SIG_P256_PUB_LEN &&
               yn_sig_p256_verify(c->key, f, signed_len, f + signed_len) == YN_OK;
    }
    uint8_t mac[YN_BATCH_MAC_LEN];
    *why = "HMAC does not verify under the terminal's key";
    if (!c || !c->key || c->key_len < YN_BATCH_KEY_MIN)
        return false;
    yn_batch_hmac(c->key, c->key_len, f, signed_len, mac);
    return CRYPTO_memcmp(mac, f + signed_len, YN_BATCH_MAC_LEN) == 0;
}

/* yn_batch_verify_cred, with the trailer checked here (cred) or already by
 * the caller (cred NULL). */
static int verify_frame(const uint8_t *f, size_t len, const yn_batch_cred *cred, bool check_mac,
                        yn_batch_header *hdr, yn_ledger_record **out, yn_batch_error *err)
{
    yn_batch_error dummy;
    if (!err)
        err = &dummy;
    memset(err, 0, sizeof *err);
    err->why = "";
    *out = NULL;
    int rc = yn_batch_peek(f, len, hdr);
    if (rc != YN_OK) {
        err->why = rc == YN_ELIMIT ? "frame sizes over the limits" : "malformed frame header";
        return rc;
    }
    const uint8_t *body = f + YN_BATCH_HEADER_LEN;
    if (crc32(0L, body, hdr->body_len) != hdr->crc32) {
        err->why = "CRC-32 of the body does not match";
        return YN_ECORRUPT;
    }
    if (check_mac && !frame_authentic(f, hdr, cred, &err->why))
        return YN_EAUTH;
    uint8_t *raw = malloc(hdr->raw_len ? hdr->raw_len : 1);
    yn_ledger_record *recs = calloc(hdr->count, sizeof *recs);
    if (!raw || !recs) {
        free(raw);
        free(recs);
        return YN_ENOMEM;
    }
    rc = inflate_exact(body, hdr->body_len, raw, hdr->raw_len, &err->why);
    if (rc == YN_OK)
        rc = decode_body(raw, hdr->raw_len, hdr, recs, &err->why);
    free(raw);
    /* the chain: from the header's prev_hash to its head hash */
    const uint8_t *prev = hdr->prev_hash;
    for (size_t i = 0; rc == YN_OK && i < hdr->count; i++) {
        memcpy(recs[i].prev_hash, prev, YN_LEDGER_HASH_LEN);
        yn_ledger_record_hash(&recs[i], prev, recs[i].hash);
        prev = recs[i].hash;
    }
    if (rc == YN_OK && memcmp(prev, hdr->head_hash, YN_LEDGER_HASH_LEN) != 0) {
        err->why = "records do not hash to the chain head in the header";
        rc = YN_ECORRUPT;
    }
    /* every record by the rules both sides share (PROTOCOL.md §3.5) */
    for (size_t i = 0; rc == YN_OK && i < hdr->count; i++) {
        yn_rules_fault fault;
        if (yn_rules_record(&recs[i], &fault) != YN_OK) {
            err->seq = recs[i].seq;
            err->field = fault.field;
            err->why = fault.why;
            rc = YN_EINVAL;
        }
    }
    if (rc != YN_OK) {
        free(recs);
        return rc;
    }
    *out = recs;
    return YN_OK;
}

int yn_batch_verify_cred(const uint8_t *f, size_t len, const yn_batch_cred *cred,
                         yn_batch_header *hdr, yn_ledger_record **out, yn_batch_error *err)
{
    return verify_frame(f, len, cred, true, hdr, out, err);
}

int yn_batch_verify(const uint8_t *f, size_t len, const uint8_t *key, size_t key_len,
                    yn_batch_header *hdr, yn_ledger_record **out, yn_batch_error *err)
{
    yn_batch_cred cred = {YN_BATCH_AUTH_HMAC, key, key_len};
    return verify_frame(f, len, &cred, true, hdr, out, err);
}

int yn_batch_decode(const uint8_t *f, size_t len, const uint8_t *key, size_t key_len,
                    yn_batch_header *hdr, yn_ledger_record **out, const char **why)
{
    yn_batch_error err;
    int rc = yn_batch_verify(f, len, key, key_len, hdr, out, &err);
    if (why)
        *why = err.why;
    return rc;
}

int yn_batch_decode_authenticated(const uint8_t *f, size_t len, yn_batch_header *hdr,
                                  yn_ledger_record **out, const char **why)
{
    yn_batch_error err;
    int rc = verify_frame(f, len, NULL, false, hdr, out, &err);
    if (why)
        *why = err.why;
    return rc;
}
