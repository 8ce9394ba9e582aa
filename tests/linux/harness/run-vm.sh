#!/bin/bash
# Boot the linux-vm guest under qemu, log in to an iSCSI target on the host's
# loopback with the real Linux open-iscsi initiator, run a guest script.
#
# usage: run-vm.sh PORTAL TARGET_IQN GUEST_SCRIPT
#   PORTAL        host:port of the target as seen from the host, e.g.
#                 127.0.0.1:3261. 127.0.0.1/localhost is rewritten to 10.0.2.2
#                 (qemu user-mode networking maps that to the host's 127.0.0.1).
#   TARGET_IQN    target name to log in to
#   GUEST_SCRIPT  host file, run in the guest with busybox sh after login.
#                 Exit 0 = PASS. It sees ISCSI_DEV (first disk), ISCSI_DEVS,
#                 ISCSI_LUN_<n>=/dev/sdX per LUN, LV_PORTAL, LV_TARGET, the
#                 files of GUEST_FILES in /linuxvm/files/, and every LVG_*
#                 variable of the host environment.
#
# Exit status: 0 PASS, 1 FAIL (guest said so), 2 timeout / no verdict,
#              3 usage or setup error.
#
# Environment (all optional):
#   LINUX_VM_WORK  cache dir shared with build-initramfs.sh (default /var/tmp/tandem-linux-vm)
#   VM_TIMEOUT     seconds before the VM is killed (default 300)
#   VM_MEM         guest RAM in MiB (default 1024)   VM_CPUS  vCPUs (default 1;
#                  under TCG a 2nd vCPU mostly competes with tgtd for host CPU)
#   VM_KERNEL      kernel image (default $LINUX_VM_WORK/vmlinux, PVH boot; else vmlinuz)
#   VM_ACCEL       auto (default: kvm if it works, else tcg) | kvm | tcg
#   VM_RUNS        where the per-run directory (run.XXXXXX: initrd, qemu.out,
#                  console.log) is made (default $LINUX_VM_WORK/runs)
#   VM_LOG         console log file (default: console.log in the per-run directory)
#   VM_QUIET       1: don't echo the console to stdout (log file only)
#   VM_APPEND      extra kernel command line
#   VM_NET         slirp (default: qemu -netdev user) | passt (Debian's passt
#                  daemon via -netdev stream, MTU 65520: faster; guest's
#                  10.0.2.2 is still the host's 127.0.0.1)
#   LOGIN          iscsistart (default) | iscsiadm (iscsid + sendtargets
#                  discovery + login + logout) | none
#   INITIATOR_NAME initiator IQN (default iqn.2004-10.com.example.linuxvm:guest)
#   TPGT           target portal group tag (default 1)
#   ISCSI_PARAMS   space separated NAME=VALUE node params, e.g.
#                  "node.conn[0].iscsi.HeaderDigest=CRC32C"
#   CHAP_USER / CHAP_PASS   one-way CHAP credentials
#   GUEST_FILES    space separated host files copied to /linuxvm/files/
#   DISK_WAIT      seconds to wait for the LUN block device (default 20)
#   MIN_DISKS      how many disks to wait for (default 1)
#   LINUX_VM_NO_BUILD  1: don't call build-initramfs.sh first
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
export LINUX_VM_WORK=$WORK

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 3; }
log() { echo "[run-vm] $*" >&2; }
[ $# -eq 3 ] || usage
PORTAL=$1 TARGET=$2 GUEST_SCRIPT=$3
[ -f "$GUEST_SCRIPT" ] || { log "guest script $GUEST_SCRIPT not found"; exit 3; }
case "$PORTAL" in *:[0-9]*) ;; *) log "PORTAL must be host:port"; exit 3 ;; esac
HOST=${PORTAL%:*} PORT=${PORTAL##*:}
case "$HOST" in
    127.0.0.1|localhost) GHOST=10.0.2.2 ;;
    127.*|::1|\[::1\]) log "only 127.0.0.1 is reachable from the guest (qemu user net maps 10.0.2.2 -> 127.0.0.1)"; exit 3 ;;
    *) GHOST=$HOST ;;
esac

if [ "${LINUX_VM_NO_BUILD:-0}" != 1 ]; then
    "$HERE/build-initramfs.sh" || { log "build-initramfs.sh failed"; exit 3; }
fi
KERNEL=${VM_KERNEL:-$WORK/vmlinux}
[ -f "$KERNEL" ] || KERNEL=$WORK/vmlinuz
for f in vmlinuz initramfs.cpio.gz; do
    [ -f "$WORK/$f" ] || { log "$WORK/$f missing: run build-initramfs.sh"; exit 3; }
done

# ------------------------------------------------------------------ per-run cpio
RUNS=${VM_RUNS:-$WORK/runs}
mkdir -p "$RUNS"
RUN=$(mktemp -d "$RUNS/run.XXXXXX")
mkdir -p "$RUN/cpio/linuxvm/files"
q() { printf "%s='%s'\n" "$1" "$(printf %s "$2" | sed "s/'/'\\\\''/g")"; }
{
    q LV_PORTAL "$GHOST:$PORT"
    q LV_TARGET "$TARGET"
    q LV_INITIATOR "${INITIATOR_NAME:-iqn.2004-10.com.example.linuxvm:guest}"
    q LV_LOGIN "${LOGIN:-iscsistart}"
    q LV_TPGT "${TPGT:-1}"
    q LV_ISCSI_PARAMS "${ISCSI_PARAMS:-}"
    q LV_CHAP_USER "${CHAP_USER:-}"
    q LV_CHAP_PASS "${CHAP_PASS:-}"
    q LV_DISK_WAIT "${DISK_WAIT:-20}"
    q LV_MIN_DISKS "${MIN_DISKS:-1}"
    q LV_DMESG_ON_FAIL 1
    for v in $(compgen -e | grep '^LVG_' || true); do q "$v" "${!v}"; echo "export $v"; done
} > "$RUN/cpio/linuxvm/run.env"
cp "$GUEST_SCRIPT" "$RUN/cpio/linuxvm/guest.sh"
for f in ${GUEST_FILES:-}; do cp "$f" "$RUN/cpio/linuxvm/files/" || exit 3; done

# ------------------------------------------------------------------ accel
ACCEL=${VM_ACCEL:-auto}
if [ "$ACCEL" = auto ]; then
    # /dev/kvm alone is not enough: some sandboxes back it with kvm-pvm
    # (nested "PVM", no vmx/svm), which only runs PVM-enabled guest kernels;
    # a stock Debian kernel hangs in its decompressor there. Require real
    # hardware virtualization.
    ACCEL=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] &&
       grep -qwE 'vmx|svm' /proc/cpuinfo &&
       echo quit | timeout 20 qemu-system-x86_64 -accel kvm -M none -display none \
            -nodefaults -monitor stdio >/dev/null 2>&1; then
        ACCEL=kvm
    fi
fi
case "$ACCEL" in
    kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
    tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
    *) log "VM_ACCEL must be auto, kvm or tcg"; exit 3 ;;
esac

# ------------------------------------------------------------------ cleanup
# Everything started here is stopped by PID on any exit.
PASST_PID="" QPID="" TPID=""
stop_passt() {
    [ -n "$PASST_PID" ] || return 0
    kill "$PASST_PID" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$PASST_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PASST_PID" 2>/dev/null; wait "$PASST_PID" 2>/dev/null; PASST_PID=""
}
cleanup() {
    [ -n "$TPID" ] && kill "$TPID" 2>/dev/null
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID"; wait "$QPID" 2>/dev/null; fi
    stop_passt
    # keep the logs, drop the 8 MB per-run initrd (VM_KEEP=1 keeps all)
    [ "${VM_KEEP:-0}" = 1 ] || rm -rf "$RUN/initrd.gz" "$RUN/run.cpio.gz" "$RUN/cpio" "$RUN/passt.sock"
}
trap 'cleanup; exit 2' INT TERM
trap cleanup EXIT

# ------------------------------------------------------------------ network
NET=${VM_NET:-slirp}
case "$NET" in
    slirp) NET_ARGS=(-netdev user,id=n0) GUEST_MTU=1500 ;;
    passt)
        command -v passt >/dev/null 2>&1 || { log "VM_NET=passt needs the passt package"; exit 3; }
        # -1: exit when qemu disconnects; gateway 10.0.2.2 -> host loopback
        passt -f -1 -q --runas "$(id -u)" -s "$RUN/passt.sock" -a 10.0.2.15 -n 24 \
              -g 10.0.2.2 -t none -u none -l "$RUN/passt.log" >"$RUN/passt.out" 2>&1 &
        PASST_PID=$!
        for _ in $(seq 50); do [ -S "$RUN/passt.sock" ] && break; sleep 0.1; done
        [ -S "$RUN/passt.sock" ] || { log "passt did not start:"; cat "$RUN/passt.out" "$RUN/passt.log" >&2; exit 3; }
        NET_ARGS=(-netdev "stream,id=n0,server=off,addr.type=unix,addr.path=$RUN/passt.sock")
        GUEST_MTU=65520 ;;
    *) log "VM_NET must be slirp or passt"; exit 3 ;;
esac
echo "LV_MTU=$GUEST_MTU" >> "$RUN/cpio/linuxvm/run.env"
(cd "$RUN/cpio" && find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --quiet) | gzip -1 > "$RUN/run.cpio.gz"
cat "$WORK/initramfs.cpio.gz" "$RUN/run.cpio.gz" > "$RUN/initrd.gz"

LOGF=${VM_LOG:-$RUN/console.log}
: > "$LOGF"
TIMEOUT=${VM_TIMEOUT:-300}
log "accel=$ACCEL net=$NET portal=$PORTAL (guest: $GHOST:$PORT) target=$TARGET login=${LOGIN:-iscsistart} log=$LOGF"

T0=$(date +%s.%N)
qemu-system-x86_64 "${ACCEL_ARGS[@]}" -M pc -m "${VM_MEM:-1024}" -smp "${VM_CPUS:-1}" \
    -nodefaults -no-user-config -display none -no-reboot \
    -chardev "file,id=con,path=$LOGF" -serial chardev:con \
    "${NET_ARGS[@]}" -device virtio-net-pci,netdev=n0 \
    -kernel "$KERNEL" -initrd "$RUN/initrd.gz" \
    -append "console=ttyS0,115200 quiet loglevel=4 panic=-1 8250.nr_uarts=1 ${VM_APPEND:-}" \
    </dev/null >"$RUN/qemu.out" 2>&1 &
QPID=$!
if [ "${VM_QUIET:-0}" != 1 ]; then
    tail -n +1 -F --pid="$QPID" "$LOGF" 2>/dev/null &   # ends when qemu does
    TPID=$!
fi

timed_out=0 verdict_at=""
while kill -0 "$QPID" 2>/dev/null; do
    now=$(date +%s.%N)
    if awk -v a="$now" -v b="$T0" -v t="$TIMEOUT" 'BEGIN{exit !(a-b > t)}'; then
        timed_out=1; log "TIMEOUT after ${TIMEOUT}s, killing qemu (pid $QPID)"; kill "$QPID"; break
    fi
    if [ -z "$verdict_at" ] && grep -q '^LINUXVM-RESULT:' "$LOGF" 2>/dev/null; then verdict_at=$now; fi
    if [ -n "$verdict_at" ] && awk -v a="$now" -v b="$verdict_at" 'BEGIN{exit !(a-b > 20)}'; then
        log "verdict printed but VM did not power off in 20s, killing qemu"; kill "$QPID"; break
    fi
    sleep 0.2
done
wait "$QPID" 2>/dev/null; qrc=$?
T1=$(date +%s.%N)
if [ -n "$TPID" ]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$TPID" 2>/dev/null || break; sleep 0.2; done
    kill "$TPID" 2>/dev/null; wait "$TPID" 2>/dev/null
fi
TPID=""

WALL=$(awk -v a="$T1" -v b="$T0" 'BEGIN{printf "%.1f", a-b}')
READY=$(tr -d '\r' < "$LOGF" | sed -n 's/^LINUXVM-T: ready uptime=//p' | head -n1)
RESULT=$(tr -d '\r' < "$LOGF" | grep -m1 '^LINUXVM-RESULT:' || true)
if [ -s "$RUN/qemu.out" ]; then log "qemu said:"; sed 's/^/  /' "$RUN/qemu.out" >&2; fi
stop_passt
log "wall=${WALL}s guest_ready_uptime=${READY:-?}s accel=$ACCEL net=$NET qemu_rc=$qrc console=$LOGF"
case "$RESULT" in
    "LINUXVM-RESULT: PASS") log "PASS"; exit 0 ;;
    LINUXVM-RESULT:*)       log "FAIL (${RESULT#LINUXVM-RESULT: })"; exit 1 ;;
    *) if [ $timed_out = 1 ]; then log "FAIL: timeout, no verdict"; else log "FAIL: VM exited without a verdict"; fi; exit 2 ;;
esac
