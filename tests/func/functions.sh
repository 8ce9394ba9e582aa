# Shared helpers for tandem's functional tests. Source it from a numbered test script:
#   . "$(dirname "$0")/functions.sh"
# It gives each test a private work directory, starts real tgtd devices on 127.0.0.0/8 with
# private ports and control ports, and stops exactly the tgtd processes it started (by PID) on exit.
# Exit codes follow automake: 0 pass, 77 skip, anything else fail.
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-$TOP/build}
MODULE=${MODULE:-$BUILD/bs_tandem.so}
TIO=$BUILD/tio
TANDEMCTL=$BUILD/tandemctl
TGTD=${TGTD:-/usr/sbin/tgtd}
TGTADM=${TGTADM:-/usr/sbin/tgtadm}
TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tandem-$TEST_NAME.XXXXXX")
IQN_BASE=iqn.2026-11.org.tandem
declare -A DEV_PID DEV_CTL DEV_IP DEV_PORT
_cleanup_fns=()

log() { echo "[$TEST_NAME] $*"; }
fail() { echo "[$TEST_NAME] FAIL: $*" >&2; exit 1; }
skip() { echo "[$TEST_NAME] SKIP: $*"; exit 77; }
# requires CMD...: skip the test when a command is missing.
requires() { local c; for c in "$@"; do command -v "$c" >/dev/null 2>&1 || skip "needs $c"; done; }
requires_root() { [ "$(id -u)" = 0 ] || skip "needs root (tgtd's control socket lives in /var/run/tgtd)"; }
on_exit() { _cleanup_fns+=("$*"); }

_cleanup() {
    local rc=$? i name
    for ((i=${#_cleanup_fns[@]}-1; i>=0; i--)); do eval "${_cleanup_fns[$i]}" || true; done
    for name in "${!DEV_PID[@]}"; do device_stop "$name" >/dev/null 2>&1 || true; done
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        for name in "$WORK"/*.log; do
            [ -f "$name" ] || continue
            echo "---- tail of $name"; tail -n 30 "$name"
        done
        echo "[$TEST_NAME] work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS CMD...: poll CMD until it succeeds; fail after SECONDS.
wait_for() {
    local limit=$1; shift
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# A control port nobody uses: no socket file, and a free TCP port on 127.0.0.1 of the same number.
_free_ctl() {
    local n tries=0
    while :; do
        n=$((20000 + RANDOM % 9000))
        tries=$((tries + 1)); [ $tries -lt 200 ] || return 1
        [ -e /var/run/tgtd/socket.$n ] && continue
        [ -e /var/run/tgtd/socket.$n.lock ] && continue
        (exec 3<>/dev/tcp/127.0.0.1/$n) 2>/dev/null && continue
        echo $n; return 0
    done
}

# device_start NAME [IP] [PORT]: a tgtd with the tandem module preloaded, its own portal, control
# port, log ($WORK/NAME.log) and state directory ($WORK/NAME/). The target is iqn.…:NAME, tid 1.
# PORT: a fixed portal port (a device restarted where its peers' URLs point: PORT=${DEV_PORT[NAME]});
# the control port is the same number when that one is free, else a free one.
# DEVICE_LAUNCHER=script: run "script tgtd ARGS" instead of preloading; it must exec tgtd.
device_start() {
    local name=$1 ip=${2:-127.0.0.1} fixed=${3:-} ctl port tries=0 launch
    mkdir -p "$WORK/$name" /var/run/tgtd
    while :; do
        if [ -n "$fixed" ]; then
            port=$fixed ctl=$fixed
            if [ -e /var/run/tgtd/socket.$ctl ] || [ -e /var/run/tgtd/socket.$ctl.lock ]; then
                ctl=$(_free_ctl) || fail "no free control port"
            fi
        else
            ctl=$(_free_ctl) || fail "no free control port"
            port=$ctl
        fi
        if [ -n "${DEVICE_LAUNCHER:-}" ]; then
            launch=("$DEVICE_LAUNCHER")
        else
            launch=(env LD_PRELOAD="$MODULE")
        fi
        TANDEM_STATE_DIR="$WORK/$name" setsid "${launch[@]}" ${TANDEM_ENV:-} \
            "$TGTD" -f -C "$ctl" --iscsi "portal=$ip:$port" >>"$WORK/$name.log" 2>&1 </dev/null &
        DEV_PID[$name]=$!
        DEV_CTL[$name]=$ctl; DEV_IP[$name]=$ip; DEV_PORT[$name]=$port
        if wait_for 10 "$TGTADM" -C "$ctl" --op show --mode sys &&
            { [ -z "$fixed" ] || wait_for 10 _port_open "$ip" "$port"; }; then break; fi
        kill -9 "${DEV_PID[$name]}" 2>/dev/null || true; wait "${DEV_PID[$name]}" 2>/dev/null || true
        unset "DEV_PID[$name]"
        tries=$((tries + 1)); [ $tries -lt 5 ] || fail "tgtd $name did not start (see $WORK/$name.log)"
    done
    tgtadm_dev "$name" --lld iscsi --op new --mode target --tid 1 -T "$IQN_BASE:$name"
    tgtadm_dev "$name" --lld iscsi --op bind --mode target --tid 1 -I ALL
    log "device $name: tgtd pid ${DEV_PID[$name]} portal $ip:$port control $ctl"
}

tgtadm_dev() { local name=$1; shift; "$TGTADM" -C "${DEV_CTL[$name]}" "$@"; }

# device_url NAME LUN: the libiscsi URL of a LU.
device_url() { echo "iscsi://${DEV_IP[$1]}:${DEV_PORT[$1]}/$IQN_BASE:$1/$2"; }
device_log() { echo "$WORK/$1.log"; }

# lu_add NAME LUN BSTYPE BACKING [BSOPTS] [extra tgtadm args...]
lu_add() {
    local name=$1 lun=$2 bstype=$3 backing=$4 bsopts=${5:-}; shift 5 || shift $#
    local args=(--lld iscsi --op new --mode logicalunit --tid 1 --lun "$lun" --bstype "$bstype"
                --backing-store "$backing")
    [ -n "$bsopts" ] && args+=(--bsopts "$bsopts")
    tgtadm_dev "$name" "${args[@]}" "$@"
}
lu_del() { tgtadm_dev "$1" --lld iscsi --op delete --mode logicalunit --tid 1 --lun "$2"; }

# members PREFIX COUNT SIZE: create COUNT sparse member files, print them ';'-joined.
members() {
    local prefix=$1 count=$2 size=$3 i list=()
    for ((i=0; i<count; i++)); do truncate -s "$size" "$prefix$i"; list+=("$prefix$i"); done
    (IFS=';'; echo "${list[*]}")
}

# member_list PREFIX COUNT: the ';'-joined list of existing members PREFIX0..PREFIX(COUNT-1).
member_list() {
    local i list=()
    for ((i=0; i<$2; i++)); do list+=("$1$i"); done
    (IFS=';'; echo "${list[*]}")
}

# device_stop NAME: the documented way (tgtd ignores SIGTERM), then SIGKILL of that PID only.
device_stop() {
    local name=$1 pid=${DEV_PID[$1]:-}
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        # bounded: a wedged tgtd must not hang the cleanup
        timeout 10 "$TGTADM" -C "${DEV_CTL[$name]}" --lld iscsi --op delete --mode target --tid 1 \
            --force >/dev/null 2>&1 || true
        timeout 10 "$TGTADM" -C "${DEV_CTL[$name]}" --op delete --mode system >/dev/null 2>&1 || true
        wait_for 10 _dead "$pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "DEV_PID[$name]"
}

# device_kill NAME: kill -9 of exactly that tgtd (crash tests).
device_kill() {
    local name=$1 pid=${DEV_PID[$1]}
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    unset "DEV_PID[$name]"
    rm -f "/var/run/tgtd/socket.${DEV_CTL[$name]}" "/var/run/tgtd/socket.${DEV_CTL[$name]}.lock"
}
_dead() { ! kill -0 "$1" 2>/dev/null; }
_port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# tproxy_start TARGET_IP:PORT: a link-fault proxy (tests/tools/tproxy.c) on 127.0.0.4:(free port)
# in front of TARGET; sets PX (pid) and PX_PORT; stopped on exit. `px MODE COMMAND...` tells it
# "cut", "cut rst", "restore", "delay MS" and waits until it is in MODE; `px_field KEY` reads its
# state file.
tproxy_start() {
    [ -x "$WORK/tproxy" ] || cc -O2 -Wall -Wextra -Werror -o "$WORK/tproxy" \
        "$TOP/tests/tools/tproxy.c" -lpthread || fail "cannot build tproxy"
    "$WORK/tproxy" -l 127.0.0.4:0 -t "$1" -c "$WORK/px.ctl" -s "$WORK/px.state" \
        2> "$WORK/tproxy.log" &
    PX=$!
    on_exit "kill $PX 2>/dev/null; wait $PX 2>/dev/null"
    wait_for 5 test -s "$WORK/px.state" || fail "tproxy did not start: $(cat "$WORK/tproxy.log")"
    PX_PORT=$(px_field port)
}
px_field() { sed -n "s/.*\\b$1=\\([0-9a-z]*\\).*/\\1/p" "$WORK/px.state"; }
_px_applied() { [ "$(px_field seq)" -gt "$1" ]; }
px() {
    local want=$1 before; shift
    before=$(px_field seq)
    kill -0 "$PX" 2>/dev/null || fail "tproxy died: $(cat "$WORK/tproxy.log")"
    timeout 5 bash -c 'echo "$1" > "$2"' _ "$*" "$WORK/px.ctl" || fail "cannot write to tproxy's FIFO"
    wait_for 5 _px_applied "$before" || fail "tproxy did not apply '$*'"
    [ "$(px_field mode)" = "$want" ] || fail "tproxy: after '$*', mode $(px_field mode), expected $want"
}

# expect_fail DESCRIPTION CMD...: CMD must fail.
expect_fail() { local d=$1; shift; if "$@" >/dev/null 2>&1; then fail "expected failure: $d"; fi; }
# log_has NAME REGEX: the device's log contains REGEX.
log_has() { grep -Eq "$2" "$(device_log "$1")"; }
# log_mark NAME: the number of lines in the device's log now; log_has_since NAME MARK REGEX: a
# line after that mark matches REGEX (the log grows across restarts of the same device).
log_mark() { if [ -f "$(device_log "$1")" ]; then wc -l < "$(device_log "$1")"; else echo 0; fi; }
log_has_since() { [ "$(tail -n +"$(($2 + 1))" "$(device_log "$1")" | grep -Ec -- "$3")" -gt 0 ]; }
# use_fault_injection: devices started from now on load build/bs_tandem_fi.so (raid-fault).
use_fault_injection() {
    MODULE=$BUILD/bs_tandem_fi.so
    [ -f "$MODULE" ] || fail "module $MODULE not built (run make)"
}

requires_root
[ -x "$TGTD" ] || skip "tgtd not installed (run scripts/setup.sh)"
[ -f "$MODULE" ] || fail "module $MODULE not built (run make)"
