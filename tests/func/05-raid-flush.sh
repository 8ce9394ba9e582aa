#!/usr/bin/env bash
# SYNCHRONIZE CACHE and FUA reach the members: with strace on the device's tgtd we count the
# fdatasync calls on every member file. A plain write (write cache on, the default) syncs
# nothing; SYNCHRONIZE CACHE and a FUA write each sync all members; with the write cache turned
# off (WCE=0 in the caching mode page, set with tgtadm's mode_page parameter) every write syncs.
. "$(dirname "$0")/functions.sh"
requires strace

list=$(members "$WORK/m" 4 24M)
device_start d1
lu_add d1 1 raid "$list" "volid=1;layout=3D+1P;create=1"
url=$(device_url d1 1)
"$TIO" write "$url" --lba 0 --blocks 8 --seed 1      # log in once before tracing

# all_traced PID TRACER: every thread of PID is traced by TRACER.
all_traced() {
    local st
    for st in /proc/$1/task/*/status; do
        grep -q "^TracerPid:[[:space:]]*$2\$" "$st" || return 1
    done
}
# count_syncs CMD...: run CMD with strace on tgtd; print how many members saw fdatasync.
count_syncs() {
    local out=$WORK/strace.$RANDOM
    strace -f -qq -y -e trace=fdatasync -o "$out" -p "${DEV_PID[d1]}" &
    local spid=$!
    wait_for 10 all_traced "${DEV_PID[d1]}" $spid || fail "strace did not attach"
    "$@" >/dev/null
    kill -INT $spid; wait $spid 2>/dev/null || true
    { grep -o "fdatasync([0-9]*<$WORK/m[0-9]>" "$out" || true; } | sed 's/.*<//' | sort -u | wc -l
}
n=$(count_syncs "$TIO" write "$url" --lba 100 --blocks 8 --seed 2)
[ "$n" -eq 0 ] || fail "a write with the write cache on synced $n members"
n=$(count_syncs "$TIO" sync "$url")
[ "$n" -eq 4 ] || fail "SYNCHRONIZE CACHE reached $n of 4 members"
n=$(count_syncs "$TIO" write "$url" --lba 200 --blocks 8 --seed 3 --fua)
[ "$n" -eq 4 ] || fail "a FUA write reached $n of 4 members"
"$TIO" verify "$url" --lba 200 --blocks 8 --seed 3
# Caching page 8 as tgt builds it, but byte 2 = 0x10 instead of 0x14: WCE off.
tgtadm_dev d1 --op update --mode logicalunit --tid 1 --lun 1 \
    --params mode_page=8:0:18:0x10:0:0xff:0xff:0:0:0xff:0xff:0xff:0xff:0x80:0x14:0:0:0:0:0:0
n=$(count_syncs "$TIO" write "$url" --lba 300 --blocks 8 --seed 4)
[ "$n" -ge 2 ] || fail "with WCE=0 a write synced $n members"
log "PASS: SYNCHRONIZE CACHE and FUA flush every member; plain writes do not"
