#!/usr/bin/env bash
# make bench: tandem's performance table, every figure beside its baseline from the same run.
#   BENCH_RUNS=3 BENCH_SECONDS=5 scripts/bench.sh
# One tgtd (the module preloaded) serves a stock rdwr LU on one 1 GiB file (the baseline) and
# raid 3D+1P and 4D+1P LUs of the same size; tio drives each through iSCSI on loopback. Runs are
# interleaved (run 1 of every LU, then run 2, ...) so machine noise hits all alike; the table
# shows medians and the ratio raid/rdwr. Then parity throughput against raw ISA-L xor_gen.
# Mirror: a 3D+1P LU mirrored to a 4D+1P LU of the same device (docs/mirror.md): duplexed write
# throughput against the unmirrored 3D+1P LU, the initial copy rate against a sequential read of
# the primary, and resyncs after 1 %, 10 % and 50 % of the volume was dirtied while split.
# Remote replication (docs/replication.md): scripts/bench-replication.sh, run last on two devices
# of its own: journaling on against off, the copy formation against a raw read, lag under load.
#   BENCH_ONLY=replication scripts/bench.sh    only that part (table: build/bench/replication.txt)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
case ${BENCH_ONLY:-all} in
    all) ;;
    replication) exec "$top/scripts/bench-replication.sh" ;;
    *) echo "BENCH_ONLY: 'replication' or unset (everything)" >&2; exit 2 ;;
esac
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
out_dir=$top/build/bench
mkdir -p "$out_dir"
# Reuse the functional tests' device helpers (private ports, cleanup by PID).
set -- ; . "$top/tests/func/functions.sh"
TEST_NAME=bench

device_start b1
truncate -s 1G "$WORK/rdwr.img"
lu_add b1 1 rdwr "$WORK/rdwr.img" ""
lu_add b1 2 raid "$(members "$WORK/r3-" 4 $((1024 / 3 + 5))M)" "volid=2;layout=3D+1P;chunk_kib=64;create=1"
lu_add b1 3 raid "$(members "$WORK/r4-" 5 $((1024 / 4 + 5))M)" "volid=3;layout=4D+1P;chunk_kib=64;create=1"
# RAID resilience figures: the same 3D+1P without a write-intent bitmap, and one run degraded.
lu_add b1 4 raid "$(members "$WORK/nb-" 4 $((1024 / 3 + 5))M)" "volid=4;layout=3D+1P;chunk_kib=64;create=1;bitmap=0"
dg_list=$(members "$WORK/dg-" 4 $((1024 / 3 + 5))M)
lu_add b1 5 raid "$dg_list" "volid=5;layout=3D+1P;chunk_kib=64;create=1"
names=([1]="rdwr (1 file)" [2]="raid 3D+1P" [3]="raid 4D+1P")
# Mirror: LUN 8 (3D+1P, volid 8) mirrored to LUN 9 (4D+1P, volid 9); LUN 10 the command device.
lu_add b1 10 cmddev "$WORK/b1.tables" "volid=100;create=1;device=b1"
lu_add b1 8 raid "$(members "$WORK/mp-" 4 $((1024 / 3 + 5))M)" "volid=8;layout=3D+1P;chunk_kib=64;create=1"
lu_add b1 9 raid "$(members "$WORK/ms-" 5 $((1024 / 4 + 5))M)" "volid=9;layout=4D+1P;chunk_kib=64;create=1"
bctl() { "$TANDEMCTL" -d "$(device_url b1 10)" "$@"; }
mfield() { bctl call mirror-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# wait_state STATE LIMIT_S: poll (every 10 ms) until mirror 1 is in STATE; prints the ms waited
wait_state() {
    local t0 end; t0=$(ms_now); end=$((t0 + $2 * 1000))
    until [ "$(mfield state)" = "$1" ]; do
        [ "$(ms_now)" -lt "$end" ] || { echo "mirror 1 not $1 after $2 s: $(bctl call mirror-status id=1 | tr -s ' \n' ' ')" >&2; return 1; }
        sleep 0.01
    done
    echo $(( $(ms_now) - t0 ))
}
# Virtual volume: device 2 (127.0.0.3) serves a rdwr LU; LUN 6 on device 1 forwards to it.
device_start b2 127.0.0.3
truncate -s 512M "$WORK/peer.img"
lu_add b2 1 rdwr "$WORK/peer.img" ""
lu_add b1 6 vvol "$(device_url b2 1)" "volid=6"

echo "tandem bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $RUNS runs x ${SECS}s, loopback iSCSI"
echo "prefilling the LUs (sequential 1 MiB writes over the whole volume)..."
for url in $(device_url b1 1) $(device_url b1 2) $(device_url b1 3) $(device_url b1 4) \
           $(device_url b1 5) $(device_url b2 1) $(device_url b1 8); do
    blocks=$("$TIO" info "$url" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
    "$TIO" load "$url" --rw write --bs 1m --qd 16 --ios $((blocks / 2048)) >/dev/null
done
# LUN 5 loses member 1: reassembled with degraded=1, every read of its chunks is reconstructed.
lu_del b1 5
rm -f "$WORK/dg-1"
lu_add b1 5 raid "$dg_list" "volid=5;degraded=1"
# Mirror: the primary's sequential read, then the initial copy (its operation's rate: bytes copied
# over the time it took)
m_read=$("$TIO" load "$(device_url b1 8)" --rw read --bs 1m --qd 16 --seconds "$SECS" | sed -n 's/.*MBps=\([0-9.]*\).*/\1/p')
bctl call mirror-create primary=8 secondary=9 >/dev/null
m_copy_ms=$(wait_state duplex 600)
m_copy_rate=$(bctl --json op list | python3 -c 'import json, sys
ops = [r for r in json.load(sys.stdin)["records"] if r["kind"] == "mirror-copy"]
print("%.1f" % (ops[-1]["rate_per_s"] / 1e6))')
m_size=$(mfield size_bytes)
echo "mirror: initial copy of $((m_size / 1048576)) MiB in $m_copy_ms ms (operation rate $m_copy_rate MB/s)"

workloads=("seqwrite:write:1m:16" "seqread:read:1m:16" "randread:randread:4k:32" "randwrite:randwrite:4k:32"
           "seqwr-opt:write:opt:16")
# "opt": each LU's advertised optimal transfer length (Block Limits VPD: the full stripe), as the
# largest multiple of it up to 1 MiB; for rdwr (no hint) 1 MiB.
opt_bs() {
    local info ob bb
    info=$("$TIO" info "$(device_url b1 "$1")")
    ob=$(sed -n 's/.*opt_xfer_blocks=\([0-9]*\).*/\1/p' <<<"$info")
    bb=$(sed -n 's/.*block_bytes=\([0-9]*\).*/\1/p' <<<"$info")
    if [ "${ob:-0}" -eq 0 ]; then echo 1048576; else echo $(( 1048576 / (ob * bb) * ob * bb )); fi
}
raw=$out_dir/runs.txt; : > "$raw"
for ((r = 1; r <= RUNS; r++)); do
    for w in "${workloads[@]}"; do
        IFS=: read -r wname rw bs qd <<<"$w"
        for lun in 1 2 3; do
            b=$bs; [ "$bs" = opt ] && b=$(opt_bs $lun)
            line=$("$TIO" load "$(device_url b1 $lun)" --rw "$rw" --bs "$b" --qd "$qd" --seconds "$SECS" --seed "$r")
            mbps=$(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$line")
            iops=$(sed -n 's/.*IOPS=\([0-9.]*\).*/\1/p' <<<"$line")
            p99=$(sed -n 's/.*lat_p99_us=\([0-9.]*\).*/\1/p' <<<"$line")
            echo "$wname $lun $r $mbps $iops $p99" >> "$raw"
        done
    done
    for w in "randwrite:4:randwrite:4k:32" "seqread:5:read:1m:16" "randread:5:randread:4k:32" \
             "v-seqwrite:6:write:1m:16" "v-seqwrite:7:write:1m:16" "v-seqread:6:read:1m:16" \
             "v-seqread:7:read:1m:16" "v-randread:6:randread:4k:32" "v-randread:7:randread:4k:32" \
             "v-randwrite:6:randwrite:4k:32" "v-randwrite:7:randwrite:4k:32" \
             "m-seqwrite:8:write:1m:16" "m-randwrite:8:randwrite:4k:32"; do
        IFS=: read -r wname lun rw bs qd <<<"$w"
        url=$(device_url b1 $lun); [ "$lun" = 7 ] && url=$(device_url b2 1)   # 7: device 2 directly
        line=$("$TIO" load "$url" --rw "$rw" --bs "$bs" --qd "$qd" --seconds "$SECS" --seed "$r")
        echo "$wname $lun $r $(sed -n 's/.*MBps=\([0-9.]*\).*/\1/p' <<<"$line") $(sed -n 's/.*IOPS=\([0-9.]*\).*/\1/p' <<<"$line") $(sed -n 's/.*lat_p99_us=\([0-9.]*\).*/\1/p' <<<"$line")" >> "$raw"
    done
    echo "run $r of $RUNS done"
done

# Mirror resyncs: split, a random-write load over the first 1 %, 10 %, 50 % of the volume, then
# mirror-resync: bytes copied (copied_bytes delta) against dirty_bytes, and the time to duplex.
m_res=$out_dir/mirror-resync.txt; : > "$m_res"
m_blocks=$((m_size / 512))
for pct in 1 10 50; do
    for ((i = 0; i < 300; i++)); do [ "$(mfield dirty_bytes)" = 0 ] && break; sleep 0.1; done  # intent bits cleaned
    bctl call mirror-split id=1 >/dev/null
    range=$((m_blocks * pct / 100 / 128 * 128))
    "$TIO" load "$(device_url b1 8)" --rw randwrite --bs 64k --qd 16 --range-blocks "$range" \
        --ios $((range / 128)) --seed "$pct" >/dev/null
    dirty=$(mfield dirty_bytes) c0=$(mfield copied_bytes)
    bctl call mirror-resync id=1 >/dev/null
    ms=$(wait_state duplex 600)
    c1=$(mfield copied_bytes)
    echo "$pct $dirty $((c1 - c0)) $ms" >> "$m_res"
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
fig() { # workload lun column
    awk -v w="$1" -v l="$2" -v c="$3" '$1==w && $2==l {print $c}' "$raw" | median
}
table=$out_dir/latest.txt
{
    echo
    echo "## iSCSI throughput (median of $RUNS runs of ${SECS}s; ratio = raid / rdwr of the same run set)"
    printf '%-10s %-12s %14s %14s %7s %14s %7s\n' workload unit "${names[1]}" "${names[2]}" ratio "${names[3]}" ratio
    for w in "${workloads[@]}"; do
        IFS=: read -r wname rw bs qd <<<"$w"
        case $wname in seq*) col=4; unit="MB/s";; *) col=5; unit="IOPS";; esac
        [ "$bs" = opt ] && bs="stripe*k"
        b=$(fig "$wname" 1 $col); r3=$(fig "$wname" 2 $col); r4=$(fig "$wname" 3 $col)
        printf '%-10s %-12s %14s %14s %6.2fx %14s %6.2fx\n' "$wname" "$unit ($bs QD$qd)" "$b" "$r3" \
            "$(echo "$r3 / $b" | bc -l)" "$r4" "$(echo "$r4 / $b" | bc -l)"
    done
    echo
    echo "seqwr-opt: transfers of the largest multiple of each LU's optimal transfer length (the"
    echo "full stripe, from the Block Limits VPD) up to 1 MiB: 3D+1P 960 KiB, 4D+1P 1 MiB, rdwr 1 MiB."
    echo
    echo "## RAID resilience (3D+1P, chunk 64 KiB; same runs)"
    rw_on=$(fig randwrite 2 5); rw_off=$(fig randwrite 4 5)
    printf '%-44s %12s %12s %8s\n' figure measured baseline ratio
    printf '%-44s %12s %12s %7.2fx\n' "randwrite 4k QD32 IOPS, bitmap on vs bitmap=0" "$rw_on" "$rw_off" "$(echo "$rw_on / $rw_off" | bc -l)"
    printf '%-44s %12s\n' "  write-intent bitmap cost" "$(echo "(1 - $rw_on / $rw_off) * 100" | bc -l | xargs printf '%.1f %%')"
    sr_h=$(fig seqread 2 4); sr_d=$(fig seqread 5 4)
    printf '%-44s %12s %12s %7.2fx\n' "seqread 1m QD16 MB/s, degraded vs healthy" "$sr_d" "$sr_h" "$(echo "$sr_d / $sr_h" | bc -l)"
    rr_h=$(fig randread 2 5); rr_d=$(fig randread 5 5)
    printf '%-44s %12s %12s %7.2fx\n' "randread 4k QD32 IOPS, degraded vs healthy" "$rr_d" "$rr_h" "$(echo "$rr_d / $rr_h" | bc -l)"
    echo
    echo "## Virtual volume (device 1 forwards to a rdwr LU of device 2 over a peer session)"
    printf '%-34s %12s %14s %8s\n' figure "via vvol" "device 2 direct" ratio
    for w in seqwrite:4:MB/s seqread:4:MB/s randread:5:IOPS randwrite:5:IOPS; do
        IFS=: read -r wn col unit <<<"$w"
        a=$(fig "v-$wn" 6 "$col"); b=$(fig "v-$wn" 7 "$col")
        printf '%-34s %12s %14s %7.2fx\n' "$wn ($unit)" "$a" "$b" "$(echo "$a / $b" | bc -l)"
    done
    echo
    echo "## Mirror (3D+1P/64K primary -> 4D+1P/64K secondary on the same device; granule 256 KiB)"
    printf '%-38s %12s %12s %8s\n' figure mirrored unmirrored ratio
    for w in seqwrite:4:MB/s:1m:16 randwrite:5:IOPS:4k:32; do
        IFS=: read -r wn col unit bs qd <<<"$w"
        a=$(fig "m-$wn" 8 "$col"); b=$(fig "$wn" 2 "$col")
        printf '%-38s %12s %12s %7.2fx\n' "duplexed $wn $bs QD$qd ($unit)" "$a" "$b" "$(echo "$a / $b" | bc -l)"
    done
    printf '%-38s %12s %12s %7.2fx\n' "initial copy vs seq read 1m QD16 (MB/s)" "$m_copy_rate" "$m_read" "$(echo "$m_copy_rate / $m_read" | bc -l)"
    echo "  (copy: $((m_size / 1048576)) MiB, $m_copy_ms ms from mirror-create to duplex; rate from the copy operation)"
    printf '%-10s %12s %12s %14s %10s %10s\n' "dirtied" "dirty MiB" "copied MiB" "copied/dirty" "resync ms" "MB/s"
    while read -r pct dirty copied ms; do
        printf '%-10s %12.1f %12.1f %13.3f%s %10s %10.1f\n' "$pct %" "$(echo "$dirty / 1048576" | bc -l)" \
            "$(echo "$copied / 1048576" | bc -l)" "$(echo "$copied / $dirty" | bc -l)" \
            "$( [ "$(echo "$copied <= 1.05 * $dirty" | bc -l)" = 1 ] && echo " " || echo "!")" "$ms" \
            "$(echo "$copied / 1000 / ($ms + 0.001)" | bc -l)"
    done < "$m_res"
    echo "  (goal: copied/dirty <= 1.05; '!' marks a miss. MB/s = bytes copied over the time from"
    echo "   mirror-resync to duplex, polled every 10 ms.)"
    echo
    echo "## p99 latency, microseconds (median)"
    for w in "${workloads[@]}"; do
        IFS=: read -r wname _ <<<"$w"
        printf '%-10s %14s %14s %14s\n' "$wname" "$(fig "$wname" 1 6)" "$(fig "$wname" 2 6)" "$(fig "$wname" 3 6)"
    done
    echo
    echo "## parity (in one process: raw ISA-L xor_gen is the baseline)"
    "$BUILD/parbench" 1
} | tee "$table"
device_stop b1
device_stop b2
# their member files out of the way (page cache) before the replication devices start
rm -f "$WORK"/rdwr.img "$WORK"/peer.img "$WORK"/{r3,r4,nb,dg,mp,ms}-*
"$top/scripts/bench-replication.sh"
cat "$out_dir/replication.txt" >> "$table"
echo
echo "saved: ${table#$top/} (raw runs: ${raw#$top/})"
