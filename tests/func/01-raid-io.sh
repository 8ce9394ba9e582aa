#!/usr/bin/env bash
# RAID volumes of several geometries serve I/O through iSCSI: patterns written at aligned and
# unaligned places (sub-chunk, chunk- and stripe-crossing, full stripes) read back; the Block
# Limits VPD advertises the full stripe; after a clean restart the members reassemble with the
# same volid and the data is still there; tandemctl examine shows clean superblocks.
. "$(dirname "$0")/functions.sh"

# name layout chunk_kib block members member_size
geoms=(
    "a 3D+1P 64 512 4 48M"
    "b 4D+1P 4 512 5 40M"
    "c 2D+1P 1024 4096 3 64M"
    "d 15D+1P 16 4096 16 12M"
)
device_start d1
lun=1
for g in "${geoms[@]}"; do
    read -r name layout chunk block nm size <<<"$g"
    list=$(members "$WORK/$name-m" "$nm" "$size")
    lu_add d1 $lun raid "$list" "volid=$lun;layout=$layout;chunk_kib=$chunk;create=1" --blocksize "$block"
    url=$(device_url d1 $lun)
    info=$("$TIO" info "$url")
    log "LUN $lun $layout chunk ${chunk}K block $block: $info"
    n=${layout%%D*}
    stripe_blocks=$((n * chunk * 1024 / block))
    grep -q "block_bytes=$block " <<<"$info" || fail "block size: $info"
    grep -q "opt_xfer_blocks=$stripe_blocks " <<<"$info" || fail "optimal transfer != stripe ($stripe_blocks): $info"
    blocks=$(sed -n 's/^blocks=\([0-9]*\) .*/\1/p' <<<"$info")
    member_data=$(( ($(numfmt --from=iec "$size") - 4194304) / (chunk * 1024) * chunk * 1024 ))
    [ "$blocks" -eq $((n * member_data / block)) ] || fail "capacity $blocks blocks, expected $((n * member_data / block))"
    chunk_blocks=$((chunk * 1024 / block))
    # A fresh array reads as zeros.
    "$TIO" verify "$url" --lba 0 --blocks $((stripe_blocks * 2)) --zero || fail "new array not zero"
    # Writes of many shapes, each with its own seed, then all verified.
    i=0
    while read -r lba nb; do
        i=$((i + 1))
        "$TIO" write "$url" --lba "$lba" --blocks "$nb" --seed $((lun * 100 + i)) || fail "write $lba+$nb"
        echo "$lba $nb $((lun * 100 + i))" >> "$WORK/writes.$lun"
    done <<EOW
0 1
$((chunk_blocks - 1)) 2
$((stripe_blocks * 3)) $stripe_blocks
$((stripe_blocks * 5 + 1)) $((stripe_blocks * 2 + 3))
$((stripe_blocks * 9 + chunk_blocks)) $chunk_blocks
$((blocks - 3)) 3
EOW
    lun=$((lun + 1))
done

verify_all() {
    local l
    for ((l = 1; l < lun; l++)); do
        while read -r lba nb seed; do
            "$TIO" verify "$(device_url d1 $l)" --lba "$lba" --blocks "$nb" --seed "$seed" ||
                fail "LUN $l: data at $lba+$nb lost ($1)"
        done < "$WORK/writes.$l"
    done
}
verify_all "before restart"
device_stop d1
for g in "${geoms[@]}"; do
    read -r name _ _ _ nm _ <<<"$g"
    "$TANDEMCTL" raid examine --json $(member_list "$WORK/$name-m" "$nm" | tr ';' ' ') > "$WORK/examine.json"
    [ "$(grep -o '"state":"clean"' "$WORK/examine.json" | wc -l)" -eq "$nm" ] ||
        fail "superblocks of $name not all clean after a clean stop: $(cat "$WORK/examine.json")"
done

# Reassemble: only the volid, everything else from the superblocks (block size too).
device_start d1
lun=1
for g in "${geoms[@]}"; do
    read -r name _ _ _ nm _ <<<"$g"
    list=$(member_list "$WORK/$name-m" "$nm")
    lu_add d1 $lun raid "$list" "volid=$lun"
    lun=$((lun + 1))
done
verify_all "after restart"
"$TIO" info "$(device_url d1 3)" | grep -q "block_bytes=4096 " || fail "block size not restored"
log_has d1 "raid volid 4: 15D\+1P chunk 16 KiB block 4096" || fail "log lacks the assembly line"
log "PASS"
