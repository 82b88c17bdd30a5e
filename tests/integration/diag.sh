#!/bin/sh
# diag.sh — yinian-diag on a healthy demo terminal, then on the same folder
# broken one way at a time: a reader that is not there, a terminal key that
# others can read, a ledger with garbage in the middle. Each time the check
# that must say so says FAIL with its advice, and the exit code is 1; a
# healthy terminal (WARNs allowed) exits 0. With YN_KEYS_BACKEND=pkcs11 the
# keys are in a SoftHSM2 token: the secret file is its PIN file, and the
# token's own failures (wrong label, a key missing) are reported too; the
# master key cannot be read out with pkcs11-tool, PIN and all.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
fail() { echo "FAIL: $*" >&2; [ -f "$TMPDIR/out.json" ] && cat "$TMPDIR/out.json" >&2; exit 1; }
export YN_DEMO_PORT=$((20000 + $$ % 20000))
tools/demo-setup "$run" "$BUILD" >/dev/null
. "$run/keys.env" # YN_KEYS_BACKEND=pkcs11: the keys are in a SoftHSM2 token
diag() { "$BUILD/yinian-diag" --config "$1" --root "$TMPDIR/flash" --json >"$TMPDIR/out.json"; }
# status of one check in the compact JSON: '"name":"X","status":"S"'
has() { grep -q "\"name\":\"$1\",\"status\":\"$2\"" "$TMPDIR/out.json" || fail "$3: check $1 is not $2"; }
says() { grep -q -- "$1" "$TMPDIR/out.json" || fail "$2: output lacks '$1'"; }

# a ledger with records: two debits by the real daemon (sync off, no server)
printf 'card:0 wait:100 remove card:1 wait:100 remove quit\n' >"$run/keys.txt"
sed -e '/^\[input\]/,/^\[/s/^backend = terminal/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = terminal/backend = sim/' \
    -e '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = false/' "$run/board.conf" >"$run/script.conf"
timeout 30 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$TMPDIR/pos.log" ||
    { cat "$TMPDIR/pos.log" >&2; fail "daemon run"; }

# healthy: no FAIL, exit 0; yinian-flash not used here -> versions WARN
rc=0; diag "$run/board.conf" || rc=$?
[ $rc = 0 ] || fail "healthy terminal: exit $rc"
has config OK healthy; has keys OK healthy; has reader OK healthy; has ledger OK healthy
has disk OK healthy; has versions WARN healthy; has clock WARN healthy
says '"fail":0' healthy
says '"records":2' healthy
says 'not installed with yinian-flash' healthy
# the card check reads and verifies a card (the sim reader presents its first one)
"$BUILD/yinian-diag" --config "$run/board.conf" --root "$TMPDIR/flash" --card --json >"$TMPDIR/out.json" ||
    fail "--card on a healthy terminal"
has card OK card; says 'issuer signature verified' card
# human output names every check
"$BUILD/yinian-diag" --config "$run/board.conf" --root "$TMPDIR/flash" >"$TMPDIR/out.txt" || fail "text output"
grep -q '^OK    ledger' "$TMPDIR/out.txt" || fail "text: ledger line"
grep -q '0 FAIL' "$TMPDIR/out.txt" || fail "text: summary"

# installed with yinian-flash: the state file under --root is read
mkdir -p "$TMPDIR/flash"
printf 'format = 1\nactive = b\nattempts_left = 2\na.status = confirmed\na.version = 0.1.0\nb.status = installed\nb.version = 0.2.0\n' \
    >"$TMPDIR/flash/state"
diag "$run/board.conf" || fail "on trial is a WARN, not a FAIL"
has versions WARN flash; says 'slot b (0.2.0) active on trial, 2 starts left' flash
sed -i 's/^b.status = installed/b.status = confirmed/' "$TMPDIR/flash/state"
diag "$run/board.conf" || fail "confirmed slots"
has versions OK flash; says 'slot b (active): 0.2.0 confirmed' flash

# a reader that is not there: libnfc on a serial port that does not exist
sed -e '/^\[reader\]/,/^\[/s/^backend = sim/backend = libnfc/' \
    -e "/^\[reader\]/,/^\[/s|^connstring =.*|connstring = pn532_uart:$TMPDIR/no-such-pty|" \
    "$run/board.conf" >"$run/noreader.conf"
rc=0; diag "$run/noreader.conf" || rc=$?
[ $rc = 1 ] || fail "missing reader: exit $rc, not 1"
has reader FAIL "missing reader"; has ledger OK "missing reader"
says 'connstring' "missing reader advice"

# a secret key (with a token: its PIN) others can read
secret=$run/keys/terminal.key
[ "${YN_KEYS_BACKEND:-file}" != pkcs11 ] || secret=$run/softhsm/yinian-demo.pin
chmod 644 "$secret"
rc=0; diag "$run/board.conf" || rc=$?
[ $rc = 1 ] || fail "key mode: exit $rc, not 1"
has keys FAIL "key mode"; says "chmod 600 $secret" "key mode advice"
has ledger OK "key mode"  # the other checks still ran
chmod 600 "$secret"

if [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
    diag "$run/board.conf" || fail "healthy again after chmod 600"
    has keys OK token; says "token 'yinian-demo'" "token named"
    says "yinian-card-master, 16 bytes, generation 1, sensitive, not extractable" "master attributes"
    # the token is not the one board.conf names: FAIL, and never the key files instead
    sed -e 's/^token_label = .*/token_label = another-token/' "$run/board.conf" >"$run/label.conf"
    rc=0; diag "$run/label.conf" || rc=$?
    [ $rc = 1 ] || fail "wrong token label: exit $rc, not 1"
    has keys FAIL "wrong token label"; says "token_label" "wrong token label advice"
    # the master key cannot be read out by whoever holds the board and the PIN
    module=$(sed -n 's/^pkcs11_module = //p' "$run/board.conf")
    if pkcs11-tool --module "$module" --token-label yinian-demo --login \
        --pin "$(cat "$secret")" --read-object --type secrkey --label yinian-card-master \
        >"$TMPDIR/read.out" 2>&1; then
        fail "pkcs11-tool read the master key out: $(cat "$TMPDIR/read.out")"
    fi
    grep -q 'CKR_ATTRIBUTE_SENSITIVE' "$TMPDIR/read.out" || fail "refused, but not as sensitive: $(cat "$TMPDIR/read.out")"
    pkcs11-tool --module "$module" --token-label yinian-demo --login --pin "$(cat "$secret")" \
        --list-objects --type secrkey >"$TMPDIR/objects.out" 2>&1 || fail "pkcs11-tool -O"
    grep -q 'yinian-card-master' "$TMPDIR/objects.out" || fail "master key not listed"
    grep -A3 'yinian-card-master' "$TMPDIR/objects.out" | grep -q 'never extractable\|sensitive' ||
        fail "master key attributes: $(cat "$TMPDIR/objects.out")"
fi

# garbage in the middle of the ledger file
size=$(stat -c %s "$run/ledger.db")
[ "$size" -ge 16384 ] || fail "ledger unexpectedly small ($size bytes)"
dd if=/dev/urandom of="$run/ledger.db" bs=4096 seek=$((size / 4096 / 2)) count=1 conv=notrunc 2>/dev/null
rc=0; diag "$run/board.conf" || rc=$?
[ $rc = 1 ] || fail "corrupted ledger: exit $rc, not 1"
has ledger FAIL "corrupted ledger"; says 'the ledger is damaged' "corrupted ledger advice"
# the advice matches tools/FLASH.md: a backup exists only from before a schema change
says 'keeps a backup only from before an update that changed the ledger' "corrupted ledger advice"
grep -q 'one per install' "$TMPDIR/out.json" && fail "corrupted ledger advice promises a backup per install"
has reader OK "corrupted ledger"

# bad command line
rc=0; "$BUILD/yinian-diag" --no-such-option >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "bad option: exit $rc, not 2"
echo "diag: ok (healthy, card, flash state, no reader, key mode, corrupted ledger, usage)"
