#!/usr/bin/env bash
# A disaster-recovery drill from a real Linux initiator (Debian 6.1 + open-iscsi in a qemu VM,
# tests/linux/harness), with nothing in the guest but busybox, e2fsprogs, iscsiadm and tandemctl
# (carried in with EXTRA_BINS, block-device transport on /dev/sdX). Two devices on 127.0.0.1
# (the only address the guest reaches), laid out as in func/52: d1 = P-VOL (3D+1P) + journal +
# command device, d2 = S-VOL (4D+1P, same size) + journal + command device, and each device has
# vvols onto the other's volume, journal and command device. Every command comes from the guest:
#   cmddev-add on both tables (d2's through d1: `tandemctl --via d2`, by-path links made by hand);
#   pair-create (mode=auto) as a `tandemctl encode` block written with dd, result read with dd;
#   poll d2's pair-status through d1 until paired; mkfs.ext4 on the P-VOL, files (sha256 in the
#   guest, compared with the host's list), sync, umount; wait until d2's restore_completed ==
#   d1's journal_in - 1; pair-swap on d2 (through d1); log out of d1; log in to d2; e2fsck -fn,
#   mount, every sha256, write a new file (d2 is primary now); wait until d1 (now the copy)
#   caught up; log out of d2, back in to d1: e2fsck -fn of the copy, the new file is there, and a
#   write to d1's volume is refused.
# The host then checks the roles and states on both devices (its own iSCSI sessions), the swap in
# d2's log and that the two volumes are equal block for block.
#
# Env: LINUX_VM_WORK (harness cache, default /var/tmp/tandem-linux-vm), CTL_VM_WORK (the initramfs
#      with tandemctl, shared with 02; default $LINUX_VM_WORK-tandemctl), VM_TIMEOUT (default 300),
#      plus everything tests/linux/harness/run-vm.sh reads.
. "$(dirname "$0")/../func/functions.sh"

HARNESS=$TOP/tests/linux/harness
export LINUX_VM_WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
CTL_VM_WORK=${CTL_VM_WORK:-$LINUX_VM_WORK-tandemctl}

requires qemu-system-x86_64 sha256sum
[ -x "$TANDEMCTL" ] || fail "$TANDEMCTL not built (run make)"
log "building/checking the VM initramfs (cache $LINUX_VM_WORK)"
if ! "$HARNESS/build-initramfs.sh" >"$WORK/build-initramfs.out" 2>&1; then
    tail -n 20 "$WORK/build-initramfs.out"
    skip "cannot build the Linux VM initramfs (tests/linux/harness/build-initramfs.sh failed)"
fi

# ---------------------------------------------------------------- initramfs with tandemctl
# As in 02-cmddev-dd.sh (same cache): a copy of tandemctl at a fixed path under the cache, its
# content hash as our own rebuild stamp, the kernel directory shared by a symlink.
ctl_copy=$CTL_VM_WORK/bin/tandemctl
ctl_sum=$(sha256sum < "$TANDEMCTL" | cut -c1-16)
mkdir -p "$CTL_VM_WORK/bin"
[ -e "$CTL_VM_WORK/kernel" ] || ln -s "$LINUX_VM_WORK/kernel" "$CTL_VM_WORK/kernel"
force=0
[ "$(cat "$CTL_VM_WORK/.tandemctl.sha256" 2>/dev/null)" = "$ctl_sum" ] && [ -x "$ctl_copy" ] || force=1
[ $force = 0 ] || install -m 0755 "$TANDEMCTL" "$ctl_copy"
t0=$SECONDS
if ! LINUX_VM_WORK=$CTL_VM_WORK EXTRA_BINS=$ctl_copy FORCE=$force \
        "$HARNESS/build-initramfs.sh" >"$WORK/build-initramfs-ctl.out" 2>&1; then
    tail -n 20 "$WORK/build-initramfs-ctl.out"
    fail "the plain initramfs builds but EXTRA_BINS could not carry tandemctl into one"
fi
echo "$ctl_sum" > "$CTL_VM_WORK/.tandemctl.sha256"
GUEST_CTL=$(readlink -f "$ctl_copy")
log "initramfs with tandemctl: $CTL_VM_WORK ($([ $force = 1 ] && echo "built in $((SECONDS - t0)) s" || echo cached))"

# ---------------------------------------------------------------- test data (host side)
# Incompressible files and their sha256 list made on the host; the guest extracts the tar,
# computes the sums itself (reported back and compared here) and adds a file of its own.
mkdir -p "$WORK/tree/data/sub"
mk() { head -c "$2" /dev/urandom > "$WORK/tree/data/$1"; }
mk big.bin $((3 * 1048576))
mk sub/odd.bin $((1048576 + 12345))
mk sub/two.bin $((2 * 1048576 + 511))
for i in 1 2 3 4 5; do mk "sub/small$i.bin" $((i * 37 * 1024 + i)); done
echo "tandem dr drill" > "$WORK/tree/data/hello.txt"
(cd "$WORK/tree" && find data -type f | LC_ALL=C sort | xargs sha256sum) > "$WORK/SHA256SUMS"
tar -C "$WORK/tree" -cf "$WORK/data.tar" data
NFILES=$(wc -l < "$WORK/SHA256SUMS")

# ---------------------------------------------------------------- devices (func/52's layout)
# Both on 127.0.0.1 (qemu's user network maps only that address to the guest's 10.0.2.2), own
# ports. Volumes of equal size in different layouts: 3 x 20 MiB = 4 x 15 MiB (4 MiB data offset).
device_start d1 127.0.0.1
device_start d2 127.0.0.1
PM=$(members "$WORK/p" 4 24M) PJM=$(members "$WORK/pj" 3 20M)
SM=$(members "$WORK/s" 5 19M) SJM=$(members "$WORK/sj" 3 20M)
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 raid "$PM" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
lu_add d1 3 raid "$PJM" "volid=11;layout=2D+1P;chunk_kib=64;bitmap=0;create=1"
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2"
lu_add d2 2 raid "$SM" "volid=20;layout=4D+1P;chunk_kib=64;create=1"
lu_add d2 3 raid "$SJM" "volid=21;layout=2D+1P;chunk_kib=64;bitmap=0;create=1"
lu_add d2 10 vvol "$(device_url d1 2)" "volid=30"
lu_add d2 11 vvol "$(device_url d1 3)" "volid=31"
lu_add d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev"
lu_add d1 10 vvol "$(device_url d2 2)" "volid=50"
lu_add d1 11 vvol "$(device_url d2 3)" "volid=51"
lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"
V1=$(device_url d1 2) V2=$(device_url d2 2)
B1=$("$TIO" info "$V1" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
B2=$("$TIO" info "$V2" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
[ -n "$B1" ] && [ "$B1" = "$B2" ] || fail "P-VOL has ${B1:-?} blocks, S-VOL ${B2:-?}: want equal sizes"

ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
# nothing was set up on the host beyond LUs: no pair, empty command-device tables
ctl1 call pair-status id=1 >/dev/null 2>&1 && fail "d1 has a pair before the drill"
[ "$(ctl1 cmddev show | head -n1)" = "0 command devices" ] || fail "d1's cmddev table is not empty: $(ctl1 cmddev show)"

# ---------------------------------------------------------------- guest script (busybox sh)
cat > "$WORK/guest.sh" <<'EOF'
set -e
T=${LVG_TANDEMCTL:?} F=/linuxvm/files
IQN1=$LV_TARGET PORTAL1=$LV_PORTAL IQN2=${LVG_D2_IQN:?} PORTAL2=${LVG_D2_PORTAL:?}
say() { echo "GUEST: $*"; }
die() { say "FAILED: $*"; exit 1; }
now() { cut -d' ' -f1 /proc/uptime; }
T0=$(now)
el() { awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step() { say "STEP $* [t=$(el)s]"; }
# run CMD: print CMD ("GUEST: $ CMD"), run it (pipefail), print stdout ("> ") and stderr ("2> ");
# stdout stays in /tmp/out. runq (polls): prints only stderr, and stdout when it fails.
run() {
    [ -n "${QUIET:-}" ] || say "\$ $1"
    rc=0
    sh -c "set -o pipefail; $1" > /tmp/out 2> /tmp/err || rc=$?
    [ -n "${QUIET:-}" ] && [ $rc = 0 ] || sed 's/^/GUEST: > /' /tmp/out
    sed 's/^/GUEST: 2> /' /tmp/err
    [ $rc = 0 ] || die "exit $rc: $1"
}
runq() { QUIET=1 run "$@"; }
# field KEY: the value of KEY in the last single-record result (tandemctl's "  key value" lines)
field() { awk -v k="$1" '$1 == k { print $2 }' /tmp/out; }

# ---- disks by session: "<lun> /dev/sdX" of the session to target IQN
luns() {
    for s in /sys/class/iscsi_session/session*; do
        [ -e "$s/targetname" ] && [ "$(cat "$s/targetname")" = "$1" ] || continue
        for b in "$s"/device/target*/*:*/block/*; do
            [ -e "$b" ] || continue
            h=${b%/block/*}; echo "${h##*:} /dev/${b##*/}"
        done
    done | sort -n
}
dev_of() { luns "$1" | awk -v l="$2" '$1 == l { print $2 }'; }
# wait_luns IQN N: until the session to IQN shows N disks
wait_luns() {
    i=0
    until [ "$(luns "$1" | wc -l)" -ge "$2" ]; do
        i=$((i + 1)); [ $i -lt 300 ] || die "session to $1: $(luns "$1" | wc -l) disks, want $2"; sleep 0.1
    done
}
# bypath PORTAL IQN: udev's /dev/disk/by-path links (no udev here); tandemctl --via turns
# ...-lun-1 into ...-lun-<the LUN in the command-device table>
bypath() {
    mkdir -p /dev/disk/by-path
    luns "$2" | while read -r l d; do ln -sf "$d" "/dev/disk/by-path/ip-$1-iscsi-$2-lun-$l"; done
}
model() { tr -d ' ' < "/sys/block/${1#/dev/}/device/model"; }
login() { # PORTAL IQN
    run "iscsiadm -m node -T $2 -p $1 --login"
    wait_luns "$2" 6
    bypath "$1" "$2"
}
logout() { # PORTAL IQN
    run "iscsiadm -m node -T $2 -p $1 --logout"
    i=0
    while [ -n "$(luns "$2")" ]; do i=$((i + 1)); [ $i -lt 100 ] || die "disks of $2 still there"; sleep 0.1; done
}

# ---- 1. logged in to d1 (by the harness): LUN 1 command device, LUN 2 the P-VOL
wait_luns "$IQN1" 6
bypath "$PORTAL1" "$IQN1"
C1=$(dev_of "$IQN1" 1) P1=$(dev_of "$IQN1" 2)
BP1=/dev/disk/by-path/ip-$PORTAL1-iscsi-$IQN1-lun-1
[ "$(model "$C1")" = TANDEM-CMDDEV ] || die "d1 LUN 1 ($C1) is $(model "$C1")"
[ "$(model "$P1")" = TANDEM-RAID ] || die "d1 LUN 2 ($P1) is $(model "$P1")"
BYTES=$(blockdev --getsize64 "$P1")
step "1 logged-in d1 cmddev=$C1 pvol=$P1 bytes=$BYTES"

# ---- 2. command-device tables: d1 -> d2 (LUN 12 = vvol volid 40 onto d2's command device),
# and d2 -> d1 written through d1 (d2's LUN 12 = vvol volid 32 onto d1's)
run "$T -d $BP1 cmddev add d2 12 40"
run "$T -d $BP1 --via d2 info"
[ "$(field name)" = d2 ] || die "--via d2 did not reach device d2"
run "$T -d $BP1 --via d2 cmddev add d1 12 32"
step "2 cmddev-tables d1:d2=lun12 d2:d1=lun12"

# ---- 3. pair-create: the block from tandemctl encode, written and read back with dd (slot 1)
PARAMS="id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=auto interval_ms=50 overflow=throttle"
run "$T encode pair-create $PARAMS tag=dr3 | dd of=$C1 bs=512 seek=512 count=1 conv=sync oflag=direct"
run "dd if=$C1 bs=512 skip=512 count=8 iflag=direct | tr -d '\\0'"
grep -q '^TDM1 result status=0 name=OK tag=dr3 ' /tmp/out || die "pair-create was not OK"
n=0
while :; do
    n=$((n + 1))
    runq "$T -d $BP1 --via d2 call pair-status id=1"
    [ "$(field state)" = paired ] && break
    [ $n -lt 300 ] || { cat /tmp/out; die "d2 not paired after $n polls"; }
    sleep 0.5
done
[ "$(field role)" = aux ] || die "d2's role is $(field role)"
step "3 pair-create d2=paired polls=$n copy_percent=$(field copy_percent)"

# ---- 4. a filesystem and files on the P-VOL
run "mkfs.ext4 -F -q -L drill -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 $P1"
mkdir -p /mnt/t
run "mount -t ext4 $P1 /mnt/t"
run "tar -xf $F/data.tar -C /mnt/t"
mkdir -p /mnt/t/guest
run "dd if=/dev/urandom of=/mnt/t/guest/random.bin bs=4096 count=300"
printf 'made in the guest at uptime %s\n' "$(now)" > /mnt/t/guest/note.txt
(cd /mnt/t && find data guest -type f | sort | xargs sha256sum) > /tmp/SUMS
sed 's/^/GUEST: SUM /' /tmp/SUMS
run "sync"
run "umount /mnt/t"
step "4 mkfs+files files=$(wc -l < /tmp/SUMS)"

# ---- 5. replication caught up: d2 restored everything d1 journaled
n=0
while :; do
    n=$((n + 1))
    runq "$T -d $BP1 call pair-status id=1"; j=$(field journal_in)
    runq "$T -d $BP1 --via d2 call pair-status id=1"; r=$(field restore_completed)
    [ -n "$j" ] && [ "$r" = $((j - 1)) ] && break
    [ $n -lt 300 ] || die "d2 restored $r, d1's journal_in is $j after $n polls"
    sleep 0.5
done
[ "$j" -gt 20 ] || die "d1 journaled only $((j - 1)) writes"
step "5 caught-up d1_journal_in=$j d2_restore_completed=$r polls=$n"

# ---- 6. pair-swap, issued on d2 (through d1's command device)
run "$T -d $BP1 --via d2 call pair-swap id=1"
grep -q 'swapped: this device is primary' /tmp/out || die "pair-swap did not say swapped"
held=$(sed -n 's/.*held for \([0-9]*\) ms; the swap took \([0-9]*\) ms.*/writes_held_ms=\1 swap_ms=\2/p' /tmp/out)
run "$T -d $BP1 call pair-status id=1"
[ "$(field role)" = aux ] || die "d1's role after the swap: $(field role)"
run "$T -d $BP1 --via d2 call pair-status id=1"
[ "$(field role)" = primary ] || die "d2's role after the swap: $(field role)"
step "6 pair-swap d1=aux d2=primary $held"

# ---- 7. log out of d1, log in to d2
logout "$PORTAL1" "$IQN1"
step "7 logout-d1"
run "iscsiadm -m node -o new -T $IQN2 -p $PORTAL2,1"
login "$PORTAL2" "$IQN2"
C2=$(dev_of "$IQN2" 1) P2=$(dev_of "$IQN2" 2)
BP2=/dev/disk/by-path/ip-$PORTAL2-iscsi-$IQN2-lun-1
[ "$(model "$C2")" = TANDEM-CMDDEV ] || die "d2 LUN 1 ($C2) is $(model "$C2")"
[ "$(blockdev --getsize64 "$P2")" = "$BYTES" ] || die "d2's volume is not $BYTES bytes"
step "8 login-d2 cmddev=$C2 vol=$P2"

# ---- 9. the filesystem on d2: e2fsck, every file, and d2 takes writes
run "e2fsck -fn $P2"
run "mount -t ext4 $P2 /mnt/t"
run "cd /mnt/t && sha256sum -c /tmp/SUMS"
[ "$(grep -c ': OK$' /tmp/out)" = "$(wc -l < /tmp/SUMS)" ] || die "not every file is OK on d2"
run "dd if=/dev/urandom of=/mnt/t/guest/after-swap.bin bs=4096 count=64 conv=fsync"
(cd /mnt/t && sha256sum guest/after-swap.bin) > /tmp/SUMS2
run "sync"
run "umount /mnt/t"
run "e2fsck -fn $P2"
step "9 d2-fsck+verify files_ok=$(wc -l < /tmp/SUMS) new_file_written"

# ---- 10. d2 journals, d1 (the copy now) follows; queried on d2's own command device
n=0
while :; do
    n=$((n + 1))
    runq "$T -d $BP2 call pair-status id=1"; j=$(field journal_in)
    [ "$(field role)" = primary ] || die "d2's role: $(field role)"
    runq "$T -d $BP2 --via d1 call pair-status id=1"; r=$(field restore_completed)
    [ "$(field role)" = aux ] || die "d1's role: $(field role)"
    [ -n "$j" ] && [ "$j" -gt 1 ] && [ "$r" = $((j - 1)) ] && break
    [ $n -lt 300 ] || die "d1 restored $r, d2's journal_in is $j after $n polls"
    sleep 0.5
done
step "10 reverse-caught-up d2_journal_in=$j d1_restore_completed=$r polls=$n"

# ---- 11. back to d1: the copy is clean and has the new file; it refuses writes
logout "$PORTAL2" "$IQN2"
login "$PORTAL1" "$IQN1"
P1=$(dev_of "$IQN1" 2)
run "e2fsck -fn $P1"
run "mount -t ext4 -o ro,noload $P1 /mnt/t"
run "cd /mnt/t && sha256sum -c /tmp/SUMS2"
run "umount /mnt/t"
run "dd if=$P1 of=/tmp/b0 bs=4096 count=1 iflag=direct"
n0=$(dmesg | wc -l)
say "\$ dd if=/tmp/b0 of=$P1 bs=4096 count=1 oflag=direct (must fail)"
if dd if=/tmp/b0 of="$P1" bs=4096 count=1 oflag=direct 2>/tmp/err; then die "d1's volume took a write"; fi
sed 's/^/GUEST: 2> /' /tmp/err
# the refusal is the device's (DATA PROTECT sense), not a transport or guest error
dmesg | tail -n +$((n0 + 1)) | grep "\[${P1#/dev/}\]" > /tmp/dmesg || true
sed 's/^/GUEST: dmesg: /' /tmp/dmesg
grep -q 'Sense Key : Data Protect' /tmp/dmesg || die "no DATA PROTECT sense for the refused write"
step "11 d1-copy fsck-clean new-file-ok write-refused=DATA_PROTECT ro=$(blockdev --getro "$P1")"
say "DR-DRILL OK"
EOF

# ---------------------------------------------------------------- the VM
log "VM boot: d1 ${DEV_IP[d1]}:${DEV_PORT[d1]} $IQN_BASE:d1, later d2 port ${DEV_PORT[d2]} (cache $CTL_VM_WORK)"
rc=0 t0=$SECONDS
LINUX_VM_WORK=$CTL_VM_WORK LOGIN=iscsiadm MIN_DISKS=6 VM_QUIET=1 VM_LOG="$WORK/vm.console" \
    VM_RUNS="$WORK/vm-runs" LINUX_VM_NO_BUILD=1 GUEST_FILES="$WORK/data.tar" \
    LVG_TANDEMCTL=$GUEST_CTL LVG_D2_IQN=$IQN_BASE:d2 LVG_D2_PORTAL=10.0.2.2:${DEV_PORT[d2]} \
    "$HARNESS/run-vm.sh" "${DEV_IP[d1]}:${DEV_PORT[d1]}" "$IQN_BASE:d1" "$WORK/guest.sh" \
    >"$WORK/vm.out" 2>&1 || rc=$?
tr -d '\r' < "$WORK/vm.console" > "$WORK/console"
grep -h '\[run-vm\] wall=' "$WORK/vm.out" | sed "s/^/[$TEST_NAME] VM: /" || true
log "transcript (guest: \$ command, > stdout, 2> stderr; polls not shown):"
sed -n 's/^GUEST: \(\$\|>\|2>\) /\1 /p' "$WORK/console" | sed "s/^/[$TEST_NAME]   /"
grep '^GUEST: dmesg: ' "$WORK/console" | sed "s/^GUEST: /[$TEST_NAME] guest /" || true
grep '^GUEST: STEP ' "$WORK/console" | sed "s/^GUEST: /[$TEST_NAME] guest /" || true
if [ $rc -ne 0 ] || ! grep -q '^GUEST: DR-DRILL OK$' "$WORK/console"; then
    echo "---- run-vm.sh output (rc=$rc)"; cat "$WORK/vm.out"
    echo "---- tail of VM console"; tail -n 80 "$WORK/console"
    fail "the guest did not pass the drill (run-vm.sh rc=$rc)"
fi
[ "$(grep -c '^GUEST: STEP ' "$WORK/console")" = 11 ] || fail "the guest did not report all 11 steps"

# ---------------------------------------------------------------- host: what the guest did
# The sums the guest computed of the files it wrote = the host's list (plus its own files).
sed -n 's/^GUEST: SUM //p' "$WORK/console" | grep ' data/' > "$WORK/guest-sums"
diff -u "$WORK/SHA256SUMS" "$WORK/guest-sums" ||
    fail "the sha256 the guest computed on d1 differ from the host's"
# roles and states, seen through the host's own sessions
[ "$(f1 role)" = aux ] && [ "$(f1 state)" = paired ] ||
    fail "d1 after the drill: $(ctl1 call pair-status id=1 2>&1)"
[ "$(f2 role)" = primary ] && [ "$(f2 state)" = journaling ] ||
    fail "d2 after the drill: $(ctl2 call pair-status id=1 2>&1)"
ctl1 cmddev show | grep -Eq '^  device +d2$' || fail "d1's cmddev table lacks the guest's d2 entry"
ctl2 cmddev show | grep -Eq '^  device +d1$' || fail "d2's cmddev table lacks the guest's d1 entry"
log_has d2 'pair 1 swapped: this device is primary' || fail "d2's log does not show the swap"
"$TIO" compare "$V1" "$V2" --blocks "$B1" > "$WORK/compare.out" 2>&1 ||
    fail "d1's and d2's volumes differ after the drill: $(cat "$WORK/compare.out")"
log "host: d1 aux/paired, d2 primary/journaling, both cmddev tables from the guest, volumes equal ($B1 blocks)"
log "PASS: DR drill from the Linux initiator in $((SECONDS - t0)) s: pair-create, ext4 + $NFILES files," \
    "caught up, swap, e2fsck + every file on d2, a write on d2 replicated back to d1"
