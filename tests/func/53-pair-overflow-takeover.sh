#!/usr/bin/env bash
# Replication II (docs/replication.md "Overflow, delta resync, takeover"):
# (1) Journal overflow, policy suspend: a tiny primary journal, the auxiliary device in host mode
#     (nobody pulls): the journal passes the warning threshold (logged, warning=1 in status), then
#     fills; the pair suspends with the reason in status and host writes go on (tracked in the
#     change bitmap: bitmap_granules > 0). pair-resync: the aux restores what it had, the primary
#     starts a new journal, the aux copies only the changed granules (delta granules in status,
#     consistent=0 meanwhile and a last consistent point in seconds), then replicates again:
#     S == P. Bytes copied by the delta are far below the volume size.
# (2) Policy throttle: host writes wait for room instead (and fail with NOT READY after 10 s).
# (3) Takeover: d1 killed (kill -9) under writes; pair-takeover on d2: it restores what it
#     acquired, becomes primary alone (hosts write at once, changes tracked). d1 comes back
#     with its old record (it still thinks it is primary) and takes writes nobody replicated;
#     pair-resync on d2: d1 reports the discarded tail (entries and bytes, in the result and its
#     log), becomes auxiliary, copies the delta from d2; then d1 == d2 and d2's later writes
#     reach d1.
. "$(dirname "$0")/functions.sh"
requires python3

device_start d1 127.0.0.2
device_start d2 127.0.0.3
D1_PORT=${DEV_PORT[d1]} D2_PORT=${DEV_PORT[d2]}
PM=$(members "$WORK/p" 4 40M) PJM=$(members "$WORK/pj" 3 5M)
SM=$(members "$WORK/s" 5 40M) SJM=$(members "$WORK/sj" 3 5M)
d1_luns() {
    local c=${1:-}
    lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100${c:+;create=1;device=d1}"
    lu_add d1 2 raid "$PM" "volid=10${c:+;layout=3D+1P;chunk_kib=64;create=1}"
    lu_add d1 3 raid "$PJM" "volid=11${c:+;layout=2D+1P;chunk_kib=64;create=1}"
}
d2_luns() {
    local c=${1:-}
    lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200${c:+;create=1;device=d2}"
    lu_add d2 2 raid "$SM" "volid=20${c:+;layout=4D+1P;chunk_kib=64;create=1}"
    lu_add d2 3 raid "$SJM" "volid=21${c:+;layout=2D+1P;chunk_kib=64;create=1}"
}
vvols_d2() {
    lu_add d2 10 vvol "$(device_url d1 2)" "volid=30;timeout_s=2"
    lu_add d2 11 vvol "$(device_url d1 3)" "volid=31;timeout_s=2"
    lu_add d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev;timeout_s=2"
}
vvols_d1() {
    lu_add d1 10 vvol "$(device_url d2 2)" "volid=50;timeout_s=2"
    lu_add d1 11 vvol "$(device_url d2 3)" "volid=51;timeout_s=2"
    lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev;timeout_s=2"
}
d1_luns create; d2_luns create; vvols_d2; vvols_d1

V1=$(device_url d1 2) V2=$(device_url d2 2)
ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
ok1() { ctl1 "$@" > "$WORK/ctl.out" 2>&1 || fail "d1: tandemctl $*: $(cat "$WORK/ctl.out")"; }
ok2() { ctl2 "$@" > "$WORK/ctl.out" 2>&1 || fail "d2: tandemctl $*: $(cat "$WORK/ctl.out")"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
BLOCKS=$("$TIO" info "$V1" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
VBYTES=$((BLOCKS * 512))
equal() { tio_ok "$1: compare d1's and d2's volumes" compare "$V1" "$V2" --blocks "$BLOCKS"; }

tio_ok "initial data" write "$V1" --seed 1 --qd 16
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=host warn_pct=50 granule_kib=256
[ "$(f1 overflow)" = suspend ] || fail "the default overflow policy is not suspend: $(f1 overflow)"
paired() { [ "$(f2 state)" = paired ]; }
wait_for 60 paired || fail "no copy: $(ctl2 call pair-status id=1)"
equal "after the copy"

# ---------------- (1) overflow -> suspend -> delta resync ----------------
# host mode and nobody pulls: 4 KiB writes in a few 1 MiB regions fill the journal
mark=$(log_mark d1)
for i in $(seq 1 40); do
    tio_ok "writes into a few regions" write "$V1" --seed $((100 + i)) --lba $(( (i % 5) * 20000 )) --blocks 256 --xfer-blocks 8
done
log_has_since d1 "$mark" "journal is [0-9]+% full \\(warning at 50%\\)" || fail "no journal warning in d1's log"
[ "$(f1 state)" = suspended ] || fail "the journal did not overflow: $(ctl1 call pair-status id=1)"
ctl1 call pair-status id=1 | grep -q "journal full" || fail "suspended without the reason: $(ctl1 call pair-status id=1)"
bg=$(f1 bitmap_granules)
[ "$bg" -gt 0 ] || fail "suspended but nothing in the change bitmap: $(ctl1 call pair-status id=1)"
# host writes go on while suspended
tio_ok "a write while suspended" write "$V1" --seed 200 --lba 150000 --blocks 64
[ "$(f1 bitmap_granules)" -gt "$bg" ] || fail "a write while suspended was not tracked"
log "journal overflow: warning logged, pair suspended ($(f1 bitmap_granules) granules of 256 KiB changed)"

# the aux holds an older consistent image; the resync copies the delta
ok2 call pair-mode id=1 mode=auto interval_ms=20
ok2 call pair-resync id=1
grep -q "delta resync" "$WORK/ctl.out" || fail "pair-resync said: $(cat "$WORK/ctl.out")"
[ "$(f1 state)" = journaling ] || fail "the primary does not journal after the resync: $(ctl1 call pair-status id=1)"
tio_ok "writes during the delta copy" write "$V1" --seed 201 --lba 170000 --blocks 512 --qd 4
resynced() { local j; j=$(f1 journal_in); [ "$(f2 state)" = paired ] && [ "$(f2 restore_completed)" = $((j - 1)) ] && [ "$(f1 bitmap_granules)" = 0 ]; }
wait_for 60 resynced || fail "the delta resync did not finish: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
equal "after the delta resync"
copied=$(grep -h "delta copy of [0-9]* granules" "$WORK/d2.log" | tail -1 | sed 's/.*delta copy of \([0-9]*\) granules of \([0-9]*\) bytes.*/\1 \2/')
set -- $copied
[ -n "${1:-}" ] && [ $(( $1 * $2 )) -lt $((VBYTES / 4)) ] || fail "the delta copy was not small: $copied (volume $VBYTES bytes)"
log "delta resync: $1 granules of $2 bytes copied ($(( $1 * $2 / 1048576 )) MiB of $((VBYTES / 1048576)) MiB); equal"

# again, with d1 killed (kill -9) while suspended, and pair-resync issued on d1 (the primary)
ok2 call pair-mode id=1 mode=host
for i in $(seq 1 40); do
    tio_ok "writes into a few regions (2)" write "$V1" --seed $((300 + i)) --lba $(( (i % 5) * 20000 + 7000 )) --blocks 256 --xfer-blocks 8
done
[ "$(f1 state)" = suspended ] || fail "the journal did not overflow again: $(ctl1 call pair-status id=1)"
tio_ok "a write while suspended (2)" write "$V1" --seed 301 --lba 160000 --blocks 64
device_kill d1
device_start d1 127.0.0.2 "$D1_PORT"; d1_luns; vvols_d1
back_suspended() { [ "$(f1 state)" = suspended ] && [ "$(f1 bitmap_granules)" -gt 0 ]; }
wait_for 30 back_suspended || fail "d1 did not come back suspended with its changes: $(ctl1 call pair-status id=1)"
ok2 call pair-mode id=1 mode=auto interval_ms=20
ok1 call pair-resync id=1
wait_for 60 resynced || fail "the resync issued on d1 did not finish: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
equal "after kill -9 of the suspended primary and a resync issued on it"
log "overflow, kill -9 of d1 while suspended, pair-resync issued on d1: equal"

# ---------------- (2) throttle ----------------
ok2 call pair-mode id=1 mode=host
ok1 call pair-delete id=1
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=host overflow=throttle granule_kib=256
wait_for 60 paired || fail "no copy (2)"
start=$(date +%s)
if "$TIO" load "$V1" --rw randwrite --bs 4k --qd 4 --seconds 30 > "$WORK/thr.out" 2>&1; then fail "writes into a full journal under policy throttle never stopped"; fi
grep -qi "not ready" "$WORK/thr.out" || fail "policy throttle: expected NOT READY, got: $(cat "$WORK/thr.out")"
[ "$(f1 state)" = journaling ] || fail "policy throttle suspended the pair: $(ctl1 call pair-status id=1)"
[ "$(f1 waits_full)" -gt 0 ] || fail "no waits for room counted"
ok1 pair sync 1 --aux "$(device_url d2 1)"
equal "after throttle and a pull"
log "policy throttle: host writes waited for room and got NOT READY after the wait; pair still journaling; equal after a pull"

# ---------------- (3) takeover ----------------
ok1 call pair-delete id=1
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=auto interval_ms=20 granule_kib=256
wait_for 60 paired || fail "no copy (3)"
"$TIO" log-writer "$V1" --out "$WORK/w1.log" --seed 3 --qd 4 --seconds 60 --blocks 60000 > "$WORK/w1.out" 2>&1 &
w1=$!
written() { [ "$(grep -vc '^#' "$WORK/w1.log" 2>/dev/null)" -gt 300 ]; }
wait_for 30 written || fail "writer: $(cat "$WORK/w1.out")"
device_kill d1
wait "$w1" || true
t0=$(date +%s%N)
ok2 call pair-takeover id=1
took=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$(f2 role)" = primary ] && [ "$(f2 state)" = suspended ] || fail "d2 after the takeover: $(ctl2 call pair-status id=1)"
tseq=$(f2 takeover_seq)
tio_ok "d2 takes host writes at once" write "$V2" --seed 4 --lba 120000 --blocks 2048 --qd 4
[ "$(f2 bitmap_granules)" -gt 0 ] || fail "d2 does not track its changes"
log "takeover in $took ms at sequence $tseq; d2 writes, $(f2 bitmap_granules) granules tracked"

# d1 returns with its old record and takes writes nobody replicates (its tail)
device_start d1 127.0.0.2 "$D1_PORT"; d1_luns; vvols_d1
loaded() { [ "$(f1 role)" = primary ] && { [ "$(f1 ready)" = 1 ] || [ "$(f1 state)" = suspended ]; }; }
wait_for 30 loaded || fail "d1 did not come back as the old primary: $(ctl1 call pair-status id=1)"
tio_ok "d1's unreplicated tail" write "$V1" --seed 5 --lba 90000 --blocks 1024 --xfer-blocks 16 --qd 4
mark=$(log_mark d1)
ok2 call pair-resync id=1 mode=auto interval_ms=20
grep -Eq "auxiliary now; ([1-9][0-9]* writes \([0-9]+ bytes\) after sequence $tseq and [0-9]+|[0-9]+ writes \([0-9]+ bytes\) after sequence $tseq and [1-9][0-9]*) granules written while suspended discarded" "$WORK/ctl.out" || fail "the resync did not report d1's discarded tail: $(cat "$WORK/ctl.out")"
log_has_since d1 "$mark" "DISCARDED" || fail "d1's log does not say what it discarded"
back() { local j; j=$(f2 journal_in); [ "$(f1 role)" = aux ] && [ "$(f1 state)" = paired ] && [ "$(f1 restore_completed)" = $((j - 1)) ] && [ "$(f2 bitmap_granules)" = 0 ]; }
wait_for 60 back || fail "d1 did not follow d2 after the resync: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
equal "after the takeover and the resync back"
tio_ok "later writes on d2" write "$V2" --seed 6 --lba 2000 --blocks 2048 --xfer-blocks 16 --qd 4
wait_for 60 back || fail "d1 does not follow d2's later writes"
equal "d2's later writes on d1"
log "resync after the takeover: d1 reported '$(grep -Eo "[0-9]+ writes \([0-9]+ bytes\) after sequence [0-9]+ and [0-9]+ granules written while suspended discarded" "$WORK/ctl.out")'; d1 auxiliary, equal"
log "PASS"
