#!/usr/bin/env bash
# Bad input when creating or assembling raid LUs: tgtadm fails, tgtd's log says which member or
# option and why, and nothing is formatted or changed by accident.
. "$(dirname "$0")/functions.sh"

device_start d1
A=$(members "$WORK/a" 4 32M)            # array A: 3D+1P, volid 1
B=$(members "$WORK/b" 4 32M)            # array B: 3D+1P, volid 2
lu_add d1 1 raid "$A" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
lu_add d1 2 raid "$B" "volid=2;layout=3D+1P;create=1"
"$TIO" write "$(device_url d1 1)" --lba 100 --blocks 64 --seed 7
lu_del d1 1
lu_del d1 2
sums() { sha256sum "$WORK"/a? "$WORK"/b? "$WORK"/blank? "$WORK"/small? 2>/dev/null; }
members "$WORK/blank" 4 32M >/dev/null
BLANK=$(member_list "$WORK/blank" 4)
truncate -s 32M "$WORK/small0" "$WORK/small1" "$WORK/small2"; truncate -s 16M "$WORK/small3"
SMALL=$(member_list "$WORK/small" 4)
before=$(sums)

a() { member_list "$WORK/a" 4 | cut -d';' -f"$1"; }
b() { member_list "$WORK/b" 4 | cut -d';' -f"$1"; }
n=0
# case BSOPTS BACKING EXPECTED-LOG-REGEX
refused() {
    local backing=$1 opts=$2 re=$3 out
    shift 3
    n=$((n + 1))
    if out=$(lu_add d1 $((10 + n)) raid "$backing" "$opts" "$@" 2>&1); then
        fail "case $n was accepted: backing '$backing' bsopts '$opts'"
    fi
    grep -q "invalid request\|error" <<<"$out" || fail "case $n: tgtadm said '$out'"
    log_has d1 "$re" || fail "case $n: log lacks /$re/ (backing '$backing' bsopts '$opts')"
    log "refused as expected: $re"
}

refused "$BLANK" "volid=5;layout=3D+1P" "blank0: not a tandem RAID member"
refused "$(a 1-3)" "volid=1;layout=3D+1P" "layout 3D\+1P needs 4 members, 3 given"
refused "$A" "volid=1;layout=4D+1P" "layout 4D\+1P needs 5 members, 4 given"
refused "$(a 1-3);$(b 4)" "volid=1" "member $WORK/b3 belongs to array"
refused "$(a 1);$(a 3);$(a 2);$(a 4)" "volid=1" "member $WORK/a2 is member 2 of the array but listed at position 1"
refused "$(a 1);$(a 1);$(a 3);$(a 4)" "volid=1" "member $WORK/a0 is listed twice"
refused "$(a 1-3);$WORK/nonexistent" "volid=1" "member $WORK/nonexistent: No such file or directory"
refused "$(a 1-3);$WORK" "volid=1" "member $WORK: not a regular file or block device"
refused "$A" "volid=1;color=blue" "unknown option 'color'"
refused "$A" "volid=abc" "volid='abc': expected an integer"
refused "$A" "volid=1;layout=3D+2P" "layout='3D\+2P': expected nD\+1P"
refused "$A" "volid=1;chunk_kib=48" "chunk_kib=48: must be a power of two"
refused "$A" "volid=1;chunk_kib=2048" "chunk_kib='2048': expected an integer from 4 to 1024"
refused "$A" "volid=1;chunk_kib=64" "chunk_kib=64 given, but the array's chunk is 16 KiB"
refused "$A" "volid=9" "volid=9 given, but these members are volid 1"
refused "$A" "volid=1;create=maybe" "create='maybe': expected 0, 1 or force"
refused "$A" "layout=3D+1P;create=1" "create needs volid= and layout="
refused "$A" "volid=3;layout=3D+1P;create=1" "member $WORK/a0 already belongs to array"
refused "$SMALL" "volid=3;layout=3D+1P;create=1" "members differ in size: $WORK/small3"
refused "$A" "volid=1" "block size 4096 given, but the array was created with 512" --blocksize 4096
truncate -s 4M "$WORK/tiny0" "$WORK/tiny1" "$WORK/tiny2"
refused "$(member_list "$WORK/tiny" 3)" "volid=4;layout=2D+1P;create=1" "tiny0 \\(4194304 bytes\\) is too small"

# None of the refusals above wrote a byte to any member.
after=$(sums)
[ "$before" = "$after" ] || fail "a refused request changed member files:
$(diff <(echo "$before") <(echo "$after"))"

# In use: array A attached, then its members again, and another array under the same volid.
lu_add d1 1 raid "$A" "volid=1"
refused "$A" "volid=1" "member $WORK/a0: in use by another volume"
lu_add d1 2 raid "$B" "volid=2;layout=3D+1P"
members "$WORK/c" 3 16M >/dev/null
refused "$(member_list "$WORK/c" 3)" "volid=2;layout=2D+1P;create=1" "volid 2 is already in use"
lu_del d1 1
lu_del d1 2

# Damage: both superblock copies of one member corrupted -> refused as damaged, never guessed.
cp "$WORK/b1" "$WORK/b1.orig"
printf 'garbage' | dd of="$WORK/b1" bs=1 seek=200 conv=notrunc status=none
printf 'garbage' | dd of="$WORK/b1" bs=1 seek=$((4096 + 200)) conv=notrunc status=none
refused "$B" "volid=2" "member $WORK/b1: superblock 0: superblock damaged: CRC32C"
# One copy damaged: the other serves.
cp "$WORK/b1.orig" "$WORK/b1"
printf 'garbage' | dd of="$WORK/b1" bs=1 seek=200 conv=notrunc status=none
lu_add d1 2 raid "$B" "volid=2"
lu_del d1 2

# After all that, array A is intact.
lu_add d1 1 raid "$A" "volid=1"
"$TIO" verify "$(device_url d1 1)" --lba 100 --blocks 64 --seed 7 || fail "array A data changed"
log "PASS: $n refusals, each with its reason in the log; nothing formatted by accident"
