#!/bin/sh
# interop.sh — the protocol against a second implementation written from
# sync/PROTOCOL.md alone (tests/interop/ynproto.py, Python standard library):
# a real daemon makes debits while the district is down and exports them
# (yinian-diag export); the Python side decodes the page's vectors and those
# batches, checks them against the ledger, re-encodes them byte for byte and
# uploads them; then its own terminals, one with a shared key and one with a
# key pair, talk to the real server (interop.py says what is checked). Runs on the district's storage backend of the run
# (YN_DISTRICT_BACKEND). About 15 s.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
usb=$TMPDIR/usb
fail() { echo "FAIL: $*" >&2; exit 1; }
port=$((20000 + $$ % 20000))
export YN_DEMO_PORT=$port
tools/demo-setup "$run" "$BUILD" >/dev/null
db=$(tests/support/district-db "$run/district.db")
district() { "$BUILD/yinian-district" --db "$db" "$@"; }
if [ "$db" != "$run/district.db" ]; then
    district publish-policy "$run/policy.json" >/dev/null
    district lost 4403040010 >/dev/null
fi
server=
serve() {
    "$BUILD/yinian-district" --db "$db" serve --cert "$run/tls/server.pem" \
        --key "$run/tls/server.key" --district-key "$run/keys/district.key" \
        --listen 127.0.0.1 --port "$port" >>"$run/district.log" 2>&1 &
    server=$!
    python3 -c 'import socket, sys, time
for i in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close(); break
    except OSError:
        time.sleep(0.05)' "$port"
}
trap '[ -z "$server" ] || kill $server 2>/dev/null || true' EXIT

# the daemon enrols, then debits with the district down: two batches exported
serve
"$BUILD/yinian-pos" --config "$run/board.conf" --enrol "$(district enrol-token T-FT-0001 C-FT-001)" \
    >/dev/null 2>&1 || fail "daemon enrolment"
kill $server; wait $server 2>/dev/null || true; server=
sed -e '/^\[input\]/,/^\[/s/^backend = terminal/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = terminal/backend = sim/' "$run/board.conf" >"$run/script.conf"
printf 'card:0 wait:100 remove quit\n' >"$run/keys.txt"
timeout 30 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run 1"
"$BUILD/yinian-diag" --config "$run/board.conf" export "$TMPDIR/early" >/dev/null || fail "early export"
printf 'card:1 wait:100 remove card:2 wait:100 remove card:3 wait:100 remove card:5 wait:100 remove quit\n' \
    >"$run/keys.txt"
timeout 30 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run 2"
"$BUILD/yinian-diag" --config "$run/board.conf" export "$usb" >/dev/null || fail "export"

# the Python terminal's tokens: T-PY-0001 at C-PY-1, then re-enrolled at C-PY-2
serve
token=$(district enrol-token T-PY-0001 C-PY-1)
token2=$(district enrol-token T-PY-0001 C-PY-2)
token3=$(district enrol-token T-PY-0002 C-PY-1) # a key pair (§10)
python3 tests/interop/interop.py --spec sync/PROTOCOL.md --export "$usb" --ledger "$run/ledger.db" \
    --key "$run/keys/terminal.key" --host 127.0.0.1 --port "$port" --ca "$run/tls/ca.pem" \
    --token "$token" --token2 "$token2" --token3 "$token3" --district "$BUILD/yinian-district" --db "$db" ||
    { tail -20 "$run/district.log" >&2; fail "interop.py"; }
echo "interop: ok (vectors, a daemon's batches, a Python terminal; $(district stats | tr '\n' ' '))"
