#!/bin/sh
# card_issue.sh — the issuing desk end to end through a real reader stack:
# yinian-card format / issue / read with --config (board.conf [reader] backend =
# libnfc, the emulated PN532 on a pty) on factory-blank DESFire and Classic
# cards. Checks: a blank card is personalised, the record written as the
# issuer reads back genuine with the terminal's key, a second format is
# refused without --force, a card pulled in the middle of a format is
# recovered with --force, and key 0 of another issuer cannot write the record.
# The emulator is the strict one (tools/emu): a blank card reads as "blank",
# never as a clone; a factory DESFire's PICC master key is DES zero, and
# format can make it an AES key (--set-picc-key); a card whose PICC key is
# 3K3DES is formatted with it; the issued DESFire then taps through the
# daemon (yinian-pos, libnfc, the emulated PN532) and is debited.
#
# Env: BUILD (build directory), TMPDIR (fresh), YN_SRCDIR (source tree).
set -eu
: "${BUILD:?}" "${TMPDIR:?}" "${YN_SRCDIR:?}"
card=$BUILD/yinian-card
emu=$BUILD/yinian-pn532-emu
d=$TMPDIR/card-issue
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
# the terminal's board.conf, its [reader] section replaced by the emulated PN532
pn532_conf() { # base.conf -> run/board-pn532.conf
    awk '/^\[/ { skip = ($0 == "[reader]") } !skip { print }' "$1" >run/board-pn532.conf
    printf '\n[reader]\nbackend = libnfc\nconnstring = pn532_uart:%s\ntimeout_ms = 300\n' \
        "$d/pn532" >>run/board-pn532.conf
}
pn532_conf run/board.conf
# (no emulator yet: a loadable config fails with 1, "reader absent"; 2 = config refused)
set +e
"$card" read --config run/board-pn532.conf --master run/keys/card-master.key \
    --issuer-pub run/keys/issuer.pub >conf.out 2>&1
conf_rc=$?
set -e
if [ $conf_rc -eq 2 ] && git -C "$YN_SRCDIR" show HEAD:board.conf >run/board-head.conf 2>/dev/null; then
    echo "card_issue: the working tree's board.conf does not load; using the committed one" >&2
    pn532_conf run/board-head.conf
fi
conf=run/board-pn532.conf
master=run/keys/card-master.key
issuer=run/keys/issuer.key
ring=run/keys/issuer.pub

cat >cards.txt <<'EOF'
# factory-blank cards, as they come from the supplier
blank DESFire EV1|desfire-blank|04a1b2c3d4e5f7|||
blank Classic 1K|classic1k-blank|c41a9b2c|||
blank DESFire, PICC key to become AES|desfire-blank|04a1b2c3d4e5f8|||
DESFire with a 3K3DES PICC key|desfire-blank|04a1b2c3d4e5f9|3k3des:00112233445566778899aabbccddeeff0123456789abcdef||
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

issue_cmd() { # card number [extra options]: the issue command line
    no=$1; shift
    echo "$card issue --config $conf --master $master --issuer $issuer --card-no $no --birth 19440807 --flags dibao --district 440304 --street 440304001 --expiry 20301231 $*"
}
read_card() { expect_exit "$1" "$card" read --config "$conf" --master "$master" --issuer-pub "$ring"; }

for kind in desfire classic1k; do
    # a blank card has no record a terminal could read, and says so
    read_card 1
    expect_text out "a blank card"
    # personalise, then issue as the issuer, then read as a terminal would
    expect_exit 0 "$card" format --config "$conf" --master "$master"
    expect_text out "formatted $kind card"
    expect_exit 0 $(issue_cmd GD44030400$kind)
    expect_text out "issued card GD44030400$kind"
    read_card 0
    expect_text out "signature     genuine"
    expect_text out "card number   GD44030400$kind"
    expect_text out "last meal     none"
    # a second format is refused and changes nothing
    expect_exit 1 "$card" format --config "$conf" --master "$master"
    expect_text err "already formatted"
    expect_text err "with --force"
    read_card 0
    expect_text out "signature     genuine"
    # another issuer's key 0 (DESFire) cannot write the record
    if [ $kind = desfire ]; then
        od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >other-app.key
        chmod 600 other-app.key
        expect_exit 1 $(issue_cmd GD4403049999 --app-master other-app.key)
        expect_text err "writing the record failed: "
        read_card 0
        expect_text out "card number   GD44030400$kind"
    fi
    # the card is pulled in the middle of a forced format (DESFire: at the
    # fourth write-like command, CreateStdDataFile, after DeleteApplication,
    # CreateApplication and ChangeKey(1): key 0 is still zero; Classic: the
    # second trailer write is torn)
    if [ $kind = desfire ]; then ctl fault pull-on-write 4; else ctl fault pull-on-write 2; fi
    expect_exit 1 "$card" format --config "$conf" --master "$master" --force
    expect_text err "card pulled"
    ctl present $([ $kind = desfire ] && echo 0 || echo 1)
    # half-formatted: refused without --force, recovered with it
    expect_exit 1 "$card" format --config "$conf" --master "$master"
    expect_text err "already formatted"
    expect_exit 0 "$card" format --config "$conf" --master "$master" --force
    expect_text out "formatted $kind card"
    expect_exit 0 $(issue_cmd GD44030401$kind)
    read_card 0
    expect_text out "signature     genuine"
    expect_text out "card number   GD44030401$kind"
    if [ $kind = desfire ]; then
        # the card issued on the strict emulator taps through the daemon path
        printf 'wait:1500 quit\n' >run/keys-tap.txt
        sed -e '/^\[input\]/,/^\[/s/^backend = .*/backend = script/' \
            -e "s|^script =.*|script = keys-tap.txt|" "$conf" >run/tap.conf
        checks=$((checks + 1))
        # a card already on the reader at start is not a tap: the senior
        # presents it once the terminal is up
        ctl remove
        timeout 30 "$BUILD/yinian-pos" --config run/tap.conf >run/tap.out 2>run/tap.log &
        daemon=$!
        i=0 # until its idle screen is up
        while ! grep -q '^==== \[idle' run/tap.out 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        ctl present 0
        wait $daemon || { cat run/tap.log >&2; fail "the daemon run"; }
        grep -q '^==== \[ok' run/tap.out || { cat run/tap.out run/tap.log >&2; fail "no debit"; }
        grep -q "card GD44030401desfire seq 1" run/tap.log || { cat run/tap.log >&2; fail "tap log"; }
    fi
    ctl present 1
done

# a factory DESFire (PICC key DES zero) whose PICC master key format makes AES
od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >picc-aes.key
chmod 600 picc-aes.key
ctl present 2
expect_exit 0 "$card" format --config "$conf" --master "$master" --set-picc-key picc-aes.key
expect_exit 0 $(issue_cmd GD4403040300)
read_card 0
expect_text out "signature     genuine"
# a forced format deletes the application with the issuer's key 0 ...
expect_exit 0 "$card" format --config "$conf" --master "$master" --force
# ... and at PICC level with the (now AES) PICC master key when key 0 is not ours
expect_exit 1 "$card" format --config "$conf" --master "$master" --force --app-master other-app.key
expect_text err "give the card's with --picc-key"
expect_exit 0 "$card" format --config "$conf" --master "$master" --force --app-master other-app.key \
    --picc-key picc-aes.key
# a card whose PICC master key is 3K3DES (AuthenticateISO): refused without it, formatted with it
printf '00112233445566778899aabbccddeeff0123456789abcdef\n' >picc-3k3des.key
chmod 600 picc-3k3des.key
ctl present 3
expect_exit 1 "$card" format --config "$conf" --master "$master" --set-picc-key picc-aes.key
expect_text err "formatting card"
expect_exit 0 "$card" format --config "$conf" --master "$master" --picc-key picc-3k3des.key \
    --set-picc-key picc-aes.key
expect_exit 0 $(issue_cmd GD4403040301)
read_card 0
expect_text out "card number   GD4403040301"
grep -q "pull-on-write: card 0 left before command cd" emu.log || fail "DESFire pull not where planned"
grep -q "pull-on-write: card 1 left during the write of block 11" emu.log || fail "Classic pull not where planned"
echo "card_issue: ok ($checks checks)"
