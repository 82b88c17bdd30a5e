#!/bin/sh
# ledger_faults.sh — the real daemon on a ledger that something went wrong
# with (issue 11, findings 4 and 6), each part on its own folder:
#   second   a second yinian-pos on the same ledger is refused, with a message
#            naming the first one's pid; only the first one sells
#   stale    .new files left by an interrupted 日结 or mark write are removed at
#            start
#   idle     the terminal checkpoints while idle: killed -9 after 6 idle
#            seconds, ledger.db alone (without its WAL) holds every record
#   flip_journal  a byte flipped in a journal record's stored hash: sales stop
#            (Chinese screen naming yinian-diag ledger verify), nothing charged,
#            `yinian-diag ledger verify` exits 1 naming the record
#   flip_cards    a byte flipped in a card row (its newest record): sales stop
#            once the background verification has seen it, nothing charged
#   lost     records the district holds are missing from the ledger (the
#            ledger file put back to an older copy, as a lost WAL does) and the
#            high-water mark is above what the district holds: yinian-diag
#            reports the lost range; the daemon does not sell over them, takes
#            them back from the district's /v1/records exactly as they were,
#            brings the mark down to what the district holds, sells on above,
#            and the district accepts the new sale (no 409); yinian-diag
#            reports the restore
#   conflict the ledger replaced by a new one whose seqs 1-2 the district holds
#            with other content (no mark left to tell): the one 409 stops
#            uploads and sales (no retry loop), the log says why, yinian-diag
#            ledger verify reports it
# Every part runs; the script fails if any did.
set -u
: "${BUILD:?}" "${TMPDIR:?}"
failed=""
port=$((20000 + ($$ + 4243) % 20000))
export YN_DEMO_PORT=$port

note_fail() { # part message
    echo "ledger_faults: $1: FAIL: $2" >&2
    failed="$failed $1"
}

# A terminal folder $1 with sync off, the script input and the text display.
setup() {
    tools/demo-setup "$1" "$BUILD" >/dev/null || return 1
    : >"$1/keys.txt"
    sed -i -e '/^\[input\]/,/^\[/s/^backend = .*/backend = script/' -e "s|^script =.*|script = keys.txt|" \
        -e '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = false/' \
        -e '/^\[ledger\]/,/^\[/s/^min_interval_s = .*/min_interval_s = 0/' "$1/board.conf"
}
# pos DIR NAME KEYS: run the daemon on DIR's board.conf with the key script
# KEYS; stdout (screens) to DIR/NAME.out, the log to DIR/NAME.log.
pos() {
    printf '%s\n' "$3" >"$1/keys.txt"
    timeout 60 "$BUILD/yinian-pos" --config "$1/board.conf" >"$1/$2.out" 2>"$1/$2.log"
}
records() { sqlite3 -readonly "$1/ledger.db" "SELECT count(*) FROM journal" 2>/dev/null || echo none; }
# flip_at FILE OFFSET: invert the low bit of one byte
flip_at() {
    b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
    printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
# offset_of FILE HEX [MIN MAX]: first offset of the byte string HEX (lower or
# upper case) in FILE (within [MIN, MAX)); the file as one hex string, byte
# boundaries kept (grep cannot: the bytes may hold a newline or a NUL)
offset_of() {
    od -An -v -tx1 "$1" | tr -d ' \n' |
        awk -v pat="$(echo "$2" | tr 'A-F' 'a-f')" -v lo="${3:-0}" -v hi="${4:-999999999999}" '{
            from = 1
            while ((i = index(substr($0, from), pat)) > 0) {
                pos = from + i - 1
                if (pos % 2 == 1 && (pos - 1) / 2 >= lo && (pos - 1) / 2 < hi) { print (pos - 1) / 2; exit }
                from = pos + 1
            }
        }'
}
stopped_screen() { grep -q '^==== \[sales_stopped' "$1"; }

# ---- second: one daemon per ledger ------------------------------------------------
part_second() {
    d=$TMPDIR/second
    setup "$d" || { note_fail second "setup"; return; }
    printf 'card:0 wait:200 remove wait:5000 quit\n' >"$d/keys.txt"
    "$BUILD/yinian-pos" --config "$d/board.conf" >"$d/a.out" 2>"$d/a.log" &
    first=$!
    i=0
    while [ "$(records "$d")" != 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    printf 'card:1 wait:200 remove quit\n' >"$d/keys.txt"
    rc=0
    timeout 30 "$BUILD/yinian-pos" --config "$d/board.conf" >"$d/b.out" 2>"$d/b.log" || rc=$?
    wait $first || note_fail second "the first daemon did not end well"
    [ $rc = 1 ] || note_fail second "the second daemon exited $rc, expected 1 (refused)"
    grep -q "in use by another yinian-pos (pid $first)" "$d/b.log" ||
        note_fail second "no message naming the first daemon's pid: $(tail -3 "$d/b.log")"
    [ "$(records "$d")" = 1 ] || note_fail second "$(records "$d") records: the second daemon sold"
}

# ---- stale: no .new left behind -----------------------------------------------------
part_stale() {
    d=$TMPDIR/stale
    setup "$d" || { note_fail stale "setup"; return; }
    mkdir -p "$d/settlements"
    echo "half a 日结" >"$d/settlements/settle-T-FT-0001-20250611.csv.new"
    echo "half a mark" >"$d/ledger.db.mark.new"
    echo "someone else's" >"$d/settlements/notes.new"
    pos "$d" run 'wait:300 quit' || note_fail stale "daemon run"
    [ ! -e "$d/settlements/settle-T-FT-0001-20250611.csv.new" ] ||
        note_fail stale "the interrupted 日结's .new file is still there"
    [ ! -e "$d/ledger.db.mark.new" ] || note_fail stale "the interrupted mark's .new file is still there"
    [ -e "$d/settlements/notes.new" ] || note_fail stale "a file that is not ours was removed"
}

# ---- idle: checkpoints while idle -----------------------------------------------------
part_idle() {
    d=$TMPDIR/idle
    setup "$d" || { note_fail idle "setup"; return; }
    # (the daemon itself in the background, not under timeout: kill -9 must
    # reach it; the script quits by itself should the kill never come)
    printf 'card:0 wait:200 remove card:1 wait:200 remove card:2 wait:200 remove wait:30000 quit\n' \
        >"$d/keys.txt"
    "$BUILD/yinian-pos" --config "$d/board.conf" >"$d/run.out" 2>"$d/run.log" &
    p=$!
    i=0
    while [ "$(records "$d")" != 3 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    sleep 6 # idle (the keeper checkpoints after 2 s without a tap)
    kill -9 $p
    wait $p 2>/dev/null
    cp "$d/ledger.db" "$d/main-only.db" # the main file alone, without the WAL
    n=$(sqlite3 -readonly "$d/main-only.db" "SELECT count(*) FROM journal" 2>/dev/null || echo none)
    [ "$n" = 3 ] || note_fail idle "the main file holds $n of 3 records after 6 s idle: no checkpoint"
}

# ---- a healthy ledger of six records, for the flips ----------------------------------
healthy() { # DIR
    setup "$1" || return 1
    pos "$1" make 'card:0 wait:150 remove card:1 wait:150 remove card:2 wait:150 remove card:3 wait:150 remove card:4 wait:150 remove card:5 wait:150 remove quit' ||
        return 1
    [ "$(records "$1")" = 6 ] && [ ! -s "$1/ledger.db-wal" ]
}

part_flip_journal() {
    d=$TMPDIR/flipj
    healthy "$d" || { note_fail flip_journal "setup: $(tail -3 "$d/make.log")"; return; }
    "$BUILD/yinian-diag" --config "$d/board.conf" ledger verify >"$d/verify-ok.out" 2>&1 ||
        note_fail flip_journal "yinian-diag ledger verify on a healthy ledger: $(tail -3 "$d/verify-ok.out")"
    # record 2's own hash: its two last columns are prev_hash then hash (the
    # hash alone appears again as record 3's prev_hash)
    hashes=$(sqlite3 -readonly "$d/ledger.db" "SELECT hex(prev_hash) || hex(hash) FROM journal WHERE seq = 2")
    off=$(offset_of "$d/ledger.db" "$hashes")
    [ -n "$off" ] || { note_fail flip_journal "record 2's hash not found in the file"; return; }
    flip_at "$d/ledger.db" $((off + 32 + 5))
    pos "$d" run 'wait:500 card:6 wait:300 remove wait:300 quit'
    stopped_screen "$d/run.out" || note_fail flip_journal "no sales-stopped screen: $(grep '^====' "$d/run.out" | tr '\n' ' ')"
    grep -q 'yinian-diag ledger verify' "$d/run.out" || note_fail flip_journal "the screen does not name yinian-diag ledger verify"
    [ "$(records "$d")" = 6 ] || note_fail flip_journal "$(records "$d") records: sold on a damaged ledger"
    rc=0
    "$BUILD/yinian-diag" --config "$d/board.conf" ledger verify >"$d/verify.out" 2>&1 || rc=$?
    [ $rc = 1 ] || note_fail flip_journal "yinian-diag ledger verify exit $rc, expected 1"
    grep -q 'seq 2' "$d/verify.out" || note_fail flip_journal "yinian-diag ledger verify does not name record 2: $(cat "$d/verify.out")"
}

part_flip_cards() {
    d=$TMPDIR/flipc
    healthy "$d" || { note_fail flip_cards "setup: $(tail -3 "$d/make.log")"; return; }
    # the cards table's one leaf page; card 4403040003's row in it: after the
    # key come the NULL roster and blacklist fields, the zero flag and balance
    # (no bytes), then last_seq = 3: flip that byte to 2
    page=$(sqlite3 -readonly "$d/ledger.db" "SELECT rootpage FROM sqlite_schema WHERE name = 'cards'")
    start=$(((page - 1) * 4096))
    off=$(offset_of "$d/ledger.db" "$(printf 4403040003 | od -An -tx1 | tr -d ' \n')" $start $((start + 4096)))
    [ -n "$off" ] || { note_fail flip_cards "card row not found"; return; }
    [ "$(od -An -tu1 -j $((off + 10)) -N1 "$d/ledger.db" | tr -d ' ')" = 3 ] ||
        { note_fail flip_cards "the row does not read as expected"; return; }
    flip_at "$d/ledger.db" $((off + 10))
    [ "$(sqlite3 -readonly "$d/ledger.db" "SELECT last_seq FROM cards WHERE card_no = '4403040003'")" = 2 ] ||
        { note_fail flip_cards "the flip did not land in last_seq"; return; }
    # the background verification runs at nice 19: give it time on a busy machine
    pos "$d" run 'wait:5000 card:6 wait:300 remove wait:300 quit'
    stopped_screen "$d/run.out" || note_fail flip_cards "no sales-stopped screen: $(grep '^====' "$d/run.out" | tr '\n' ' ')"
    [ "$(records "$d")" = 6 ] || note_fail flip_cards "$(records "$d") records: sold on a damaged ledger"
    grep -q 'card 4403040003' "$d/run.log" || note_fail flip_cards "the log does not name the card"
}

# ---- lost: records the district holds, missing from the ledger -----------------------
# with_district DIR PART: DIR set up with sync on (every 5 s) to a district
# server started here ($server) and enrolled; held() counts what it holds.
with_district() {
    setup "$1" || return 1
    sed -i -e '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = true/' \
        -e '/^\[sync\]/,/^\[/s/^interval_s = .*/interval_s = 5/' "$1/board.conf"
    "$BUILD/yinian-district" --db "$1/district.db" serve --cert "$1/tls/server.pem" \
        --key "$1/tls/server.key" --district-key "$1/keys/district.key" \
        --listen 127.0.0.1 --port "$port" >"$1/district.log" 2>&1 &
    server=$!
    token=$("$BUILD/yinian-district" --db "$1/district.db" enrol-token T-FT-0001 C-FT-001)
    for try in 1 2 3 4 5 6 7 8 9 10; do
        "$BUILD/yinian-pos" --config "$1/board.conf" --enrol "$token" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    kill $server
    return 1
}
held() { "$BUILD/yinian-district" --db "$d/district.db" report terminal | grep '^T-FT-0001,' | cut -d, -f2; }

part_lost() {
    d=$TMPDIR/lost
    with_district "$d" || { note_fail lost "setup and enrolment"; return; }
    # three sales, uploaded; the ledger as it is then is the "older copy"
    pos "$d" one 'card:0 wait:150 remove card:1 wait:150 remove card:2 wait:150 remove wait:6500 quit'
    [ "$(held)" = 3 ] || { note_fail lost "the district holds $(held) records, not 3"; kill $server; return; }
    cp "$d/ledger.db" "$d/older.db"
    # three more, uploaded too
    pos "$d" two 'card:3 wait:150 remove card:4 wait:150 remove card:5 wait:150 remove wait:6500 quit'
    [ "$(held)" = 6 ] || { note_fail lost "the district holds $(held) records, not 6"; kill $server; return; }
    cp "$d/ledger.db" "$d/whole.db"
    # the ledger loses records 4-6, which the district holds; and the mark says
    # 8, as when records 7-8 were about to be sent when the power went (they
    # never reached the district)
    cp "$d/older.db" "$d/ledger.db"
    rm -f "$d/ledger.db-wal" "$d/ledger.db-shm"
    printf 'yinian-ledger-mark 1 T-FT-0001 8 %064d\n' 0 >"$d/ledger.db.mark"
    rc=0
    "$BUILD/yinian-diag" --config "$d/board.conf" >"$d/diag.out" 2>&1 || rc=$?
    [ $rc = 1 ] || note_fail lost "yinian-diag exit $rc on a ledger that lost records"
    grep -q 'records 4-8 lost' "$d/diag.out" || note_fail lost "yinian-diag does not report the lost range: $(grep ledger "$d/diag.out")"
    # the next start: no sale until 4-6 are back from the district, then 7 is sold
    pos "$d" three 'wait:5000 card:6 wait:300 remove wait:9000 quit'
    held_now=$(held)
    kill $server
    wait $server 2>/dev/null
    grep -q '^==== \[sales_stopped_lost\]' "$d/three.out" || note_fail lost "no sales-stopped screen while records were missing"
    grep -q '^==== \[ok' "$d/three.out" || note_fail lost "no sale after the restore: $(grep '^====' "$d/three.out" | tr '\n' ' ')"
    [ "$(records "$d")" = 7 ] || note_fail lost "$(records "$d") records after the restore and one sale, expected 7"
    for f in ledger whole; do
        sqlite3 -readonly "$d/$f.db" "SELECT seq, hex(hash) FROM journal WHERE seq <= 6 ORDER BY seq" >"$d/$f.hashes"
    done
    cmp -s "$d/ledger.hashes" "$d/whole.hashes" || note_fail lost "records 1-6 are not the ones sent"
    grep -q 'HTTP 409' "$d/three.log" && note_fail lost "an upload was refused by the district (409): $(grep -m1 'HTTP 409' "$d/three.log")"
    [ "$held_now" = 7 ] || note_fail lost "the district holds $held_now records, expected 7 (the new sale uploaded)"
    "$BUILD/yinian-diag" --config "$d/board.conf" ledger verify >"$d/verify.out" 2>&1 ||
        note_fail lost "yinian-diag ledger verify after the restore: $(cat "$d/verify.out")"
    grep -q 'records 4-6 were lost here and restored from the district' "$d/verify.out" ||
        note_fail lost "yinian-diag does not report the restore: $(cat "$d/verify.out")"
    grep -q 'held records up to 6 only: records up to 8' "$d/verify.out" ||
        note_fail lost "yinian-diag does not report what never reached the district: $(cat "$d/verify.out")"
}

# ---- conflict: the district holds other records under our seqs -------------------
part_conflict() {
    d=$TMPDIR/conflict
    with_district "$d" || { note_fail conflict "setup and enrolment"; return; }
    pos "$d" one 'card:0 wait:150 remove card:1 wait:150 remove wait:6500 quit'
    [ "$(held)" = 2 ] || { note_fail conflict "the district holds $(held) records, not 2"; kill $server; return; }
    # the ledger and its mark gone (a new disk, no backup); two other sales on
    # a new ledger, offline: its seqs 1-2 are not the district's 1-2
    rm -f "$d/ledger.db" "$d/ledger.db-wal" "$d/ledger.db-shm" "$d/ledger.db.mark"
    sed -i '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = false/' "$d/board.conf"
    pos "$d" two 'card:3 wait:150 remove card:4 wait:150 remove quit'
    sed -i '/^\[sync\]/,/^\[/s/^enabled = .*/enabled = true/' "$d/board.conf"
    pos "$d" three 'wait:6000 card:5 wait:300 remove wait:300 quit'
    kill $server
    wait $server 2>/dev/null
    [ "$(grep -c 'HTTP 409' "$d/three.log")" = 1 ] ||
        note_fail conflict "$(grep -c 'HTTP 409' "$d/three.log") uploads refused with 409, expected exactly one"
    grep -q 'refused by the district as conflicting' "$d/three.log" || note_fail conflict "the log does not say why"
    grep -q '^==== \[sales_stopped_conflict\]' "$d/three.out" || note_fail conflict "no sales-stopped screen"
    [ "$(records "$d")" = 2 ] || note_fail conflict "$(records "$d") records: sold after the conflict"
    rc=0
    "$BUILD/yinian-diag" --config "$d/board.conf" ledger verify >"$d/verify.out" 2>&1 || rc=$?
    [ $rc = 1 ] || note_fail conflict "yinian-diag ledger verify exit $rc, expected 1"
    grep -q 'refused records 1-2 as conflicting' "$d/verify.out" ||
        note_fail conflict "yinian-diag does not report the conflict: $(cat "$d/verify.out")"
}

part_second
part_stale
part_idle
part_flip_journal
part_flip_cards
part_lost
part_conflict
if [ -n "$failed" ]; then
    echo "ledger_faults: FAILED:$failed" >&2
    exit 1
fi
echo "ledger_faults: ok"
