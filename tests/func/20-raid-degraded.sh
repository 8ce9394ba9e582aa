#!/usr/bin/env bash
# Degraded mode, for every member position k of a 3D+1P and of a 4D+1P volume: a seeded pattern
# over the whole volume; member k fails (raid-fault mode=now); every block still reads back
# (degraded reads); raid-status says degraded with k failed and the log names the member; writes
# while degraded (one block on k's chunk, a stripe whose parity is on k, unaligned across a chunk
# boundary, unaligned over several stripes, whole stripes) read back; after a restart with only
# volid=1 member k stays failed (recorded; its intact file is not trusted) and everything still
# reads back; a recorded-failed member whose file is gone does not stop the assembly.
# A member file deleted while the device is down and NOT recorded as failed: the assembly is
# refused with a message pointing at degraded=1, and accepted with degraded=1 (data intact; from
# then on the member is recorded as failed, so a later plain assembly works).
. "$(dirname "$0")/functions.sh"
requires python3
use_fault_injection

CB=32                                   # blocks per chunk (chunk_kib=16, 512-byte blocks)
MEMBER_SIZE=8M                          # 4 MiB metadata + 4 MiB data: 256 stripes

ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
# state_line: "<array state> <member 0 state> <member 1 state> ..."
state_line() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print(r[0]["state"], " ".join(m["state"] for m in r if m["record"] == "member"))'
}
stat_of() {
    ctl --json raid status 1 | python3 -c 'import json, sys
r = json.load(sys.stdin)["records"]
print([m for m in r if m["record"] == "stats"][0][sys.argv[1]])' "$1"
}
# expect_states "degraded active failed ...": raid-status agrees.
expect_states() {
    local got
    got=$(state_line) || fail "raid status failed"
    [ "$got" = "$1" ] || fail "raid status: expected '$1', got '$got'"
}
tio_ok() {
    local what=$1; shift
    "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"
}
# check_volume SEED0 SEED1 "LBA:N ...": SEED1's pattern in the listed (disjoint) ranges, SEED0's
# everywhere else, up to TOTAL blocks.
check_volume() {
    local s0=$1 s1=$2 pos=0 seg lba n url
    url=$(device_url d1 1)
    for seg in $(tr ' ' '\n' <<<"$3" | sort -t: -k1,1n); do
        lba=${seg%:*}; n=${seg#*:}
        [ "$lba" -ge "$pos" ] || fail "check_volume: overlapping ranges ($3)"
        [ "$lba" -eq "$pos" ] || tio_ok "$4: old data" verify "$url" --seed "$s0" --lba "$pos" --blocks $((lba - pos))
        tio_ok "$4: new data at $lba+$n" verify "$url" --seed "$s1" --lba "$lba" --blocks "$n"
        pos=$((lba + n))
    done
    [ "$pos" -eq "$TOTAL" ] || tio_ok "$4: old data" verify "$url" --seed "$s0" --lba "$pos" --blocks $((TOTAL - pos))
}
# first stripe >= FROM whose parity is (WANT=p) / is not (WANT=d) on member K of N.
stripe_with() {
    local from=$1 want=$2 k=$3 nm=$4 s
    for ((s = from; ; s++)); do
        local p=$(( nm - 1 - s % nm ))
        if [ "$want" = p ] && [ "$p" -eq "$k" ]; then echo "$s"; return; fi
        if [ "$want" = d ] && [ "$p" -ne "$k" ]; then echo "$s"; return; fi
    done
}
# data index of member K's chunk in stripe S (its parity is elsewhere)
data_index() { local nm=$3 p=$(( $3 - 1 - $2 % $3 )); echo $(( ($1 - p - 1 + nm) % nm )); }
restart() {   # restart d1: command device and the raid LU with only volid=1 (plus $1's options)
    device_stop d1
    device_start d1
    lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
    lu_add d1 1 raid "$LIST" "volid=1${1:+;$1}"
}

device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"

for n in 3 4; do
    N=$((n + 1)); SB=$((n * CB)); TOTAL=$((n * 8192))
    for ((k = 0; k < N; k++)); do
        tag="${n}D+1P member $k"
        S0=$((1000 + 10 * n + k)); S1=$((2000 + 10 * n + k))
        rm -f "$WORK"/m*
        LIST=$(members "$WORK/m" "$N" "$MEMBER_SIZE")
        lu_add d1 1 raid "$LIST" "volid=1;layout=${n}D+1P;chunk_kib=16;create=1"
        url=$(device_url d1 1)
        tio_ok "$tag: pattern" write "$url" --seed "$S0"
        ctl call raid-fault volid=1 member=$k op=any mode=now > /dev/null || fail "$tag: raid-fault refused"
        mark=$(log_mark d1)
        # the first read of member k fails it; every block still reads back
        check_volume "$S0" "$S1" "" "$tag: degraded read"
        want="degraded"
        for ((i = 0; i < N; i++)); do [ $i -eq $k ] && want+=" failed" || want+=" active"; done
        expect_states "$want"
        [ "$(stat_of degraded_reads)" -gt 0 ] || fail "$tag: no degraded reads counted"
        log_has_since d1 "$mark" "member $WORK/m$k \(index $k of volid 1\) FAILED on read: .*the array is degraded" ||
            fail "$tag: the log does not name the failed member"

        # writes while degraded, in disjoint stripe bands
        segs=()
        s=$(stripe_with 4 d $k $N); d=$(data_index $k $s $N)
        segs+=("$((s * SB + d * CB + 5)):1")                      # one block in k's chunk
        s=$(stripe_with 12 p $k $N)
        segs+=("$((s * SB + CB + 8)):4")                          # parity of the stripe is on k
        s=$(stripe_with 20 d $k $N); d=$(data_index $k $s $N)
        segs+=("$((s * SB + d * CB + CB - 3)):7")                 # out of k's chunk into the next
        segs+=("$((30 * SB + 17)):$((3 * SB + 40))")              # unaligned, five stripes
        segs+=("$((40 * SB)):$((2 * SB))")                        # two whole stripes
        for seg in "${segs[@]}"; do
            tio_ok "$tag: degraded write $seg" write "$url" --seed "$S1" --lba "${seg%:*}" \
                --blocks "${seg#*:}" --xfer-blocks "${seg#*:}"
        done
        [ "$(stat_of degraded_writes)" -gt 0 ] || fail "$tag: no degraded writes counted"
        check_volume "$S0" "$S1" "${segs[*]}" "$tag: after degraded writes"

        # restart: k is recorded as failed, so the plain assembly is degraded; its file is intact
        # but stale, and must not be trusted
        mark=$(log_mark d1)
        restart
        log_has_since d1 "$mark" "member $WORK/m$k \(index $k\) is recorded as failed .*not trusted" ||
            fail "$tag: after the restart the log does not say member $k stays failed"
        expect_states "$want"
        check_volume "$S0" "$S1" "${segs[*]}" "$tag: after the restart"

        if [ $k -eq $((N - 1)) ]; then
            # the recorded-failed member's file disappears: still assembles, without degraded=1
            device_stop d1
            rm -f "$WORK/m$k"
            mark=$(log_mark d1)
            restart
            log_has_since d1 "$mark" "member $WORK/m$k \(index $k\) stays failed" ||
                fail "$tag: the log does not say the missing recorded-failed member stays failed"
            expect_states "$want"
            check_volume "$S0" "$S1" "${segs[*]}" "$tag: failed member's file gone"
        fi
        lu_del d1 1
        log "$tag: degraded reads, ${#segs[@]} degraded write shapes and a restart: data intact"
    done
done

# ---- a member missing at assembly that the array does not record as failed ----
n=3; N=4; TOTAL=$((n * 8192)); S0=3001; S1=3002
rm -f "$WORK"/m*
LIST=$(members "$WORK/m" "$N" "$MEMBER_SIZE")
lu_add d1 1 raid "$LIST" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
tio_ok "missing member: pattern" write "$(device_url d1 1)" --seed "$S0"
device_stop d1                          # clean shutdown: nothing recorded as failed
rm -f "$WORK/m2"
mark=$(log_mark d1)
device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
if out=$(lu_add d1 1 raid "$LIST" "volid=1" 2>&1); then
    fail "a newly missing member did not stop the assembly"
fi
log_has_since d1 "$mark" "$WORK/m2.*degraded=1" ||
    fail "the refusal does not name the member and degraded=1 (tgtadm: $out)"
mark=$(log_mark d1)
lu_add d1 1 raid "$LIST" "volid=1;degraded=1" || fail "degraded=1 did not assemble without m2"
log_has_since d1 "$mark" "member $WORK/m2 \(index 2\) is missing: .*assembling DEGRADED" ||
    fail "degraded assembly not logged"
expect_states "degraded active active failed active"
check_volume "$S0" "$S1" "" "missing member, degraded=1"
tio_ok "missing member: degraded write" write "$(device_url d1 1)" --seed "$S1" --lba 1000 --blocks 500
# now recorded as failed: a plain assembly works
restart
expect_states "degraded active active failed active"
check_volume "$S0" "$S1" "1000:500" "missing member, recorded, plain assembly"
log "missing member: refused without degraded=1, assembled with it, recorded from then on"
log "PASS"
