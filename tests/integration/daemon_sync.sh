#!/bin/sh
# daemon_sync.sh — the real daemon against the real reference district server
# on loopback, as `make run` wires them: enrolment with a one-time token,
# scripted taps uploaded by the daemon's sync thread, the server's totals
# equal to the terminal's to the fen, a card reported lost at the district
# refused at the counter after the next sync. With YN_KEYS_BACKEND=pkcs11 the
# keys live in SoftHSM2 tokens: enrolment and provisioning put them there and
# no key file is left on the boards. With YN_KEY_PAIR=1 the terminals' own keys
# are ECDSA P-256 key pairs (sync/PROTOCOL.md §10): made in the keystore (the
# token, or a PEM file), their public halves enrolled, batches signed.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
fail() { echo "FAIL: $*" >&2; [ -f "$run/terminal.log" ] && tail -20 "$run/terminal.log" >&2; exit 1; }
port=$((20000 + $$ % 20000))
export YN_DEMO_PORT=$port
tools/demo-setup "$run" "$BUILD" >/dev/null
. "$run/keys.env" # YN_KEYS_BACKEND=pkcs11: the keys are in a SoftHSM2 token
sed -i "/^\[sync\]/,/^\[/s|^interval_s = .*|interval_s = 5|" "$run/board.conf"
pair=${YN_KEY_PAIR:-0}
if [ "$pair" = 1 ]; then # the demo's shared key is not used: the pair is made at enrolment
    sed -i "/^\[keys\]/,/^\[/s|^terminal_key_type = .*|terminal_key_type = ecdsa-p256|" "$run/board.conf"
    grep -q '^terminal_key_type = ecdsa-p256$' "$run/board.conf" || fail "board.conf: terminal_key_type"
    rm -f "$run/keys/terminal.key"
fi
district() { "$BUILD/yinian-district" --db "$run/district.db" "$@"; }

"$BUILD/yinian-district" --db "$run/district.db" serve --cert "$run/tls/server.pem" \
    --key "$run/tls/server.key" --district-key "$run/keys/district.key" \
    --listen 127.0.0.1 --port "$port" >"$run/district.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

token=$(district enrol-token T-FT-0001 C-FT-001)
enrolled=no
for try in 1 2 3 4 5 6 7 8 9 10; do
    if "$BUILD/yinian-pos" --config "$run/board.conf" --enrol "$token" >"$run/enrol.out" 2>"$run/enrol.err"; then
        enrolled=yes; break
    fi
    sleep 0.5
done
[ $enrolled = yes ] || { cat "$run/enrol.err"; fail "enrolment"; }
if [ "$pair" = 1 ]; then # the district enrolled the public key the terminal shows
    fp=$(sed -n 's/.*with its key pair in .*, public key \([0-9a-f]\{32\}\)$/\1/p' "$run/enrol.out")
    [ -n "$fp" ] || { cat "$run/enrol.out"; fail "enrolment did not name the key pair"; }
    grep -q "terminal T-FT-0001 enrolled at C-FT-001 with a key pair, public key $fp" "$run/district.log" ||
        { cat "$run/district.log"; fail "the district did not enrol public key $fp"; }
    if [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
        [ ! -e "$run/keys/terminal.key" ] || fail "a terminal key file next to the token"
    else
        [ "$(stat -c %a "$run/keys/terminal.key")" = 600 ] || fail "key pair file mode"
        head -1 "$run/keys/terminal.key" | grep -q 'BEGIN PRIVATE KEY' || fail "key pair file not PEM"
    fi
elif [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
    grep -q "key stored in token 'yinian-demo'" "$run/enrol.out" || fail "enrolled key not in the token"
    [ ! -e "$run/keys/terminal.key" ] || fail "a terminal key file next to the token"
else
    [ "$(stat -c %a "$run/keys/terminal.key")" = 600 ] || fail "terminal key mode"
fi
"$BUILD/yinian-pos" --config "$run/board.conf" --enrol "$token" >/dev/null 2>&1 && fail "token reused"

# a new board provisioned and enrolled in one go by yinian-flash (into a token
# of its own with YN_KEYS_BACKEND=pkcs11)
prov() { # root terminal token
    token_opts=
    if [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
        tools/softhsm-token "$run/softhsm" "$2" >/dev/null
        token_opts="--pkcs11-module ${YN_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
        token_opts="$token_opts --token-label $2 --pin-file $run/softhsm/$2.pin"
    fi
    [ "$pair" = 1 ] && token_opts="$token_opts --key-pair"
    # shellcheck disable=SC2086 # token_opts: words on purpose
    "$BUILD/yinian-flash" provision --root "$1" --terminal-id "$2" --canteen C-FT-001 \
        --district 440304 --street 440304001 --card-master-key "$run/keys/card-master.key" \
        --issuer-pub "$run/keys/issuer.pub" --district-pub "$run/keys/district.pub" \
        --policy "$run/policy.json" --server-url "https://127.0.0.1:$port" --ca "$run/tls/ca.pem" \
        --template "$YN_SRCDIR/board.conf" --set reader.sim_cards="$run/cards.txt" \
        --enrol-token "$3" $token_opts
}
prov "$TMPDIR/board2" T-FT-0002 "$(district enrol-token T-FT-0002 C-FT-001)" >"$run/prov.out" 2>&1 ||
    { cat "$run/prov.out"; fail "provision with enrolment"; }
grep -q "enrolled with https://127.0.0.1:$port" "$run/prov.out" || fail "provision did not enrol"
if [ "$pair" = 1 ]; then # provision made the pair and wrote its public half; the district has it
    pub=$(cat "$TMPDIR/board2/etc/keys/terminal.pub")
    echo "$pub" | grep -qx '04[0-9a-f]\{128\}' || fail "terminal.pub: '$pub'"
    grep -qx "  $pub" "$run/prov.out" || { cat "$run/prov.out"; fail "provision did not print the public key"; }
    fp=$(sed -n 's/.*fingerprint \([0-9a-f]\{32\}\):$/\1/p' "$run/prov.out")
    grep -q "terminal T-FT-0002 enrolled at C-FT-001 with a key pair, public key $fp" "$run/district.log" ||
        fail "the district did not enrol board2's public key $fp"
    grep -q '^terminal_key_type = ecdsa-p256$' "$TMPDIR/board2/etc/board.conf" || fail "board2: key type"
    "$BUILD/yinian-diag" --config "$TMPDIR/board2/etc/board.conf" --json >"$run/diag2.json" || true
    grep -q "$fp" "$run/diag2.json" || { cat "$run/diag2.json"; fail "yinian-diag does not show the key pair"; }
    if [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
        grep -q 'ECDSA P-256 key pair.*generated in the token' "$run/diag2.json" ||
            { cat "$run/diag2.json"; fail "yinian-diag: the pair not shown generated in the token"; }
    fi
fi
if [ "${YN_KEYS_BACKEND:-file}" = pkcs11 ]; then
    for k in terminal.key card-master.key; do
        [ ! -e "$TMPDIR/board2/etc/keys/$k" ] || fail "provision left $k on a board with a token"
    done
    grep -q '^backend = pkcs11$' "$TMPDIR/board2/etc/board.conf" || fail "board2 not on its token"
    "$BUILD/yinian-pos" --config "$TMPDIR/board2/etc/board.conf" --self-test >"$run/st2" 2>&1 ||
        { cat "$run/st2"; fail "board2 self-test"; }
    grep -q "^OK   keys: token 'T-FT-0002'.*: card master and terminal key usable" "$run/st2" ||
        { cat "$run/st2"; fail "board2's token keys"; }
else
    [ "$(stat -c %a "$TMPDIR/board2/etc/keys/terminal.key")" = 600 ] || fail "enrolled key mode"
fi
# the master key goes in once: the same key again is harmless, another one
# only with --force (a file or a token alike)
flash_key() { "$BUILD/yinian-flash" import-key --config "$TMPDIR/board2/etc/board.conf" "$@"; }
flash_key card-master "$run/keys/card-master.key" >"$run/imp.out" 2>&1 || { cat "$run/imp.out"; fail "same master again"; }
printf '00112233445566778899aabbccddeeff\n' >"$TMPDIR/other-master.key" # not the random one
chmod 600 "$TMPDIR/other-master.key"
if flash_key card-master "$TMPDIR/other-master.key" >"$run/imp.out" 2>&1; then fail "another master taken without --force"; fi
grep -q "holds another card master key: not replaced" "$run/imp.out" || { cat "$run/imp.out"; fail "refusal message"; }
flash_key --force card-master "$TMPDIR/other-master.key" >"$run/imp.out" 2>&1 || { cat "$run/imp.out"; fail "--force"; }
grep -q "card-master key stored in" "$run/imp.out" || { cat "$run/imp.out"; fail "--force message"; }
if prov "$TMPDIR/board3" T-FT-0003 not-a-token >"$run/prov.out" 2>&1; then fail "bad token accepted"; fi
grep -q "enrolment with https://127.0.0.1:$port failed" "$run/prov.out" || { cat "$run/prov.out"; fail "bad token message"; }

# three debits, then wait for two sync rounds, then quit
printf 'card:0 wait:100 remove card:1 wait:100 remove card:2 wait:100 remove wait:12000 quit\n' >"$run/keys.txt"
sed -e '/^\[input\]/,/^\[/s/^backend = terminal/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = terminal/backend = sim/' "$run/board.conf" >"$run/script.conf"
timeout 60 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run"
grep -q "stopping after 3 taps" "$run/terminal.log" || fail "3 taps"

# the server holds the three records, and the fen agree with the ledger
district report terminal | tr -d '\r' >"$run/report.csv"
line=$(grep '^T-FT-0001,' "$run/report.csv") || { cat "$run/report.csv"; fail "no records at the district"; }
# records, price, meal subsidy, allocations (none), wallet, cash
sums=$(sqlite3 "$run/ledger.db" "SELECT count(*)||','||sum(price_fen)||','||sum(subsidy_fen)||',0,'||sum(wallet_fen)||','||sum(cash_fen) FROM journal WHERE kind=1" 2>/dev/null) ||
    sums=""
[ "$line" = "T-FT-0001,$sums" ] || fail "district '$line' vs ledger '$sums'"

# a card reported lost at the district is refused after the next sync
district lost 4403040002 >/dev/null
printf 'wait:7000 card:1 wait:200 quit\n' >"$run/keys.txt"
timeout 60 "$BUILD/yinian-pos" --config "$run/script.conf" >/dev/null 2>"$run/terminal.log" || fail "daemon run 2"
grep -q "card 4403040002 refused: card is on the blacklist" "$run/terminal.log" || fail "lost card not refused"
echo "daemon_sync: ok ($line$([ "$pair" = 1 ] && echo ", key pairs"))"
