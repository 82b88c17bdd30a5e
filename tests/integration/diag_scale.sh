#!/bin/sh
# diag_scale.sh — a technician's view of a misbehaving scale: yinian-diag and
# `yinian-pos --self-test` against the emulated RS-485 scale tell apart a scale
# that answers with a Modbus exception (02: the register map does not fit —
# "check the register map against the scale's manual"; 04: device failure),
# one that does not answer, and one whose answers arrive with a bad CRC. On
# d18a5b3 an exception read "does not answer: not supported by this backend"
# with cable/power advice. About 5 s.
set -u
: "${BUILD:?}" "${TMPDIR:?}"
fail() { echo "diag_scale: FAIL: $*" >&2; [ -f "$TMPDIR/out.txt" ] && cat "$TMPDIR/out.txt" >&2; exit 1; }
run=$TMPDIR/run
export YN_DEMO_PORT=$((20000 + ($$ + 4271) % 20000))
tools/demo-setup "$run" "$BUILD" >/dev/null || fail "demo-setup"
EMU=$BUILD/yinian-modbus-emu
ctl=$TMPDIR/emu.ctl
"$EMU" --scale "$TMPDIR/scale" --control "$ctl" --weight 500 >"$TMPDIR/emu.log" 2>&1 &
emu_pid=$!
trap 'echo quit >"$ctl" 2>/dev/null; sleep 0.2; kill $emu_pid 2>/dev/null; wait $emu_pid 2>/dev/null' EXIT
i=0
while [ ! -e "$TMPDIR/scale" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -e "$TMPDIR/scale" ] || fail "emulator did not come up"
emu() { echo "$*" >"$ctl"; sleep 0.1; }
sed -e "/^\[scale\]/,/^\[/s|^backend = .*|backend = modbus|" \
    -e "/^\[scale\]/,/^\[/s|^device =.*|device = $TMPDIR/scale|" \
    -e "/^\[scale\]/,/^\[/s|^timeout_ms = .*|timeout_ms = 150|" \
    -e '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = false/' "$run/board.conf" >"$run/scale.conf"

check() { # label: run diag's scale check and the self-test into out.txt
    "$BUILD/yinian-diag" --config "$run/scale.conf" --root "$TMPDIR/flash" >"$TMPDIR/out.txt" 2>&1
    "$BUILD/yinian-pos" --config "$run/scale.conf" --self-test >>"$TMPDIR/out.txt" 2>/dev/null
}
says() { grep -q -- "$1" "$TMPDIR/out.txt" || fail "$2: output lacks '$1'"; }
lacks() { ! grep -q -- "$1" "$TMPDIR/out.txt" || fail "$2: output has '$1'"; }

check
says "OK    scale" healthy
says "OK   scale: answers" healthy

emu fault exception 2
check
says "answers with an error: device answered with exception 02 (illegal data address)" exception-02
says "check the register map in \[scale\]" exception-02
says "FAIL scale: device answered with exception 02" "self-test exception-02"
lacks "does not answer" exception-02
lacks "not supported by this backend" exception-02

emu fault exception 4
check
says "exception 04 (server device failure)" exception-04
says "have it serviced" exception-04

emu fault silent
check
says "does not answer: timed out" silent
says "check its power, the RS-485 cable" silent

emu fault badcrc
check
says "answers garbled: answer with a bad CRC" badcrc
says "shielding and ground" badcrc
emu fault none
echo "diag_scale: ok"
