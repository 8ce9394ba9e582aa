#!/usr/bin/env bash
# A real Linux initiator (Debian's 6.1 kernel + open-iscsi, in a qemu VM: tests/linux/harness)
# puts ext4 on a raid 3D+1P LU, writes ~20 MiB of files, remounts and re-checks them, e2fsck -fn;
# then the device is stopped, a NEW device assembles the same four members (no create=) and a
# second VM boot checks the filesystem (e2fsck -fn, mount -o ro, sha256 of every file against
# the list the host computed before the first boot). Proves the data survives restart and
# reassembly as seen through the kernel's initiator. Finally the host rebuilds the volume image
# from the member files by the documented layout (docs/raid-format.md) and checks it with e2fsck
# and debugfs: the data is where the format says it is.
#
# Env: LINUX_VM_WORK (harness cache, default /var/tmp/tandem-linux-vm), VM_TIMEOUT (default 300),
#      plus everything tests/linux/harness/run-vm.sh reads.
. "$(dirname "$0")/../func/functions.sh"

HARNESS=$TOP/tests/linux/harness
export LINUX_VM_WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
NR=4 MEMBER_SIZE=64M
# 3D+1P, 64 MiB members, 4 MiB data offset, 64 KiB chunks: 3 * 60 MiB (docs/raid-format.md)
WANT_BYTES=$((3 * 60 * 1048576))

requires qemu-system-x86_64 e2fsck debugfs od
log "building/checking the VM initramfs (cache $LINUX_VM_WORK)"
if ! "$HARNESS/build-initramfs.sh" >"$WORK/build-initramfs.out" 2>&1; then
    tail -n 20 "$WORK/build-initramfs.out"
    skip "cannot build the Linux VM initramfs (tests/linux/harness/build-initramfs.sh failed)"
fi

# ---------------------------------------------------------------- test data (host side)
# A tree of incompressible files (~20 MiB, odd sizes included) and its sha256 list, made on the
# host: the guests get the tar and the list, the list is the reference for both boots.
mkdir -p "$WORK/tree/data/sub/deeper"
mk() { head -c "$2" /dev/urandom > "$WORK/tree/data/$1"; }
mk big.bin $((8 * 1048576))
mk sub/odd.bin $((5 * 1048576 + 12345))
mk sub/four.bin $((4 * 1048576))
mk sub/deeper/two.bin $((2 * 1048576 + 511))
for i in 1 2 3 4 5 6 7 8; do mk "sub/deeper/small$i.bin" $((i * 37 * 1024 + i)); done
echo "tandem raid ext4 test" > "$WORK/tree/data/hello.txt"
(cd "$WORK/tree" && find data -type f | LC_ALL=C sort | xargs sha256sum) > "$WORK/SHA256SUMS"
tar -C "$WORK/tree" -cf "$WORK/data.tar" data
NFILES=$(wc -l < "$WORK/SHA256SUMS")
NBYTES=$(cd "$WORK/tree" && find data -type f -printf '%s\n' | awk '{s += $1} END {print s}')
log "test data: $NFILES files, $NBYTES bytes"

# ---------------------------------------------------------------- guest scripts (busybox sh)
cat > "$WORK/guest-write.sh" <<'EOF'
set -e
D=${ISCSI_LUN_1:?no LUN 1}
F=/linuxvm/files
now() { cut -d' ' -f1 /proc/uptime; }
echo "GUEST: LUN1 dev=$D bytes=$(blockdev --getsize64 "$D")"
t0=$(now)
mkfs.ext4 -F -q -L tandem -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 "$D"
mkdir -p /mnt/t
mount -t ext4 "$D" /mnt/t
t1=$(now)
tar -xf $F/data.tar -C /mnt/t
sync
t2=$(now)
umount /mnt/t
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 "$D" /mnt/t
t3=$(now)
(cd /mnt/t && sha256sum -c $F/SHA256SUMS) > /tmp/check.out 2>&1 || {
    grep -v ': OK$' /tmp/check.out; echo "GUEST: sha256 MISMATCH after remount"; exit 1; }
t4=$(now)
n=$(grep -c ': OK$' /tmp/check.out)
umount /mnt/t
e2fsck -fn "$D" > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; echo "GUEST: e2fsck -fn FAILED"; exit 1; }
echo "GUEST: times mkfs+mount=$(awk -v a=$t0 -v b=$t1 'BEGIN{print b-a}')s" \
     "write+sync=$(awk -v a=$t1 -v b=$t2 'BEGIN{print b-a}')s" \
     "remount+verify=$(awk -v a=$t3 -v b=$t4 'BEGIN{print b-a}')s"
echo "GUEST: RAID-EXT4 WRITE OK files=$n"
EOF
cat > "$WORK/guest-verify.sh" <<'EOF'
set -e
D=${ISCSI_LUN_1:?no LUN 1}
F=/linuxvm/files
echo "GUEST: LUN1 dev=$D bytes=$(blockdev --getsize64 "$D")"
e2fsck -fn "$D" > /tmp/fsck.out 2>&1 || { cat /tmp/fsck.out; echo "GUEST: e2fsck -fn FAILED"; exit 1; }
mkdir -p /mnt/t
mount -t ext4 -o ro "$D" /mnt/t
(cd /mnt/t && sha256sum -c $F/SHA256SUMS) > /tmp/check.out 2>&1 || {
    grep -v ': OK$' /tmp/check.out; echo "GUEST: sha256 MISMATCH after reassembly"; exit 1; }
n=$(grep -c ': OK$' /tmp/check.out)
[ "$(cat /mnt/t/data/hello.txt)" = "tandem raid ext4 test" ]
umount /mnt/t
echo "GUEST: RAID-EXT4 VERIFY OK files=$n"
EOF

# vm_run N DEVICE GUEST_SCRIPT FILES...: one VM boot against DEVICE's target; console in
# $WORK/vmN.console, run-vm.sh's own output in $WORK/vmN.out. Fails the test (with the console
# tail) unless the guest passed.
vm_run() {
    local n=$1 dev=$2 script=$3 rc=0; shift 3
    local con="$WORK/vm$n.console"
    log "VM boot $n: $(basename "$script") against ${DEV_IP[$dev]}:${DEV_PORT[$dev]} $IQN_BASE:$dev"
    GUEST_FILES="$*" VM_QUIET=1 VM_LOG="$con" VM_RUNS="$WORK/vm-runs" LINUX_VM_NO_BUILD=1 \
        "$HARNESS/run-vm.sh" "${DEV_IP[$dev]}:${DEV_PORT[$dev]}" "$IQN_BASE:$dev" "$script" \
        >"$WORK/vm$n.out" 2>&1 || rc=$?
    grep -h '\[run-vm\] wall=' "$WORK/vm$n.out" | sed "s/^/[$TEST_NAME] VM $n: /" || true
    tr -d '\r' < "$con" | grep '^GUEST: times' | sed "s/^/[$TEST_NAME] VM $n: /" || true
    if [ $rc -ne 0 ]; then
        echo "---- run-vm.sh output (rc=$rc)"; cat "$WORK/vm$n.out"
        echo "---- tail of VM console $con"; tr -d '\r' < "$con" | tail -n 60
        fail "VM boot $n: guest did not pass (run-vm.sh rc=$rc)"
    fi
}
# lun_bytes N: the LU size the guest of boot N saw
lun_bytes() { tr -d '\r' < "$WORK/vm$1.console" | sed -n 's/^GUEST: LUN1 dev=[^ ]* bytes=\([0-9]*\)$/\1/p'; }

# sb_u64/sb_u32 MEMBER OFFSET: a little-endian field of the member's superblock (copy at byte 0)
sb_u64() { od -An -v -t u8 -j "$2" -N 8 "$1" | tr -d ' '; }
sb_u32() { od -An -v -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
# sb_clean MEMBER: the newer valid-looking superblock copy (bytes 0 / 4096, higher sequence) has
# the dirty flag clear
sb_clean() {
    local seq0 seq1 base=0
    seq0=$(sb_u64 "$1" 24) seq1=$(sb_u64 "$1" $((4096 + 24)))
    [ "$(tail -c +4097 "$1" | head -c 8)" = TNDMRAID ] && [ "$seq1" -gt "$seq0" ] && base=4096
    [ $(( $(sb_u32 "$1" $((base + 20))) & 1 )) = 0 ]
}
# destripe: $WORK/volume.img from the members $WORK/m0..m(NR-1), one dd per chunk.
destripe() {
    local m0=$WORK/m0 n nm c off mdb vol s d p k i
    [ "$(head -c 8 "$m0")" = TNDMRAID ] || fail "member 0 has no tandem superblock at byte 0"
    nm=$(sb_u32 "$m0" 52) n=$(sb_u32 "$m0" 56) c=$(sb_u32 "$m0" 60)
    off=$(sb_u64 "$m0" 80) mdb=$(sb_u64 "$m0" 88) vol=$(sb_u64 "$m0" 96)
    [ "$nm" = $NR ] && [ "$n" = $((NR - 1)) ] && [ $((n * mdb)) = "$vol" ] && [ "$vol" = "$WANT_BYTES" ] &&
        [ $((off % c)) = 0 ] || fail "unexpected geometry in member 0: N=$nm n=$n C=$c off=$off mdb=$mdb vol=$vol"
    for ((i=0; i<NR; i++)); do
        [ "$(sb_u32 "$WORK/m$i" 48)" = $i ] || fail "member $i does not say member_index $i"
    done
    rm -f "$WORK/volume.img"
    for ((s=0; s<mdb/c; s++)); do
        p=$(( (nm - 1) - s % nm ))
        for ((d=0; d<n; d++)); do
            k=$((s * n + d))
            dd if="$WORK/m$(( (p + 1 + d) % nm ))" of="$WORK/volume.img" bs="$c" count=1 \
               skip=$((off / c + s)) seek=$k conv=notrunc,sparse status=none
        done
    done
}

# ---------------------------------------------------------------- boot 1: create, mkfs, write
device_start d1 127.0.0.1
list=$(members "$WORK/m" $NR $MEMBER_SIZE)
lu_add d1 1 raid "$list" "volid=1;layout=3D+1P;chunk_kib=64;create=1" ||
    fail "creating the raid LU failed"
vm_run 1 d1 "$WORK/guest-write.sh" "$WORK/data.tar" "$WORK/SHA256SUMS"
tr -d '\r' < "$WORK/vm1.console" | grep -q "^GUEST: RAID-EXT4 WRITE OK files=$NFILES\$" ||
    fail "VM boot 1 passed but did not report all $NFILES files written and verified"
[ "$(lun_bytes 1)" = "$WANT_BYTES" ] || fail "guest saw a LU of $(lun_bytes 1) bytes, want $WANT_BYTES"

# ---------------------------------------------------------------- restart: a new device assembles
# The initiator of boot 1 is gone (qemu exited, its TCP connection closed): the LU can go.
wait_for 10 lu_del d1 1 || fail "could not delete LUN 1 of d1"
device_stop d1
device_start d2 127.0.0.1
lu_add d2 1 raid "$list" "volid=1" || fail "reassembling the raid LU on a new device failed"

# ---------------------------------------------------------------- boot 2: check, read-only
vm_run 2 d2 "$WORK/guest-verify.sh" "$WORK/SHA256SUMS"
tr -d '\r' < "$WORK/vm2.console" | grep -q "^GUEST: RAID-EXT4 VERIFY OK files=$NFILES\$" ||
    fail "VM boot 2 passed but did not report all $NFILES files verified"
[ "$(lun_bytes 2)" = "$WANT_BYTES" ] || fail "reassembled LU has $(lun_bytes 2) bytes, want $WANT_BYTES"
lu_del d2 1 || fail "could not delete LUN 1 of d2"
device_stop d2

# ---------------------------------------------------------------- host: the members, by the book
# Independent of the module's read path: rebuild the volume image from the four member files with
# the geometry in their superblocks and the left-symmetric mapping of docs/raid-format.md, then
# e2fsck it and check every file with debugfs on the host.
for ((i=0; i<NR; i++)); do
    sb_clean "$WORK/m$i" || fail "member $i is still marked dirty after the LU was deleted and tgtd stopped"
done
t0=$SECONDS; destripe
e2fsck -fn "$WORK/volume.img" >"$WORK/host-fsck.out" 2>&1 ||
    { cat "$WORK/host-fsck.out"; fail "host e2fsck -fn of the de-striped members failed"; }
mkdir -p "$WORK/host"
debugfs -R "rdump /data $WORK/host" "$WORK/volume.img" >"$WORK/host-debugfs.out" 2>&1 ||
    { cat "$WORK/host-debugfs.out"; fail "debugfs could not dump /data from the de-striped members"; }
(cd "$WORK/host" && sha256sum --quiet -c "$WORK/SHA256SUMS") ||
    fail "files read on the host from the de-striped members differ from the originals"
log "host: members de-striped per docs/raid-format.md ($((SECONDS - t0)) s): e2fsck clean, all $NFILES files match"

log "PASS: ext4 on raid 3D+1P via the Linux initiator: $NFILES files ($NBYTES bytes) written," \
    "remounted, e2fsck clean; intact after device restart + reassembly and on the members by the book"
