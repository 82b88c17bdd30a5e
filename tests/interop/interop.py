#!/usr/bin/env python3
"""interop.py — the protocol proved by a second implementation (ynproto.py,
written from sync/PROTOCOL.md alone, standard library only):

1. it decodes the page's own vectors (§8 frame, §3.6 record encoding and
   hash), read out of the page itself;
2. it decodes the batches a real daemon wrote (yinian-diag export), checks
   them against the terminal's ledger field by field, re-encodes them to the
   same bytes, and the reference server accepts them;
3. its own terminal enrols, uploads meals, a reversal, top-ups and a
   batch of 24-byte records, gets valid acknowledgements, replays a batch,
   has hostile records refused with the field named, asks for updates,
   restores its frames byte for byte (§6) and re-enrols at another canteen
   with last_seq (§2.2); the server's report then agrees to the fen;
4. a terminal with a key pair (§10) checks the page's signed vector, enrols
   its public key, has signed batches acknowledged (v 2) and signed requests
   answered; another pair's signature, a MACed frame and X-YN-MAC from it are
   refused with 401.

Run by tests/interop/interop.sh (make check, on both storage backends)."""

import argparse
import glob
import http.client
import json
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ynproto as yn  # noqa: E402

checks = failures = 0


def check(cond, what):
    global checks, failures
    checks += 1
    if not cond:
        failures += 1
        print("FAIL interop: %s" % what, file=sys.stderr)
    return cond


# --- 1. the page's vectors ----------------------------------------------------

def page_blocks(text, after):
    """The hex of the first ``` block after the heading text `after`."""
    i = text.index(after)
    m = re.search(r"```\n([0-9a-f\n]+)```", text[i:])
    return bytes.fromhex(m.group(1).replace("\n", ""))


def vectors(spec_path):
    text = open(spec_path, encoding="utf-8").read()
    key = bytes(range(1, 33))
    frame = page_blocks(text, "## 8. Test vectors")
    inflated = page_blocks(text, "The inflated body:")
    enc1 = page_blocks(text, "encodes to these 209 bytes")
    hash1 = re.search(r"hash\(1\) = SHA-256\(those bytes ‖ 32 zero bytes\) =\s*([0-9a-f]{64})",
                      text).group(1)
    h, recs, raw = yn.decode_batch(key, frame)
    check(raw == inflated, "§8 inflated body")
    check(h["terminal"] == "T-0001" and h["batch_id"] == 1 and h["first_seq"] == 1
          and h["last_seq"] == 2 and h["raw_len"] == 128, "§8 header")
    r1, r2 = recs
    check(yn.encode_record(r1) == enc1, "§3.6 record 1 encodes to the page's 209 bytes")
    check(r1["hash"].hex() == hash1, "§3.6 hash(1)")
    check(r1["card_no"] == "44030400000000" and r1["category"] == "dibao"
          and r1["layers"] == [("city", 600), ("district", 600)] and r1["clock_trusted"] == 0
          and r1["operator"] == "staff01" and r1["policy_version"] == 7
          and r1["wallet_after_fen"] == 10000, "§8 record 1")
    check(r2["card_no"] == "44030400000419" and r2["wallet_fen"] == 700
          and r2["utc_s"] == 1740970813 and r2["mono_ms"] == 5013001
          and r2["wallet_after_fen"] == 9900 and r2["hash"] == h["head_hash"], "§8 record 2")
    again, _ = yn.encode_batch(key, 1, [dict(r) for r in recs], bytes(32))
    check(again == frame, "§8 frame re-encoded byte for byte")
    # version 2 (§8): an identity-only card and a manual entry
    frame = page_blocks(text, "### Version 2")
    inflated = page_blocks(text, "columns 26-28 at its end")
    h, recs, raw = yn.decode_batch(key, frame)
    check(h["version"] == 2 and raw == inflated and h["raw_len"] == 135, "§8 version 2 header")
    r1, r2 = recs
    check(r1["identified"] == 2 and r1["ident"] == "A:04A1B2C3D4E5F6"
          and r1["card_no"] == "44030400000001" and r1["supervisor"] == ""
          and r1["hash"].hex().startswith("0362de02"), "§8 version 2 record 1")
    check(r2["identified"] == 3 and r2["ident"] == "" and r2["supervisor"] == "super02"
          and r2["operator"] == "staff01" and r2["hash"] == h["head_hash"],
          "§8 version 2 record 2")
    for r in recs:
        yn.check_record(r)
    again, _ = yn.encode_batch(key, 1, [dict(r) for r in recs], bytes(32))
    check(again == frame, "§8 version 2 frame re-encoded byte for byte")
    # raw_len's floor (§3.1): 40 records of 24 bytes each
    small = [record("T-0001", 1 + i, 1 + i, price=0) for i in range(40)]
    for r in small:
        r.update(layers=[], subsidy_fen=0, cash_fen=0, category="", period="", card_no="1",
                 utc_s=1773115300, mono_ms=1000, policy_version=0)
    f, _ = yn.encode_batch(key, 2, small, bytes(32))
    h, _, raw = yn.decode_batch(key, f)
    check(24 * 40 + 2 <= h["raw_len"] < 25 * 40, "40 records in %d bytes" % h["raw_len"])
    # §10: the signed vector, by the key pair of private scalar 01..20
    pair = yn.KeyPair(int.from_bytes(bytes(range(1, 33)), "big"))
    check(pair.pub == page_blocks(text, "has the public\nkey"), "§10 public key of 01..20")
    signed = page_blocks(text, "(ECDSA signatures are randomised")
    h, recs, _ = yn.decode_batch(yn.KeyPair(pub=pair.pub), signed)
    check(h["signed"] and h["version"] == 1 and recs[1]["card_no"] == "44030400000419",
          "§10 signed vector verifies")
    for cred, what in ((key, "the shared key"), (yn.KeyPair.new(), "another key pair")):
        try:
            yn.decode_batch(cred, signed)
            check(False, "§10 vector authenticated by %s" % what)
        except yn.Refused as e:
            check(e.code == "bad_mac", "§10 vector under %s: %s" % (what, e.code))


# --- 2. a real daemon's batches -------------------------------------------------

JOURNAL = ("SELECT seq, terminal, tap_id, card_no, kind, category, period, local_ymd, price_fen,"
           " subsidy_fen, wallet_fen, cash_fen, src1, fen1, src2, fen2, src3, fen3, src4, fen4,"
           " weight_g, per100g_fen, reason, operator, utc_s, mono_ms, boot_no, clock_trusted,"
           " reverses_seq, ref, policy_version, wallet_after_fen, card_prev_seq, hash FROM journal"
           " WHERE seq = ?")


def daemon_batches(export_dir, ledger_path, key, conn):
    db = sqlite3.connect("file:%s?mode=ro" % ledger_path, uri=True)
    files = sorted(glob.glob(os.path.join(export_dir, "batch-*.ynb")))
    check(len(files) >= 2, "the daemon exported %d batches" % len(files))
    n = 0
    for path in files:
        frame = open(path, "rb").read()
        h, recs, raw = yn.decode_batch(key, frame)
        for r in recs:
            row = db.execute(JOURNAL, (r["seq"],)).fetchone()
            (seq, terminal, tap, card, kind, cat, per, ymd, price, sub, wal, cash) = row[:12]
            layers = [(row[12 + 2 * i], row[13 + 2 * i]) for i in range(4)
                      if row[12 + 2 * i] is not None]
            rest = row[20:]
            mine = (seq, terminal, tap or 0, card, kind, cat or "", per or "", ymd, price, sub, wal,
                    cash, layers, rest[0], rest[1], rest[2] or "", rest[3] or "", rest[4], rest[5],
                    rest[6], rest[7], rest[8] or 0, rest[9] or "", rest[10], rest[11], rest[12],
                    bytes(rest[13]))
            theirs = (r["seq"], r["terminal"], r["tap_id"], r["card_no"], r["kind"],
                      r["category"], r["period"], r["local_ymd"], r["price_fen"],
                      r["subsidy_fen"], r["wallet_fen"], r["cash_fen"], r["layers"], r["weight_g"],
                      r["price_per_100g_fen"], r["reason"], r["operator"], r["utc_s"],
                      r["mono_ms"], r["boot_no"], r["clock_trusted"], r["reverses_seq"], r["ref"],
                      r["policy_version"], r["wallet_after_fen"], r["card_prev_seq"], r["hash"])
            check(mine == theirs, "daemon record %d decodes to the ledger's row:\n %r\n %r"
                  % (r["seq"], mine, theirs))
            n += 1
        again, _ = yn.encode_batch(key, h["batch_id"], [dict(r) for r in recs], h["prev_hash"])
        check(again == frame, "%s re-encoded byte for byte" % os.path.basename(path))
        status, body, _ = post(conn, "/v1/batches", frame)
        check(status == 200 and yn.ack_ok(key, json.loads(body), h),
              "the server takes the daemon's %s: %d %s" % (os.path.basename(path), status, body))
    check(n >= 3, "%d daemon records checked" % n)


# --- 3. our own terminal ----------------------------------------------------------

def post(conn, path, body, mac_hex=None, header="X-YN-MAC"):
    headers = {"Content-Type": "application/octet-stream"}
    if mac_hex:
        headers[header] = mac_hex
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read(), dict(resp.getheaders())


def record(terminal, seq, tap, price=1500, card="4403041234"):
    half = price // 2
    return dict(seq=seq, terminal=terminal, tap_id=tap, card_no=card, kind=1, category="age70",
                period="lunch", local_ymd=20260310, price_fen=price, subsidy_fen=half,
                wallet_fen=0, cash_fen=price - half, layers=[("city", half)] if half else [],
                weight_g=0, price_per_100g_fen=0, reason="", operator="1001",
                utc_s=1773115300 + seq, mono_ms=1000 * seq, boot_no=1, clock_trusted=1,
                reverses_seq=0, ref="", policy_version=3, wallet_after_fen=0, card_prev_seq=0)


class Terminal:
    def __init__(self, conn, terminal, key):
        self.conn, self.id, self.key = conn, terminal, key
        self.held, self.prev, self.batch, self.frames, self.sent = 0, bytes(32), 0, [], []

    def send(self, recs):
        """Encode recs after what the server holds; post; (status, reply)."""
        self.batch += 1
        frame, head = yn.encode_batch(self.key, self.batch, recs, self.prev)
        status, body, _ = post(self.conn, "/v1/batches", frame)
        if status == 200:
            h = yn.peek(frame)
            check(yn.ack_ok(self.key, json.loads(body), h), "acknowledgement of batch %d verifies"
                  % self.batch)
            self.held, self.prev = recs[-1]["seq"], head
            self.frames.append(frame)
            self.sent += recs
        return status, body, frame


def own_terminal(conn, token, token2, args):
    status, body, _ = post(conn, "/v1/enrol", json.dumps({"token": token}).encode())
    check(status == 200, "enrol: %d %s" % (status, body))
    reply = json.loads(body)
    t = Terminal(conn, reply["terminal"], bytes.fromhex(reply["key"]))
    check(re.fullmatch("[0-9a-f]{64}", reply["key"]) is not None, "the key is lowercase hex")
    status, _, _ = post(conn, "/v1/enrol", json.dumps({"token": token}).encode())
    check(status == 403, "a spent token: %d" % status)

    # meals, a numeric and a string card, then a reversal and a top-up
    recs = [record(t.id, s, 100 + s) for s in range(1, 6)]
    recs[2]["card_no"] = "CARD-X"
    recs[3]["card_no"] = "0440"  # leading zero: a string
    status, body, frame = t.send(recs)
    check(status == 200, "5 meals: %d %s" % (status, body))
    status, body, _ = post(conn, "/v1/batches", frame)
    check(status == 200, "the same batch again: %d" % status)
    rev = dict(recs[0])
    rev.update(seq=6, tap_id=0, kind=2, reverses_seq=1, price_fen=-1500, subsidy_fen=-750,
               cash_fen=-750, layers=[("city", -750)])
    top = record(t.id, 7, 200, price=0)
    top.update(kind=4, subsidy_fen=0, wallet_fen=-5000, cash_fen=5000, layers=[], category="",
               period="", wallet_after_fen=5000)
    status, body, _ = t.send([rev, top])
    check(status == 200, "a reversal and a top-up: %d %s" % (status, body))

    # hostile records: 400 bad_record naming the field, nothing stored
    def refused(recs, field, what):
        held = t.held
        status, body, _ = t.send(recs)
        t.batch -= status != 200
        reply = json.loads(body) if body else {}
        check(status == 400 and reply.get("error") == "bad_record" and reply.get("field") == field,
              "%s: %d %s" % (what, status, body))
        check(t.held == held, "%s stored nothing" % what)

    again = dict(rev, seq=8, utc_s=rev["utc_s"] + 1)
    refused([again], "reverses_seq", "a second reversal of meal 1")
    bad = record(t.id, 8, 300, price=-1000000)
    bad.update(subsidy_fen=0, layers=[], cash_fen=-1000000)
    refused([bad], "price_fen", "a meal of -1,000,000 fen")
    refused([record(t.id, 8, 300, card="AB C")], "card_no", "card 'AB C'")
    big = record(t.id, 8, 300)
    big.update(kind=3, tap_id=0, ref="A-NOPE", price_fen=0, subsidy_fen=10**9, wallet_fen=-10**9,
               cash_fen=0, layers=[("district", 10**9)])
    refused([big], "subsidy_fen", "an allocation of 1e9 fen")
    # a chain that does not continue the held one
    t.prev, saved = bytes(32), t.prev
    status, body, _ = t.send([record(t.id, 8, 300)])
    t.batch -= status != 200
    t.prev = saved
    check(status == 409 and json.loads(body)["error"] == "conflict", "prev_hash: %d" % status)

    # 40 records of 24 bytes each
    small = [record(t.id, 8 + i, 300 + i, price=0) for i in range(40)]
    for r in small:
        r.update(layers=[], subsidy_fen=0, cash_fen=0, category="", period="", card_no="1",
                 utc_s=1773115300, mono_ms=1000, policy_version=0, operator="")
    status, body, _ = t.send(small)
    check(status == 200, "40 records of 24 bytes: %d %s" % (status, body))

    # version 2 frames (§3.2): an identity-only card and a 忘带卡 meal; a random
    # UID and a supervisor who served the meal himself refused
    ident = record(t.id, t.held + 1, 600)
    ident.update(identified=2, ident="A:04A1B2C3D4E5F6", supervisor="")
    manual = record(t.id, t.held + 2, 601, card="4403041235")
    manual.update(identified=3, ident="", supervisor="super02")
    refused([dict(ident, ident="A:08A1B2C3")], "ident", "a random UID")
    refused([dict(ident, identified=3, ident="", supervisor="1001")], "operator",
            "a manual entry its supervisor served")
    status, body, frame = t.send([ident, manual])
    check(status == 200 and yn.peek(frame)["version"] == 2,
          "an identity-only and a manual meal in a version 2 frame: %d %s" % (status, body))

    # updates (§5): a signed request; the document parsed (its signature is Ed25519)
    req, mac_hex = yn.signed_request(t.key, {"terminal": t.id, "roster": 0, "blacklist": 0,
                                             "allocations": 0, "policy": 0})
    status, body, _ = post(conn, "/v1/updates", req, mac_hex)
    env = json.loads(body) if status == 200 else {}
    check(status == 200 and set(env) == {"v", "payload", "sig"}, "updates: %d" % status)
    if status == 200:
        import base64
        payload = json.loads(base64.b64decode(env["payload"], validate=True))
        check(payload["terminal"] == t.id and payload["version"] >= 1
              and isinstance(payload["blacklist"], list), "the update document")
    status, _, _ = post(conn, "/v1/updates", req, mac_hex.upper())
    check(status == 401, "an uppercase X-YN-MAC is refused: %d" % status)

    # restore (§6): our frames back, byte for byte
    for after in (0, 6, t.held):
        req, mac_hex = yn.signed_request(t.key, {"terminal": t.id, "after_seq": after})
        status, blob, headers = post(conn, "/v1/records", req, mac_hex)
        want = [f for f in t.frames if yn.peek(f)["last_seq"] > after]
        check(status == 200 and yn.split_frames(blob) == want
              and int(headers.get("X-YN-Held", -1)) == t.held
              and headers.get("X-YN-More") == "0",
              "restore after %d: %d frames" % (after, len(want)))

    # re-enrolment (§2.2) at another canteen, saying the journal head: records made
    # before it (not yet uploaded) stay with the first canteen
    made_before = [record(t.id, t.held + 1 + i, 400 + i) for i in range(3)]
    status, body, _ = post(conn, "/v1/enrol", json.dumps({"token": token2,
                                                          "last_seq": t.held + 3}).encode())
    check(status == 200, "re-enrolment: %d %s" % (status, body))
    t.key = bytes.fromhex(json.loads(body)["key"])
    status, body, _ = t.send(made_before)
    check(status == 200, "records made before the move, under the new key: %d" % status)
    after_move = [record(t.id, t.held + 1 + i, 500 + i) for i in range(2)]
    status, body, _ = t.send(after_move)
    check(status == 200, "records made after the move: %d" % status)

    # the server's reports agree
    report = subprocess.run([args.district, "--db", args.db, "report", "canteen"],
                            capture_output=True, check=True).stdout.decode()
    check("\r\n" in report, "reports end lines with CRLF")
    rows = {line.split(",")[0]: line.split(",") for line in report.split("\r\n")[1:] if line}
    check(rows.get("C-PY-1", [None, None])[1] == str(t.held - 2), "C-PY-1: %r" % rows.get("C-PY-1"))
    check(rows.get("C-PY-2", [None, None])[1] == "2", "C-PY-2: %r" % rows.get("C-PY-2"))
    report = subprocess.run([args.district, "--db", args.db, "report", "terminal"],
                            capture_output=True, check=True).stdout.decode()
    row = [line.split(",") for line in report.split("\r\n") if line.startswith(t.id + ",")]
    # records, price, meal subsidy, allocations, wallet, cash: of everything sent
    sent = t.sent
    want = [str(len(sent)), str(sum(r["price_fen"] for r in sent)),
            str(sum(r["subsidy_fen"] for r in sent)), "0",
            str(sum(r["wallet_fen"] for r in sent)), str(sum(r["cash_fen"] for r in sent))]
    check(row and row[0][1:] == want, "report terminal %r, sent %r" % (row, want))


def key_pair_terminal(conn, token):
    """§10: a terminal of its own key pair beside the shared-key ones."""
    pair = yn.KeyPair.new()
    body, sig = yn.signed_request(pair, {"token": token, "pubkey": pair.pub.hex()})
    forged = yn.p256_sign(yn.KeyPair.new().d, body).hex()
    status, reply, _ = post(conn, "/v1/enrol", body, forged, "X-YN-SIG")
    check(status == 401, "enrolment signed by another pair: %d" % status)
    status, reply, _ = post(conn, "/v1/enrol", body, sig, "X-YN-SIG")
    check(status == 200, "key-pair enrolment: %d %s" % (status, reply))
    reply = json.loads(reply) if status == 200 else {"terminal": "?"}
    check(set(reply) == {"terminal", "canteen"}, "no key in a key pair's enrolment reply")
    t = Terminal(conn, reply["terminal"], pair)
    status, body, _ = t.send([record(t.id, s, 700 + s) for s in range(1, 4)])
    check(status == 200, "signed batch: %d %s" % (status, body))
    req, sig = yn.signed_request(pair, {"terminal": t.id, "roster": 0, "blacklist": 0,
                                        "allocations": 0, "policy": 0})
    check(post(conn, "/v1/updates", req, sig, "X-YN-SIG")[0] == 200, "X-YN-SIG update request")
    check(post(conn, "/v1/updates", req, yn.signed_request(bytes(32), {})[1])[0] == 401,
          "X-YN-MAC from a key-pair terminal")
    more = [record(t.id, 4, 704)]
    for cred, what in ((yn.KeyPair.new(), "another pair's signature"), (bytes(32), "a MACed frame")):
        frame, _ = yn.encode_batch(cred, t.batch + 1, [dict(r) for r in more], t.prev)
        status, body, _ = post(conn, "/v1/batches", frame)
        check(status == 401 and json.loads(body)["error"] == "bad_mac",
              "%s: %d %s" % (what, status, body))
    status, body, _ = t.send(more)
    check(status == 200 and t.held == 4, "the next signed batch: %d" % status)


def main():
    ap = argparse.ArgumentParser()
    for a in ("spec", "export", "ledger", "key", "host", "port", "ca", "token", "token2",
              "token3", "district", "db"):
        ap.add_argument("--" + a, required=True)
    args = ap.parse_args()
    vectors(args.spec)
    ctx = ssl.create_default_context(cafile=args.ca)
    conn = http.client.HTTPSConnection(args.host, int(args.port), context=ctx, timeout=30)
    key = bytes.fromhex(open(args.key).read().strip())
    daemon_batches(args.export, args.ledger, key, conn)
    own_terminal(conn, args.token, args.token2, args)
    key_pair_terminal(conn, args.token3)
    print("interop: %d checks, %d failed" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
