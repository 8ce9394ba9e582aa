#!/usr/bin/env bash
# Acknowledged writes survive kill -9 of tgtd: a writer with 16 commands in flight logs every
# write the target acknowledged; tgtd is killed at a random moment; a new tgtd reassembles the
# members (the superblocks say "not shut down cleanly"); every acknowledged write reads back and
# every stripe's parity agrees with its data. ROUNDS (default 3) and SEED replay a run.
. "$(dirname "$0")/functions.sh"
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-$RANDOM}
log "seed $SEED, $ROUNDS rounds (replay: SEED=$SEED ROUNDS=$ROUNDS $0)"
RANDOM=$SEED

lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }

list=$(members "$WORK/m" 4 40M)
device_start d1
lu_add d1 1 raid "$list" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
for ((r = 1; r <= ROUNDS; r++)); do
    url=$(device_url d1 1)
    "$TIO" log-writer "$url" --out "$WORK/acked.$r" --blocks 60000 --seed $((SEED + r)) --qd 16 \
        --max-blocks 300 > "$WORK/writer.$r.log" 2>&1 &
    wpid=$!
    # Let it get going: at least 200 acknowledged writes, then kill at a random extra delay.
    wait_for 30 lines_at_least "$WORK/acked.$r" 200 ||
        fail "writer made no progress: $(tail -3 "$WORK/writer.$r.log")"
    sleep "0.$((RANDOM % 10))"   # the crash moment is random on purpose
    device_kill d1
    wait $wpid 2>/dev/null || true
    log "round $r: killed tgtd after $(wc -l < "$WORK/acked.$r") acknowledged writes"
    "$TANDEMCTL" raid examine --json $(member_list "$WORK/m" 4 | tr ';' ' ') | grep -q '"state":"dirty"' ||
        fail "superblocks do not say dirty after kill -9"
    device_start d1
    lu_add d1 1 raid "$list" "volid=1"
    log_has d1 "was not shut down cleanly" || fail "unclean shutdown not reported"
    url=$(device_url d1 1)
    # (Each round overwrites the same range, so only this round's log describes the volume.)
    "$TIO" log-check "$url" --log "$WORK/acked.$r" > "$WORK/check.$r" 2>&1 ||
        fail "round $r: acknowledged writes lost: $(tail -5 "$WORK/check.$r")"
    log "round $r: $(tail -1 "$WORK/check.$r")"
done
# Parity: stop cleanly, then check every stripe offline with the library's checker.
device_stop d1
"$TANDEMCTL" raid check $(member_list "$WORK/m" 4 | tr ';' ' ') || fail "parity mismatch after crashes"
log "PASS: $ROUNDS kill -9 rounds, no acknowledged write lost, parity consistent"
