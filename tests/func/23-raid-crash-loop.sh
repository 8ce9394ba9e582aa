#!/usr/bin/env bash
# The crash loop: ROUNDS (default 20) rounds of a log-writer (qd 16, 1..64 blocks) on a 3D+1P
# volume; after a seeded number of acknowledged writes, about one round in four fails a seeded
# member (raid-fault mode=now) and lets writes go on degraded; tgtd is killed (kill -9) after a
# further seeded number of acknowledged writes. Restarted with only volid=1: the log reports the
# unclean shutdown and the write-intent bitmap resync; every write the round acknowledged reads
# back (log-check); a failed member stays failed and is rebuilt onto a fresh file (which takes
# its place in the member list); the scrub finds 0 mismatches. At the end, stopped cleanly, the
# offline checker agrees. Replay a run with SEED=... ROUNDS=... (printed at the start).
#
# One documented exception (docs/raid-resilience.md, "Limitation of the bitmap"): a crash while
# degraded can leave a stripe torn where the failed member's data can no longer be recomputed;
# tgtd logs such stripes ("could not be resynchronised"). A log-check failure in such a round is
# excused only if tgtd logged them and every reported bad lba lies on the failed member.
. "$(dirname "$0")/functions.sh"
requires python3
use_fault_injection
ROUNDS=${ROUNDS:-20}
SEED=${SEED:-$RANDOM}
log "seed $SEED, $ROUNDS rounds (replay: SEED=$SEED ROUNDS=$ROUNDS $0)"
RANDOM=$SEED

N=4; n=3; CB=32                       # 3D+1P, 16 KiB chunks (32 blocks of 512 bytes)
ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
state_line() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print(r[0]["state"], " ".join(m["state"] for m in r if m["record"] == "member"))'
}
member_failed() { [ "$(state_line | cut -d' ' -f$(($1 + 2)))" = failed ]; }
acked() { grep -vc '^#' "$WORK/acked.$r" || true; }
acked_at_least() { [ -f "$WORK/acked.$r" ] && [ "$(acked)" -ge "$1" ]; }
joined() { (IFS=';'; echo "${M[*]}"); }
# member_of LBA: the member holding that block's data (docs/raid-format.md)
member_of() {
    local s=$(($1 / (n * CB))) d=$(($1 % (n * CB) / CB))
    echo $(( (N - 1 - s % N + 1 + d) % N ))
}

M=()
for ((i = 0; i < N; i++)); do M+=("$WORK/m$i"); truncate -s 48M "${M[$i]}"; done
device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 1 raid "$(joined)" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
SB=$((n * CB)); TOTAL=$((n * 44 * 2048))
R=$(ctl --json raid status 1 | python3 -c 'import json, sys; print(json.load(sys.stdin)["records"][0]["region_stripes"])')
excused=0; degraded_rounds=0
for ((r = 1; r <= ROUNDS; r++)); do
    first=$((300 + RANDOM % 2000))    # acknowledged writes before the failure / the kill
    more=$((100 + RANDOM % 1500))     # and after it
    failk=-1
    if [ $((RANDOM % 4)) -eq 0 ]; then failk=$((RANDOM % N)); fi
    range=$((TOTAL >> (RANDOM % 4)))  # the writer's lbas: all, 1/2, 1/4 or 1/8 of the volume
    url=$(device_url d1 1)
    "$TIO" log-writer "$url" --out "$WORK/acked.$r" --blocks $range --seed $((SEED * 1000 + r)) \
        --qd 16 --max-blocks 64 > "$WORK/writer.$r.log" 2>&1 &
    wpid=$!
    wait_for 60 acked_at_least "$first" || fail "round $r: writer made no progress: $(tail -3 "$WORK/writer.$r.log")"
    if [ $failk -ge 0 ]; then
        ctl call raid-fault volid=1 member=$failk op=any mode=now > /dev/null
        wait_for 30 member_failed $failk || fail "round $r: member $failk did not fail: $(state_line)"
        degraded_rounds=$((degraded_rounds + 1))
    fi
    wait_for 60 acked_at_least $((first + more)) ||
        fail "round $r: writer stopped$([ $failk -lt 0 ] || echo " after member $failk failed"): $(tail -3 "$WORK/writer.$r.log")"
    device_kill d1
    wait $wpid 2>/dev/null || true
    what="killed after $(acked) acknowledged writes"
    [ $failk -lt 0 ] || what+=" (member $failk failed after $first)"

    mark=$(log_mark d1)
    device_start d1 > /dev/null
    lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
    lu_add d1 1 raid "$(joined)" "volid=1" || fail "round $r: no assembly after kill -9"
    url=$(device_url d1 1)
    log_has_since d1 "$mark" "was not shut down cleanly" || fail "round $r: unclean shutdown not reported"
    log_has_since d1 "$mark" "parity resync done: [0-9]+ stripes checked, [0-9]+ repaired" ||
        fail "round $r: no write-intent bitmap resync after kill -9"
    resync=$(tail -n +$((mark + 1)) "$(device_log d1)" | sed -n 's/.*parity resync done: //p' | tail -1)
    # the bitmap bounds the resync to the regions the writer touched
    checked=${resync%% stripes*}
    limit=$(( ( (range + SB - 1) / SB + R - 1) / R * R ))
    [ "$checked" -gt 0 ] && [ "$checked" -le "$limit" ] ||
        fail "round $r: resync checked $checked stripes; the writer touched only the first $limit"
    if [ $failk -ge 0 ]; then
        log_has_since d1 "$mark" "member ${M[$failk]} \(index $failk\) is recorded as failed .*not trusted" ||
            fail "round $r: the failed member $failk is not kept failed after the restart"
    fi
    if ! "$TIO" log-check "$url" --log "$WORK/acked.$r" > "$WORK/check.$r" 2>&1; then
        # the documented degraded write hole, and nothing else?
        holes=$(tail -n +$((mark + 1)) "$(device_log d1)" | sed -n 's/.*: \([0-9]*\) dirty stripes could not be resynchronised.*/\1/p' | tail -1)
        bad=$(sed -n 's/^.*log-check: lba \([0-9]*\):.*/\1/p' "$WORK/check.$r")
        ok=1
        [ $failk -ge 0 ] && [ "${holes:-0}" -gt 0 ] && [ -n "$bad" ] || ok=0
        for b in $bad; do [ "$(member_of "$b")" -eq $failk ] || ok=0; done
        [ $ok -eq 1 ] || fail "round $r ($what): acknowledged writes lost: $(tail -12 "$WORK/check.$r")"
        excused=$((excused + 1))
        log "round $r: KNOWN LIMITATION (crash while degraded, $holes stripes could not be" \
            "resynchronised): lost blocks only on failed member $failk: $(tail -1 "$WORK/check.$r");" \
            "first: $(grep -m1 'log-check: lba' "$WORK/check.$r")"
    fi
    if [ $failk -ge 0 ]; then
        new="$WORK/r$r.m$failk"
        truncate -s 48M "$new"
        ctl raid rebuild 1 $failk "$new" --wait > "$WORK/rebuild.out" 2>&1 ||
            fail "round $r: rebuild of member $failk failed: $(cat "$WORK/rebuild.out")"
        grep -q 'the array is optimal' "$WORK/rebuild.out" || fail "round $r: rebuild: $(cat "$WORK/rebuild.out")"
        rm -f "${M[$failk]}"
        M[$failk]=$new
        what+=", rebuilt"
    fi
    [ "$(state_line)" = "optimal active active active active" ] || fail "round $r: not optimal: $(state_line)"
    ctl raid scrub 1 --wait > "$WORK/scrub.out" 2>&1 || fail "round $r: scrub failed: $(cat "$WORK/scrub.out")"
    grep -q 'parity consistent, 0 mismatches' "$WORK/scrub.out" ||
        fail "round $r ($what): scrub found mismatches after the resync: $(cat "$WORK/scrub.out")"
    log "round $r: writer on $range blocks, $what; resync: $resync; $(sed -n 's/^log-check: ok: //p' "$WORK/check.$r"); scrub clean"
done
device_stop d1
"$TANDEMCTL" raid check "${M[@]}" > "$WORK/offline.out" 2>&1 ||
    fail "offline parity check after a clean stop: $(cat "$WORK/offline.out")"
log "PASS: $ROUNDS kill -9 rounds ($degraded_rounds with a failed member, rebuilt each time;" \
    "$excused excused by the degraded write hole); every acknowledged write read back, scrubs clean"
