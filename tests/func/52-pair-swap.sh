#!/usr/bin/env bash
# Swap (seed 004 "Swap", Figs. 19-21; docs/replication.md): d1 primary (3D+1P), d2 auxiliary
# (4D+1P), auto mode. Each device has vvols onto the other's volume, journal and command device.
# pair-swap issued on d2 while a writer logs acknowledged writes on d1: d1 freezes (its host
# writes are refused with DATA PROTECT from then on), d2 restores everything, becomes primary and
# journals; d1 becomes auxiliary and pulls from d2. Every write d1 acknowledged is on d2's volume
# (tio log-check), d2 takes host writes at once, roles and tables are swapped on both devices
# (and survive a restart of both). Then the same back, issued on d1 under a writer on d2:
# original roles, every acknowledged write on d1's volume, and the volumes equal.
. "$(dirname "$0")/functions.sh"
requires python3

device_start d1 127.0.0.2
device_start d2 127.0.0.3
D1_PORT=${DEV_PORT[d1]} D2_PORT=${DEV_PORT[d2]}
PM=$(members "$WORK/p" 4 40M) PJM=$(members "$WORK/pj" 3 20M)
SM=$(members "$WORK/s" 5 40M) SJM=$(members "$WORK/sj" 3 20M)
d1_luns() { # [create]
    local c=${1:+;create=1}
    lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100${c:+;create=1;device=d1}"
    lu_add d1 2 raid "$PM" "volid=10${c:+;layout=3D+1P;chunk_kib=64;create=1}"
    lu_add d1 3 raid "$PJM" "volid=11${c:+;layout=2D+1P;chunk_kib=64;create=1}"
}
d2_luns() {
    local c=${1:+;create=1}
    lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200${c:+;create=1;device=d2}"
    lu_add d2 2 raid "$SM" "volid=20${c:+;layout=4D+1P;chunk_kib=64;create=1}"
    lu_add d2 3 raid "$SJM" "volid=21${c:+;layout=2D+1P;chunk_kib=64;create=1}"
}
vvols() {
    lu_add d2 10 vvol "$(device_url d1 2)" "volid=30"
    lu_add d2 11 vvol "$(device_url d1 3)" "volid=31"
    lu_add d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev"
    lu_add d1 10 vvol "$(device_url d2 2)" "volid=50"
    lu_add d1 11 vvol "$(device_url d2 3)" "volid=51"
    lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"
}
d1_luns create; d2_luns create; vvols

V1=$(device_url d1 2) V2=$(device_url d2 2)
ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
ok1() { ctl1 "$@" > "$WORK/ctl.out" 2>&1 || fail "d1: tandemctl $*: $(cat "$WORK/ctl.out")"; }
ok2() { ctl2 "$@" > "$WORK/ctl.out" 2>&1 || fail "d2: tandemctl $*: $(cat "$WORK/ctl.out")"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
BLOCKS=$("$TIO" info "$V1" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
equal() { tio_ok "$1: compare d1's and d2's volumes" compare "$V1" "$V2" --blocks "$BLOCKS"; }

tio_ok "initial data" write "$V1" --seed 1 --qd 16
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=auto interval_ms=20 overflow=throttle
paired() { [ "$(f2 state)" = paired ]; }
wait_for 60 paired || fail "no copy: $(ctl2 call pair-status id=1)"

# ---- swap issued on d2 while a writer logs acknowledged writes on d1 ----
"$TIO" log-writer "$V1" --out "$WORK/w1.log" --seed 2 --qd 4 --seconds 30 --blocks 60000 > "$WORK/w1.out" 2>&1 &
w1=$!
written() { [ "$(grep -vc '^#' "$WORK/w1.log" 2>/dev/null)" -gt 500 ]; }
wait_for 30 written || fail "the writer on d1 did not get going: $(cat "$WORK/w1.out")"
ok2 call pair-swap id=1
swapmsg=$(grep -o 'held for [0-9]* ms; the swap took [0-9]* ms' "$WORK/ctl.out") || fail "pair-swap said: $(cat "$WORK/ctl.out")"
# d2 takes host writes at once
tio_ok "a host write on d2 right after the swap" write "$V2" --seed 3 --lba $((BLOCKS - 4096)) --blocks 64
rc=0; wait "$w1" || rc=$?
[ "$rc" = 1 ] || fail "the writer on d1 should have been stopped by DATA PROTECT (rc $rc): $(cat "$WORK/w1.out")"
grep -qi "data protect" "$WORK/w1.out" || fail "d1 refused the writer's writes without DATA PROTECT: $(cat "$WORK/w1.out")"
[ "$(f1 role)" = aux ] && [ "$(f2 role)" = primary ] || fail "roles after the swap: d1 $(f1 role), d2 $(f2 role)"
tio_ok "every write d1 acknowledged is on d2's volume" log-check "$V2" --log "$WORK/w1.log"
log "swap 1 (issued on d2 under writes on d1): $swapmsg; $(grep -vc '^#' "$WORK/w1.log") acknowledged writes all on d2"
# d1 is the copy now: its volume refuses host writes; it pulls from d2
if "$TIO" write "$V1" --lba 0 --blocks 8 --seed 4 > "$WORK/g.out" 2>&1; then fail "d1's volume took a host write after the swap"; fi
caught_up() { local j; j=$(f2 journal_in); [ -n "$j" ] && [ "$(f1 restore_completed)" = $((j - 1)) ]; }
wait_for 60 caught_up || fail "d1 does not follow d2: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
equal "after swap 1"

# ---- both devices restart (kill -9): the swapped roles are in the tables ----
device_kill d1; device_kill d2
device_start d1 127.0.0.2 "$D1_PORT"; device_start d2 127.0.0.3 "$D2_PORT"
d1_luns; d2_luns; vvols
role_ok() { [ "$(f1 role)" = aux ] && [ "$(f2 role)" = primary ] && [ "$(f2 ready)" = 1 ]; }
wait_for 30 role_ok || fail "roles after the restart: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
tio_ok "writes on d2 after the restart" write "$V2" --seed 5 --lba 1000 --blocks 3000 --qd 4
wait_for 60 caught_up || fail "d1 does not follow d2 after the restart"
equal "after the restart"
log "after kill -9 of both devices: d1 auxiliary, d2 primary, d1 follows"

# ---- swap back, issued on d1, under a writer on d2 ----
"$TIO" log-writer "$V2" --out "$WORK/w2.log" --seed 6 --qd 4 --seconds 30 --blocks 60000 > "$WORK/w2.out" 2>&1 &
w2=$!
written2() { [ "$(grep -vc '^#' "$WORK/w2.log" 2>/dev/null)" -gt 500 ]; }
wait_for 30 written2 || fail "the writer on d2 did not get going: $(cat "$WORK/w2.out")"
ok1 call pair-swap id=1
swapmsg=$(grep -o 'held for [0-9]* ms; the swap took [0-9]* ms' "$WORK/ctl.out") || fail "pair-swap back said: $(cat "$WORK/ctl.out")"
tio_ok "a host write on d1 right after the swap back" write "$V1" --seed 7 --lba $((BLOCKS - 8192)) --blocks 64
wait "$w2" || true
[ "$(f1 role)" = primary ] && [ "$(f2 role)" = aux ] || fail "roles after the swap back: d1 $(f1 role), d2 $(f2 role)"
tio_ok "every write d2 acknowledged is on d1's volume" log-check "$V1" --log "$WORK/w2.log"
caught_up_back() { local j; j=$(f1 journal_in); [ -n "$j" ] && [ "$(f2 restore_completed)" = $((j - 1)) ]; }
wait_for 60 caught_up_back || fail "d2 does not follow d1 after the swap back"
equal "after the swap back"
log "swap back (issued on d1 under writes on d2): $swapmsg; original roles; equal"

# ---- refusals ----
if ctl1 call pair-swap id=1 > "$WORK/bad.out" 2>&1; then fail "pair-swap on the primary device was accepted"; fi
grep -q "issued on the auxiliary device" "$WORK/bad.out" || fail "pair-swap on the primary: $(cat "$WORK/bad.out")"
log "PASS"
