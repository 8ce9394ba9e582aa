#!/usr/bin/env bash
# Consistency group (docs/replication.md): one pair holds two volume pairs that share one journal
# (pair-create pvol=10,12 svol=20,22 src_pvol=30,32 ...). One writer, one order across both
# primary volumes (tio log-writer --also: QD1, each write to either volume, one generation
# counter). At random moments the auxiliary device is suspended and both auxiliary volumes are
# checked together (tio order-check --also): they must be the writer's state at one generation K
# on BOTH volumes (no later write on one without every earlier write on the other), K growing.
# Then kill -9 of device 2 during the restore, restart, catch-up; last, a swap of the whole group
# and back; both volumes equal their primaries.
. "$(dirname "$0")/functions.sh"
requires python3

SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"
RANDOM=$SEED
device_start d1 127.0.0.2
device_start d2 127.0.0.3
D2_PORT=${DEV_PORT[d2]}
PA=$(members "$WORK/pa" 4 20M) PB=$(members "$WORK/pb" 3 20M) PJM=$(members "$WORK/pj" 3 20M)
SA=$(members "$WORK/sa" 5 20M) SB=$(members "$WORK/sb" 4 20M) SJM=$(members "$WORK/sj" 3 20M)
d2_luns() {
    local c=${1:-}
    lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200${c:+;create=1;device=d2}"
    lu_add d2 2 raid "$SA" "volid=20${c:+;layout=4D+1P;chunk_kib=64;create=1}"
    lu_add d2 3 raid "$SB" "volid=22${c:+;layout=3D+1P;chunk_kib=64;create=1}"
    lu_add d2 4 raid "$SJM" "volid=21${c:+;layout=2D+1P;chunk_kib=64;create=1;bitmap=0}"
    lu_add d2 10 vvol "$(device_url d1 2)" "volid=30"
    lu_add d2 11 vvol "$(device_url d1 3)" "volid=32"
    lu_add d2 12 vvol "$(device_url d1 4)" "volid=31"
    lu_add d2 13 vvol "$(device_url d1 1)" "volid=33;kind=cmddev"
}
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 raid "$PA" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
lu_add d1 3 raid "$PB" "volid=12;layout=2D+1P;chunk_kib=64;create=1"
lu_add d1 4 raid "$PJM" "volid=11;layout=2D+1P;chunk_kib=64;create=1;bitmap=0"
d2_luns create
lu_add d1 10 vvol "$(device_url d2 2)" "volid=50"
lu_add d1 11 vvol "$(device_url d2 3)" "volid=52"
lu_add d1 12 vvol "$(device_url d2 4)" "volid=51"
lu_add d1 13 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"

PA_URL=$(device_url d1 2) PB_URL=$(device_url d1 3) SA_URL=$(device_url d2 2) SB_URL=$(device_url d2 3)
ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
ok1() { ctl1 "$@" > "$WORK/ctl.out" 2>&1 || fail "d1: tandemctl $*: $(cat "$WORK/ctl.out")"; }
ok2() { ctl2 "$@" > "$WORK/ctl.out" 2>&1 || fail "d2: tandemctl $*: $(cat "$WORK/ctl.out")"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
BA=$("$TIO" info "$PA_URL" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
BB=$("$TIO" info "$PB_URL" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
equal() {
    tio_ok "$1: volume A" compare "$PA_URL" "$SA_URL" --blocks "$BA"
    tio_ok "$1: volume B" compare "$PB_URL" "$SB_URL" --blocks "$BB"
}
caught_up() { local j; j=$(f1 journal_in); [ -n "$j" ] && [ "$(f2 state)" = paired ] && [ "$(f2 restore_completed)" = $((j - 1)) ]; }

# ---- one group: two volume pairs, one journal ----
ok1 call pair-create id=1 role=primary pvol=10,12 pjnl=11 svol=20,22 sjnl=21 src_pvol=30,32 \
    src_pjnl=31 s_peer=33 p_peer=40 r_src_pvol=50,52 r_src_pjnl=51 mode=auto interval_ms=20 overflow=throttle
[ "$(f1 pvol)" = 10,12 ] && [ "$(f2 svol)" = 20,22 ] || fail "the group is not on both devices: $(ctl1 call pair-status id=1) $(ctl2 call pair-status id=1)"
wait_for 60 caught_up || fail "no copy: $(ctl2 call pair-status id=1)"
equal "after the copy of the group"
# a group list of the wrong length is refused
if ctl1 call pair-create id=2 role=primary pvol=10,12 pjnl=11 svol=20 sjnl=21 src_pvol=30,32 src_pjnl=31 s_peer=33 p_peer=40 > "$WORK/bad.out" 2>&1; then fail "a group with lists of different lengths was accepted"; fi
grep -q "but the group has 2" "$WORK/bad.out" || fail "lists of different lengths: $(cat "$WORK/bad.out")"

# ---- write order across both volumes at random moments ----
BLK=$(( BA < BB ? BA : BB )); BLK=$(( BLK < 16384 ? BLK : 16384 ))
# (the volumes are fresh: the writer's range holds zeros on both sides, as order-check wants)
"$TIO" log-writer "$PA_URL" --also "$PB_URL" --out "$WORK/w.log" --seed "$SEED" --seconds 8 --blocks "$BLK" > "$WORK/w.out" 2>&1 &
wpid=$!
lastk=0 checks=0
while kill -0 "$wpid" 2>/dev/null && [ $checks -lt 4 ]; do
    ms=$(( 400 + RANDOM % 1200 ))
    sleep "$(printf '0.%03d' $((ms % 1000)))"; [ $ms -ge 1000 ] && sleep 1   # a random moment: the point of the test, not a wait for a condition
    ok2 call pair-suspend id=1
    out=$("$TIO" order-check "$SA_URL" --also "$SB_URL" --log "$WORK/w.log" --wait-s 20 2>&1) || fail "order across the group: $out"
    ok2 call pair-resume id=1
    k=$(sed -n 's/.*generation \([0-9]*\) (2 LUs.*/\1/p' <<<"$out")
    [ -n "$k" ] || fail "order-check said: $out"
    [ "$k" -ge "$lastk" ] || fail "K went back: $k after $lastk"
    log "check $((checks + 1)): both auxiliary volumes = the writer's state at generation $k"
    lastk=$k checks=$((checks + 1))
done
wait "$wpid" || fail "writer: $(cat "$WORK/w.out")"
[ $checks -ge 3 ] || fail "only $checks checks ran"
wait_for 60 caught_up || fail "no catch-up after the writer"
out=$("$TIO" order-check "$SA_URL" --also "$SB_URL" --log "$WORK/w.log" 2>&1) || fail "final order check: $out"
equal "after the writer"

# ---- kill -9 of d2 during a restore of the group ----
ok2 call pair-mode id=1 mode=host
tio_ok "backlog on A" load "$PA_URL" --rw randwrite --bs 4k --qd 4 --ios 3000 --seed 5
tio_ok "backlog on B" load "$PB_URL" --rw randwrite --bs 4k --qd 4 --ios 3000 --seed 6
ok2 call pair-acquire id=1
acquired() { [ "$(f2 read_completed)" = $(( $(f1 journal_in) - 1 )) ]; }
wait_for 60 acquired || fail "acquisition: $(ctl2 call pair-status id=1)"
ok2 call pair-restore id=1
device_kill d2
device_start d2 127.0.0.3 "$D2_PORT"; d2_luns
ok2 call pair-mode id=1 mode=auto interval_ms=20
wait_for 60 caught_up || fail "d2 did not catch up after its restart: $(ctl2 call pair-status id=1)"
equal "after kill -9 of d2 during the restore"
log "kill -9 of d2 during the group's restore: resumed, equal"

# ---- swap the whole group and back ----
ok2 call pair-swap id=1
[ "$(f2 role)" = primary ] && [ "$(f2 pvol)" = 20,22 ] || fail "after the swap: $(ctl2 call pair-status id=1)"
tio_ok "write on d2's B" write "$SB_URL" --seed 7 --lba 100 --blocks 512 --qd 4
back() { local j; j=$(f2 journal_in); [ "$(f1 restore_completed)" = $((j - 1)) ]; }
wait_for 60 back || fail "d1 does not follow d2: $(ctl1 call pair-status id=1)"
ok1 call pair-swap id=1
[ "$(f1 role)" = primary ] || fail "after the swap back: $(ctl1 call pair-status id=1)"
wait_for 60 caught_up || fail "d2 does not follow d1 after the swap back"
equal "after the swap of the group and back"
log "PASS"
