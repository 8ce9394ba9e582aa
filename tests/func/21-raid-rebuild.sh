#!/usr/bin/env bash
# Rebuild. (1) Under load: member 1 fails while a log-writer (qd 16) runs; it is rebuilt onto a
# new file while the writer keeps going (writes are acknowledged during the rebuild); then every
# acknowledged write reads back, a seeded pattern and the untouched zeros too, the scrub finds 0
# mismatches, and with ANOTHER member failed everything still reads back (the rebuilt member's
# data is right). (2) Refusals: rebuild of an active member (INVALID), onto a member of another
# array (EXISTS), onto a too-small file (INVALID), onto a missing path (NOT_FOUND), of a member
# that does not exist (INVALID), a second rebuild while one runs (INVALID). (3) Resume: tgtd is
# killed (kill -9) between 10 % and 90 % of a rebuild; restarted with the new member's path at
# its position, the log says the rebuild resumed (from a checkpoint > 0), it completes, data
# written while degraded reads back, scrub clean, and again with another member failed.
# (4) Restarted after such a kill with the OLD (failed) path at that position, the old file must
# not be trusted (docs/raid-resilience.md: "assembling with the old failed path there keeps K
# failed"); the rebuild then completes with the new path. (5) tgtd stopped the documented way
# while a rebuild and while a scrub runs: the superblocks say clean, the rebuild resumes.
# SEED replays the writer.
. "$(dirname "$0")/functions.sh"
requires python3
use_fault_injection
SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"
# a failed run keeps $WORK: keep its logs, not gigabytes of member files
on_exit 'rm -f "$WORK"/[abc][0-9] "$WORK"/[abc]new* "$WORK"/[bc]other "$WORK"/new1 "$WORK"/f[0-9] "$WORK"/fresh "$WORK"/small'

ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
# ctl_refused STATUS REGEX ARGS...: tandemctl exits 1 with "STATUS: ...REGEX..." on stderr.
ctl_refused() {
    local want=$1 re=$2 rc=0
    shift 2
    ctl "$@" > "$WORK/ctl.out" 2>&1 || rc=$?
    [ $rc -eq 1 ] && grep -Eq -- "$want: .*$re" "$WORK/ctl.out" ||
        fail "tandemctl $*: expected $want /$re/ and exit 1, got exit $rc: $(cat "$WORK/ctl.out")"
}
state_line() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print(r[0]["state"], " ".join(m["state"] for m in r if m["record"] == "member"))'
}
member_path() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print([m for m in r if m["record"] == "member"][int(sys.argv[1])]["path"])' "$1"
}
expect_states() {
    local got
    got=$(state_line) || fail "raid status failed"
    [ "$got" = "$1" ] || fail "$2: raid status: expected '$1', got '$got'"
}
member_failed() { [ "$(state_line | cut -d' ' -f$(($1 + 2)))" = failed ]; }
op_field() { ctl op status "$1" | awk -v f="$2" '$1 == f { print $2 }'; }
pct_above() { local p; p=$(op_field "$1" percent); [ -n "$p" ] && [ "${p%.*}" -gt "$2" ]; }
lines() { wc -l < "$WORK/acked"; }
lines_at_least() { [ -f "$WORK/acked" ] && [ "$(lines)" -ge "$1" ]; }
tio_ok() {
    local what=$1; shift
    "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"
}
scrub_clean() {
    ctl raid scrub 1 --wait > "$WORK/scrub.out" 2>&1 || fail "$1: scrub failed: $(cat "$WORK/scrub.out")"
    grep -q 'parity consistent, 0 mismatches' "$WORK/scrub.out" ||
        fail "$1: scrub found mismatches: $(cat "$WORK/scrub.out")"
}
start_d1() {   # d1 with its command device (LUN 9); its tables are created the first time
    local create=";create=1;device=d1"
    [ -f "$WORK/d1.tables" ] && create=
    device_start d1
    lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100$create"
}
# resumed_op: the operation id of the rebuild the last assembly (after $mark) resumed, or nothing.
resumed_op() {
    tail -n +$((mark + 1)) "$(device_log d1)" |
        sed -n 's/.*rebuild of member [0-9]* resumed at stripe [0-9]* as operation \([0-9]*\).*/\1/p' | tail -1
}

# ---------------- (1) rebuild while a log-writer runs ----------------
# 3D+1P, 4 KiB chunks (many stripes: the rebuild takes a while), 252 MiB of data per member.
LIST=$(members "$WORK/a" 4 256M)
start_d1
lu_add d1 1 raid "$LIST" "volid=1;layout=3D+1P;chunk_kib=4;create=1"
url=$(device_url d1 1)
TOTAL=$((3 * 252 * 2048)); H=262144; P=65536  # writer in [0,H), pattern in [H,H+P), zeros above
tio_ok "pattern" write "$url" --seed $((SEED + 1)) --lba $H --blocks $P
"$TIO" log-writer "$url" --out "$WORK/acked" --blocks $H --seed "$SEED" --qd 16 --max-blocks 64 \
    > "$WORK/writer.log" 2>&1 &
wpid=$!
on_exit "kill $wpid 2>/dev/null"
wait_for 30 lines_at_least 300 || fail "writer made no progress: $(tail -3 "$WORK/writer.log")"
ctl call raid-fault volid=1 member=1 op=any mode=now > /dev/null
wait_for 30 member_failed 1 || fail "member 1 did not fail under the writer: $(state_line)"
n=$(lines)
wait_for 30 lines_at_least $((n + 300)) || fail "no writes acknowledged while degraded: $(tail -3 "$WORK/writer.log")"
truncate -s 256M "$WORK/new1"
before=$(lines)
ctl raid rebuild 1 1 "$WORK/new1" --wait > "$WORK/rebuild.out" 2>&1 ||
    fail "rebuild under load failed: $(cat "$WORK/rebuild.out")"
after=$(lines)
grep -q 'stripes rebuilt; the array is optimal' "$WORK/rebuild.out" ||
    fail "rebuild result: $(cat "$WORK/rebuild.out")"
kill -0 $wpid 2>/dev/null || fail "the writer stopped during the rebuild: $(tail -3 "$WORK/writer.log")"
[ "$after" -gt "$before" ] || fail "no write was acknowledged while the rebuild ran"
kill -INT $wpid
rc=0; wait $wpid || rc=$?
[ $rc -eq 0 ] || fail "writer exited $rc: $(tail -3 "$WORK/writer.log")"
log "rebuilt member 1 under load: $((after - before)) writes acknowledged during the rebuild, $(lines) in all"
expect_states "optimal active active active active" "after the rebuild"
[ "$(member_path 1)" = "$WORK/new1" ] || fail "member 1 is $(member_path 1), not the new file"
check_all_a() {
    "$TIO" log-check "$url" --log "$WORK/acked" > "$WORK/check.out" 2>&1 ||
        fail "$1: acknowledged writes lost: $(tail -5 "$WORK/check.out")"
    tio_ok "$1: pattern" verify "$url" --seed $((SEED + 1)) --lba $H --blocks $P
    tio_ok "$1: zeros" verify "$url" --zero --lba $((H + P)) --blocks $((TOTAL - H - P))
}
check_all_a "after the rebuild"
scrub_clean "after the rebuild under load"
ctl call raid-fault volid=1 member=3 op=any mode=now > /dev/null
check_all_a "rebuilt member 1 in use, member 3 failed"
expect_states "degraded active active active failed" "member 3 failed after the rebuild"
log "rebuilt data right: everything reads back with member 3 failed"

# ---------------- (2) refusals (member 3 failed, member 1 active) ----------------
truncate -s 256M "$WORK/fresh" "$WORK/f0" "$WORK/f1" "$WORK/f2"
truncate -s 64M "$WORK/small"
"$TANDEMCTL" raid create --layout 2D+1P --volid 7 "$WORK/f0" "$WORK/f1" "$WORK/f2" > /dev/null ||
    fail "offline raid create failed"
ctl_refused INVALID "member 1 .*is active" raid rebuild 1 1 "$WORK/fresh"
ctl_refused EXISTS "belongs to array .*volid 7" raid rebuild 1 3 "$WORK/f0"
ctl_refused INVALID "$WORK/small is [0-9]+ bytes; a member of this array needs" raid rebuild 1 3 "$WORK/small"
ctl_refused NOT_FOUND "" raid rebuild 1 3 "$WORK/nonexistent"
ctl_refused INVALID "" raid rebuild 1 9 "$WORK/fresh"
log_has d1 "raid-rebuild -> EXISTS: .*belongs to array" || fail "the EXISTS refusal is not logged"
expect_states "degraded active active active failed" "after the refusals"
lu_del d1 1
device_stop d1
rm -f "$WORK"/a? "$WORK"/new1 "$WORK"/f? "$WORK/fresh" "$WORK/small"
log "refusals: active member, foreign array, too small, missing path, bad index"

# ---------------- (3) resume after kill -9, new path at position 2 ----------------
# 3D+1P of 1 GiB members (16 KiB chunks: ~64k stripes, a few seconds to rebuild)
BIG=1G; TOTAL=$((3 * 1020 * 2048))
# interrupted_rebuild PREFIX: array of PREFIX0..3, pattern S0 on [0,131072), member 2 fails,
# S1 written degraded on [0,65536), rebuild onto PREFIXnew2 started and tgtd killed between 10
# and 90 %; prints nothing, sets OPID.
interrupted_rebuild() {
    local p=$1 out pct
    LIST=$(members "$WORK/$p" 4 $BIG)
    start_d1
    lu_add d1 1 raid "$LIST" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
    url=$(device_url d1 1)
    tio_ok "$p: pattern" write "$url" --seed 11 --lba 0 --blocks 131072
    ctl call raid-fault volid=1 member=2 op=any mode=now > /dev/null
    tio_ok "$p: degraded read" verify "$url" --seed 11 --lba 0 --blocks 131072
    expect_states "degraded active active failed active" "$p: member 2 failed"
    tio_ok "$p: degraded write" write "$url" --seed 12 --lba 0 --blocks 65536
    truncate -s $BIG "$WORK/${p}new2" "$WORK/${p}other"
    out=$(ctl raid rebuild 1 2 "$WORK/${p}new2") || fail "$p: rebuild refused: $out"
    OPID=$(sed -n 's/.* as operation \([0-9]*\).*/\1/p' <<<"$out")
    [ -n "$OPID" ] || fail "$p: no operation id in: $out"
    ctl_refused INVALID "member 2 is already being rebuilt" raid rebuild 1 2 "$WORK/${p}other"
    wait_for 60 pct_above "$OPID" 10 || fail "$p: the rebuild did not pass 10 %"
    pct=$(op_field "$OPID" percent)
    [ "${pct%.*}" -lt 90 ] || fail "$p: the rebuild is too fast to interrupt ($pct %): make the members bigger"
    device_kill d1
    log "$p: tgtd killed at $pct % of the rebuild"
}
check_all_b() {
    tio_ok "$1: degraded-written data" verify "$url" --seed 12 --lba 0 --blocks 65536
    tio_ok "$1: pattern" verify "$url" --seed 11 --lba 65536 --blocks 65536
    tio_ok "$1: zeros" verify "$url" --zero --lba 131072 --blocks 65536
    tio_ok "$1: zeros at the end" verify "$url" --zero --lba $((TOTAL - 65536)) --blocks 65536
}
# finish_rebuild TAG OPID: the rebuild operation OPID completes; then data, scrub, and data with
# member 0 failed.
finish_rebuild() {
    local tag=$1 id=$2
    [ -n "$id" ] || fail "$tag: the rebuild did not resume"
    ctl op status "$id" --wait > "$WORK/op.out" 2>&1 || fail "$tag: op status --wait: $(cat "$WORK/op.out")"
    grep -q 'stripes rebuilt; the array is optimal' "$WORK/op.out" ||
        fail "$tag: resumed rebuild result: $(cat "$WORK/op.out")"
    expect_states "optimal active active active active" "$tag: after the resumed rebuild"
    check_all_b "$tag"
    scrub_clean "$tag"
    ctl call raid-fault volid=1 member=0 op=any mode=now > /dev/null
    check_all_b "$tag, member 0 failed"
    expect_states "degraded failed active active active" "$tag: member 0 failed"
}

interrupted_rebuild b
NEWLIST="$WORK/b0;$WORK/b1;$WORK/bnew2;$WORK/b3"
mark=$(log_mark d1)
start_d1
lu_add d1 1 raid "$NEWLIST" "volid=1" || fail "no assembly after the kill during the rebuild"
url=$(device_url d1 1)
log_has_since d1 "$mark" "unclean shutdown: resynchronising the parity" || fail "no resync after kill -9"
log_has_since d1 "$mark" "member $WORK/bnew2 \(index 2\): rebuild resumes at stripe" ||
    fail "the log does not say the rebuild resumes"
read -r at of < <(tail -n +$((mark + 1)) "$(device_log d1)" |
    sed -n 's/.*bnew2 (index 2): rebuild resumes at stripe \([0-9]*\) of \([0-9]*\).*/\1 \2/p')
[ "${at:-0}" -gt 0 ] && [ "$at" -lt "$of" ] || fail "resumed at stripe '$at' of '$of': not from a checkpoint"
finish_rebuild "resume" "$(resumed_op)"
log "resume: the rebuild continued at stripe $at of $of after kill -9 and completed"
lu_del d1 1
device_stop d1
rm -f "$WORK"/b*

# ---------------- (4) the old, failed path listed after an interrupted rebuild ----------------
interrupted_rebuild c
mark=$(log_mark d1)
start_d1
if lu_add d1 1 raid "$LIST" "volid=1" 2> "$WORK/tgtadm.err"; then
    # the old file has this array's uuid and index 2, but missed the degraded writes
    url=$(device_url d1 1)
    if log_has_since d1 "$mark" "member $WORK/c2 \(index 2\): rebuild resumes"; then
        rc=0; "$TIO" verify "$url" --seed 12 --lba 0 --blocks 65536 > "$WORK/tio.out" 2>&1 || rc=$?
        fail "BUG: assembled with the OLD failed member $WORK/c2 at position 2, the interrupted" \
             "rebuild resumes onto it: its stale chunks below the checkpoint are trusted." \
             "Log: $(tail -n +$((mark + 1)) "$(device_log d1)" | grep -E 'tandem: .*(c2[: ]|resync)' | tr '\n' ' ')" \
             "Reading the data written while degraded: tio exit $rc: $(cat "$WORK/tio.out")"
    fi
    expect_states "degraded active active failed active" "old path listed"
    check_all_b "old path listed"
    device_stop d1
    # the new path again: the rebuild resumes, or (dropped by the previous assembly) is started again
    mark=$(log_mark d1)
    start_d1
    lu_add d1 1 raid "$WORK/c0;$WORK/c1;$WORK/cnew2;$WORK/c3" "volid=1"
    url=$(device_url d1 1)
    id=$(resumed_op)
    if [ -z "$id" ]; then
        # the previous assembly dropped the rebuild (cnew2 is now just a failed member): rebuild
        # again, onto a fresh file
        log_has_since d1 "$mark" "member $WORK/cnew2 \(index 2\) is recorded as failed" ||
            fail "the dropped rebuild's replacement is not reported as failed"
        truncate -s $BIG "$WORK/cnew2b"
        out=$(ctl raid rebuild 1 2 "$WORK/cnew2b") || fail "the rebuild cannot be restarted: $out"
        id=$(sed -n 's/.* as operation \([0-9]*\).*/\1/p' <<<"$out")
    fi
    CUR="$WORK/c0;$WORK/c1;$WORK/cnew2;$WORK/c3"
    [ ! -f "$WORK/cnew2b" ] || CUR="$WORK/c0;$WORK/c1;$WORK/cnew2b;$WORK/c3"
    finish_rebuild "old path, then new path" "$id"
else
    log "old failed path after an interrupted rebuild: assembly refused ($(cat "$WORK/tgtadm.err"))"
    mark=$(log_mark d1)
    lu_add d1 1 raid "$WORK/c0;$WORK/c1;$WORK/cnew2;$WORK/c3" "volid=1"
    url=$(device_url d1 1)
    CUR="$WORK/c0;$WORK/c1;$WORK/cnew2;$WORK/c3"
    finish_rebuild "old path refused, new path" "$(resumed_op)"
fi
log "old failed path after an interrupted rebuild: not trusted"

# ---------------- (5) stopped the documented way while a rebuild / a scrub runs ----------------
# A clean stop is a clean shutdown (docs/raid-resilience.md: "clean close: flush, clear all bits,
# mark clean"), also with a long operation running; the rebuild resumes at the next assembly.
# (finish_rebuild left member 0 failed.)
all_clean() {   # every member's superblock says clean
    "$TANDEMCTL" raid examine --json $(tr ';' ' ' <<<"$CUR") > "$WORK/examine.out" 2>&1 ||
        fail "raid examine: $(cat "$WORK/examine.out")"
    ! grep -q '"state":"dirty"' "$WORK/examine.out"
}
truncate -s $BIG "$WORK/cnew0"
out=$(ctl raid rebuild 1 0 "$WORK/cnew0") || fail "rebuild of member 0 refused: $out"
OPID=$(sed -n 's/.* as operation \([0-9]*\).*/\1/p' <<<"$out")
wait_for 60 pct_above "$OPID" 10 || fail "the rebuild of member 0 did not pass 10 %"
pct=$(op_field "$OPID" percent)
device_stop d1
CUR="$WORK/cnew0;${CUR#*;}"
all_clean || fail "BUG: stopped the documented way (tgtadm) at $pct % of a rebuild, the superblocks" \
    "say dirty (not shut down cleanly): the next assembly resyncs and may warn of a write hole"
mark=$(log_mark d1)
start_d1
lu_add d1 1 raid "$CUR" "volid=1" || fail "no assembly after a clean stop during a rebuild"
url=$(device_url d1 1)
if log_has_since d1 "$mark" "was not shut down cleanly"; then
    fail "BUG: after a clean stop during a rebuild the assembly says 'was not shut down cleanly'"
fi
id=$(resumed_op)
[ -n "$id" ] || fail "the rebuild stopped by a clean shutdown did not resume"
ctl op status "$id" --wait > "$WORK/op.out" 2>&1 || fail "op status --wait: $(cat "$WORK/op.out")"
expect_states "optimal active active active active" "rebuild resumed after a clean stop"
check_all_b "rebuild resumed after a clean stop"
out=$(ctl raid scrub 1) || fail "scrub did not start: $out"
OPID=$(sed -n 's/.* as operation \([0-9]*\).*/\1/p' <<<"$out")
st=$(op_field "$OPID" state)
device_stop d1
[ "$st" = running ] || log "note: the scrub had already finished ($st) when tgtd was stopped"
all_clean || fail "BUG: stopped the documented way while a scrub ran, the superblocks say dirty"
log "clean stops during a rebuild and during a scrub: clean shutdowns; the rebuild resumed"
log "PASS"
