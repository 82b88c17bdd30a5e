#!/bin/sh
# card_tool.sh — yinian-card end to end on virtual card files: keys, issue,
# batch, read/verify, and every refusal (clone, tampered record, foreign
# issuer key, bad CSV line) with its exit code.
set -eu
: "${BUILD:?}" "${TMPDIR:?}"
card=$BUILD/yinian-card
d=$TMPDIR/cards
mkdir -p "$d"
cd "$d"
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() { # code command...
    want=$1; shift
    set +e
    "$@" >out 2>err
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat out err; fail "$*: exit $got, expected $want"; }
}

umask 077
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >master.key
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >other-master.key
"$card" keygen --key-version 3 issuer.key issuer.pub >/dev/null
"$card" keygen --key-version 9 rogue.key rogue.pub >/dev/null
[ "$(stat -c %a issuer.key)" = 600 ] || fail "issuer key mode"
grep -q '^03 [0-9a-f]\{64\}$' issuer.pub || fail "key ring line"

# the demo batch: every card reads back genuine
"$card" batch --key-version 3 --master master.key --issuer issuer.key --sim-out cards.txt \
    "$YN_SRCDIR/tools/demo-cards.csv" >out || fail batch
grep -q "^10 cards issued" out || fail "batch count"
for i in 0 1 2 3 4 5 6 7 8 9; do
    expect_exit 0 "$card" read --cards cards.txt --index $i --master master.key --issuer-pub issuer.pub
    grep -q "signature     genuine" out || fail "card $i not genuine"
done
expect_exit 0 "$card" read --cards cards.txt --index 7 --master master.key --issuer-pub issuer.pub
grep -q "today         EXPIRED" out || fail "expired card not flagged"
expect_exit 0 "$card" read --cards cards.txt --index 0 --master master.key --issuer-pub issuer.pub
grep -q "categories    dibao" out || fail "flags"

# a clone: same UID and record, but keys not diversified from our master
uid=04a1b2c3d4e5f6
"$card" issue --key-version 3 --master other-master.key --issuer issuer.key --uid $uid \
    --card-no 4403040099 --birth 19450312 --district 440304 --street 440304001 \
    --expiry 20301231 --sim-out clone.txt >/dev/null
expect_exit 1 "$card" read --cards clone.txt --index 0 --master master.key --issuer-pub issuer.pub
grep -q "a clone or a foreign card" err || fail "clone message"

# a tampered record (one hex digit of the card number changed)
awk -F'|' 'BEGIN{OFS="|"} NR==1{ $5 = substr($5,1,9) "9" substr($5,11) } {print}' cards.txt >tampered.txt
expect_exit 1 "$card" read --cards tampered.txt --index 0 --master master.key --issuer-pub issuer.pub
grep -q "NOT GENUINE" out || fail "tampered record accepted"

# signed by a key the terminal's ring does not hold
"$card" issue --key-version 9 --master master.key --issuer rogue.key --uid $uid \
    --card-no 4403040098 --birth 19450312 --district 440304 --street 440304001 \
    --expiry 20301231 --sim-out rogue.txt >/dev/null
expect_exit 1 "$card" read --cards rogue.txt --index 0 --master master.key --issuer-pub issuer.pub
grep -q "key version this terminal does not hold" out || fail "unknown key version"

# bad input: a CSV line with its line number; a street outside its district
printf 'label,uid,type,card_no,birth,flags,district,street,issued,expiry\nA,04a1b2c3d4e5f6,desfire,1,19450312,wealthy,440304,440304001,20250101,20301231\n' >bad.csv
expect_exit 2 "$card" batch --master master.key --issuer issuer.key --sim-out x.txt bad.csv
grep -q "bad.csv:2: flags: unknown category" err || { cat err; fail "csv line"; }
expect_exit 2 "$card" issue --master master.key --issuer issuer.key --uid $uid --card-no 1 \
    --birth 19450312 --district 440304 --street 440305001 --expiry 20301231 --sim-out x.txt
grep -q "record refused" err || { cat err; fail "street check"; }
chmod 644 master.key
expect_exit 2 "$card" read --cards cards.txt --index 0 --master master.key --issuer-pub issuer.pub
grep -q "expected mode 0600" err || { cat err; fail "master key mode"; }
echo "card_tool: ok"
