"""ynproto — a second implementation of the district sync protocol, written
from sync/PROTOCOL.md alone (section numbers below are that page's), in
Python 3 with the standard library only. It shares no code with the C side:
if the page is ambiguous, this file and the C code disagree and the interop
test fails.

What it does: batch frames (encode and decode, §3), the hash chain (§3.6),
the record rules (§3.4, §3.5), acknowledgements (§4), signed JSON requests
(§1.1) and the restore reply (§6); terminals with a key pair (§10): ECDSA
P-256 signatures made and verified from the curve's definition below (the
standard library has no elliptic curves; a test's independent check, never
used to protect anything). Ed25519 is not in the standard library either, so
update documents and version-2 acknowledgements are parsed but their
signature is not checked here."""

import hashlib
import hmac
import json
import secrets
import struct
import zlib

MAGIC = b"YNB1"
HEADER_LEN, MAC_LEN = 128, 32
MAX_RECORDS, MAX_RAW, MAX_BODY = 20000, 8388608, 4194304
MAX_FEN, MAX_BALANCE = 100000000, 10**12
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
REASONS = ["expired", "not_eligible", "no_period", "period_used", "day_used", "month_used",
           "month_cap", "outside_area", "below_min_price", "insufficient", "lost", "too_soon",
           "storage", "not_genuine", "read_failed", "weight"]  # §3.5
FIELDS = ["kind", "tap_id", "card_no", "category", "period", "local_ymd", "price_fen",
          "subsidy_fen", "wallet_fen", "cash_fen", "layers", "weight_g", "price_per_100g_fen",
          "reason", "operator", "utc_s", "mono_ms", "boot_no", "clock_trusted", "reverses_seq",
          "ref", "policy_version", "wallet_after_fen", "card_prev_seq"]

# §3.4: kind -> (price, subsidy/layers, wallet, cash, n_layers range, tap_id >= 1, reverses, ref)
GE, LE, GT, LT, ZERO = ">=0", "<=0", ">0", "<0", "0"
KINDS = {
    1: (GE, GE, GE, GE, (0, 4), True, False, False),   # meal
    2: (LE, LE, LE, LE, (0, 4), False, True, False),   # reversal
    3: (ZERO, GT, LT, ZERO, (1, 1), False, False, True),  # allocation
    4: (ZERO, ZERO, LT, GT, (0, 0), True, False, False),  # top-up
    5: (ZERO, ZERO, ZERO, ZERO, (0, 0), False, True, True),  # stamp missing (ref: its cause)
}


class Refused(Exception):
    """A frame or record this implementation refuses; .code as PROTOCOL.md §1.3."""

    def __init__(self, code, why, seq=0, field=""):
        super().__init__("%s: %s%s" % (code, "record %d: %s: " % (seq, field) if field else "",
                                       why))
        self.code, self.why, self.seq, self.field = code, why, seq, field


def wrap64(v):
    """A value modulo 2^64, read as two's-complement int64 (§3.2)."""
    v &= 2**64 - 1
    return v - 2**64 if v >= 2**63 else v


def zz(v):
    v &= 2**64 - 1
    return ((v << 1) ^ (2**64 - 1 if v >> 63 else 0)) & (2**64 - 1)


def unzz(u):
    return wrap64((u >> 1) ^ (-(u & 1)))


def put_uv(out, v):
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return


class Reader:
    def __init__(self, raw):
        self.raw, self.pos = raw, 0

    def uv(self):
        v, shift = 0, 0
        while True:
            if self.pos >= len(self.raw):
                raise Refused("bad_body", "body ends inside a value")
            b = self.raw[self.pos]
            self.pos += 1
            if shift == 63 and b > 1:
                raise Refused("bad_body", "varint longer than 64 bits")
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                if b == 0 and shift > 0:
                    raise Refused("bad_body", "varint not in its shortest form")
                return v
            shift += 7

    def sv(self):
        return unzz(self.uv())


def graphic(s, lo, hi):
    return lo <= len(s) <= hi and all(0x21 <= ord(c) <= 0x7E for c in s)


def real_day(ymd):
    y, m, d = ymd // 10000, ymd // 100 % 100, ymd % 100
    if not (19000101 <= ymd <= 99991231) or not 1 <= m <= 12 or d < 1:
        return False
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    return d <= [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def utf8_ok(b):
    """§3.2: UTF-8 without C0, DEL or C1 control characters."""
    try:
        s = b.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in s)


def numeric_card(s):
    """§3.3: the numeric form's value, or None."""
    if not s or not s.isdigit() or not s.isascii() or (len(s) > 1 and s[0] == "0"):
        return None
    v = int(s)
    return v if v < 2**63 else None


# --- §3.6 the hash chain ---------------------------------------------------------

def encode_record(r):
    i64 = lambda v: struct.pack(">q", v)
    st = lambda s: bytes([len(s.encode())]) + s.encode()
    e = b"YNL1" + i64(r["seq"]) + st(r["terminal"]) + i64(r["tap_id"]) + st(r["card_no"])
    e += bytes([r["kind"]]) + st(r["category"]) + st(r["period"]) + i64(r["local_ymd"])
    for f in ("price_fen", "subsidy_fen", "wallet_fen", "cash_fen"):
        e += i64(r[f])
    e += bytes([len(r["layers"])])
    for source, fen in r["layers"]:
        e += st(source) + i64(fen)
    e += i64(r["weight_g"]) + i64(r["price_per_100g_fen"]) + st(r["reason"]) + st(r["operator"])
    e += i64(r["utc_s"]) + i64(r["mono_ms"]) + i64(r["boot_no"]) + bytes([r["clock_trusted"]])
    e += i64(r["reverses_seq"]) + st(r["ref"]) + i64(r["policy_version"])
    e += i64(r["wallet_after_fen"]) + i64(r["card_prev_seq"])
    if r.get("identified", 1) in (2, 3):     # fields 28-30, only then
        e += bytes([r["identified"]]) + st(r["ident"]) + st(r["supervisor"])
    return e


def chain_hash(r, prev):
    return hashlib.sha256(encode_record(r) + prev).digest()


# --- §3.4, §3.5 the record rules ------------------------------------------------------

def check_record(r):
    """Raise Refused(bad_record) naming the field of the first rule r breaks."""
    def bad(field, why):
        raise Refused("bad_record", why, r["seq"], field)

    def sign_ok(rule, v):
        if abs(v) > MAX_FEN:
            return False
        return {GE: v >= 0, LE: v <= 0, GT: v > 0, LT: v < 0, ZERO: v == 0}[rule]

    k = KINDS.get(r["kind"])
    if k is None:
        bad("kind", "not a kind of §3.4")
    price, sub, wallet, cash, (lo, hi), tap, reverses, ref = k
    if r["seq"] < 1:
        bad("seq", ">= 1")
    if not (r["tap_id"] >= 1 if tap else r["tap_id"] == 0):
        bad("tap_id", "by kind")
    if not graphic(r["card_no"], 1, 19):
        bad("card_no", "1..19 graphic ASCII")
    for f in ("category", "period"):
        if r[f] and not graphic(r[f], 1, 23):
            bad(f, "empty or 1..23 graphic ASCII")
    if not real_day(r["local_ymd"]):
        bad("local_ymd", "a real day")
    for f, rule in (("price_fen", price), ("subsidy_fen", sub), ("wallet_fen", wallet),
                    ("cash_fen", cash)):
        if not sign_ok(rule, r[f]):
            bad(f, "sign or magnitude for the kind")
    if not lo <= len(r["layers"]) <= hi:
        bad("n_layers", "range for the kind")
    seen = set()
    for i, (source, fen) in enumerate(r["layers"]):
        if not graphic(source, 1, 23) or source in seen:
            bad("layers[%d].source" % i, "1..23 graphic ASCII, distinct")
        seen.add(source)
        if not sign_ok(sub, fen):
            bad("layers[%d].fen" % i, "sign for the kind")
    if sum(f for _, f in r["layers"]) != r["subsidy_fen"]:
        bad("subsidy_fen", "differs from the layers' sum")
    if r["subsidy_fen"] + r["wallet_fen"] + r["cash_fen"] != r["price_fen"]:
        bad("price_fen", "differs from subsidy + wallet + cash")
    if not 0 <= r["weight_g"] <= 1000000:
        bad("weight_g", "0..1000000")
    if not 0 <= r["price_per_100g_fen"] <= MAX_FEN:
        bad("price_per_100g_fen", "0..100000000")
    if r["reason"] and r["reason"] not in REASONS:
        bad("reason", "not a reason code")
    if r["operator"] and not graphic(r["operator"], 1, 16):
        bad("operator", "empty or 1..16 graphic ASCII")
    if not 0 <= r["utc_s"] <= 253402300799:
        bad("utc_s", "range")
    for f in ("mono_ms", "boot_no", "policy_version"):
        if r[f] < 0:
            bad(f, ">= 0")
    if r["clock_trusted"] not in (0, 1):
        bad("clock_trusted", "0 or 1")
    if not (1 <= r["reverses_seq"] < r["seq"] if reverses else r["reverses_seq"] == 0):
        bad("reverses_seq", "by kind")
    if not (graphic(r["ref"], 1, 64) if ref else r["ref"] == ""):
        bad("ref", "by kind")
    if abs(r["wallet_after_fen"]) > MAX_BALANCE:
        bad("wallet_after_fen", "range")
    if not 0 <= r["card_prev_seq"] < r["seq"]:
        bad("card_prev_seq", "0 or an earlier record")
    by, ident, sup = r.get("identified", 1), r.get("ident", ""), r.get("supervisor", "")
    if by not in (1, 2, 3) or (by != 1 and r["kind"] != 1):
        bad("identified", "1, or 2 / 3 for a meal")
    if not (ident_ok(ident) if by == 2 else ident == ""):
        bad("ident", "an identifier for identified 2, else empty")
    if by == 3 and (not graphic(sup, 1, 16) or not graphic(r["operator"], 1, 16)
                    or sup == r["operator"]):
        bad("supervisor" if not graphic(sup, 1, 16) else "operator", "two staff ids that differ")
    if by != 3 and sup:
        bad("supervisor", "empty unless identified 3")


def ident_ok(s):
    """§3.5 ident: A: or B:, the UID (4, 7, 10 bytes) or PUPI (4) in upper-case
    hex; not a random UID (4 bytes, the first 08), not all 00 or all FF."""
    if len(s) < 2 or s[:2] not in ("A:", "B:") or any(c not in "0123456789ABCDEF" for c in s[2:]):
        return False
    b = bytes.fromhex(s[2:]) if len(s) % 2 == 0 else b""
    if len(b) not in ((4,) if s[0] == "B" else (4, 7, 10)):
        return False
    random = s[0] == "A" and len(b) == 4 and b[0] == 0x08
    return not random and b != bytes(len(b)) and b != b"\xff" * len(b)


# --- §3.1-§3.3 the frame ------------------------------------------------------------

def mac(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


# --- §10: ECDSA P-256 (SEC 2 secp256r1 = NIST P-256; SEC 1 §4.1 signing and verifying) ------

P256_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
          0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def _ec_add(a, b):
    """Affine point addition on y^2 = x^3 - 3x + b (None: the point at infinity)."""
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0] and (a[1] + b[1]) % P256_P == 0:
        return None
    if a == b:
        lam = 3 * (a[0] * a[0] - 1) * pow(2 * a[1], -1, P256_P)
    else:
        lam = (b[1] - a[1]) * pow(b[0] - a[0], -1, P256_P)
    x = (lam * lam - a[0] - b[0]) % P256_P
    return x, (lam * (a[0] - x) - a[1]) % P256_P


def _ec_mul(k, pt):
    out = None
    while k:
        if k & 1:
            out = _ec_add(out, pt)
        pt, k = _ec_add(pt, pt), k >> 1
    return out


def p256_public(d):
    """The uncompressed point 04 || X || Y of private scalar d."""
    x, y = _ec_mul(d, P256_G)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def p256_point(pub):
    """The point of a 65-byte public key, or None when it is not one of P-256."""
    if len(pub) != 65 or pub[0] != 4:
        return None
    x, y = int.from_bytes(pub[1:33], "big"), int.from_bytes(pub[33:], "big")
    if x >= P256_P or y >= P256_P or (y * y - (x * x * x - 3 * x + P256_B)) % P256_P:
        return None
    return x, y


def p256_sign(d, data):
    """r || s of SHA-256(data) under private scalar d."""
    e = int.from_bytes(hashlib.sha256(data).digest(), "big")
    while True:
        k = 1 + secrets.randbelow(P256_N - 1)
        r = _ec_mul(k, P256_G)[0] % P256_N
        s = pow(k, -1, P256_N) * (e + r * d) % P256_N
        if r and s:
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def p256_verify(pub, data, sig):
    q = p256_point(pub)
    if q is None or len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (1 <= r < P256_N and 1 <= s < P256_N):
        return False
    e = int.from_bytes(hashlib.sha256(data).digest(), "big")
    w = pow(s, -1, P256_N)
    pt = _ec_add(_ec_mul(e * w % P256_N, P256_G), _ec_mul(r * w % P256_N, q))
    return pt is not None and pt[0] % P256_N == r


class KeyPair:
    """A terminal's credential of §10: its private scalar (the terminal's side)
    or only the enrolled public key (the receiver's side)."""

    def __init__(self, d=None, pub=None):
        self.d = d
        self.pub = p256_public(d) if d is not None else pub

    @staticmethod
    def new():
        return KeyPair(1 + secrets.randbelow(P256_N - 1))


def trailer(cred, signed):
    """§3 or §10: the HMAC under a shared key (bytes), or a key pair's signature."""
    return p256_sign(cred.d, signed) if isinstance(cred, KeyPair) else mac(cred, signed)


def encode_batch(key, batch_id, records, prev_hash, level=9):
    """The frame of records (dicts, consecutive seqs, one terminal), chained
    from prev_hash, authenticated by key: a shared key (bytes, §3) or a
    KeyPair (flags bit 0, §10). Returns (frame, head_hash); fills each
    record's "hash"."""
    strings, index = [""], {"": 0}

    def sidx(s):
        if s not in index:
            index[s] = len(strings)
            strings.append(s)
        return index[s]

    cols = bytearray()
    n = len(records)
    first = records[0]["seq"]
    for r in records:                       # 1 kind
        put_uv(cols, r["kind"])
    prev = 0
    for r in records:                       # 2 tap_id, s delta
        put_uv(cols, zz(r["tap_id"] - prev))
        prev = r["tap_id"]
    prev = 0
    for r in records:                       # 3 card_no
        v = numeric_card(r["card_no"])
        if v is None:
            put_uv(cols, 0)
            put_uv(cols, sidx(r["card_no"]))
        else:
            put_uv(cols, zz(v - prev) + 1)
            prev = v
    for f in ("category", "period"):        # 4, 5
        for r in records:
            put_uv(cols, sidx(r[f]))
    prev = 0
    for r in records:                       # 6 local_ymd
        put_uv(cols, zz(r["local_ymd"] - prev))
        prev = r["local_ymd"]
    for f in ("price_fen", "subsidy_fen", "wallet_fen", "cash_fen"):  # 7-10
        for r in records:
            put_uv(cols, zz(r[f]))
    for r in records:                       # 11
        put_uv(cols, len(r["layers"]))
    for r in records:                       # 12
        for source, fen in r["layers"]:
            put_uv(cols, sidx(source))
            put_uv(cols, zz(fen))
    for f in ("weight_g", "price_per_100g_fen"):  # 13, 14
        for r in records:
            put_uv(cols, zz(r[f]))
    for f in ("reason", "operator"):        # 15, 16
        for r in records:
            put_uv(cols, sidx(r[f]))
    prev = 0
    for r in records:                       # 17 utc_s
        put_uv(cols, zz(r["utc_s"] - prev))
        prev = r["utc_s"]
    pu, pm = 0, 0
    for r in records:                       # 18 mono_ms against the wall clock's step
        put_uv(cols, zz((r["mono_ms"] - pm) - 1000 * (r["utc_s"] - pu)))
        pu, pm = r["utc_s"], r["mono_ms"]
    prev = 0
    for r in records:                       # 19 boot_no
        put_uv(cols, zz(r["boot_no"] - prev))
        prev = r["boot_no"]
    for r in records:                       # 20
        put_uv(cols, r["clock_trusted"])
    for r in records:                       # 21
        put_uv(cols, r["seq"] - r["reverses_seq"] if r["reverses_seq"] else 0)
    for r in records:                       # 22
        put_uv(cols, sidx(r["ref"]))
    prev = 0
    for r in records:                       # 23 policy_version
        put_uv(cols, zz(r["policy_version"] - prev))
        prev = r["policy_version"]
    for r in records:                       # 24 wallet_after against the prediction
        predicted = 0
        if r["card_prev_seq"] >= first:
            predicted = records[r["card_prev_seq"] - first]["wallet_after_fen"] - r["wallet_fen"]
        put_uv(cols, zz(r["wallet_after_fen"] - predicted))
    for r in records:                       # 25
        put_uv(cols, r["seq"] - r["card_prev_seq"] if r["card_prev_seq"] else 0)
    version = 2 if any(r.get("identified", 1) != 1 for r in records) else 1
    if version == 2:
        for r in records:                   # 26-28
            put_uv(cols, r.get("identified", 1))
        for f in ("ident", "supervisor"):
            for r in records:
                put_uv(cols, sidx(r.get(f, "")))
    raw = bytearray()
    put_uv(raw, len(strings))
    for s in strings:
        b = s.encode()
        put_uv(raw, len(b))
        raw += b
    raw += cols
    body = zlib.compress(bytes(raw), level)
    h = prev_hash
    for r in records:
        r["hash"] = h = chain_hash(r, h)
    terminal = records[0]["terminal"].encode()
    flags = 1 if isinstance(key, KeyPair) else 0
    header = MAGIC + struct.pack(">HH", version, flags) + terminal + bytes(16 - len(terminal))
    header += struct.pack(">QQQIIII", batch_id, first, records[-1]["seq"], n, len(raw), len(body),
                          zlib.crc32(body) & 0xFFFFFFFF)
    header += prev_hash + h
    signed = header + body
    return signed + trailer(key, signed), h


def peek(frame):
    """§3.1: the header as a dict; Refused for a bad one."""
    if len(frame) < HEADER_LEN + MAC_LEN or frame[:4] != MAGIC:
        raise Refused("bad_frame", "magic or length")
    version, flags = struct.unpack(">HH", frame[4:8])
    term = frame[8:24]
    tlen = term.find(b"\0") if b"\0" in term else 16
    if version not in (1, 2) or flags not in (0, 1) or tlen == 0 or any(term[tlen:]) or \
            not all(0x21 <= c <= 0x7E for c in term[:tlen]):
        raise Refused("bad_frame", "version, flags or terminal")
    bid, first, last, count, raw_len, body_len, crc = struct.unpack(">QQQIIII", frame[24:64])
    if not (1 <= bid < 2**63 and 1 <= first <= last < 2**63 and count == last - first + 1):
        raise Refused("bad_frame", "ids or count")
    if count > MAX_RECORDS or raw_len > MAX_RAW or body_len > MAX_BODY:
        raise Refused("too_large", "sizes over the caps")
    if raw_len < 24 * count + 2 or body_len < 1 or \
            len(frame) != HEADER_LEN + body_len + (64 if flags else MAC_LEN):
        raise Refused("bad_frame", "sizes")
    return dict(version=version, signed=flags == 1, terminal=term[:tlen].decode(), batch_id=bid, first_seq=first, last_seq=last,
                count=count, raw_len=raw_len, body_len=body_len, crc32=crc,
                prev_hash=frame[64:96], head_hash=frame[96:128])


def decode_batch(key, frame):
    """§3.4's verification order. Returns (header, records, raw)."""
    h = peek(frame)
    body = frame[HEADER_LEN:HEADER_LEN + h["body_len"]]
    if zlib.crc32(body) & 0xFFFFFFFF != h["crc32"]:
        raise Refused("bad_crc_or_chain", "CRC-32")
    signed, tail = frame[:HEADER_LEN + h["body_len"]], frame[HEADER_LEN + h["body_len"]:]
    if isinstance(key, KeyPair):  # §10: a signed frame, and it verifies
        if not h["signed"] or not p256_verify(key.pub, signed, tail):
            raise Refused("bad_mac", "signature")
    elif h["signed"] or not hmac.compare_digest(mac(key, signed), tail):
        raise Refused("bad_mac", "HMAC")
    d = zlib.decompressobj()
    try:
        raw = d.decompress(body, h["raw_len"])
    except zlib.error:
        raise Refused("bad_body", "not a zlib stream")
    if d.unconsumed_tail:
        raise Refused("too_large", "inflates beyond raw_len")
    if not d.eof or d.unused_data or len(raw) != h["raw_len"]:
        raise Refused("bad_body", "not exactly raw_len bytes")
    rd = Reader(raw)
    n_str = rd.uv()
    strings = []
    for i in range(n_str):
        ln = rd.uv()
        b = raw[rd.pos:rd.pos + ln]
        if ln > 255 or len(b) != ln or not utf8_ok(b) or (i == 0 and ln):
            raise Refused("bad_body", "string table")
        strings.append(b.decode())
        rd.pos += ln
    if not strings:
        raise Refused("bad_body", "empty string table")

    def s():
        i = rd.uv()
        if i >= len(strings):
            raise Refused("bad_body", "string index")
        return strings[i]

    n, first = h["count"], h["first_seq"]
    recs = [dict(seq=first + i, terminal=h["terminal"]) for i in range(n)]
    for r in recs:
        r["kind"] = rd.uv()
    prev = 0
    for r in recs:
        prev = wrap64(prev + rd.sv())
        r["tap_id"] = prev
    prev = 0
    for r in recs:
        u = rd.uv()
        if u == 0:
            r["card_no"] = s()
            if numeric_card(r["card_no"]) is not None:
                raise Refused("bad_body", "numeric card number sent as a string")
        else:
            prev = (prev + unzz(u - 1)) & (2**64 - 1)
            if prev >= 2**63:
                raise Refused("bad_body", "card number out of range")
            r["card_no"] = str(prev)
    for f in ("category", "period"):
        for r in recs:
            r[f] = s()
    prev = 0
    for r in recs:
        prev = wrap64(prev + rd.sv())
        r["local_ymd"] = prev
    for f in ("price_fen", "subsidy_fen", "wallet_fen", "cash_fen"):
        for r in recs:
            r[f] = rd.sv()
    for r in recs:
        r["n"] = rd.uv()
        if r["n"] > 4:
            raise Refused("bad_body", "n_layers")
    for r in recs:
        r["layers"] = [(s(), rd.sv()) for _ in range(r.pop("n"))]
    for f in ("weight_g", "price_per_100g_fen"):
        for r in recs:
            r[f] = rd.sv()
    for f in ("reason", "operator"):
        for r in recs:
            r[f] = s()
    prev = 0
    for r in recs:
        prev = wrap64(prev + rd.sv())
        r["utc_s"] = prev
    pu, pm = 0, 0
    for r in recs:
        pm = wrap64(pm + rd.sv() + 1000 * (r["utc_s"] - pu))
        r["mono_ms"], pu = pm, r["utc_s"]
    prev = 0
    for r in recs:
        prev = wrap64(prev + rd.sv())
        r["boot_no"] = prev
    for r in recs:
        r["clock_trusted"] = rd.uv()
    for r in recs:
        d_ = rd.uv()
        if d_ >= r["seq"]:
            raise Refused("bad_body", "reverses_seq outside the journal")
        r["reverses_seq"] = r["seq"] - d_ if d_ else 0
    for r in recs:
        r["ref"] = s()
    prev = 0
    for r in recs:
        prev = wrap64(prev + rd.sv())
        r["policy_version"] = prev
    resid = [rd.sv() for _ in recs]
    for r in recs:
        d_ = rd.uv()
        if d_ >= r["seq"]:
            raise Refused("bad_body", "card_prev_seq outside the journal")
        r["card_prev_seq"] = r["seq"] - d_ if d_ else 0
    for i, r in enumerate(recs):
        predicted = 0
        if r["card_prev_seq"] >= first:
            predicted = recs[r["card_prev_seq"] - first]["wallet_after_fen"] - r["wallet_fen"]
        r["wallet_after_fen"] = wrap64(predicted + resid[i])
    for r in recs:                          # 26-28 in a version 2 frame
        r["identified"] = rd.uv() if h["version"] == 2 else 1
        if not 1 <= r["identified"] <= 3:
            raise Refused("bad_body", "identified")
    for f in ("ident", "supervisor"):
        for r in recs:
            r[f] = s() if h["version"] == 2 else ""
    if rd.pos != len(raw):
        raise Refused("bad_body", "bytes after the last column")
    prev = h["prev_hash"]
    for r in recs:
        r["hash"] = prev = chain_hash(r, prev)
    if prev != h["head_hash"]:
        raise Refused("bad_crc_or_chain", "chain does not reach head_hash")
    for r in recs:
        check_record(r)
    return h, recs, raw


def split_frames(blob):
    """§6: concatenated frames, each split off by its own header."""
    frames, off = [], 0
    while off < len(blob):
        body_len = struct.unpack(">I", blob[off + 56:off + 60])[0]
        end = off + HEADER_LEN + body_len + MAC_LEN
        frames.append(blob[off:end])
        off = end
    return frames


# --- §4 acknowledgements, §1.1 signed requests ----------------------------------------

def ack_ok(key, ack, h):
    """The acknowledgement names this batch and its MAC verifies (lowercase hex);
    a key pair's (§4, v 2) carries a signature of 128 lowercase hex digits,
    whose Ed25519 check is left to the C side."""
    head = h["head_hash"].hex()
    if isinstance(key, KeyPair):
        return (set(ack) == {"v", "terminal", "batch_id", "first_seq", "last_seq", "head_hash",
                             "sig"}
                and ack["v"] == 2 and ack["terminal"] == h["terminal"]
                and ack["batch_id"] == h["batch_id"] and ack["first_seq"] == h["first_seq"]
                and ack["last_seq"] == h["last_seq"] and ack["head_hash"] == head
                and len(ack["sig"]) == 128 and all(c in "0123456789abcdef" for c in ack["sig"]))
    msg = "YNACK1 %s %d %d %d %s" % (ack["terminal"], ack["batch_id"], ack["first_seq"],
                                    ack["last_seq"], ack["head_hash"])
    want = mac(key, msg.encode()).hex()
    return (set(ack) == {"v", "terminal", "batch_id", "first_seq", "last_seq", "head_hash", "mac"}
            and ack["v"] == 1 and ack["terminal"] == h["terminal"]
            and ack["batch_id"] == h["batch_id"] and ack["first_seq"] == h["first_seq"]
            and ack["last_seq"] == h["last_seq"] and ack["head_hash"] == head
            and hmac.compare_digest(ack["mac"], want))


def signed_request(key, obj):
    """(body, X-YN-MAC) of a JSON request (§1.1); with a KeyPair the value of
    X-YN-SIG instead (§10)."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return body, trailer(key, body).hex()
