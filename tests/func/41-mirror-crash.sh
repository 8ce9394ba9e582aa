#!/usr/bin/env bash
# LU mirror and kill -9 (docs/mirror.md, "Persistence"): tgtd is killed (1) during the initial
# copy, between 10 % and 90 % of it, while a log-writer writes to the primary; (2) in duplex while
# a log-writer runs; (3) while split, with a log-writer running; (4) during a resync (with a
# log-writer). After each restart, the LUs added in the order command device, primary, secondary,
# the mirror carries on by itself: (1) the copy resumes from its checkpoint (it copies less than
# the whole volume) and reaches duplex; (2) and (4) reach duplex; (3) stays split, its dirty_bytes
# covering every granule an acknowledged write touched after the split, and a mirror-resync then
# brings duplex. Each time every acknowledged write reads back from the primary AND from the
# secondary (tio log-check) and the volumes compare equal. SEED replays the writers.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"
RANDOM=$SEED

ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
# (text output and awk: a poll costs milliseconds, not python's start-up)
mfield() { ctl call mirror-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
mstate_is() { [ "$(mfield state)" = "$1" ]; }
pct_at_least() { local p; p=$(mfield copied_percent) && [ "${p%.*}" -ge "$1" ]; }
lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }
tio_ok() {
    local what=$1; shift
    "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"
}

# primary 3D+1P/64K of 3 x 296 MiB, secondary 4D+1P/64K of 4 x 296 MiB (granule 256 KiB)
G=$((4 * 65536))
PLIST=$(members "$WORK/p" 4 300M)
SLIST=$(members "$WORK/s" 5 300M)
start_d1() {   # the command device first, then the primary, then the secondary
    if [ -f "$WORK/d1.tables" ]; then
        device_start d1
        lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
        lu_add d1 1 raid "$PLIST" "volid=1"
        lu_add d1 2 raid "$SLIST" "volid=2"
    else
        device_start d1
        lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
        lu_add d1 1 raid "$PLIST" "volid=1;layout=3D+1P;chunk_kib=64;create=1"
        lu_add d1 2 raid "$SLIST" "volid=2;layout=4D+1P;chunk_kib=64;create=1"
    fi
    P=$(device_url d1 1) S=$(device_url d1 2)
}
# writer TAG [BLOCKS]: a log-writer on the primary (qd 8, up to 128 blocks, in the first BLOCKS
# blocks, default all), acknowledged writes in $WORK/acked.TAG; sets WPID
writer() {
    "$TIO" log-writer "$P" --out "$WORK/acked.$1" --seed $((SEED + ${#1})) --qd 8 --max-blocks 128 \
        --blocks "${2:-$PBLOCKS}" > "$WORK/writer.$1.log" 2>&1 &
    WPID=$!
}
# crash: kill -9 of tgtd; the writer sees the connection go (exit 3)
crash() {
    device_kill d1
    local rc=0
    wait "$WPID" || rc=$?
    [ $rc -eq 3 ] || fail "the writer exited $rc, not 3 (connection lost): $(tail -3 "$WORK/writer.$1.log")"
}
# check_both TAG: every acknowledged write of the writer TAG is on the primary and the secondary;
# the volumes compare equal
check_both() {
    "$TIO" log-check "$P" --log "$WORK/acked.$1" > "$WORK/check.out" 2>&1 ||
        fail "$1: acknowledged writes lost on the primary: $(tail -5 "$WORK/check.out")"
    "$TIO" log-check "$S" --log "$WORK/acked.$1" > "$WORK/check.out" 2>&1 ||
        fail "$1: acknowledged writes missing on the secondary: $(tail -5 "$WORK/check.out")"
    tio_ok "$1: compare" compare "$P" "$S" --blocks "$PBLOCKS"
}
wait_duplex() {
    wait_for "${2:-60}" mstate_is duplex || fail "$1: no duplex: $(ctl call mirror-status id=1 | tr -s ' \n' ' ')"
}

start_d1
PBLOCKS=$("$TIO" info "$P" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
PBYTES=$((PBLOCKS * 512))
tio_ok "primary pattern" write "$P" --seed 11 --qd 16 --blocks $((PBLOCKS / 4))

# ---------------- (1) kill -9 during the initial copy ----------------
writer copy
wait_for 30 lines_at_least "$WORK/acked.copy" 100 || fail "writer made no progress: $(tail -3 "$WORK/writer.copy.log")"
ctl call mirror-create primary=1 secondary=2 > "$WORK/create.out" 2>&1 || fail "mirror-create: $(cat "$WORK/create.out")"
wait_for 60 pct_at_least 10 || fail "the copy did not reach 10 %: $(ctl call mirror-status id=1 | tr -s ' \n' ' ')"
pct=$(mfield copied_percent)
[ "${pct%.*}" -lt 90 ] || fail "the copy is too quick to interrupt ($pct %): make the members bigger"
crash copy
log "(1) killed at $pct % of the initial copy, $(wc -l < "$WORK/acked.copy") writes acknowledged"
grep -aq "mirror id=1 .*state=copying" "$WORK/d1.tables" || fail "the tables do not say copying"
mark=$(log_mark d1)
start_d1
wait_duplex "(1) after the restart"
log_has_since d1 "$mark" "mirror 1: copier started as operation" || fail "(1): no copier after the restart"
copied=$(mfield copied_bytes)
[ "$copied" -lt "$PBYTES" ] || fail "(1): the copy started again from 0 ($copied bytes copied after the restart)"
check_both copy
log "(1) the copy resumed from its checkpoint ($((copied / 1048576)) of $((PBYTES / 1048576)) MiB copied after the restart); acknowledged writes on both; equal"

# ---------------- (2) kill -9 in duplex under writes ----------------
# (in the first quarter: the intent bits, so what the restart resyncs, stay there)
Q=$((PBLOCKS / 4 / 512 * 512))
writer duplex $Q
wait_for 30 lines_at_least "$WORK/acked.duplex" 500 || fail "writer made no progress: $(tail -3 "$WORK/writer.duplex.log")"
sleep "0.$((RANDOM % 10))"
mstate_is duplex || fail "(2) not duplex before the kill: $(mfield state)"
crash duplex
log "(2) killed in duplex after $(wc -l < "$WORK/acked.duplex") acknowledged writes"
start_d1
wait_duplex "(2) after the restart"
copied=$(mfield copied_bytes)
[ "$copied" -le $((Q * 512)) ] || fail "(2) the restart resynced $copied bytes; the writes were all in the first $((Q * 512)) bytes"
check_both duplex
log "(2) duplex again by itself ($((copied / 1048576)) MiB resynced for writes within the first $((Q / 2048)) MiB); acknowledged writes on both; equal"

# ---------------- (3) kill -9 while split, under writes ----------------
wait_for 15 [ "$(mfield dirty_bytes)" = 0 ] || true
left=$(mfield dirty_bytes)
ctl call mirror-split id=1 > /dev/null || fail "mirror-split"
writer split $Q
wait_for 30 lines_at_least "$WORK/acked.split" 500 || fail "writer made no progress: $(tail -3 "$WORK/writer.split.log")"
sleep "0.$((RANDOM % 10))"
crash split
start_d1
mstate_is split || fail "(3) the mirror is not split after the restart: $(mfield state)"
dirty=$(mfield dirty_bytes)
need=$(python3 - "$WORK/acked.split" "$G" <<'EOF'
import sys
g = int(sys.argv[2]); s = set()
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    lba, n, _ = map(int, line.split())
    s.update(range(lba * 512 // g, ((lba + n) * 512 - 1) // g + 1))
print(len(s) * g)
EOF
)
[ "$dirty" -ge "$need" ] || fail "(3) dirty_bytes $dirty after the restart < $need, the granules acknowledged writes touched after the split"
[ "$dirty" -le $((Q * 512 + left)) ] || fail "(3) dirty_bytes $dirty: more than the $((Q * 512)) bytes written (+ $left left from duplex)"
expect_fail "(3) compare while split" "$TIO" compare "$P" "$S" --blocks "$PBLOCKS"
"$TIO" log-check "$P" --log "$WORK/acked.split" > "$WORK/check.out" 2>&1 || fail "(3) acknowledged writes lost on the primary: $(tail -5 "$WORK/check.out")"
c0=$(mfield copied_bytes)
ctl call mirror-resync id=1 > /dev/null || fail "mirror-resync"
wait_duplex "(3) resync"
c1=$(mfield copied_bytes)
[ $((c1 - c0)) -eq "$dirty" ] || fail "(3) the resync copied $((c1 - c0)) bytes for dirty_bytes $dirty"
check_both split
log "(3) still split after the restart; dirty_bytes $dirty >= $need (granules written after the split; $left left from duplex), resync copied exactly that; equal"

# ---------------- (4) kill -9 during a resync ----------------
ctl call mirror-split id=1 > /dev/null || fail "mirror-split (4)"
tio_ok "(4) dirty half the volume" write "$P" --seed 12 --qd 16 --lba 0 --blocks $((PBLOCKS / 2))
writer resync
wait_for 30 lines_at_least "$WORK/acked.resync" 100 || fail "writer made no progress: $(tail -3 "$WORK/writer.resync.log")"
dirty=$(mfield dirty_bytes) c0=$(mfield copied_bytes)
ctl call mirror-resync id=1 > /dev/null || fail "mirror-resync (4)"
copied_some() { [ $(($(mfield copied_bytes) - c0)) -ge $((dirty / 10)) ]; }
wait_for 60 copied_some || fail "(4) the resync did not copy 10 %"
st=$(mfield state) c1=$(mfield copied_bytes)
[ "$st" = resyncing ] || fail "(4) the resync is too quick to interrupt (state $st): make the members bigger"
crash resync
log "(4) killed during the resync: $(((c1 - c0) / 1048576)) MiB copied of $((dirty / 1048576)) MiB dirty (and the writer's)"
grep -aq "mirror id=1 .*state=resyncing" "$WORK/d1.tables" || fail "the tables do not say resyncing"
start_d1
wait_duplex "(4) after the restart"
check_both resync
log "(4) the resync resumed by itself after the restart; duplex; acknowledged writes on both; equal"
log "PASS"
