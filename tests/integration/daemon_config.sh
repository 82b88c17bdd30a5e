#!/bin/sh
# daemon_config.sh — the daemon's command line: --version, --check-config on a
# good and on broken files (exit 2, FILE:LINE on stderr), --self-test, and a
# short scripted run on simulated devices that ends by itself.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
pos=$BUILD/yinian-pos
run=$TMPDIR/run
fail() { echo "FAIL: $*" >&2; exit 1; }

"$pos" --version | grep -q '^yinian-pos [0-9]' || fail "--version"

tools/demo-setup "$run" "$BUILD" >/dev/null
"$pos" --config "$run/board.conf" --check-config >/dev/null || fail "shipped config refused"

# one mistake at a time: exit 2 and the line of the mistake
check_bad() { # sed-expression expected-line expected-text
    sed "$1" "$run/board.conf" >"$run/bad.conf"
    set +e
    "$pos" --config "$run/bad.conf" --check-config 2>"$run/err" >/dev/null
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$1: exit $rc, expected 2"
    grep -q "^$run/bad.conf:$2: .*$3" "$run/err" || { cat "$run/err"; fail "$1: no '$2: $3'"; }
}
line_of() { grep -n "^$1" "$run/board.conf" | head -1 | cut -d: -f1; }
check_bad "s/^district = .*/district = 44030X/" "$(line_of district)" "six-digit GB/T 2260"
check_bad "s/^mode = pos/mode = till/" "$(line_of 'mode =')" "expected pos | kiosk"
check_bad "s/^timeout_ms = 300/timeout_ms = 3s/" "$(line_of 'timeout_ms = 300')" "whole number"
check_bad "/^\[reader\]/,/^\[/s/^backend = sim/backend = pn999/" "$(line_of 'backend = sim')" "not a reader backend"
check_bad "s/^\[keys\]/[keyz]/" "$(line_of '\[keys\]')" "unknown section \[keyz\]"

chmod 644 "$run/keys/terminal.key"
check_bad "s/^id = .*/&/" "$(line_of 'terminal_key =')" "mode 0644; a secret key must be"
chmod 600 "$run/keys/terminal.key"

set +e
"$pos" --config "$run/nope.conf" --check-config 2>"$run/err"; rc=$?
set -e
[ $rc -eq 2 ] && grep -q "nope.conf:0: cannot open configuration" "$run/err" || fail "missing file"

"$pos" --config "$run/board.conf" --self-test >"$run/st" || { cat "$run/st"; fail "self-test"; }
grep -q "^OK   reader: simulated reader, 10 virtual cards" "$run/st" || { cat "$run/st"; fail "self-test output"; }

# a scripted run: tap card 1, wait, tap card 2, quit
printf 'card:0 wait:200 remove card:1 wait:200 remove wait:2500 card:0 wait:200 quit\n' >"$run/keys.txt"
sed -e '/^\[input\]/,/^\[/s/^backend = terminal/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    "$run/board.conf" >"$run/script.conf"
timeout 20 "$pos" --config "$run/script.conf" >"$run/out" 2>"$run/log" || { cat "$run/log"; fail "run"; }
# two debits (subsidised or not, by the time of day), then a tap of the same
# card within its minimum interval: refused, not charged twice
[ "$(grep -c '^==== \[ok' "$run/out")" -eq 2 ] || { cat "$run/out"; fail "expected 2 debits"; }
grep -q '^==== \[refused_too_soon\]' "$run/out" || { cat "$run/out"; fail "too soon"; }
grep -q "stopping after 3 taps" "$run/log" || { cat "$run/log"; fail "log"; }
# the same folder again: the ledger keeps the two debits
"$pos" --config "$run/board.conf" --self-test >"$run/st" || { cat "$run/st"; fail "self-test 2"; }
grep -q "^OK   ledger, keys and policy" "$run/st" || { cat "$run/st"; fail "ledger self-test"; }
echo "daemon_config: ok"
