#!/bin/sh
# modbus_fidelity.sh — is the emulated scale and I/O module a faithful Modbus RTU
# slave? Debian's own, unmodified mbpoll (an independent Modbus master) is the judge:
#   - it reads the scale's holding and input registers, and decodes the 32-bit
#     weight itself: high word first (-B), low word first (its default), float;
#   - it writes the command register (tare) and a refused value (exception 03);
#   - it writes and reads back the I/O module's coils;
#   - it sees the emulator's misbehaviours as errors: an exception, a bad CRC,
#     silence.
# Env (tests/run-integration): BUILD, TMPDIR. Exit 0 = pass.
set -u
: "${BUILD:?set BUILD}"
EMU=$BUILD/yinian-modbus-emu
fail() { echo "modbus_fidelity: FAIL: $*"; [ -f "$dir/emu.log" ] && tail -20 "$dir/emu.log"; exit 1; }

command -v mbpoll >/dev/null || { echo "modbus_fidelity: mbpoll missing (tools/install-deps installs it)"; exit 1; }
[ -x "$EMU" ] || { echo "modbus_fidelity: $EMU not built"; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/modbus-fidelity.XXXXXX")
scale=$dir/scale
io=$dir/io
ctl=$dir/emu.ctl
state=$dir/emu.state
"$EMU" --scale "$scale" --io "$io" --control "$ctl" --state "$state" --weight 1234.5 \
    >"$dir/emu.log" 2>&1 &
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
while { [ ! -e "$scale" ] || [ ! -e "$io" ]; } && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if [ ! -e "$scale" ] || [ ! -e "$io" ]; then fail "emulator did not come up"; fi

# mbpoll: RTU, 9600 8N1 (its defaults are 19200 8E1), 0-based references, one poll
mb() { # device slave args...
    _dev=$1 _slave=$2
    shift 2
    mbpoll -m rtu -b 9600 -P none -a "$_slave" -0 -1 -o 0.5 "$@" "$_dev" 2>&1
}
mbw() { # device slave args... -- values (write)
    _dev=$1 _slave=$2
    shift 2
    mbpoll -m rtu -b 9600 -P none -a "$_slave" -0 -1 -o 0.5 "$@" 2>&1
}
ctl() { echo "$*" >"$ctl"; sleep 0.1; }
has() { echo "$1" | grep -q "$2"; }

# 1. the holding registers, 16-bit: every layout of the emulated map
out=$(mb "$scale" 1 -t 4 -r 0 -c 14) || fail "mbpoll read holding: $out"
for want in '\[0\]:[[:space:]]*0$' '\[1\]:[[:space:]]*1234$' '\[2\]:[[:space:]]*1$' \
    '\[4\]:[[:space:]]*1234$' '\[5\]:[[:space:]]*0$' '\[6\]:[[:space:]]*1234$' \
    '\[7\]:[[:space:]]*0$' '\[11\]:[[:space:]]*12345$' '\[13\]:[[:space:]]*53764'; do
    has "$out" "$want" || fail "holding registers: no $want in: $out"
done
echo "mbpoll: holding registers 0-13 as hal/chips/MODBUS.md says (1234.5 g)"

# 2. mbpoll decodes the 32-bit values itself
out=$(mb "$scale" 1 -t 4:int -B -r 0) || fail "int abcd: $out"
has "$out" '\[0\]:[[:space:]]*1234$' || fail "int32 high word first: $out"
out=$(mb "$scale" 1 -t 4:int -r 4) || fail "int cdab: $out"
has "$out" '\[4\]:[[:space:]]*1234$' || fail "int32 low word first: $out"
out=$(mb "$scale" 1 -t 4:float -B -r 8) || fail "float: $out"
has "$out" '\[8\]:[[:space:]]*1.2345' || fail "float32 kg: $out"
out=$(mb "$scale" 1 -t 4:int -B -r 10) || fail "int 0.1 g: $out"
has "$out" '\[10\]:[[:space:]]*12345$' || fail "int32 in 0.1 g: $out"
echo "mbpoll: int32 abcd 1234, int32 cdab 1234, float32 1.2345 kg, int32 12345 (0.1 g)"

# 3. input registers hold the same
out=$(mb "$scale" 1 -t 3:int -B -r 0) || fail "input registers: $out"
has "$out" '\[0\]:[[:space:]]*1234$' || fail "input int32: $out"
echo "mbpoll: input registers (function 04) agree"

# 4. in motion: the stable bit clears (register 2), the motion bit sets (register 7)
ctl stable 0
out=$(mb "$scale" 1 -t 4 -r 2 -c 1) || fail "status: $out"
has "$out" '\[2\]:[[:space:]]*0$' || fail "stable bit still set in motion: $out"
out=$(mb "$scale" 1 -t 4 -r 7 -c 1) || fail "motion: $out"
has "$out" '\[7\]:[[:space:]]*1$' || fail "motion bit not set: $out"
ctl stable 1
echo "mbpoll: stable bit and motion bit follow 'stable 0|1'"

# 5. commands: tare by the command register; a refused value is exception 03
out=$(mbw "$scale" 1 -t 4 -r 3 "$scale" 2) || fail "write command: $out"
has "$out" "Written 1 references" || fail "tare command not written: $out"
sleep 0.1
grep -q '^scale_tares=1$' "$state" || fail "tare not seen: $(cat "$state")"
out=$(mb "$scale" 1 -t 4:int -B -r 0) || fail "read after tare: $out"
has "$out" '\[0\]:[[:space:]]*0$' || fail "net after tare is not 0: $out"
out=$(mbw "$scale" 1 -t 4 -r 3 "$scale" 9)
has "$out" "Illegal data value" || fail "command 9 was not refused with exception 03: $out"
echo "mbpoll: tare by command register 3; command 9 refused (Illegal data value)"

# 6. the I/O module: coils written and read back
out=$(mbw "$io" 2 -t 0 -r 0 "$io" 1 0 1) || fail "write coils: $out"
sleep 0.1
grep -q '^io_coils=101' "$state" || fail "coils not set: $(cat "$state")"
out=$(mb "$io" 2 -t 0 -r 0 -c 4) || fail "read coils: $out"
for want in '\[0\]:[[:space:]]*1' '\[1\]:[[:space:]]*0' '\[2\]:[[:space:]]*1'; do
    has "$out" "$want" || fail "coils read back: no $want in: $out"
done
echo "mbpoll: I/O module coils 0-2 written 1 0 1 and read back"

# 7. misbehaviour on cue, as another master sees it
ctl fault exception 4
out=$(mb "$scale" 1 -t 4 -r 0 -c 2)
has "$out" "Slave device or server failure" || fail "exception 4: $out"
ctl fault badcrc
out=$(mb "$scale" 1 -t 4 -r 0 -c 2)
has "$out" "Invalid CRC" || fail "badcrc: $out"
ctl fault silent
out=$(mb "$scale" 1 -t 4 -r 0 -c 2)
has "$out" "timed out" || fail "silent: $out"
ctl fault none
out=$(mb "$scale" 1 -t 4 -r 1 -c 1) || fail "after faults: $out"
echo "mbpoll: exception 4, bad CRC and silence seen as such; answers again after 'fault none'"
echo "modbus_fidelity: ok"
