#!/bin/sh
# tap_restart.sh — a card is never charged twice across a restart (issue 11,
# finding 2), with the real daemon, the real libnfc path to the emulated PN532,
# and a real ledger file:
#   1. a senior taps; the daemon is killed (kill -9) after the debit's log line
#      and before 成功 is drawn (the PNG display writes ok.png through ok.png.new,
#      made a FIFO here: the daemon blocks opening it, so the screen never comes);
#   2. the card stays on the reader over the restart: not charged at start
#      (card_on_reader.png), however long it lies there;
#   3. taken away and tapped again: the ORIGINAL outcome is shown (same seq,
#      "same tap again" in the log), nothing is charged;
#   4. the notice for the meal whose stamp outcome the first run never learnt
#      is on the journal (kind 5, cause restart), and the ledger verifies.
# Sync is off (no district), [ledger] min_interval_s = 0, the policy's lunch
# open all day (as lunch.sh). About 10 s.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
shots=$TMPDIR/screens
fail() {
    echo "tap_restart: FAIL: $*" >&2
    [ -f "$run/terminal.log" ] && tail -20 "$run/terminal.log" >&2
    exit 1
}
[ -x "$BUILD/yinian-pn532-emu" ] || fail "$BUILD/yinian-pn532-emu not built (make WITH_LIBNFC=1)"
for tool in sqlite3 jq; do
    command -v $tool >/dev/null || fail "$tool missing (tools/install-deps)"
done
YN_DEMO_PORT=$((20000 + ($$ + 4099) % 20000)) tools/demo-setup "$run" "$BUILD" >/dev/null
jq '.version = 2 | .periods[0].start = "00:00" | .periods[0].end = "24:00"
    | .periods[0].weekdays = [1, 2, 3, 4, 5, 6, 7] | .periods[0].closed_dates = []' \
    "$run/policy.json" >"$run/policy.all-day.json"
mv "$run/policy.all-day.json" "$run/policy.json"
mkdir -p "$shots"

"$BUILD/yinian-pn532-emu" --link "$run/pn532" --cards "$run/cards.txt" \
    --control "$run/pn532.ctl" >"$run/pn532.log" 2>&1 &
emu=$!
daemon=
trap 'kill $emu $daemon 2>/dev/null || true' EXIT
i=0
while [ ! -e "$run/pn532" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -e "$run/pn532" ] || fail "the PN532 emulator did not come up"

sed -e "/^\[reader\]/,/^\[/s|^backend = .*|backend = libnfc|" \
    -e "/^\[reader\]/,/^\[/s|^connstring =.*|connstring = pn532_uart:$run/pn532|" \
    -e "/^\[reader\]/,/^\[/s|^demo_control =.*|demo_control = pn532.ctl|" \
    -e '/^\[input\]/,/^\[/s/^backend = .*/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = .*/backend = png/' \
    -e "/^\[display\]/,/^\[/s|^snapshot_dir = .*|snapshot_dir = $shots|" \
    -e "/^\[ledger\]/,/^\[/s|^min_interval_s = .*|min_interval_s = 0|" \
    -e "/^\[sync\]/,/^\[/s|^enabled = .*|enabled = false|" "$run/board.conf" >"$run/restart.conf"
meals() { sqlite3 -readonly "$run/ledger.db" "SELECT COUNT(*) FROM journal WHERE kind = 1 $1"; }

# 1. 张桂英 (低保, card 0) taps; the ok screen can never be drawn
mkfifo "$shots/ok.png.new"
printf 'wait:500 card:0 wait:30000 quit\n' >"$run/keys.txt"
"$BUILD/yinian-pos" --config "$run/restart.conf" >/dev/null 2>"$run/terminal.log" &
daemon=$!
i=0
while ! grep -q "tap: card 4403040001 seq 1:" "$run/terminal.log" && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
done
grep -q "tap: card 4403040001 seq 1:" "$run/terminal.log" || fail "no debit logged"
sleep 0.3 # the daemon is now blocked drawing 成功
[ -s "$shots/ok.png" ] && fail "成功 was drawn before the kill"
kill -9 $daemon
wait $daemon 2>/dev/null || true
daemon=
rm -f "$shots/ok.png.new"
[ "$(meals "")" = 1 ] || fail "one meal committed before the kill"

# 2. and 3. the restart: the card still lies on the reader, then the senior
# takes it away and taps again
printf 'wait:3000 remove wait:300 card:0 wait:1500 remove wait:300 quit\n' >"$run/keys.txt"
timeout 60 "$BUILD/yinian-pos" --config "$run/restart.conf" >/dev/null 2>>"$run/terminal.log" ||
    fail "daemon run after the restart"
[ -s "$shots/card_on_reader.png" ] || fail "the card on the reader at start was not noticed"
grep -q "was in the field at start: not a tap" "$run/terminal.log" ||
    fail "the card in the field at start was treated as a tap"
[ "$(meals "")" = 1 ] || fail "charged again across the restart: $(meals "") meals"
grep -q "tap: card 4403040001 seq 1: .*(same tap again)" "$run/terminal.log" ||
    fail "the retry did not get the original outcome"
[ -s "$shots/ok.png" ] || fail "the original outcome (成功) was not shown"
grep -q "stopping after 1 taps" "$run/terminal.log" || fail "the retry is the one tap of the run"

# 4. the lost stamp outcome is noted once, and the ledger verifies
[ "$(sqlite3 -readonly "$run/ledger.db" "SELECT COUNT(*) FROM journal WHERE kind = 5
    AND reverses_seq = 1 AND ref = 'restart'")" = 1 ] || fail "no restart notice for meal 1"
"$BUILD/yinian-diag" --config "$run/restart.conf" --json >"$run/diag.json" 2>/dev/null || true
[ "$(jq -r '.checks[] | select(.name == "ledger") | .status' "$run/diag.json")" = OK ] ||
    fail "yinian-diag: ledger $(jq -c '.checks[] | select(.name == "ledger")' "$run/diag.json")"
echo "tap_restart: ok (killed before 成功; the card on the reader not charged; the retry shown the original seq 1, charged once)"
