#!/bin/sh
# flash.sh — yinian-flash end to end in temporary roots, with the freshly built
# yinian-pos as the payload so that its --self-test really runs:
#   bundles (sign, verify; tampered, foreign key, truncated, other architecture),
#   provision, install, boot (confirm), downgrade and same-version refusals,
#   a new version failing its self-test rolled back by the boot budget, a hand
#   rollback, the ledger backed up before a migrating version (and restored when
#   that version fails after migrating), --json output,
#   and kill -9 after every durable step of install and of boot: each time the
#   board must still start a good version.
set -eu
: "${BUILD:?}" "${TMPDIR:?}" "${YN_SRCDIR:?}"
flash=$BUILD/yinian-flash
d=$TMPDIR/flash
root=$d/root
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
have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1
uv() { sqlite3 "$1" 'PRAGMA user_version'; }

# --- keys, a test board, bundles ------------------------------------------------
"$flash" keygen vendor.key vendor.pub >/dev/null
"$flash" keygen rogue.key rogue.pub >/dev/null
[ "$(stat -c %a vendor.key)" = 600 ] || fail "vendor key mode"
expect_exit 1 "$flash" keygen vendor.key vendor.pub
grep -q "is not replaced" err || fail "keygen overwrote a key"
"$YN_SRCDIR/tools/demo-setup" "$d/run" "$BUILD" >/dev/null

payload="bin/yinian-pos=$BUILD/yinian-pos bin/yinian-flash=$flash share/board.conf=$YN_SRCDIR/board.conf"
mk() { # version out [bundle options] [entries]
    v=$1; o=$2; shift 2
    # shellcheck disable=SC2086
    "$flash" bundle --key vendor.key --out "$o" --version "$v" --arch host "$@" $payload >/dev/null
}
mk 0.1.0 fw1.bin
schema=$("$flash" verify --pubkey vendor.pub --json fw1.bin | tail -n 1 |
    sed -n 's/.*"ledger_schema":\([0-9]*\).*/\1/p')
[ -n "$schema" ] || fail "no ledger_schema in the verify output"
mk 0.2.0 fw2.bin --ledger-schema $((schema + 1))   # a version that migrates the ledger

# a version whose self-test fails (says its version, then fails the health check)
mkdir -p broken/bin
cat >broken/bin/yinian-pos <<'EOF'
#!/bin/sh
case "$*" in *--version*) echo "yinian-pos 0.3.0 (broken)"; exit 0 ;; esac
echo "FAIL reader: no answer"; exit 1
EOF
chmod 755 broken/bin/yinian-pos
"$flash" bundle --key vendor.key --out fw3.bin --version 0.3.0 --arch host \
    bin/yinian-pos=broken/bin/yinian-pos share/board.conf="$YN_SRCDIR/board.conf" >/dev/null
mk 0.4.0 fw4.bin
"$flash" bundle --key vendor.key --out fw-arm.bin --version 0.9.0 --arch aarch64 \
    bin/yinian-pos="$BUILD/yinian-pos" share/board.conf="$YN_SRCDIR/board.conf" >/dev/null
"$flash" bundle --key rogue.key --out fw-rogue.bin --version 0.9.0 --arch host \
    bin/yinian-pos="$BUILD/yinian-pos" share/board.conf="$YN_SRCDIR/board.conf" >/dev/null
# a staging folder laid out like a slot
mkdir -p stage/bin stage/share/policies
cp "$BUILD/yinian-pos" stage/bin/
cp "$YN_SRCDIR/board.conf" stage/share/
cp "$YN_SRCDIR"/firmware/policies/*.json stage/share/policies/
"$flash" bundle --key vendor.key --out staged.bin --version 0.1.1 --arch host stage >/dev/null
expect_exit 0 "$flash" verify --pubkey vendor.pub staged.bin
nfiles=$(find stage -type f | wc -l)
grep -q "^files *$nfiles, " out || fail "staged bundle: $(cat out)"
grep -q " share/policies/zhuhai.json$" out || fail "staged bundle lacks a policy"
expect_exit 2 "$flash" bundle --key vendor.key --out x.bin bin/other="$BUILD/yinian-pos"
grep -q "must hold bin/yinian-pos" err || fail "bundle without the daemon accepted"
expect_exit 2 "$flash" bundle --key vendor.key --out x.bin ../etc=vendor.pub
grep -q "is not allowed" err || fail "path with .. accepted"

# --- verify: good, tampered, foreign, truncated ------------------------------------
expect_exit 0 "$flash" verify --pubkey vendor.pub fw1.bin
grep -q "signature valid" out || fail "verify output"
grep -q "bin/yinian-pos" out || fail "verify lists no files"
size=$(stat -c %s fw1.bin)
cp fw1.bin tampered.bin   # one byte of the payload (the end of board.conf) changed
printf 'X' | dd of=tampered.bin bs=1 seek=$((size - 2)) conv=notrunc 2>/dev/null
expect_exit 1 "$flash" verify --pubkey vendor.pub tampered.bin
grep -q "does not match its hash" err || fail "tampered payload not caught"
cp fw1.bin tampered-manifest.bin   # a byte of the manifest (inside "yinian-pos")
printf 'Y' | dd of=tampered-manifest.bin bs=1 seek=40 conv=notrunc 2>/dev/null
expect_exit 1 "$flash" verify --pubkey vendor.pub tampered-manifest.bin
grep -q "signature does not verify" err || fail "tampered manifest not caught"
expect_exit 1 "$flash" verify --pubkey vendor.pub fw-rogue.bin
grep -q "signature does not verify" err || fail "foreign key not caught"
head -c $((size - 100)) fw1.bin >short.bin
expect_exit 1 "$flash" verify --pubkey vendor.pub short.bin
grep -q "truncated" err || fail "truncated bundle not caught"

# --- provision and the first install ---------------------------------------------
expect_exit 1 "$flash" boot --root "$root"
grep -q "no firmware installed" err || fail "boot on an empty root"
expect_exit 0 "$flash" install --root "$root" --pubkey vendor.pub --arch host fw1.bin
[ "$(readlink "$root/current")" = slots/a ] || fail "current after the first install"
prov() {
    "$flash" provision --root "$root" --terminal-id T-FL-0001 --canteen C-FL-001 \
        --canteen-name 测试饭堂 --district 440304 --street 440304001 \
        --card-master-key run/keys/card-master.key --issuer-pub run/keys/issuer.pub \
        --vendor-pub vendor.pub --policy run/policy.json \
        --set reader.sim_cards="$d/run/cards.txt" "$@"
}
expect_exit 1 "$flash" boot --root "$root"
grep -q "not provisioned" err || fail "boot before provisioning"
expect_exit 2 prov --street 440305001
grep -q "does not lie in district" err || fail "bad street accepted"
[ ! -e "$root/etc/board.conf" ] || fail "a bad board.conf was written"
[ ! -e "$root/etc/keys/card-master.key" ] || fail "keys copied in before the checks passed"
expect_exit 2 prov --card-master-key run/keys/issuer.pub
grep -q "card-master-key" err || fail "a public file taken as the master key"
expect_exit 0 prov
for k in terminal.key card-master.key issuer.pub vendor.pub; do
    [ "$(stat -c %a "$root/etc/keys/$k")" = 600 ] || fail "key $k mode"
done
grep -q '^id = T-FL-0001$' "$root/etc/board.conf" || fail "terminal id in board.conf"
grep -q '^canteen_name = 测试饭堂$' "$root/etc/board.conf" || fail "canteen name"
"$BUILD/yinian-pos" --config "$root/etc/board.conf" --check-config >/dev/null ||
    fail "provisioned board.conf does not load"
expect_exit 1 prov
grep -q "provisioned already" err || fail "second provision not refused"
tkey=$(cat "$root/etc/keys/terminal.key")
expect_exit 0 prov --force
[ "$(cat "$root/etc/keys/terminal.key")" = "$tkey" ] || fail "re-provision changed the terminal key"
# the district server: its URL, CA and public key (enrolment itself comes with sync)
if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey ed25519 -nodes -keyout ca.key -out ca.pem -days 1 \
        -subj /CN=district-test >/dev/null 2>&1
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >district.pub
    expect_exit 2 prov --force --server-url https://district.example:8443 --ca vendor.pub
    grep -q "not a PEM certificate" err || fail "a CA that is no certificate"
    expect_exit 0 prov --force --server-url https://district.example:8443 --ca ca.pem \
        --district-pub district.pub
    grep -q '^url = https://district.example:8443$' "$root/etc/board.conf" || fail "sync url"
    grep -q '^ca_file = ca.pem$' "$root/etc/board.conf" || fail "sync ca_file"
    grep -q '^district_pubkey = keys/district.pub$' "$root/etc/board.conf" || fail "district key"
    cmp -s ca.pem "$root/etc/ca.pem" || fail "CA not copied"
fi
expect_exit 2 prov --force --set reader.nonsense=1
grep -q "nonsense" err || fail "an unknown --set key accepted"

expect_exit 0 "$flash" boot --root "$root"
grep -q "passed its self-test: confirmed" out || fail "first boot did not confirm"
expect_exit 0 "$flash" status --root "$root" --json
grep -q '"active":"a".*"confirmed":true' out || fail "status after confirm: $(cat out)"
[ -x "$root/bin/yinian-flash" ] || fail "no boot helper in ROOT/bin"
cp -a "$root" "$d/base"   # 0.1.0 confirmed, provisioned, ledger made by the self-test
[ -f "$root/var/ledger.db" ] || fail "self-test made no ledger"

# --- refusals -----------------------------------------------------------------------
expect_exit 1 "$flash" install --root "$root" --arch host fw-arm.bin
grep -q "built for aarch64, this board is host" err || fail "other architecture accepted"
expect_exit 1 "$flash" install --root "$root" --arch host tampered.bin
expect_exit 1 "$flash" install --root "$root" --arch host fw-rogue.bin
expect_exit 1 "$flash" install --root "$root" --arch host fw1.bin
grep -q "already installed" err || fail "same version not refused"
[ "$(readlink "$root/current")" = slots/a ] || fail "a refused install switched"

# --- upgrade with a ledger migration: backup, switch, confirm -----------------------
expect_exit 0 "$flash" install --root "$root" --arch host --json fw2.bin
grep -v '^{' out && fail "--json wrote something that is not JSON"
grep -q '"event":"progress","step":"unpack"' out || fail "no unpack progress in --json"
grep -q '"event":"result","ok":true,"command":"install","version":"0.2.0","slot":"b"' out ||
    fail "install result: $(tail -n 1 out)"
bak="$root/var/ledger.db.before-0.2.0.bak"
[ -f "$bak" ] || fail "no ledger backup before the migrating version"
[ $have_sqlite = 0 ] || [ "$(uv "$bak")" = "$schema" ] || fail "backup schema"
[ "$(readlink "$root/current")" = slots/b ] || fail "current not switched"
expect_exit 1 "$flash" install --root "$root" --arch host fw4.bin
grep -q "not passed its self-test yet" err || fail "install over an unconfirmed slot"
expect_exit 0 "$flash" boot --root "$root"
grep -q "0.2.0 passed its self-test: confirmed" out || fail "0.2.0 not confirmed"
expect_exit 1 "$flash" install --root "$root" --arch host fw1.bin
grep -q "downgrade from 0.2.0 to 0.1.0 refused" err || fail "downgrade not refused"

# --- a version that fails its self-test: the boot budget rolls it back --------------
expect_exit 0 "$flash" install --root "$root" --arch host --attempts 2 fw3.bin
[ "$(readlink "$root/current")" = slots/a ] || fail "0.3.0 not in slot a"
expect_exit 1 "$flash" boot --root "$root"
grep -q "failed its self-test; 1 more start" err || fail "first failed start: $(cat err)"
expect_exit 0 "$root/bin/yinian-flash" boot --root "$root"   # the stable boot helper
grep -q "rolled back to slot b, 0.2.0" out || fail "no rollback: $(cat out err)"
[ "$(readlink "$root/current")" = slots/b ] || fail "current after the rollback"
expect_exit 0 "$flash" status --root "$root"
grep -q "slot a *0.3.0 *failed" out || fail "status after the rollback: $(cat out)"
expect_exit 0 "$flash" boot --root "$root"
grep -q "0.2.0, confirmed" out || fail "boot after the rollback"
expect_exit 1 "$flash" rollback --root "$root"
grep -q "nothing to roll back to: slot a is failed" err || fail "rollback to a failed slot"

# --- a hand rollback, and forward again ----------------------------------------------
expect_exit 0 "$flash" install --root "$root" --arch host fw4.bin
expect_exit 0 "$flash" boot --root "$root"
grep -q "0.4.0 passed its self-test" out || fail "0.4.0 not confirmed"
expect_exit 0 "$flash" rollback --root "$root" --json
grep -q '"slot":"b","version":"0.2.0","from":"0.4.0"' out || fail "rollback result: $(cat out)"
[ "$(readlink "$root/current")" = slots/b ] || fail "current after a hand rollback"
expect_exit 0 "$flash" boot --root "$root"
expect_exit 0 "$flash" rollback --root "$root"
[ "$(readlink "$root/current")" = slots/a ] || fail "roll forward"
expect_exit 0 "$flash" install --root "$root" --arch host --force fw1.bin   # forced downgrade
grep -q "installed 0.1.0 in slot b" out || fail "forced downgrade"

# --- a failing version that migrated the ledger: rolled back, ledger restored ----------
if [ $have_sqlite = 1 ]; then
    rm -rf "$root" && cp -a "$d/base" "$root"
    mkdir -p migr/bin
    cat >migr/bin/yinian-pos <<EOF
#!/bin/sh
case "\$*" in *--version*) echo "yinian-pos 0.5.0 (migrates, then fails)"; exit 0 ;; esac
sqlite3 "$root/var/ledger.db" 'PRAGMA user_version = 99'; exit 1
EOF
    chmod 755 migr/bin/yinian-pos
    "$flash" bundle --key vendor.key --out fw5.bin --version 0.5.0 --arch host \
        --ledger-schema 99 bin/yinian-pos=migr/bin/yinian-pos \
        share/board.conf="$YN_SRCDIR/board.conf" >/dev/null
    expect_exit 0 "$flash" install --root "$root" --arch host --attempts 1 fw5.bin
    expect_exit 0 "$flash" boot --root "$root"
    grep -q "rolled back to slot a, 0.1.0" out || fail "0.5.0 not rolled back: $(cat out err)"
    [ "$(uv "$root/var/ledger.db")" = "$schema" ] || fail "ledger not restored to v$schema"
    [ "$(uv "$root/var/ledger.db.failed-0.5.0.bak")" = 99 ] || fail "migrated ledger not kept"
    "$root/current/bin/yinian-pos" --config "$root/etc/board.conf" --self-test >/dev/null 2>&1 ||
        fail "0.1.0 does not start on the restored ledger"
    echo "ledger: migrated by a failing version, restored at its rollback"
else
    echo "ledger restore after a failing migration: skipped (no sqlite3 command)"
fi

# --- kill -9 after every durable step -----------------------------------------------
# After each kill the board is "restarted": boot must succeed (a few starts at
# most), and current must point at a yinian-pos that runs and passes its
# self-test.
startable() { # what
    ok=0
    for _ in 1 2 3 4; do
        if "$flash" boot --root "$root" >boot.out 2>&1; then ok=1; break; fi
    done
    [ $ok = 1 ] || { cat boot.out; fail "$1: no start succeeded"; }
    "$root/current/bin/yinian-pos" --version >/dev/null 2>&1 || fail "$1: current does not run"
    "$root/current/bin/yinian-pos" --config "$root/etc/board.conf" --self-test >st.out 2>&1 ||
        { cat st.out; fail "$1: current fails its self-test"; }
    "$flash" status --root "$root" >/dev/null || fail "$1: status"
}
kill_loop() { # name setup-function check-function command...
    name=$1; setup=$2; check=$3; shift 3
    n=1
    while :; do
        rm -rf "$root" && cp -a "$d/base" "$root"
        $setup
        set +e
        YN_FLASH_STOP_AT=$n "$@" >kill.out 2>&1
        got=$?
        set -e
        if [ $got -ne 137 ]; then
            [ $got -eq 0 ] || { cat kill.out; fail "$name: exit $got without a kill"; }
            $check "$name, run to the end"
            echo "kill -9 $name: killed after each of $((n - 1)) durable steps, board started every time"
            break
        fi
        grep -q "killed after step $n " kill.out || { cat kill.out; fail "$name: step $n"; }
        $check "$name, killed after step $n"
        n=$((n + 1))
        [ $n -lt 200 ] || fail "$name: more than 200 steps?"
    done
    [ $n -gt 2 ] || fail "$name: only $((n - 1)) steps: is YN_FLASH_STOP_AT honoured?"
}
# ... and the technician simply runs the same install again: it completes (or
# says that version is in already, when the kill came after the switch)
reinstall() { # what bundle version
    startable "$1"
    set +e
    "$flash" install --root "$root" --arch host "$2" >again.out 2>&1
    got=$?
    set -e
    [ $got = 0 ] || grep -q "already installed" again.out ||
        { cat again.out; fail "$1: the install run again failed"; }
    startable "$1, installed again"
    [ "$(cat "$root/current/VERSION")" = "$3" ] || fail "$1: $3 not running in the end"
}
again2() { reinstall "$1" fw2.bin 0.2.0; }
again4() { reinstall "$1" fw4.bin 0.4.0; }
no_setup() { :; }
kill_loop "install 0.2.0 (migrating)" no_setup again2 \
    "$flash" install --root "$root" --arch host fw2.bin
[ "$(readlink "$root/current")" = slots/b ] || fail "the uninterrupted install did not switch"
"$flash" status --root "$root" --json | grep -q '"active":"b".*"confirmed":true' ||
    fail "the uninterrupted install not confirmed"

# over a full inactive slot: a holds 0.1.0, b 0.2.0 (active); 0.4.0 replaces a
setup_two() {
    "$flash" install --root "$root" --arch host fw2.bin >/dev/null 2>&1 || fail "setup: install"
    "$flash" boot --root "$root" >/dev/null 2>&1 || fail "setup: boot 0.2.0"
}
kill_loop "install 0.4.0 over slot a" setup_two again4 \
    "$flash" install --root "$root" --arch host fw4.bin
"$flash" status --root "$root" --json | grep -q '"active":"a".*"confirmed":true' ||
    fail "0.4.0 not confirmed after its install"

setup_good() { "$flash" install --root "$root" --arch host fw4.bin >/dev/null 2>&1; }
kill_loop "boot confirming 0.4.0" setup_good startable "$flash" boot --root "$root"
setup_bad() { "$flash" install --root "$root" --arch host --attempts 1 fw3.bin >/dev/null 2>&1; }
kill_loop "boot rolling back 0.3.0" setup_bad startable "$flash" boot --root "$root"
grep -q "0.1.0, confirmed" boot.out || fail "after the rollback loop: $(cat boot.out)"
if [ $have_sqlite = 1 ]; then
    setup_migr() { "$flash" install --root "$root" --arch host --attempts 1 fw5.bin >/dev/null 2>&1; }
    restored() { # what
        startable "$1"
        [ "$(uv "$root/var/ledger.db")" = "$schema" ] || fail "$1: ledger not back at v$schema"
    }
    kill_loop "boot rolling back 0.5.0 (ledger migrated)" setup_migr restored \
        "$flash" boot --root "$root"
fi

# provision interrupted: board.conf is either absent or whole, and provisioning
# again finishes the job
setup_provision() { rm -f "$root/etc/board.conf" "$root/etc/keys/"*; }
provisioned() { # what
    if [ -e "$root/etc/board.conf" ]; then
        "$BUILD/yinian-pos" --config "$root/etc/board.conf" --check-config >/dev/null 2>&1 ||
            fail "$1: a board.conf that does not load"
    fi
    prov --force >/dev/null 2>&1 || fail "$1: provisioning again failed"
    startable "$1"
}
kill_loop "provision" setup_provision provisioned prov
echo "flash: all checks passed"
