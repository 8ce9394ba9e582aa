#!/usr/bin/env bash
# A command for device 2, written with dd to device 1 (seed 004, Figs. 7-9 through a virtual
# volume): device 2 (127.0.0.3) has a command device and a raid volume; device 1 (127.0.0.1, the
# one the VM reaches) has its own command device (LUN 1) and a vvol kind=cmddev (LUN 2) that
# forwards to device 2's command device; device 1's command-device table lists d2 -> LUN 2.
# The guest (busybox dd/printf/tr/grep only) reads the table on LUN 1, then writes `info` and
# `vol-list` blocks to LUN 2 and reads device 2's results back with dd. The host then checks
# device 2 executed them (its log, and device 1's LUN map counters).
. "$(dirname "$0")/../func/functions.sh"

HARNESS=$TOP/tests/linux/harness
export LINUX_VM_WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
requires qemu-system-x86_64
log "building/checking the VM initramfs (cache $LINUX_VM_WORK)"
"$HARNESS/build-initramfs.sh" >"$WORK/build-initramfs.out" 2>&1 ||
    skip "cannot build the Linux VM initramfs (tests/linux/harness/build-initramfs.sh failed)"

device_start d2 127.0.0.3
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100;create=1;device=d2"
lu_add d2 2 raid "$(members "$WORK/m" 3 16M)" "volid=7;layout=2D+1P;create=1"
device_start d1 127.0.0.1
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 vvol "$(device_url d2 1)" "volid=22;kind=cmddev"
"$TANDEMCTL" -d "$(device_url d1 1)" cmddev add d2 2 22 >/dev/null

cat > "$WORK/guest.sh" <<'EOS'
set -e
say() { echo "GUEST: $*"; }
die() { say "FAILED: $*"; exit 1; }
# tdm DEV LINE: the block into slot 1 (LBA 512) of DEV with dd; its result read back with dd
tdm() {
    say "\$ printf '$2\\n' | dd of=$1 bs=512 seek=512 count=1 conv=sync oflag=direct"
    printf "$2\n" | dd of="$1" bs=512 seek=512 count=1 conv=sync oflag=direct 2>/dev/null
    say "\$ dd if=$1 bs=512 skip=512 count=8 iflag=direct | tr -d '\\0'"
    dd if="$1" bs=512 skip=512 count=8 iflag=direct 2>/dev/null | tr -d '\0' > /tmp/res
    sed 's/^/GUEST: > /' /tmp/res
}
D1=${ISCSI_LUN_1:?} VIA=${ISCSI_LUN_2:?}
tdm "$D1" 'TDM1 cmddev-show tag=t1'
grep -q '^cmddev device=d2 lun=2 volid=22$' /tmp/res || die "d2 not in device 1's table"
tdm "$VIA" 'TDM1 info tag=t2'
grep -q 'status=0 name=OK tag=t2' /tmp/res || die "info through device 1 failed"
grep -q '^device name=d2 ' /tmp/res || die "the command did not run on device 2"
tdm "$VIA" 'TDM1 vol-list tag=t3'
grep -q '^vol volid=7 type=raid .*layout=2D+1P' /tmp/res || die "device 2's raid volume not listed"
tdm "$VIA" 'TDM1 vol-status volid=99 tag=t4'
grep -q 'status=8 name=NOT_FOUND tag=t4' /tmp/res || die "device 2's error result not readable"
say "REMOTE-CMDDEV OK"
EOS
log "VM boot: guest.sh against ${DEV_IP[d1]}:${DEV_PORT[d1]}"
rc=0
MIN_DISKS=2 VM_QUIET=1 VM_LOG="$WORK/vm.console" VM_RUNS="$WORK/vm-runs" LINUX_VM_NO_BUILD=1 \
    "$HARNESS/run-vm.sh" "${DEV_IP[d1]}:${DEV_PORT[d1]}" "$IQN_BASE:d1" "$WORK/guest.sh" \
    > "$WORK/vm.out" 2>&1 || rc=$?
sed -n 's/^GUEST: \(\$\|>\) /\1 /p' "$WORK/vm.console" | sed "s/^/[$TEST_NAME]   /"
if [ $rc -ne 0 ] || ! grep -q '^GUEST: REMOTE-CMDDEV OK' "$WORK/vm.console"; then
    tail -n 40 "$WORK/vm.out"
    fail "the guest did not pass (run-vm.sh rc=$rc)"
fi
log_has d2 "vol-status -> NOT_FOUND" || fail "device 2's log does not show the command it ran"
"$TANDEMCTL" -d "$(device_url d1 1)" --json lunmap show > "$WORK/lunmap.json"
python3 - "$WORK/lunmap.json" <<'EOP' || fail "device 1's LUN map counters: $(cat "$WORK/lunmap.json")"
import json, sys
r = json.load(open(sys.argv[1]))["records"]
m = [x for x in r if x["volid"] == 22][0]
assert m["kind"] == "cmddev" and m["writes"] >= 3 and m["reads"] >= 3, m
EOP
log "PASS: commands for device 2 written with dd to device 1, executed by device 2, results read back"
