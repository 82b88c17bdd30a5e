#!/bin/sh
# card_conformance.sh — a second DESFire implementation agrees with the emulated
# card: ff-client (tests/freefare/ff_client.c, on Debian's libfreefare 0.4.0)
# personalises a factory-blank emulated DESFire EV1 through the real libnfc and
# the emulated PN532 — DES PICC key, AES and DES applications, standard, backup
# and value files in plain, MACed and enciphered modes, commit and abort — and
# sees the card's access rules enforced (tests/freefare/ff_client.c lists the
# steps). libfreefare has no timeouts: the client runs under `timeout`.
# About 2 s. Env: BUILD, TMPDIR.
set -u
: "${BUILD:?set BUILD}" "${TMPDIR:?}"
EMU=$BUILD/yinian-pn532-emu
FF=$BUILD/tests/ff-client
fail() { echo "card_conformance: FAIL: $*"; [ -f "$dir/emu.log" ] && tail -20 "$dir/emu.log"; exit 1; }
[ -x "$FF" ] || { echo "card_conformance: skipped ($FF not built: host builds with WITH_LIBNFC=1)"; exit 0; }
dir=$(mktemp -d "$TMPDIR/conformance.XXXXXX")
cat >"$dir/cards.txt" <<'CARDS'
factory DESFire EV1|desfire-blank|04c0ffee000001|||
CARDS
"$EMU" --link "$dir/pn532" --cards "$dir/cards.txt" --control "$dir/ctl" --present 0 \
    >"$dir/emu.log" 2>&1 &
emu_pid=$!
trap 'echo quit >"$dir/ctl"; sleep 0.1; kill $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null' EXIT
i=0
while [ ! -e "$dir/pn532" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
[ -e "$dir/pn532" ] || fail "emulator did not come up"
timeout 30 "$FF" "pn532_uart:$dir/pn532" >"$dir/ff.out" 2>&1
rc=$?
cat "$dir/ff.out"
[ $rc -eq 0 ] || fail "ff-client exit $rc"
n=$(grep -c '^ff: ok' "$dir/ff.out")
[ "$n" -ge 50 ] || fail "only $n steps passed"
echo "card_conformance: ok (libfreefare agrees, $n steps)"
