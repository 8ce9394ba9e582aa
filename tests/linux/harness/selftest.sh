#!/bin/bash
# End-to-end proof of the harness: starts a private tgtd on 127.0.0.1 (free
# port, own control port), exports a 1 GiB file LUN 1 and a 256 MiB file LUN 2
# (bs rdwr, bound to ALL initiators), boots the VM once per login mode with
# guest-examples/basic-io.sh, then checks from the host that the guest's data
# is in the backing files (pattern at the right offset; ext4 image readable by
# debugfs and clean by e2fsck). Stops its tgtd by PID on exit.
#
# Env: LINUX_VM_WORK (default /var/tmp/tandem-linux-vm), TGTD (default: tgtd from PATH;
#      point it at a freshly built usr/tgtd to test that), TGT_PORT (default:
#      first free port from 3290), MODES (default "iscsistart iscsiadm"),
#      KEEP_IMAGES=1 (keep the LUN backing files after a PASS),
#      plus everything run-vm.sh reads.
# Exit 0 when every mode passed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
export LINUX_VM_WORK=$WORK
export PATH=$PATH:/usr/sbin:/sbin
TGTD=${TGTD:-$(command -v tgtd || echo /usr/sbin/tgtd)}
TGTADM=${TGTADM:-$(command -v tgtadm || echo /usr/sbin/tgtadm)}
MODES=${MODES:-iscsistart iscsiadm}
IQN=${IQN:-iqn.2004-10.com.example:linuxvm.selftest}
log() { echo "[selftest] $*" >&2; }

"$HERE/build-initramfs.sh" || exit 3
export LINUX_VM_NO_BUILD=1

# free = nothing listens on 127.0.0.1:N and no live tgtd answers on control port N
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null &&
              ! "$TGTADM" -C "$1" --op show --mode system >/dev/null 2>&1; }
PORT=${TGT_PORT:-}
if [ -z "$PORT" ]; then
    for p in $(seq 3290 3390); do port_free "$p" && PORT=$p && break; done
fi
[ -n "$PORT" ] || { log "no free port"; exit 3; }
CP=$PORT   # control port: tgtd's unix socket /var/run/tgtd/socket.$CP

D="$WORK/selftest"; mkdir -p "$D"; rm -f "$D"/lun*.img
truncate -s 1G "$D/lun1.img"
truncate -s 256M "$D/lun2.img"

TGTPID=""
# tgtd ignores SIGTERM: stop it the tgtadm way (drop targets, delete the
# system), then SIGKILL by PID if it is still there after 5 s.
stop_tgtd() {
    if [ -n "$TGTPID" ] && kill -0 "$TGTPID" 2>/dev/null; then
        "$TGTADM" -C "$CP" --lld iscsi --op delete --mode target --tid 1 --force >/dev/null 2>&1
        "$TGTADM" -C "$CP" --op delete --mode system >/dev/null 2>&1
        for _ in $(seq 50); do kill -0 "$TGTPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$TGTPID" 2>/dev/null && { log "tgtd $TGTPID did not exit, SIGKILL"; kill -9 "$TGTPID"; }
        wait "$TGTPID" 2>/dev/null
    fi
    TGTPID=""
}
trap stop_tgtd EXIT
trap 'stop_tgtd; exit 2' INT TERM
log "starting $TGTD on 127.0.0.1:$PORT (control port $CP)"
"$TGTD" -f -C "$CP" --iscsi portal=127.0.0.1:"$PORT" >"$D/tgtd.log" 2>&1 &
TGTPID=$!
adm() { "$TGTADM" -C "$CP" --lld iscsi "$@"; }
for _ in $(seq 100); do adm --op show --mode target >/dev/null 2>&1 && break; sleep 0.1; done
adm --op new --mode target --tid 1 -T "$IQN" &&
adm --op new --mode logicalunit --tid 1 --lun 1 -b "$D/lun1.img" --bstype rdwr &&
adm --op new --mode logicalunit --tid 1 --lun 2 -b "$D/lun2.img" --bstype rdwr &&
adm --op bind --mode target --tid 1 -I ALL || { log "tgtadm setup failed"; cat "$D/tgtd.log"; exit 3; }

fails=0
seed=0
for mode in $MODES; do
    seed=$((seed + 1))
    log "=== mode $mode"
    LOGIN=$mode LVG_SEED=$seed MIN_DISKS=2 VM_LOG="$D/console-$mode.log" \
        "$HERE/run-vm.sh" "127.0.0.1:$PORT" "$IQN" "$HERE/guest-examples/basic-io.sh"
    rc=$?
    if [ $rc -ne 0 ]; then log "mode $mode: run-vm.sh rc=$rc"; fails=$((fails + 1)); continue; fi
    # host-side verification of what the guest wrote
    off=$(sed -n 's/.*GUEST: pattern OK .*offset_mib=\([0-9]*\) len_mib=\([0-9]*\).*/\1 \2/p' "$D/console-$mode.log" | tr -d '\r')
    set -- $off
    want=$(yes "LINUXVM-PATTERN-$seed" | head -c $(($2 * 1048576)) | sha256sum | cut -d' ' -f1)
    got=$(dd if="$D/lun1.img" bs=1M skip="$1" count="$2" 2>/dev/null | sha256sum | cut -d' ' -f1)
    if [ "$want" = "$got" ]; then log "host check: LUN 1 backing file has the pattern at ${1} MiB: OK"
    else log "host check: LUN 1 pattern MISMATCH at ${1} MiB"; fails=$((fails + 1)); fi
    hello=$(debugfs -R "cat /hello.txt" "$D/lun2.img" 2>/dev/null)
    if [ "$hello" = "hello from linuxvm seed=$seed" ] && e2fsck -fn "$D/lun2.img" >/dev/null 2>&1; then
        log "host check: LUN 2 backing file is a clean ext4 with /hello.txt: OK"
    else log "host check: LUN 2 ext4 check FAILED (hello='$hello')"; fails=$((fails + 1)); fi
    grep -h 'GUEST: throughput' "$D/console-$mode.log" | tr -d '\r' >&2
done
adm --op show --mode target > "$D/tgt-show.txt" 2>&1
stop_tgtd
if [ $fails -eq 0 ]; then
    [ "${KEEP_IMAGES:-0}" = 1 ] || rm -f "$D"/lun*.img   # ~300 MB; logs stay
    log "SELFTEST PASS ($MODES)"; exit 0
fi
log "SELFTEST FAIL ($fails failures)"; exit 1
