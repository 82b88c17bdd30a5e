#!/bin/sh
# usb_export.sh — records carried on a USB stick when the network is down:
# debits made while the district is unreachable, `yinian-diag export` to a
# folder, `yinian-district import` of it (no network) storing them exactly
# once with the same totals as the ledger, a second import changing nothing,
# `yinian-diag import-ack` marking them sent (a tampered acknowledgement is
# refused first), and on a copy of the terminal the normal sync
# acknowledging the same batch when the network returns (re-sending is
# harmless: the district keeps its totals). With YN_KEY_PAIR=1 the terminal's
# key is a key pair (sync/PROTOCOL.md §10): the batches on the stick are signed,
# the district's acknowledgements signed by its key (import --district-key).
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
usb=$TMPDIR/usb
fail() { echo "FAIL: $*" >&2; exit 1; }
port=$((20000 + $$ % 20000))
export YN_DEMO_PORT=$port
tools/demo-setup "$run" "$BUILD" >/dev/null
. "$run/keys.env" # YN_KEYS_BACKEND=pkcs11: the keys are in a SoftHSM2 token
pair=${YN_KEY_PAIR:-0}
tag=mac import_opts=
if [ "$pair" = 1 ]; then
    sed -i "/^\[keys\]/,/^\[/s|^terminal_key_type = .*|terminal_key_type = ecdsa-p256|" "$run/board.conf"
    rm -f "$run/keys/terminal.key"
    tag=sig import_opts="--district-key $run/keys/district.key"
fi
district() { "$BUILD/yinian-district" --db "$run/district.db" "$@"; }
serve() {
    "$BUILD/yinian-district" --db "$run/district.db" serve --cert "$run/tls/server.pem" \
        --key "$run/tls/server.key" --district-key "$run/keys/district.key" \
        --listen 127.0.0.1 --port "$port" >>"$run/district.log" 2>&1 &
    server=$!
}
server=
trap '[ -z "$server" ] || kill $server 2>/dev/null || true' EXIT
unsent() { # records waiting, from yinian-diag --json (run dir)
    "$BUILD/yinian-diag" --config "$1/board.conf" --root "$TMPDIR/none" --json |
        grep -o '"unsent":[0-9]*' | cut -d: -f2
}

# enrol while the district is up, then take it down
serve
token=$(district enrol-token T-FT-0001 C-FT-001)
ok=no
for try in 1 2 3 4 5 6 7 8 9 10; do
    "$BUILD/yinian-pos" --config "$run/board.conf" --enrol "$token" >/dev/null 2>&1 && { ok=yes; break; }
    sleep 0.5
done
[ $ok = yes ] || fail "enrolment"
kill $server; wait $server 2>/dev/null || true; server=

# three debits while the district is down: they stay unsent. An export after
# the first leaves batch 1 open (as a sync retrying it would), so the export
# below carries batch 1 (record 1) and batch 2 (records 2..3)
sed -e '/^\[input\]/,/^\[/s/^backend = terminal/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = terminal/backend = sim/' "$run/board.conf" >"$run/script.conf"
printf 'card:0 wait:100 remove quit\n' >"$run/keys.txt"
timeout 30 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run 1"
"$BUILD/yinian-diag" --config "$run/board.conf" export "$TMPDIR/early" >/dev/null || fail "early export"
printf 'card:1 wait:100 remove card:2 wait:100 remove quit\n' >"$run/keys.txt"
timeout 30 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run 2"
[ "$(unsent "$run")" = 3 ] || fail "3 records should wait, not '$(unsent "$run")'"
# as the district reports them: records, price, meal subsidy, allocations (none), wallet, cash
ledger_sums=$(sqlite3 "$run/ledger.db" "SELECT count(*)||','||sum(price_fen)||','||sum(subsidy_fen)||',0,'||sum(wallet_fen)||','||sum(cash_fen) FROM journal")

# export to the stick
"$BUILD/yinian-diag" --config "$run/board.conf" export "$usb" >"$TMPDIR/export.out" || fail "export"
ls "$usb"/batch-T-FT-0001-*.ynb >/dev/null 2>&1 || fail "no batch file"
man=$usb/manifest-T-FT-0001.json
grep -q '"terminal": "T-FT-0001"' "$man" || fail "manifest terminal"
grep -q '"records": 3' "$man" || fail "manifest count"
grep -q '"head_seq": 3' "$man" || fail "manifest head"
grep -q '"batch_id": 2' "$man" || fail "manifest: the open batch 1, then batch 2"
grep -q '"created_utc": "20' "$man" || fail "manifest time"
price=$(echo "$ledger_sums" | cut -d, -f2)
grep -q "\"price_fen\": $price" "$man" || fail "manifest sum vs ledger $price"
[ "$(unsent "$run")" = 3 ] || fail "export alone must not mark records sent"

# cp of the terminal before acknowledgement: for the sync path below
cp -a "$run" "$TMPDIR/run2"
rm -f "$TMPDIR/run2/district.db" "$TMPDIR/run2/district.db-wal" "$TMPDIR/run2/district.db-shm"

# the district imports the stick: no network
if [ "$pair" = 1 ]; then # signed batches are read; their acknowledgements need the district key
    [ "$(head -c 8 "$(ls "$usb"/batch-T-FT-0001-*.ynb | head -1)" | od -An -tx1 | tr -d ' \n')" = 594e423100010001 ] ||
        fail "the exported batch is not a signed frame (flags bit 0)"
    cp -a "$usb" "$TMPDIR/usb-nokey"
    for f in "$run"/district.db*; do cp "$f" "$TMPDIR/nokey${f#"$run"/district}"; done
    rc=0; "$BUILD/yinian-district" --db "$TMPDIR/nokey.db" import "$TMPDIR/usb-nokey" >"$TMPDIR/nokey.out" 2>&1 || rc=$?
    [ $rc != 0 ] && grep -q 'no acknowledgement written.*--district-key' "$TMPDIR/nokey.out" ||
        { cat "$TMPDIR/nokey.out"; fail "import of a key-pair terminal's batches without --district-key"; }
    ! ls "$TMPDIR/usb-nokey"/ack-* >/dev/null 2>&1 || fail "an acknowledgement without the district key"
fi
# shellcheck disable=SC2086 # import_opts: words on purpose
district import "$usb" $import_opts >"$TMPDIR/import1.out" || { cat "$TMPDIR/import1.out"; fail "import"; }
grep -q '3 new records stored' "$TMPDIR/import1.out" || fail "first import stores 3"
n_batches=$(ls "$usb"/batch-T-FT-0001-*.ynb | wc -l)
[ "$(ls "$usb"/ack-T-FT-0001-*.json | wc -l)" = "$n_batches" ] || fail "one acknowledgement per batch"
ack=$(ls "$usb"/ack-T-FT-0001-*.json | head -1)
district report terminal | tr -d '\r' >"$TMPDIR/report1.csv"
[ "$(grep '^T-FT-0001,' "$TMPDIR/report1.csv")" = "T-FT-0001,$ledger_sums" ] ||
    fail "district $(cat "$TMPDIR/report1.csv") vs ledger $ledger_sums"
cp "$ack" "$TMPDIR/ack1.json"

# importing again changes nothing
# shellcheck disable=SC2086
district import "$usb" $import_opts >"$TMPDIR/import2.out" || fail "second import"
grep -q 'already stored, nothing changed' "$TMPDIR/import2.out" || fail "replay message"
grep -q '0 new records stored' "$TMPDIR/import2.out" || fail "replay stored something"
district report terminal | tr -d '\r' >"$TMPDIR/report2.csv"
cmp -s "$TMPDIR/report1.csv" "$TMPDIR/report2.csv" || fail "replayed import changed the report"
cmp -s "$TMPDIR/ack1.json" "$ack" || fail "replayed import gave another acknowledgement"

# a tampered acknowledgement is refused and marks nothing
cp "$ack" "$TMPDIR/ack.good"
python3 - "$ack" "$tag" <<'EOF' || sed -i "s/\"$tag\":\"\(.\)/\"$tag\":\"x\1/" "$ack"
import sys, re
p = sys.argv[1]; s = open(p).read()
i = s.index('"%s":"' % sys.argv[2]) + 7
s = s[:i] + ('0' if s[i] != '0' else '1') + s[i + 1:]
open(p, 'w').write(s)
EOF
cmp -s "$ack" "$TMPDIR/ack.good" && fail "ack not tampered"
rc=0; "$BUILD/yinian-diag" --config "$run/board.conf" import-ack "$usb" >/dev/null 2>"$TMPDIR/ack.err" || rc=$?
[ $rc = 1 ] || fail "tampered ack: exit $rc, not 1"
if [ "$pair" = 1 ]; then
    grep -q 'signature does not verify under the district key' "$TMPDIR/ack.err" || fail "tampered ack: reason"
else
    grep -q 'MAC does not verify' "$TMPDIR/ack.err" || fail "tampered ack: reason"
fi
[ "$(unsent "$run")" = 3 ] || fail "tampered ack marked records sent"

# the genuine one marks them sent; again is harmless
cp "$TMPDIR/ack.good" "$ack"
"$BUILD/yinian-diag" --config "$run/board.conf" import-ack "$usb" >"$TMPDIR/ack.out" || fail "import-ack"
grep -q 'batch 1 acknowledged: records 1\.\.' "$TMPDIR/ack.out" || fail "import-ack message"
grep -q 'records 3 marked sent\|\.\.3 marked sent' "$TMPDIR/ack.out" || fail "import-ack up to record 3"
[ "$(unsent "$run")" = 0 ] || fail "records still unsent after import-ack"
"$BUILD/yinian-diag" --config "$run/board.conf" import-ack "$usb" >"$TMPDIR/ack2.out" || fail "import-ack again"
grep -q 'acknowledged already' "$TMPDIR/ack2.out" || fail "import-ack again message"
# a USB acknowledgement is no sync: the network never came back (d18a5b3: "last sync 0 s ago")
"$BUILD/yinian-diag" --config "$run/board.conf" --root "$TMPDIR/flash" >"$TMPDIR/diag.out" || true
grep -q 'last sync never (records acknowledged by USB stick [0-9] s ago)' "$TMPDIR/diag.out" ||
    { cat "$TMPDIR/diag.out" >&2; fail "diag after import-ack: sync line"; }
"$BUILD/yinian-diag" --config "$run/board.conf" export "$usb" | grep -q 'nothing to export' || fail "export after ack"

# the copy never saw the acknowledgement: its sync re-sends the batch when the
# network returns, the district stores nothing new and acknowledges it
serve
sed -i "/^\[sync\]/,/^\[/s|^interval_s = .*|interval_s = 5|" "$TMPDIR/run2/script.conf"
printf 'wait:6000 quit\n' >"$TMPDIR/run2/keys.txt"
timeout 30 "$BUILD/yinian-pos" --config "$TMPDIR/run2/script.conf" >/dev/null 2>"$TMPDIR/run2/terminal.log" ||
    fail "daemon run on the copy"
[ "$(unsent "$TMPDIR/run2")" = 0 ] || { tail "$TMPDIR/run2/terminal.log" >&2; fail "sync did not acknowledge the exported batch"; }
district report terminal | tr -d '\r' >"$TMPDIR/report3.csv"
cmp -s "$TMPDIR/report1.csv" "$TMPDIR/report3.csv" || fail "re-sent batch changed the district's totals"
echo "usb_export: ok (T-FT-0001,$ledger_sums exactly once; replay, tampered ack, sync after import$([ "$pair" = 1 ] && echo '; key pair'))"
