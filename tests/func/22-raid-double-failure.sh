#!/usr/bin/env bash
# Two failed members (3D+1P and 4D+1P): every chunk on a healthy member still reads back
# correctly; a read touching a failed member's chunk fails with MEDIUM ERROR (sense key 3,
# asc 0x11); every write fails with MEDIUM ERROR (asc 0x0c) and changes nothing; no read ever
# returns wrong data (tio verify reports SCSI errors only, never a mismatch); the device stays up
# (info, raid-status state=failed; scrub and rebuild are refused). The same after a restart that
# assembles with both members recorded as failed. The production module does not know raid-fault.
. "$(dirname "$0")/functions.sh"
requires python3
use_fault_injection

CB=32                                   # blocks per chunk (chunk_kib=16, 512-byte blocks)
ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
state_line() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print(r[0]["state"], " ".join(m["state"] for m in r if m["record"] == "member"))'
}
# must_read_ok / must_read_fail LBA BLOCKS WHY
must_read_ok() {
    "$TIO" verify "$(device_url d1 1)" --seed "$S0" --lba "$1" --blocks "$2" > "$WORK/tio.out" 2>&1 ||
        fail "$tag: $3: read of $1+$2 failed: $(cat "$WORK/tio.out")"
}
must_read_fail() {
    local rc=0
    "$TIO" verify "$(device_url d1 1)" --seed "$S0" --lba "$1" --blocks "$2" > "$WORK/tio.out" 2>&1 || rc=$?
    [ $rc -eq 1 ] || fail "$tag: $3: read of $1+$2 exited $rc, expected 1: $(cat "$WORK/tio.out")"
    grep -Eq 'sense key .*\(0x3\), asc/ascq 0x11/0x00' "$WORK/tio.out" ||
        fail "$tag: $3: read of $1+$2: no MEDIUM ERROR sense: $(cat "$WORK/tio.out")"
    if grep -Eq 'differ|expected' "$WORK/tio.out"; then
        fail "$tag: $3: read of $1+$2 returned WRONG DATA: $(cat "$WORK/tio.out")"
    fi
}
must_write_fail() {
    local rc=0
    "$TIO" write "$(device_url d1 1)" --seed 999 --lba "$1" --blocks "$2" > "$WORK/tio.out" 2>&1 || rc=$?
    [ $rc -eq 1 ] || fail "$tag: $3: write of $1+$2 exited $rc, expected 1: $(cat "$WORK/tio.out")"
    grep -Eq 'sense key .*\(0x3\), asc/ascq 0x0c/0x00' "$WORK/tio.out" ||
        fail "$tag: $3: write of $1+$2: no MEDIUM ERROR sense: $(cat "$WORK/tio.out")"
}
# check_all: walk 2N stripes chunk by chunk (every parity rotation twice), plus ranges that span
# healthy and failed chunks, and refused writes.
check_all() {
    local s d p m lba good=0 bad=0
    for ((s = 0; s < 2 * N; s++)); do
        p=$((N - 1 - s % N))
        for ((d = 0; d < n; d++)); do
            m=$(((p + 1 + d) % N)); lba=$((s * SB + d * CB))
            if [ $m -eq $A ] || [ $m -eq $B ]; then
                must_read_fail "$lba" "$CB" "stripe $s chunk $d on failed member $m"
                must_read_fail $((lba + 7)) 1 "one block of stripe $s chunk $d on failed member $m"
                bad=$((bad + 1))
            else
                must_read_ok "$lba" "$CB" "stripe $s chunk $d on healthy member $m"
                good=$((good + 1))
            fi
        done
    done
    must_read_fail 0 "$TOTAL" "the whole volume"
    must_read_fail $((3 * SB + 5)) $((2 * SB)) "two stripes, unaligned"
    # writes: a block on a healthy member's chunk, one on a failed member's, a whole stripe
    for ((s = 0; s < N; s++)); do
        p=$((N - 1 - s % N))
        for ((d = 0; d < n; d++)); do
            m=$(((p + 1 + d) % N)); lba=$((s * SB + d * CB))
            must_write_fail $((lba + 3)) 1 "stripe $s chunk $d (member $m)"
            if [ $m -eq $A ] || [ $m -eq $B ]; then
                must_read_fail "$lba" "$CB" "stripe $s chunk $d after a refused write"
            else
                must_read_ok "$lba" "$CB" "stripe $s chunk $d after a refused write"
            fi
        done
    done
    must_write_fail $((5 * SB)) "$SB" "a whole stripe"
    log "$tag: $good healthy chunks read back, $bad chunks on failed members fail with MEDIUM ERROR"
}

# The production module has no fault injection: raid-fault is an unknown command there.
MODULE=$BUILD/bs_tandem.so device_start d0
lu_add d0 9 cmddev "$WORK/d0.tables" "volid=100;create=1;device=d0"
rc=0; "$TANDEMCTL" -d "$(device_url d0 9)" call raid-fault volid=1 member=0 op=any mode=now \
    > "$WORK/prod.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q UNKNOWN_COMMAND "$WORK/prod.out" ||
    fail "the production module accepts raid-fault (rc $rc): $(cat "$WORK/prod.out")"
device_stop d0

device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
for cfg in "3 1 2" "4 0 3"; do
    read -r n A B <<<"$cfg"
    N=$((n + 1)); SB=$((n * CB)); TOTAL=$((n * 8192)); S0=$((500 + n))
    tag="${n}D+1P members $A+$B failed"
    rm -f "$WORK"/m*
    LIST=$(members "$WORK/m" "$N" 8M)
    lu_add d1 1 raid "$LIST" "volid=1;layout=${n}D+1P;chunk_kib=16;create=1"
    "$TIO" write "$(device_url d1 1)" --seed "$S0" > "$WORK/tio.out" 2>&1 || fail "$tag: write: $(cat "$WORK/tio.out")"
    ctl call raid-fault volid=1 member=$A op=any mode=now > /dev/null
    must_read_ok 0 "$TOTAL" "one member failed (degraded reads)"
    ctl call raid-fault volid=1 member=$B op=any mode=now > /dev/null
    # the first read of a chunk on B fails B: now nothing on A or B can be reconstructed
    s=0; p=$((N - 1)); d=$(((B - p - 1 + N) % N))
    [ $B -ne $p ] || fail "test bug: member $B holds the parity of stripe 0"
    mark=$(log_mark d1)
    must_read_fail $((d * CB)) "$CB" "the read that fails the second member"
    log_has_since d1 "$mark" "member $WORK/m$B \(index $B of volid 1\) FAILED on read: .*two or more members failed" ||
        fail "$tag: the second failure is not logged"
    want="failed"
    for ((i = 0; i < N; i++)); do { [ $i -eq $A ] || [ $i -eq $B ]; } && want+=" failed" || want+=" active"; done
    [ "$(state_line)" = "$want" ] || fail "$tag: raid status: expected '$want', got '$(state_line)'"
    check_all
    ctl info > /dev/null || fail "$tag: the device does not answer info"
    expect_fail "scrub of an array with two failed members" ctl raid scrub 1
    truncate -s 8M "$WORK/new"
    expect_fail "rebuild with two failed members" ctl raid rebuild 1 $A "$WORK/new"
    rm -f "$WORK/new"

    # restart: both are recorded as failed; the assembly says so and nothing changes
    mark=$(log_mark d1)
    device_stop d1
    device_start d1
    lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
    lu_add d1 1 raid "$LIST" "volid=1" || fail "$tag: no assembly with two recorded failed members"
    log_has_since d1 "$mark" "volid 1: 2 members failed: reads and writes of their data fail" ||
        fail "$tag: the assembly does not report two failed members"
    [ "$(state_line)" = "$want" ] || fail "$tag: after the restart: expected '$want', got '$(state_line)'"
    tag="$tag, after a restart"
    check_all
    kill -0 "${DEV_PID[d1]}" || fail "tgtd died"
    lu_del d1 1
done
log "PASS"
