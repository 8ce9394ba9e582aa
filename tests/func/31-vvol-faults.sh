#!/usr/bin/env bash
# Link faults between a device and the peer behind its virtual volumes: d1's vvols reach d2
# through tproxy (tests/tools/tproxy.c), which cuts, resets or delays the link. With vvol
# timeout_s=2:
#  - blackhole (no byte flows, connections stay open) during a write load through d1: the load
#    and every I/O started during the cut fail with NOT READY (asc 0x08) — answered, not hung —, none
#    times out at tio's 30 s; d1 stays up (tgtadm, tandemctl on d1; the remote command device
#    fails fast with tandemctl exit 3); after restore I/O works again with no admin action and
#    the data written before the cut verifies;
#  - reset (RST to every connection and every new one): the same, fast;
#  - 200 ms of latency each way: I/O through d1 is correct (checked directly on d2);
#  - kill -9 of d2 under a load through d1: sense, not hangs; d1 stays up; d2 restarted on the
#    same port serves again through d1 by itself, the data written before the kill verifies.
# Regions: loads write LBAs [0, 40000), probes [40000, 50000), checked data from 60000 on, so a
# write stalled in a frozen connection and delivered after the link heals never overwrites
# checked data. Env: PROBES (parallel probe loops, default 4), CUT_S (seconds of each cut, 6).
. "$(dirname "$0")/functions.sh"
requires cc timeout python3

TIMEOUT_S=2
PROBES=${PROBES:-4}
CUT_S=${CUT_S:-6}
NOT_READY='sense key NOT READY \(0x2\), asc/ascq 0x08/0x0[01]'
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }


device_start d1 127.0.0.2
device_start d2 127.0.0.3
D2_PORT=${DEV_PORT[d2]}
MEMBERS=$(members "$WORK/m" 4 20M)
d2_luns() { # create|assemble
    if [ "$1" = create ]; then
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100;create=1;device=d2"
        lu_add d2 2 raid "$MEMBERS" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
    else
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100"
        lu_add d2 2 raid "$MEMBERS" "volid=1"
    fi
}
d2_luns create

# the link to d2 goes through a fault proxy (functions.sh tproxy_start / px)
tproxy_start "127.0.0.3:$D2_PORT"

lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 vvol "iscsi://127.0.0.4:$PX_PORT/$IQN_BASE:d2/2" "volid=21;timeout_s=$TIMEOUT_S" ||
    fail "vvol through the proxy: $(tail -n 3 "$(device_log d1)")"
lu_add d1 3 vvol "iscsi://127.0.0.4:$PX_PORT/$IQN_BASE:d2/1" "volid=22;kind=cmddev;timeout_s=$TIMEOUT_S" ||
    fail "vvol kind=cmddev through the proxy"
V=$(device_url d1 2) R=$(device_url d2 2) C1=$(device_url d1 1) VC=$(device_url d1 3)

# ---- helpers: loads and probes ----
# load_start: a random-write load through d1 on [0, 40000), 16 in flight, long enough to outlast
# the fault; LOAD_PID.
# lunmap VOLID FIELD: a field of d1's lunmap-show record of VOLID (peer counters of the vvol)
lunmap() {
    "$TANDEMCTL" -d "$C1" --json call lunmap-show |
        python3 -c 'import json, sys; print([r[sys.argv[2]] for r in json.load(sys.stdin)["records"] if r["volid"] == int(sys.argv[1])][0])' "$1" "$2"
}
vvol_writes() { lunmap 21 writes; }
_writes_above() { [ "$(vvol_writes)" -gt "$1" ]; }
# load_start TAG: the load, and wait until it has had 100 writes forwarded to d2
load_start() {
    local before; before=$(vvol_writes)
    "$TIO" load "$V" --rw randwrite --bs 64k --qd 16 --seconds 120 --range-blocks 40000 -t 30 \
        > "$WORK/load.$1" 2>&1 &
    LOAD_PID=$!
    wait_for 20 _writes_above $((before + 100)) || fail "$1: the load through d1 does not get going: $(cat "$WORK/load.$1")"
    kill -0 "$LOAD_PID" || fail "$1: the load through d1 ended before the fault: $(cat "$WORK/load.$1")"
}
# load_must_fail_not_ready TAG T0_MS: the load ended with exit 1 and NOT READY sense (the time
# since T0, the fault, is logged, not asserted: timings belong in make bench).
load_must_fail_not_ready() {
    local tag=$1 t0=$2 rc=0
    wait_for 60 _dead "$LOAD_PID" || fail "$tag: the load through d1 still runs 60 s after the fault (hung)"
    local ms=$(( $(ms_now) - t0 ))
    wait "$LOAD_PID" || rc=$?
    [ $rc = 1 ] && grep -Eq "$NOT_READY" "$WORK/load.$tag" ||
        fail "$tag: the load through d1 ended with exit $rc (1 with NOT READY expected): $(cat "$WORK/load.$tag")"
    log "$tag: the load failed $ms ms after the fault: $(grep -Eo "$NOT_READY" "$WORK/load.$tag" | head -n 1)"
}
# probes_run TAG SECONDS: PROBES loops, each doing one-command writes (tio write, 8 blocks, its
# own session, -t 30) for SECONDS; one line "rc ms message" per I/O in $WORK/probe.TAG.N.
probe_loop() {
    local tag=$1 n=$2 end=$((SECONDS + $3)) i=0 t0 rc
    while [ $SECONDS -lt $end ]; do
        i=$((i + 1)); t0=$(ms_now); rc=0
        "$TIO" write "$V" --lba $((40000 + n * 2000 + (i * 8) % 2000)) --blocks 8 --seed 77 -t 30 \
            -i "$IQN_BASE:probe$n" > "$WORK/p.$tag.$n.out" 2>&1 || rc=$?
        echo "$rc $(( $(ms_now) - t0 )) $(tr '\n' ' ' < "$WORK/p.$tag.$n.out")" >> "$WORK/probe.$tag.$n"
    done
}
probes_run() {
    local tag=$1 n pids=()
    for ((n = 0; n < PROBES; n++)); do probe_loop "$tag" $n "$2" & pids+=($!); done
    wait "${pids[@]}"
}
# probes_must_fail_not_ready TAG: every probe I/O failed with NOT READY (exit 1). Their times are
# logged: timeout_s bounds one attempt of one worker thread; a command that arrives while all 16
# worker threads are busy on the dead link waits for one first (about 2 x timeout_s).
probes_must_fail_not_ready() {
    local tag=$1 bad max n
    cat "$WORK"/probe."$tag".* > "$WORK/probes.$tag"
    n=$(wc -l < "$WORK/probes.$tag")
    [ "$n" -ge "$PROBES" ] || fail "$tag: only $n probe I/Os ran"
    # exit 1 with NOT READY sense: answered by d1 (tio's own -t 30 timeout would exit 3)
    bad=$(awk -v re="$NOT_READY" '!($1 == 1 && $0 ~ re)' "$WORK/probes.$tag" | head -n 5)
    [ -z "$bad" ] || fail "$tag: probe I/Os that did not fail with NOT READY sense (rc ms output):$NR$bad"
    max=$(cut -d' ' -f2 "$WORK/probes.$tag" | sort -n | awk '{ v[NR] = $1 } END {
        printf "median %d ms, 90%% %d ms, slowest %d ms", v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.5)], v[NR] }')
    log "$tag: $n probe I/Os during the fault: all NOT READY (asc 0x08); $max (timeout_s $TIMEOUT_S)"
}
NR=$'\n'
# d1_is_up TAG: tgtd of d1 answers tgtadm and its own command device, in bounded time.
d1_is_up() {
    local t0; t0=$(ms_now)
    timeout 10 "$TGTADM" -C "${DEV_CTL[d1]}" --op show --mode target > "$WORK/show.out" 2>&1 ||
        fail "$1: tgtadm show on d1 failed or hung: $(cat "$WORK/show.out")"
    grep -q 'LUN: 2' "$WORK/show.out" || fail "$1: d1 lost its vvol LU"
    timeout 40 "$TANDEMCTL" -d "$C1" --json info > "$WORK/info.out" 2>&1 && grep -q '"name":"d1"' "$WORK/info.out" ||
        fail "$1: tandemctl on d1: $(cat "$WORK/info.out")"
    kill -0 "${DEV_PID[d1]}" || fail "$1: d1's tgtd died"
    log "$1: d1 is up: tgtadm show and tandemctl info answer in $(( $(ms_now) - t0 )) ms"
}
# remote_cmddev_fails_fast TAG: tandemctl through d1's remote command device: exit 3, bounded.
remote_cmddev_fails_fast() {
    local t0 rc=0 ms; t0=$(ms_now)
    # `timeout` only guards against a hang (its 124 fails); tandemctl's exit 3 is the refusal
    timeout 25 "$TANDEMCTL" -d "$VC" -t 30 info > "$WORK/rc.out" 2>&1 || rc=$?
    ms=$(( $(ms_now) - t0 ))
    [ $rc = 3 ] || fail "$1: tandemctl through d1 to d2's command device: exit $rc in $ms ms (3 expected): $(cat "$WORK/rc.out")"
    log "$1: tandemctl through d1 to d2's command device: exit 3 in $ms ms"
}
_verify() { "$TIO" verify "$@" > /dev/null 2>&1; }
# recovers TAG: after the fault is gone, I/O through d1 works again by itself: the data written
# before the fault verifies through d1 (and directly on d2), new writes land on d2.
# First one verify (one session), then 16 commands in flight (every peer session): a session
# that failed while the link was down waits out its reconnect backoff (up to 5 s) and fails its
# commands fast until then, even when the link is back (docs/peer-and-vvol.md, "reconnect").
recovers() {
    local t0; t0=$(ms_now)
    wait_for 60 _verify "$V" --lba 60000 --blocks 4096 --seed 1 ||
        fail "$1: 60 s after the fault ended, the data written before it does not verify through d1: $("$TIO" verify "$V" --lba 60000 --blocks 4096 --seed 1 2>&1)"
    local t1; t1=$(ms_now)
    wait_for 60 _verify "$V" --lba 60000 --blocks 4096 --xfer-blocks 64 --qd 16 --seed 1 ||
        fail "$1: 60 s after the fault ended, 16 commands in flight through d1 still fail: $("$TIO" verify "$V" --lba 60000 --blocks 4096 --xfer-blocks 64 --qd 16 --seed 1 2>&1)"
    log "$1: I/O through d1 works again by itself: one command $((t1 - t0)) ms, 16 in flight $(( $(ms_now) - t0 )) ms after the fault ended"
    "$TIO" verify "$R" --lba 60000 --blocks 4096 --seed 1 > /dev/null || fail "$1: the data before the fault is not on d2"
    seed=$((seed + 1))
    "$TIO" write "$V" --lba 70000 --blocks 2048 --seed $seed > /dev/null || fail "$1: a write through d1 after recovery failed"
    "$TIO" verify "$R" --lba 70000 --blocks 2048 --seed $seed > /dev/null || fail "$1: a write through d1 after recovery is not on d2"
    wait_for 30 "$TANDEMCTL" -d "$VC" info || fail "$1: the remote command device does not serve again"
}
seed=100

# ---- before any fault ----
"$TIO" write "$V" --lba 60000 --blocks 4096 --seed 1 > /dev/null || fail "write through the proxy"
"$TIO" verify "$R" --lba 60000 --blocks 4096 --seed 1 > /dev/null || fail "the data written through d1 and the proxy is not on d2"
"$TANDEMCTL" -d "$VC" info > /dev/null || fail "tandemctl through d1 and the proxy"
log "through the proxy (127.0.0.4:$PX_PORT): data written through d1 is on d2; the remote command device answers"

# ---- blackhole during a write load ----
load_start blackhole
t_cut=$(ms_now)
px blackhole cut blackhole
probes_run blackhole "$CUT_S" &
probes_pid=$!
load_must_fail_not_ready blackhole "$t_cut"
d1_is_up blackhole
remote_cmddev_fails_fast blackhole
wait "$probes_pid"
probes_must_fail_not_ready blackhole
errs=$(lunmap 21 errors) || fail "lunmap-show on d1 during the cut"
[ "$errs" -gt 0 ] || fail "lunmap-show during the cut counts no errors for volid 21"
log "blackhole: lunmap-show on d1: volid 21 errors=$errs last_error=$(lunmap 21 last_error)"
px pass restore
recovers blackhole

# ---- reset: every connection and every new one gets RST ----
load_start rst
t_cut=$(ms_now)
px rst cut rst
probes_run rst "$CUT_S" &
probes_pid=$!
load_must_fail_not_ready rst "$t_cut"
d1_is_up rst
remote_cmddev_fails_fast rst
wait "$probes_pid"
probes_must_fail_not_ready rst
px pass restore
recovers rst

# ---- 200 ms of latency each way ----
# 32 KiB commands (one round trip each: 400 ms, within timeout_s=2; a 1 MiB write needs several
# R2T round trips on this link and would not be).
# Every peer session is connected first: a login over this link takes several round trips,
# close to timeout_s.
_all_connected() {
    "$TIO" load "$V" --rw randwrite --bs 32k --qd 16 --ios 64 --range-blocks 40000 > /dev/null 2>&1 &&
        [ "$(lunmap 21 sessions_connected)" = 16 ]
}
wait_for 30 _all_connected || fail "the 16 peer sessions of the vvol do not all connect: $(lunmap 21 sessions_connected) connected"
px pass delay 200
t0=$(ms_now)
"$TIO" write "$V" --lba 50000 --blocks 8 --seed 5 > /dev/null || fail "one write with 200 ms of latency"
ms=$(( $(ms_now) - t0 ))
[ $ms -ge 400 ] || fail "a write through a link with 200 ms each way took $ms ms: the proxy is not in the path"
seed=$((seed + 1))
"$TIO" write "$V" --lba 74000 --blocks 2048 --xfer-blocks 64 --qd 16 --seed $seed > "$WORK/delay.out" 2>&1 ||
    fail "writes through d1 with 200 ms latency: $(cat "$WORK/delay.out")"
"$TIO" verify "$V" --lba 74000 --blocks 2048 --xfer-blocks 64 --qd 16 --seed $seed > "$WORK/delay.out" 2>&1 ||
    fail "reads through d1 with 200 ms latency: $(cat "$WORK/delay.out")"
"$TIO" verify "$R" --lba 74000 --blocks 2048 --seed $seed > /dev/null || fail "writes through d1 with 200 ms latency are not on d2"
"$TIO" verify "$V" --lba 60000 --blocks 4096 --xfer-blocks 64 --qd 16 --seed 1 > /dev/null || fail "older data through d1 with 200 ms latency"
"$TIO" sync "$V" > /dev/null || fail "SYNCHRONIZE CACHE with 200 ms latency"
log "200 ms each way: one 8-block write took $ms ms; 2048 blocks written and read back through d1 in 32 KiB commands are on d2"
px pass delay 0

# ---- kill -9 of d2 under a load through d1 ----
seed=$((seed + 1)); kill_seed=$seed
"$TIO" write "$V" --lba 80000 --blocks 4096 --seed $kill_seed > /dev/null || fail "write before the kill"
load_start kill
t_cut=$(ms_now)
device_kill d2
probes_run kill "$CUT_S" &
probes_pid=$!
load_must_fail_not_ready kill "$t_cut"
d1_is_up kill
remote_cmddev_fails_fast kill
wait "$probes_pid"
probes_must_fail_not_ready kill
device_start d2 127.0.0.3 "$D2_PORT"
d2_luns assemble
recovers kill
"$TIO" verify "$V" --lba 80000 --blocks 4096 --seed $kill_seed > /dev/null || fail "data written before the kill does not verify through d1"
"$TIO" verify "$R" --lba 80000 --blocks 4096 --seed $kill_seed > /dev/null || fail "data written before the kill is not on d2"
log "kill -9 of d2: data written before the kill verifies through d1 and on d2 after d2 restarted on port $D2_PORT"

! grep -Eq 'segfault|tgtd: .*(abort|assert)' "$(device_log d1)" || fail "d1's log shows a crash"
log "tproxy: $(cat "$WORK/px.state")"
log "PASS"
