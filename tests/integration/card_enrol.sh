#!/bin/sh
# card_enrol.sh — the issuing desk enrols cards another issuer made (identity-only
# cards, firmware/core/CARD.md §8) through a real reader stack: yinian-card enrol
# --config (board.conf [reader] backend = libnfc, type_b on, the emulated PN532
# on a pty). Checks: a transit DESFire, a Classic with keys not ours, a blank
# DESFire and a type B card (by its PUPI, listed by libnfc's pn532_uart) are
# written as roster lines for yinian-district import-cards (a header first,
# one line each, the identifier in its one spelling); a 颐年卡 (genuine or a
# clone carrying our application), a random-UID card (08 ...) and a type B
# card whose PUPI changes at each activation are refused with exit 1 and
# nothing written; bad senior facts are refused with exit 2 before the reader
# is opened. The roster file goes into yinian-district import-cards as it is
# (each card bound to its identifier), and `check` finds nothing to refuse.
# About 3 s.
#
# Env: BUILD (build directory), TMPDIR (fresh), YN_SRCDIR (source tree).
set -eu
: "${BUILD:?}" "${TMPDIR:?}" "${YN_SRCDIR:?}"
card=$BUILD/yinian-card
emu=$BUILD/yinian-pn532-emu
d=$TMPDIR/card-enrol
mkdir -p "$d"
cd "$d"
checks=0
fail() { echo "FAIL: $*" >&2; [ -f emu.log ] && tail -20 emu.log >&2; exit 1; }
expect_exit() { # code command...
    want=$1; shift
    checks=$((checks + 1))
    set +e
    "$@" >out 2>err
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat out err >&2; fail "$*: exit $got, expected $want"; }
}
expect_text() { # file pattern
    checks=$((checks + 1))
    grep -q "$2" "$1" || { cat out err >&2; fail "no '$2' in $1"; }
}

"$YN_SRCDIR/tools/demo-setup" run "$BUILD" >/dev/null
awk '/^\[/ { skip = ($0 == "[reader]") } !skip { print }' run/board.conf >run/board-pn532.conf
printf '\n[reader]\nbackend = libnfc\nconnstring = pn532_uart:%s\ntimeout_ms = 300\ntype_b = true\n' \
    "$d/pn532" >>run/board-pn532.conf
conf=run/board-pn532.conf
master=run/keys/card-master.key
# a 颐年卡 of the demo (issued with this master) and a clone of it (its UID and record)
genuine=$(grep '|desfire|' run/cards.txt | head -1)
[ -n "$genuine" ] || fail "no issued DESFire among the demo cards"
clone=$(echo "$genuine" | awk -F'|' 'BEGIN { OFS = "|" } { $1 = "clone"; $4 = "00112233445566778899aabbccddeeff"; print }')

cat >cards.txt <<EOF
transit DESFire|desfire-foreign|04f00000000009|||
社保卡 Classic|classic1k|5c010203|00112233445566778899aabbccddeeff||
blank DESFire|desfire-blank|04f0000000000a|||
二代证-like type B|iso14443b|1a2b3c4d|||
$genuine
$clone
phone|desfire-random|04000000000099|||
random type B|iso14443b-random|5e6f7a8b|||
EOF

"$emu" --link "$d/pn532" --cards cards.txt --control "$d/ctl" --present 0 >emu.log 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null || true' EXIT
i=0
while [ ! -e "$d/pn532" ]; do
    i=$((i + 1))
    [ $i -lt 500 ] || fail "emulator did not come up"
    sleep 0.01
done
ctl() { echo "$*" >"$d/ctl"; sleep 0.05; }
enrol() { # card_no out-file
    "$card" enrol --config "$conf" --master "$master" --card-no "$1" --birth 19450312 \
        --flags dibao --district 440304 --street 440304001 --expiry 20301231 --out "$2"
}

# 1. cards another issuer made: one roster line each
expect_exit 0 enrol 4403040200 roster.csv
expect_text err "enrolled desfire card 04f00000000009 as A:04F00000000009"
ctl present 1
expect_exit 0 enrol 4403040201 roster.csv
ctl present 2
expect_exit 0 enrol 4403040202 roster.csv
ctl present 3
expect_exit 0 enrol 4403040203 roster.csv
expect_text err "as B:1A2B3C4D"
cat >want.csv <<'EOF'
card_no,birth_ymd,flags,district,street,expiry_ymd,ident
4403040200,19450312,2,440304,440304001,20301231,A:04F00000000009
4403040201,19450312,2,440304,440304001,20301231,A:5C010203
4403040202,19450312,2,440304,440304001,20301231,A:04F0000000000A
4403040203,19450312,2,440304,440304001,20301231,B:1A2B3C4D
EOF
checks=$((checks + 1))
cmp -s roster.csv want.csv || { diff want.csv roster.csv >&2; fail "roster lines"; }
# without --out: the line on stdout
expect_exit 0 enrol 4403040299 /dev/stdout
expect_text out "^4403040299,19450312,2,440304,440304001,20301231,B:1A2B3C4D$"

# 2. refused, nothing written: a 颐年卡, its clone, a phone, a changing PUPI
for n in 4 5 6 7; do
    ctl present $n
    expect_exit 1 enrol 4403040210 roster.csv
    case $n in
    4) expect_text err "a 颐年卡: terminals read it as itself" ;;
    5) expect_text err "refuses our key (a clone?)" ;;
    6) expect_text err "random UID (08" ;;
    7) expect_text err "another identifier when activated again" ;;
    esac
done
checks=$((checks + 1))
cmp -s roster.csv want.csv || fail "a refused card changed the roster file"

# 3. bad senior facts: refused before the reader is opened
expect_exit 2 "$card" enrol --config "$conf" --master "$master" --card-no "AB C" \
    --birth 19450312 --district 440304 --street 440304001 --expiry 20301231
expect_exit 2 "$card" enrol --config "$conf" --master "$master" --card-no 4403040211 \
    --birth 19450312 --district 440304 --street 440303001 --expiry 20301231
expect_exit 2 "$card" enrol --config "$conf" --card-no 4403040211 --birth 19450312 \
    --district 440304 --street 440304001 --expiry 20301231
# 4. the desk's file is the district's input, as written
district() { "$BUILD/yinian-district" --db "$d/district.db" "$@"; }
expect_exit 0 district import-cards roster.csv
expect_text out "^4 cards imported (4 changed)"
expect_exit 0 district check
expect_exit 0 sqlite3 "$d/district.db" "SELECT card_no || '=' || ident FROM cards ORDER BY card_no"
expect_text out "^4403040203=B:1A2B3C4D$"
echo "card_enrol: ok ($checks checks)"
