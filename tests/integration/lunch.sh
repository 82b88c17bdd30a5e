#!/bin/sh
# lunch.sh — one lunch end to end, as at the counter: the real daemon, the
# emulated PN532 reached through the real libnfc (yinian-pn532-emu on a pty,
# cards presented by the keypad script via [reader] demo_control), a real
# ledger file, the reference district server (one card reported lost there,
# learnt by the daemon's sync), the PNG display. 50 seniors of every category
# (issued by `yinian-card batch` from a CSV made here) tap 200 times; staff log
# in and take the 日结 from the keypad. Then: the 日结 CSV equals the ledger's
# journal sums to the fen (sqlite3, read only), and the screens of idle,
# success, full price, each refusal, the staff menu, the 日结 and (a second run
# as a kiosk) the balance are written as PNG files.
#
# The daemon runs on the wall clock, and there is no clock override (a test-only
# switch would be a way around the policy in the field). So the policy is a
# fixture instead: shenzhen-2025.json with its lunch open 00:00-24:00 on every
# day of the week and no closed dates, published by the district as version 2.
# [ledger] min_interval_s = 0 lets each senior come back within the minute
# (their second lunch is then sold at full price: 本餐已享受补贴).
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
run=$TMPDIR/run
shots=$TMPDIR/screens
fail() {
    echo "lunch: FAIL: $*" >&2
    [ -f "$run/terminal.log" ] && tail -20 "$run/terminal.log" >&2
    exit 1
}
[ -x "$BUILD/yinian-pn532-emu" ] || fail "$BUILD/yinian-pn532-emu not built (make WITH_LIBNFC=1)"
for tool in sqlite3 jq; do
    command -v $tool >/dev/null || fail "$tool missing (tools/install-deps)"
done
port=$((20000 + ($$ + 7919) % 20000))
export YN_DEMO_PORT=$port
tools/demo-setup "$run" "$BUILD" >/dev/null
. "$run/keys.env" # YN_KEYS_BACKEND=pkcs11: the keys are in a SoftHSM2 token
district() { "$BUILD/yinian-district" --db "$run/district.db" "$@"; }

# the policy fixture, and a district that knows only it and one lost card
jq '.version = 2 | .periods[0].start = "00:00" | .periods[0].end = "24:00"
    | .periods[0].weekdays = [1, 2, 3, 4, 5, 6, 7] | .periods[0].closed_dates = []' \
    "$run/policy.json" >"$run/policy.all-day.json"
mv "$run/policy.all-day.json" "$run/policy.json"
rm -f "$run/district.db"
district publish-policy "$run/policy.json" >/dev/null
district lost 4403042050 >/dev/null

# 50 seniors, five of each kind; the last one (a 70-99 card) is reported lost
csv=$run/lunch-cards.csv
echo "label,uid,type,card_no,birth,flags,district,street,issued,expiry" >"$csv"
i=1
while [ $i -le 50 ]; do
    n=$(printf '%02d' $i)
    birth=19500606 flags= dist=440304 street=440304001 issued=20250101 expiry=20301231
    case $(((i - 1) % 10)) in
    0) kind=低保 birth=19450312 flags=dibao ;;
    1) kind=特困 flags=tekun ;;
    2) kind=三属五老 birth=19400101 flags=sanshu_wulao ;;
    3) kind=失独 birth=19550101 flags=shidu ;;
    4) kind=百岁 birth=19250101 ;;
    5) kind=70-99 ;;
    6) kind=60-69 birth=19600606 ;;
    7) kind=外区 dist=440303 street=440303001 ;;
    8) kind=过期 flags=dibao issued=20220101 expiry=20241231 ;;
    9) kind=挂失 ;;
    esac
    echo "长者$n $kind,04b200000000$n,desfire,44030420$n,$birth,$flags,$dist,$street,$issued,$expiry" >>"$csv"
    i=$((i + 1))
done
"$BUILD/yinian-card" batch --master "$run/keys/card-master.key" --issuer "$run/keys/issuer.key" \
    --sim-out "$run/lunch-cards.txt" "$csv" >/dev/null || fail "yinian-card batch"
[ "$(grep -c '|desfire|' "$run/lunch-cards.txt")" = 50 ] || fail "50 cards issued"

"$BUILD/yinian-district" --db "$run/district.db" serve --cert "$run/tls/server.pem" \
    --key "$run/tls/server.key" --district-key "$run/keys/district.key" \
    --listen 127.0.0.1 --port "$port" >"$run/district.log" 2>&1 &
server=$!
"$BUILD/yinian-pn532-emu" --link "$run/pn532" --cards "$run/lunch-cards.txt" \
    --control "$run/pn532.ctl" >"$run/pn532.log" 2>&1 &
emu=$!
trap 'kill $server $emu 2>/dev/null || true' EXIT
i=0
while [ ! -e "$run/pn532" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -e "$run/pn532" ] || fail "the PN532 emulator did not come up"

token=$(district enrol-token T-FT-0001 C-FT-001)
enrolled=no
for try in 1 2 3 4 5 6 7 8 9 10; do
    if "$BUILD/yinian-pos" --config "$run/board.conf" --enrol "$token" >/dev/null 2>"$run/enrol.err"; then
        enrolled=yes
        break
    fi
    sleep 0.5
done
[ $enrolled = yes ] || { cat "$run/enrol.err"; fail "enrolment"; }

# the lunch: sync first (policy, blacklist), 200 taps, then 日结 by operator 1001
{
    printf 'wait:7000'
    i=0
    while [ $i -lt 200 ]; do
        printf ' card:%d wait:200 remove wait:30' $((i % 50))
        i=$((i + 1))
    done
    printf ' wait:200 menu 1 0 0 1 enter 1 2 3 4 enter wait:100 2 wait:500 quit\n'
} >"$run/keys.txt"
sed -e "/^\[reader\]/,/^\[/s|^backend = .*|backend = libnfc|" \
    -e "/^\[reader\]/,/^\[/s|^connstring =.*|connstring = pn532_uart:$run/pn532|" \
    -e "/^\[reader\]/,/^\[/s|^demo_control =.*|demo_control = pn532.ctl|" \
    -e "/^\[reader\]/,/^\[/s|^sim_cards =.*|sim_cards = lunch-cards.txt|" \
    -e '/^\[input\]/,/^\[/s/^backend = .*/backend = script/' -e "s|^script =.*|script = keys.txt|" \
    -e '/^\[display\]/,/^\[/s/^backend = .*/backend = png/' \
    -e "/^\[display\]/,/^\[/s|^snapshot_dir = .*|snapshot_dir = $shots|" \
    -e "/^\[ledger\]/,/^\[/s|^min_interval_s = .*|min_interval_s = 0|" \
    -e "/^\[sync\]/,/^\[/s|^interval_s = .*|interval_s = 5|" "$run/board.conf" >"$run/lunch.conf"
timeout 180 "$BUILD/yinian-pos" --config "$run/lunch.conf" >/dev/null 2>"$run/terminal.log" ||
    fail "daemon run"
grep -q "stopping after 200 taps" "$run/terminal.log" || fail "200 taps"
grep -q "card 4403042050 refused: card is on the blacklist" "$run/terminal.log" ||
    fail "the card lost at the district was not refused"

# the 日结 CSV equals the journal, to the fen
ymd=$(TZ=Asia/Shanghai date +%Y%m%d)
settle=$run/settlements/settle-T-FT-0001-$ymd.csv
[ -s "$settle" ] || fail "no 日结 CSV $settle"
csv_total=$(awk -F, '$2 == "total" { print $4 "," $5 "," $6 "," $7 "," $8 }' "$settle")
ledger_total=$(sqlite3 -readonly "$run/ledger.db" "SELECT sum(CASE kind WHEN 1 THEN 1 ELSE -1 END)
    ||','||sum(price_fen)||','||sum(subsidy_fen)||','||sum(wallet_fen)||','||sum(cash_fen)
    FROM journal WHERE kind IN (1, 2) AND local_ymd = $ymd")
[ -n "$csv_total" ] && [ "$csv_total" = "$ledger_total" ] ||
    fail "日结 total '$csv_total' vs ledger '$ledger_total'"
cat_sum=$(awk -F, '$2 == "category" { n += $4; p += $5 } END { print n "," p }' "$settle")
[ "$cat_sum" = "$(echo "$ledger_total" | cut -d, -f1,2)" ] || fail "categories add up to $cat_sum"

# a second run as a kiosk: the balance
printf 'card:0 wait:1500 remove wait:200 quit\n' >"$run/keys.txt"
sed -e "/^\[terminal\]/,/^\[/s|^mode = .*|mode = kiosk|" \
    -e "/^\[sync\]/,/^\[/s|^enabled = .*|enabled = false|" "$run/lunch.conf" >"$run/kiosk.conf"
timeout 60 "$BUILD/yinian-pos" --config "$run/kiosk.conf" >/dev/null 2>>"$run/terminal.log" ||
    fail "kiosk run"

for s in idle ok ok_full_price refused_lost refused_expired staff_pin staff_menu settlement balance; do
    [ -s "$shots/$s.png" ] || fail "screen $s.png not written (have: $(ls "$shots" | tr '\n' ' '))"
done
echo "lunch: ok (200 taps, 日结 $csv_total; screens: $(ls "$shots" | tr '\n' ' '))"
