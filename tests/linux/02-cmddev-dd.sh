#!/usr/bin/env bash
# The command device through a real Linux initiator (Debian 6.1 + open-iscsi in a qemu VM,
# tests/linux/harness): a device on 127.0.0.1 with LUN 1 = raid 3D+1P (4 x 16 MiB members) and
# LUN 2 = a command device. The guest drives it with busybox dd/printf/tr/grep only, exactly as
# docs/command-device.md shows: vol-list, info, cmddev-add + cmddev-show, a malformed block
# (INVALID, readable with dd), raid-check + op-status polled with dd until done. Before the first
# command it checks that the slots and the last blocks read zeros, and afterwards the host checks
# that the kernel's own login-time I/O (partition-scan reads of LBA 0 and the last blocks) ran no
# command: the only error the device logged is the malformed block, no non-command write was
# seen (TANDEM_DEBUG=1 logs them), and the tables generation is 1 + the one table-changing
# command. Then tandemctl itself (EXTRA_BINS: the host binary and its libraries in a separate
# initramfs cache) runs in the guest over the block-device transport (O_DIRECT on /dev/sdX):
# `vol list`, `--json info`. After the VM exits the host sees the guest's cmddev-add through its
# own iSCSI session (tandemctl cmddev show). The dd transcript is printed in the test log.
#
# Env: LINUX_VM_WORK (harness cache, default /var/tmp/tandem-linux-vm), CTL_VM_WORK (the cache of
#      the initramfs with tandemctl, default $LINUX_VM_WORK-tandemctl; it shares the kernel of
#      LINUX_VM_WORK by a symlink), VM_TIMEOUT (default 300), NO_EXTRA_BINS=1 (dd part only).
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
# EXTRA_BINS copies a host binary (at its host path) and its shared libraries (ldd) into the
# initramfs. It is part of the cache key, so it gets a cache of its own (the plain one stays
# what 01 and others expect); the kernel directory is shared. The key has the binary's *path*,
# not its content: a rebuilt tandemctl forces a rebuild through our own stamp.
VM_WORK=$LINUX_VM_WORK GUEST_CTL=""
if [ "${NO_EXTRA_BINS:-0}" != 1 ]; then
    # EXTRA_BINS puts a binary at its host path in the image, and the guest mounts a tmpfs on
    # /tmp: so carry a copy at a fixed path under the cache (also keeps the harness key stable
    # whatever directory the project is in), and rebuild when its content changes.
    ctl_copy=$CTL_VM_WORK/bin/tandemctl
    ctl_sum=$(sha256sum < "$TANDEMCTL" | cut -c1-16)
    mkdir -p "$CTL_VM_WORK/bin"
    [ -e "$CTL_VM_WORK/kernel" ] || ln -s "$LINUX_VM_WORK/kernel" "$CTL_VM_WORK/kernel"
    force=0
    [ "$(cat "$CTL_VM_WORK/.tandemctl.sha256" 2>/dev/null)" = "$ctl_sum" ] && [ -x "$ctl_copy" ] ||
        force=1
    [ $force = 0 ] || install -m 0755 "$TANDEMCTL" "$ctl_copy"
    t0=$SECONDS
    if LINUX_VM_WORK=$CTL_VM_WORK EXTRA_BINS=$ctl_copy FORCE=$force \
            "$HARNESS/build-initramfs.sh" >"$WORK/build-initramfs-ctl.out" 2>&1; then
        echo "$ctl_sum" > "$CTL_VM_WORK/.tandemctl.sha256"
        VM_WORK=$CTL_VM_WORK GUEST_CTL=$(readlink -f "$ctl_copy")
        log "initramfs with tandemctl (EXTRA_BINS=$ctl_copy): $CTL_VM_WORK" \
            "($([ $force = 1 ] && echo "built in $((SECONDS - t0)) s" || echo cached))"
    else
        tail -n 20 "$WORK/build-initramfs-ctl.out"
        log "WARNING: EXTRA_BINS could not carry tandemctl; the guest runs the dd part only"
    fi
fi

# ---------------------------------------------------------------- guest script (busybox sh)
cat > "$WORK/guest.sh" <<'EOF'
set -e
C=${ISCSI_LUN_2:?no LUN 2}
say() { echo "GUEST: $*"; }
die() { say "FAILED: $*"; exit 1; }
# run CMD: print CMD exactly as run ("GUEST: $ CMD"), run it (busybox sh, pipefail), print its
# stdout ("GUEST: > ") and stderr ("GUEST: 2> "); stdout stays in /tmp/out.
run() {
    say "\$ $1"
    rc=0
    sh -c "set -o pipefail; $1" > /tmp/out 2> /tmp/err || rc=$?
    sed 's/^/GUEST: > /' /tmp/out
    sed 's/^/GUEST: 2> /' /tmp/err
    [ $rc = 0 ] || die "exit $rc: $1"
}
# tdm LINE: LINE as a command block into slot 0 with dd, the result read back with dd (/tmp/res)
tdm() {
    run "printf '$1\\n' | dd of=$C bs=512 count=1 conv=sync oflag=direct"
    run "dd if=$C bs=512 count=8 iflag=direct | tr -d '\\0'"
    cp /tmp/out /tmp/res
}
# has REGEX...: the last result matches every REGEX
has() { for re in "$@"; do grep -Eq -- "$re" /tmp/res || die "result lacks /$re/"; done; }
gen() { sed -n 's/^device .* tables_generation=\([0-9]*\)$/\1/p' /tmp/res; }

# The partition scan of LUN 2 is over once sd says "Attached" (it runs inside device_add_disk):
# from here on nothing but this script reads the command device.
s=${C#/dev/}
i=0
until dmesg | grep -q "\[$s\] Attached SCSI"; do
    i=$((i + 1)); [ $i -lt 100 ] || die "no 'Attached SCSI' for $s in dmesg"; sleep 0.1
done
bytes=$(blockdev --getsize64 "$C")
say "LUN2 dev=$C bytes=$bytes"
[ "$bytes" = 4194304 ] || die "command device of $bytes bytes, want 16 slots x 256 KiB"

# Nothing is waiting for this host: slot 0 and the last blocks (what the partition scan read)
# read zeros.
run "dd if=$C bs=512 count=8 iflag=direct | tr -d '\\0' | wc -c"
[ "$(cat /tmp/out)" = 0 ] || die "slot 0 is not zeros before the first command"
run "dd if=$C bs=512 skip=$((bytes / 512 - 8)) count=8 iflag=direct | tr -d '\\0' | wc -c"
[ "$(cat /tmp/out)" = 0 ] || die "the last blocks are not zeros"

tdm 'TDM1 vol-list tag=vm1'
has '^TDM1 result status=0 name=OK tag=vm1 lines=3 ' '^msg 2 volumes$' \
    '^vol volid=1 type=raid size_bytes=37748736 block_bytes=512 state=[a-z]+ layout=3D\+1P ' \
    '^vol volid=100 type=cmddev size_bytes=4194304 block_bytes=512 state=online$' '^end$'
say "CHECK vm1 vol-list ok"

tdm 'TDM1 info tag=vm2'
has '^TDM1 result status=0 name=OK tag=vm2 ' '^device name=d1 uuid=[0-9a-f-]+ .*volumes=2 cmddev_volid=100 slots=16 '
say "GEN vm2 $(gen)"
say "CHECK vm2 info ok"

tdm 'TDM1 cmddev-add device=d2 lun=7 tag=vm3'
has '^TDM1 result status=0 name=OK tag=vm3 ' '^cmddev device=d2 lun=7 volid=-$'
tdm 'TDM1 cmddev-show tag=vm4'
has '^TDM1 result status=0 name=OK tag=vm4 ' '^msg 1 command devices$' '^cmddev device=d2 lun=7 volid=-$'
say "CHECK vm3 cmddev-add vm4 cmddev-show ok"

tdm 'TDM1 vol-status volid=abc tag=vm5'
has '^TDM1 result status=3 name=INVALID tag=vm5 ' '^msg volid=abc: expected a number'
say "CHECK vm5 invalid ok"

tdm 'TDM1 raid-check volid=1 tag=vm6'
has '^TDM1 result status=1 name=RUNNING tag=vm6 ' '^op id=[0-9]+ kind=raid-check subject=volid=1 '
op=$(sed -n 's/^op id=\([0-9]*\) .*/\1/p' /tmp/res)
n=0
while :; do
    n=$((n + 1))
    tdm "TDM1 op-status op=$op tag=vm7"
    has '^TDM1 result status=0 name=OK tag=vm7 ' "^op id=$op kind=raid-check "
    grep -q "^op id=$op .* state=done " /tmp/res && break
    [ $n -lt 60 ] || die "operation $op not done after $n polls"
    sleep 0.5
done
has "^op id=$op .* state=done percent=100.0 done=([0-9]+) total=\\1 .*result=[0-9]+%20stripes%20checked,%20parity%20consistent"
say "CHECK vm6 raid-check op=$op done after $n op-status polls"

tdm 'TDM1 info tag=vm8'
has '^TDM1 result status=0 name=OK tag=vm8 ' '^device name=d1 '
say "GEN vm8 $(gen)"

# tandemctl itself, over the block-device transport (O_DIRECT on /dev/sdX)
T=${LVG_TANDEMCTL:-}
if [ -n "$T" ]; then
    [ -x "$T" ] || die "$T is not in the initramfs"
    run "$T -d $C vol list"
    grep -Eq '^2 volumes$' /tmp/out || die "tandemctl vol list: no '2 volumes'"
    grep -Eq '^1 +raid +37748736 +512 +[a-z]+ +3D\+1P +65536 *$' /tmp/out || die "tandemctl vol list: no raid line"
    grep -Eq '^100 +cmddev +4194304 +512 +online' /tmp/out || die "tandemctl vol list: no cmddev line"
    run "$T -d $C --json info"
    grep -q '^{"status":0,"name":"OK",' /tmp/out || die "tandemctl --json info: not OK"
    grep -q '"record":"device","name":"d1",' /tmp/out || die "tandemctl --json info: not device d1"
    grep -q '"volumes":2,"cmddev_volid":100,"slots":16,' /tmp/out || die "tandemctl --json info: volumes/slots"
    grep -q '"tables_generation":2}' /tmp/out || die "tandemctl --json info: tables_generation is not 2"
    say "CHECK tandemctl in the guest ok"
else
    say "tandemctl not in this initramfs: dd part only"
fi
say "CMDDEV-DD OK"
EOF

# ---------------------------------------------------------------- device: raid + command device
# TANDEM_DEBUG=1: the command device logs every write that is not a command block.
TANDEM_ENV=TANDEM_DEBUG=1 device_start d1 127.0.0.1
list=$(members "$WORK/m" 4 16M)
lu_add d1 1 raid "$list" "volid=1;layout=3D+1P;chunk_kib=64;create=1" || fail "creating the raid LU failed"
lu_add d1 2 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1" || fail "creating the command device failed"

# ---------------------------------------------------------------- the VM
log "VM boot: guest.sh against ${DEV_IP[d1]}:${DEV_PORT[d1]} $IQN_BASE:d1 (cache $VM_WORK)"
rc=0
LINUX_VM_WORK=$VM_WORK LVG_TANDEMCTL=$GUEST_CTL MIN_DISKS=2 VM_QUIET=1 VM_LOG="$WORK/vm.console" \
    VM_RUNS="$WORK/vm-runs" LINUX_VM_NO_BUILD=1 \
    "$HARNESS/run-vm.sh" "${DEV_IP[d1]}:${DEV_PORT[d1]}" "$IQN_BASE:d1" "$WORK/guest.sh" \
    >"$WORK/vm.out" 2>&1 || rc=$?
tr -d '\r' < "$WORK/vm.console" > "$WORK/console"
grep -h '\[run-vm\] wall=' "$WORK/vm.out" | sed "s/^/[$TEST_NAME] VM: /" || true
log "transcript (guest: \$ command, > stdout, 2> stderr):"
sed -n 's/^GUEST: \(\$\|>\|2>\) /\1 /p' "$WORK/console" | sed "s/^/[$TEST_NAME]   /"
if [ $rc -ne 0 ]; then
    echo "---- run-vm.sh output (rc=$rc)"; cat "$WORK/vm.out"
    echo "---- tail of VM console"; tail -n 60 "$WORK/console"
    fail "the guest did not pass (run-vm.sh rc=$rc)"
fi
grep -q '^GUEST: CMDDEV-DD OK$' "$WORK/console" || fail "the guest passed but did not say CMDDEV-DD OK"
grep '^GUEST: CHECK ' "$WORK/console" | sed "s/^GUEST: /[$TEST_NAME] guest /"
if [ -n "$GUEST_CTL" ]; then
    grep -q '^GUEST: CHECK tandemctl in the guest ok$' "$WORK/console" || fail "tandemctl did not run in the guest"
fi

# ---------------------------------------------------------------- host: what the initiator did
# Table-changing commands sent: one (cmddev-add). A fresh tables file is generation 1.
g2=$(sed -n 's/^GUEST: GEN vm2 //p' "$WORK/console") g8=$(sed -n 's/^GUEST: GEN vm8 //p' "$WORK/console")
[ "$g2" = 1 ] || fail "tables generation before any table change is '$g2', want 1: something changed the tables at login"
[ "$g8" = 2 ] || fail "tables generation after one cmddev-add is '$g8', want 2"
# The one command error the device logged is our malformed block; nothing before it.
grep 'tandem: command device: host nexus' "$(device_log d1)" > "$WORK/cmd-errors" || true
[ "$(wc -l < "$WORK/cmd-errors")" = 1 ] && grep -q ' tag vm5: vol-status -> INVALID: volid=abc' "$WORK/cmd-errors" ||
    { cat "$WORK/cmd-errors"; fail "the command device logged other errors than the malformed vm5 block"; }
! log_has d1 'not a command block' ||
    { grep 'not a command block' "$(device_log d1)"; fail "something wrote non-command data to the command device"; }
log "host: device log: one command error (vm5, INVALID), no non-command write; tables generation 1 -> 2"

# ---------------------------------------------------------------- host: another session sees it
"$TANDEMCTL" -d "$(device_url d1 2)" cmddev show > "$WORK/show.out" 2>&1 ||
    { cat "$WORK/show.out"; fail "host tandemctl cmddev show failed"; }
sed "s/^/[$TEST_NAME] host\$ tandemctl cmddev show: /" "$WORK/show.out"
grep -Eq '^1 command devices$' "$WORK/show.out" && grep -Eq '^  device +d2$' "$WORK/show.out" &&
    grep -Eq '^  lun +7$' "$WORK/show.out" || fail "the host does not see the guest's cmddev entry d2"
log "PASS: command device driven with dd (and tandemctl$([ -n "$GUEST_CTL" ] || echo ": NOT carried")) through the Linux initiator"
