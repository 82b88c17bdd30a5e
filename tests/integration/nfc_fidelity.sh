#!/bin/sh
# nfc_fidelity.sh — is the emulated PN532 a faithful PN532? Debian's own, unmodified
# libnfc 1.8.0 tools (package libnfc-bin) are the judges:
#   - nfc-list finds the emulated DESFire and Classic cards with their UID, SAK, ATS;
#   - nfc-mfclassic reads a whole emulated Classic 1K card (64 blocks, Crypto-1 auth
#     emulated as key comparison) with the default keys, and with a key file when
#     the card is keyed; without the key file it is refused;
#   - nfc-poll (InAutoPoll) finds the DESFire, then sees it leave (ISO-DEP presence
#     check through InCommunicateThru);
#   - nfc-mfclassic's RATS (InCommunicateThru E0 50) gets the DESFire's ATS;
#   - nfc-list finds a random-UID card (08 ..., "NFCID3") with a new UID each activation;
#   - nfc-list finds an ISO 14443-B card and its PUPI through pn532_uart (InListPassiveTarget
#     BrTy 3): the evidence that libnfc lists type B cards, which identity-only cards use.
# Env (tests/run-integration): BUILD, TMPDIR. Exit 0 = pass.
set -u
: "${BUILD:?set BUILD}"
EMU=$BUILD/yinian-pn532-emu
fail() { echo "nfc_fidelity: FAIL: $*"; [ -f "$dir/emu.log" ] && tail -20 "$dir/emu.log"; exit 1; }

for tool in nfc-list nfc-mfclassic nfc-poll od; do
    command -v $tool >/dev/null || { echo "nfc_fidelity: $tool missing (tools/install-deps installs libnfc-bin)"; exit 1; }
done
[ -x "$EMU" ] || { echo "nfc_fidelity: $EMU not built (make WITH_LIBNFC=1)"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/nfc-fidelity.XXXXXX")
link=$dir/pn532
ctl=$dir/pn532.ctl
# record: "YN" 01 … (116 bytes); stamp: the CARD.md example stamp
rec=594e0101$(printf '%0224d' 0)
stamp=010039010134feca04b312346e6c6d05
cat > "$dir/cards.txt" <<EOF
# label|type|uid|key|record|stamp
fidelity DESFire|desfire|04a1b2c3d4e5f6|00112233445566778899aabbccddeeff|$rec|
fidelity Classic, default keys|classic1k|a1b2c3d4|ffffffffffffffffffffffff00000000|$rec|$stamp
fidelity Classic, keyed|classic1k|5e6f7a8b|3c5a96c3e1f20f1e2d3c4b5a69788796|$rec|$stamp
fidelity random UID|desfire-random|04000000000099|||
fidelity type B|iso14443b|1a2b3c4d|||
EOF

"$EMU" --link "$link" --cards "$dir/cards.txt" --control "$ctl" --present 0 >"$dir/emu.log" 2>&1 &
emu_pid=$!
cleanup() {
    [ -p "$ctl" ] && echo quit >"$ctl"
    sleep 0.2
    kill "$emu_pid" 2>/dev/null
    wait "$emu_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
i=0
while [ ! -e "$link" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -e "$link" ] || fail "emulator did not come up"
export LIBNFC_DEVICE="pn532_uart:$link"
LIBNFC_LOG_LEVEL=0
export LIBNFC_LOG_LEVEL

# 1. nfc-list: the DESFire card, as a DESFire
out=$(nfc-list 2>&1) || fail "nfc-list failed: $out"
echo "$out" | grep -q "UID (NFCID1): 04  a1  b2  c3  d4  e5  f6" || fail "nfc-list: no DESFire UID in: $out"
echo "$out" | grep -q "SAK (SEL_RES): 20" || fail "nfc-list: DESFire SAK"
echo "$out" | grep -q "ATS: 75  77  81  02  80" || fail "nfc-list: DESFire ATS"
echo "nfc-list: DESFire 04a1b2c3d4e5f6 found"

# 2. nfc-list: the Classic card
echo "present 1" >"$ctl"
sleep 0.05
out=$(nfc-list -v 2>&1) || fail "nfc-list -v failed: $out"
echo "$out" | grep -q "UID (NFCID1): a1  b2  c3  d4" || fail "nfc-list: no Classic UID in: $out"
echo "$out" | grep -q "MIFARE Classic 1K" || fail "nfc-list: not fingerprinted as Classic 1K"
echo "nfc-list: Classic a1b2c3d4 found and fingerprinted as MIFARE Classic 1K"

# 3. nfc-mfclassic reads the whole card with the default keys
out=$(nfc-mfclassic r a u "$dir/dump.mfd" 2>&1) || fail "nfc-mfclassic r a u: $out"
echo "$out" | grep -q "Done, 64 of 64 blocks read" || fail "nfc-mfclassic: not all blocks: $out"
[ "$(wc -c <"$dir/dump.mfd")" -eq 1024 ] || fail "dump is not 1024 bytes"
blk() { od -An -tx1 -v -j $(($1 * 16)) -N 16 "$2" | tr -d ' \n'; }
[ "$(blk 0 "$dir/dump.mfd" | cut -c1-10)" = "a1b2c3d404" ] || fail "block 0: UID + BCC: $(blk 0 "$dir/dump.mfd")"
[ "$(blk 4 "$dir/dump.mfd" | cut -c1-8)" = "594e0101" ] || fail "block 4: record start: $(blk 4 "$dir/dump.mfd")"
[ "$(blk 16 "$dir/dump.mfd")" = "$stamp" ] || fail "block 16: stamp primary: $(blk 16 "$dir/dump.mfd")"
[ "$(blk 17 "$dir/dump.mfd")" = "$stamp" ] || fail "block 17: stamp copy"
[ "$(blk 7 "$dir/dump.mfd" | cut -c13-20)" = "78778869" ] || fail "sector 1 access bits: $(blk 7 "$dir/dump.mfd")"
echo "nfc-mfclassic: 64 of 64 blocks read, layout as CARD.md §6"

# 4. a keyed card: refused without keys, read with a key file (key A = key[0..5])
echo "present 2" >"$ctl"
sleep 0.05
# (nfc-mfclassic 1.8.0 exits 0 even then: judge by what it says)
out=$(nfc-mfclassic r a u "$dir/nokeys.mfd" 2>&1)
echo "$out" | grep -q "Done, 64 of 64" && fail "a keyed card was read with default keys: $out"
echo "$out" | grep -q "authentication failed for block 0x3f" || fail "keyed card: unexpected: $out"
emit() { # hex → bytes, portable printf (globals: _hex, _byte)
    _hex=$1
    while [ -n "$_hex" ]; do
        _byte=${_hex%"${_hex#??}"}
        _hex=${_hex#??}
        # shellcheck disable=SC2059
        printf "\\$(printf %03o "0x$_byte")"
    done
}
{
    n=0
    while [ $n -lt 64 ]; do
        if [ $n -eq 0 ]; then
            emit 5e6f7a8b000000000000000000000000
        elif [ $n -eq 3 ]; then
            emit ffffffffffffff078069ffffffffffff
        elif [ $((n % 4)) -eq 3 ]; then
            emit 3c5a96c3e1f2787788690f1e2d3c4b5a
        else
            emit 00000000000000000000000000000000
        fi
        n=$((n + 1))
    done
} >"$dir/keys.mfd"
out=$(nfc-mfclassic r a u "$dir/keyed.mfd" "$dir/keys.mfd" 2>&1) || fail "nfc-mfclassic with key file: $out"
echo "$out" | grep -q "Done, 64 of 64 blocks read" || fail "key file read: $out"
[ "$(blk 16 "$dir/keyed.mfd")" = "$stamp" ] || fail "keyed card: stamp block"
echo "nfc-mfclassic: keyed card refused without keys, read with the key file"

# 5. nfc-poll: InAutoPoll finds the DESFire at once, then waits for it to leave
echo "present 0" >"$ctl"
sleep 0.05
timeout 20 nfc-poll >"$dir/poll.out" 2>&1 &
poll_pid=$!
i=0
while ! grep -q "Waiting for card removing" "$dir/poll.out" && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "UID (NFCID1): 04  a1  b2  c3  d4  e5  f6" "$dir/poll.out" || fail "nfc-poll: no DESFire: $(cat "$dir/poll.out")"
grep -q "ATS: 75  77  81  02  80" "$dir/poll.out" || fail "nfc-poll: no ATS"
echo "remove" >"$ctl"
wait $poll_pid || fail "nfc-poll did not end when the card left: $(cat "$dir/poll.out")"
grep -q "done" "$dir/poll.out" || fail "nfc-poll: card removal not seen"
echo "nfc-poll: DESFire found by InAutoPoll, its removal seen"

# 6. RATS through InCommunicateThru (nfc-mfclassic checks it on any card)
echo "present 0" >"$ctl"
sleep 0.05
out=$(timeout 20 nfc-mfclassic r a u "$dir/df.mfd" 2>&1)
echo "$out" | grep -q "RATS support: yes" || fail "RATS: $out"
echo "present 1" >"$ctl"
sleep 0.05
out=$(timeout 20 nfc-mfclassic r a u "$dir/c.mfd" 2>&1)
echo "$out" | grep -q "RATS support: no" || fail "a Classic card answered RATS: $out"
echo "nfc-mfclassic: RATS answered by the DESFire (ATS), not by the Classic card"

# 7. a random-UID card: 4 bytes starting 08, new at each activation
echo "present 3" >"$ctl"
sleep 0.05
u1=$(nfc-list 2>&1 | grep -m1 "UID (NFCID")
u2=$(nfc-list 2>&1 | grep -m1 "UID (NFCID")
echo "$u1" | grep -q "UID (NFCID3): 08  " || fail "random UID: $u1"
[ "$u1" != "$u2" ] || fail "random UID did not change: $u1 / $u2"
echo "nfc-list: random UID card, $u1 then $u2"

# 8. a type B card: libnfc's pn532_uart lists it (nfc-list -t 8: ISO14443B), PUPI and all
echo "present 4" >"$ctl"
sleep 0.05
out=$(timeout 20 nfc-list -t 8 2>&1)
echo "$out" | grep -q "ISO/IEC 14443-4B (106 kbps) target:" || fail "type B: $out"
echo "$out" | grep -q "PUPI: 1a  2b  3c  4d" || fail "type B PUPI: $out"
echo "nfc-list: type B card, PUPI 1a2b3c4d"
echo "nfc_fidelity: ok"
