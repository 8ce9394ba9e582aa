#!/usr/bin/env bash
# make bench, remote replication part (docs/replication.md); run by scripts/bench.sh, or alone:
#   BENCH_RUNS=3 BENCH_SECONDS=5 scripts/bench-replication.sh      (= BENCH_ONLY=replication make bench)
# Two devices on loopback as in tests/func/50-pair.sh: d1 (127.0.0.2) holds a 1 GiB 3D+1P P-VOL
# (volid 10) and a 1.5 GiB 2D+1P primary journal (11); d2 (127.0.0.3) a 1 GiB 4D+1P S-VOL (20) and
# a 2D+1P aux journal (21) of the journal's size, and vvols onto d1's P-VOL, journal and command
# device; d1 a vvol onto d2's command device. The journals are made with bitmap=0 (no RAID
# write-intent bitmap): a journal is written sequentially, so with a bitmap every MiB of journal
# costs a synced bitmap update (measured: 0.35x -> 0.46x at 4k, 0.35x -> 0.54x at 4M; see
# docs/replication.md "Journal volumes"). d1 also serves a twin of the P-VOL (volid 12: same
# layout, chunk, size, prefill) that is never paired: the journaling-off baseline. A twin rather
# than "the same volume before pair-create" because the runs can then be interleaved (on, off, on,
# off ...) like the rest of make bench, so drifting machine noise hits both alike; and before every
# run the pair is drained (d2 has restored and d1 purged everything), so d2's catch-up work never
# spills into a journaling-off run. Figures, each beside its same-run baseline:
#  1. host writes to the P-VOL with journaling on (pair paired, d2 in auto mode interval_ms=20
#     pulling, restoring and purging meanwhile -- on the same 2 cores) against the twin: randwrite
#     4k QD16 and write 4m QD4, BENCH_SECONDS each, medians of BENCH_RUNS; goal >= 0.8x.
#  2. the copy formation: pair-create (on d1, forwarded to d2) until d2 says state=paired, over the
#     prefilled P-VOL, against tio's sequential READ of the same P-VOL (1 MiB QD8: the copy reads
#     8 MiB steps as 8 parallel 1 MiB READs; QD1 for information); BENCH_RUNS pair-creates, each
#     after a pair-delete; goal >= 0.8x.
#  3. lag: randwrite 4k QD1 (sustained, not saturating) on the P-VOL for BENCH_LAG_SECONDS (10),
#     d2 in auto mode; d2's pair-status sampled every 0.2 s; then the time to drain.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-5}
LAG_SECS=${BENCH_LAG_SECONDS:-10}
out_dir=$top/build/bench
mkdir -p "$out_dir"
set -- ; . "$top/tests/func/functions.sh"
TEST_NAME=bench-repl

device_start d1 127.0.0.2
device_start d2 127.0.0.3
vsz=1024 jsz=1536  # MiB: volumes, journals (a journal holds the 4 MiB runs without filling)
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 raid "$(members "$WORK/p" 4 $((vsz / 3 + 5))M)" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
lu_add d1 3 raid "$(members "$WORK/pj" 3 $((jsz / 2 + 5))M)" "volid=11;layout=2D+1P;chunk_kib=64;create=1;bitmap=0"
lu_add d1 4 raid "$(members "$WORK/t" 4 $((vsz / 3 + 5))M)" "volid=12;layout=3D+1P;chunk_kib=64;create=1"
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2"
lu_add d2 2 raid "$(members "$WORK/s" 5 $((vsz / 4 + 5))M)" "volid=20;layout=4D+1P;chunk_kib=64;create=1"
lu_add d2 3 raid "$(members "$WORK/sj" 3 $((jsz / 2 + 5))M)" "volid=21;layout=2D+1P;chunk_kib=64;create=1;bitmap=0"
lu_add d2 10 vvol "$(device_url d1 2)" "volid=30"
lu_add d2 11 vvol "$(device_url d1 3)" "volid=31"
lu_add d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev"
lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"
P=$(device_url d1 2) T=$(device_url d1 4)
# run BIN ARGS: retried while BIN cannot be executed (126/127: a `make` relinking build/tio or
# build/tandemctl meanwhile), never after it ran
run() {
    local i rc
    for ((i = 0; i < 50; i++)); do
        rc=0; "$@" || rc=$?
        [ $rc = 126 ] || [ $rc = 127 ] || return $rc
        sleep 0.1
    done
    return $rc
}
tio() { run "$TIO" "$@"; }
ctl1() { run "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { run "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
# st1 / st2: pair 1's status on d1 / d2 as "key value" lines; field KEY < status
st1() { ctl1 call pair-status id=1; }
st2() { ctl2 call pair-status id=1; }
field() { awk -v f="$1" '$1 == f { print $2 }'; }
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
pair_create() {
    ctl1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
        s_peer=32 p_peer=40 mode=auto interval_ms=20 overflow=throttle >/dev/null
}
# drained: d2 restored every entry d1 has taken and d1 purged them (the pair is idle)
drained() {
    local s1 s2 jin
    s1=$(st1) s2=$(st2); jin=$(field journal_in <<<"$s1")
    [ "$(field state <<<"$s2")" = paired ] && [ "$(field restore_completed <<<"$s2")" = $((jin - 1)) ] &&
        [ "$(field journal_out <<<"$s1")" = "$jin" ]
}
wait_drained() {
    local end=$(( $(ms_now) + $1 * 1000 ))
    until drained; do
        [ "$(ms_now)" -lt "$end" ] || { echo "pair 1 not drained after $1 s: d1 $(st1 | tr -s ' \n' ' '); d2 $(st2 | tr -s ' \n' ' ')" >&2; return 1; }
        sleep 0.01
    done
}
# tio_fig LINE KEY: one figure of a tio load line
tio_fig() { sed -n "s/.*\\b$2=\\([0-9.]*\\).*/\\1/p" <<<"$1"; }

info=$(tio info "$P")
pblocks=$(sed -n 's/^blocks=\([0-9]*\) .*/\1/p' <<<"$info")
bbytes=$(sed -n 's/.*block_bytes=\([0-9]*\).*/\1/p' <<<"$info")
psize=$((pblocks * bbytes)) mib_ios=$((pblocks * bbytes / 1048576))
echo "replication bench: $RUNS runs x ${SECS}s, P-VOL $((psize / 1048576)) MiB, journal $jsz MiB"
echo "prefilling the P-VOL, its twin, the S-VOL and both journals (sequential 1 MiB writes)..."
# Every volume, so that no figure pays for file-system block allocation in the sparse member files
# that its baseline does not (a first copy onto a fresh S-VOL measured 1.5-2x slower; journaling
# onto a fresh journal would pay it on its first lap).
for url in "$P" "$T" "$(device_url d2 2)" "$(device_url d1 3)" "$(device_url d2 3)"; do
    n=$(( $(tio info "$url" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p') * bbytes / 1048576 ))
    tio load "$url" --rw write --bs 1m --qd 16 --ios "$n" >/dev/null
done

raw=$out_dir/replication-runs.txt; : > "$raw"
# ---- 2. copy formation against a raw sequential read (runs first: the pair is created here) ----
for ((r = 1; r <= RUNS; r++)); do
    for qd in 1 8; do
        line=$(tio load "$P" --rw read --bs 1m --qd $qd --ios "$mib_ios")
        echo "read-qd$qd $r $(tio_fig "$line" MBps)" >> "$raw"
    done
    [ "$r" = 1 ] || ctl1 call pair-delete id=1 >/dev/null
    t0=$(date +%s%N)
    pair_create
    t1=$(date +%s%N)
    # poll every 10 ms + one tandemctl round trip (the mean interval is in the table): small
    # against a copy of seconds
    polls=0
    until [ "$(st2 | field state)" = paired ]; do
        [ $(( $(date +%s%N) - t0 )) -lt 600000000000 ] || { echo "the copy did not end in 600 s: $(st2 | tr -s ' \n' ' ')" >&2; exit 1; }
        sleep 0.01; polls=$((polls + 1))
    done
    t2=$(date +%s%N)
    echo "copy $r $(echo "$psize / 1000 / (($t2 - $t0) / 1000000)" | bc -l) $(( (t2 - t0) / 1000000 ))" \
         "$(( (t1 - t0) / 1000000 )) $(( (t2 - t1) / 1000000 / (polls + 1) ))" >> "$raw"
done
echo "copy formation: done ($RUNS pair-creates)"

# ---- 1. journaling on (P-VOL, paired, d2 auto) against off (the twin), interleaved ----
# per run: figures of tio, then (on) d1's journal-full waits and host writes per journal batch
jcount() { local s; s=$(st1); echo "$(field waits_full <<<"$s") $(field writes <<<"$s") $(field batches <<<"$s")"; }
for ((r = 1; r <= RUNS; r++)); do
    for w in "rw4k:randwrite:4k:16" "w4m:write:4m:4"; do
        IFS=: read -r wname rw bs qd <<<"$w"
        for side in on off; do
            wait_drained 120
            url=$P; [ $side = off ] && url=$T
            read -r wf0 wr0 ba0 <<<"$(jcount)"
            line=$(tio load "$url" --rw "$rw" --bs "$bs" --qd "$qd" --seconds "$SECS" --seed "$r")
            read -r wf1 wr1 ba1 <<<"$(jcount)"
            echo "$wname-$side $r $(tio_fig "$line" MBps) $(tio_fig "$line" IOPS) $(tio_fig "$line" lat_avg_us)" \
                 "$(tio_fig "$line" lat_p99_us) $((wf1 - wf0)) $(echo "($wr1 - $wr0) / ($ba1 - $ba0 + 0.000001)" | bc -l)" >> "$raw"
        done
    done
    echo "journaling on/off: run $r of $RUNS done"
done

# ---- 3. lag under a sustained randwrite 4k QD1 ----
wait_drained 120
lag=$out_dir/replication-lag.txt; : > "$lag"
rm -f "$WORK/lag.stop"
(   # sampler: ms since start, d2's lag_entries lag_bytes lag_seconds, and d1's journal_in - 1 -
    # d2's restore_completed (the entries d2 has not restored, whether or not it has read their
    # records yet; d2 is asked first, so this is an upper bound by one round trip's writes)
    s0=$(ms_now)
    while [ ! -e "$WORK/lag.stop" ]; do
        s2=$(st2) && s1=$(st1) || { sleep 0.2; continue; }
        echo "$(( $(ms_now) - s0 )) $(field lag_entries <<<"$s2") $(field lag_bytes <<<"$s2")" \
             "$(field lag_seconds <<<"$s2") $(( $(field journal_in <<<"$s1") - 1 - $(field restore_completed <<<"$s2") ))" >> "$lag"
        sleep 0.2
    done
) &
sampler=$!
lag_line=$(tio load "$P" --rw randwrite --bs 4k --qd 1 --seconds "$LAG_SECS" --seed 99)
touch "$WORK/lag.stop"; wait "$sampler"
t0=$(ms_now)
wait_drained 120
drain_ms=$(( $(ms_now) - t0 ))
echo "lag: done"

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.10g\n", (a[NR/2]+a[NR/2+1])/2}'; }
fig() { awk -v w="$1" -v c="$2" '$1==w {print $c}' "$raw" | median; }
sum() { awk -v w="$1" -v c="$2" '$1==w {t+=$c} END {print t+0}' "$raw"; }
mx() { awk -v c="$1" 'NR==1 || $c>m {m=$c} END {print m}' "$lag"; }
ratio() { echo "$1 / $2" | bc -l | xargs printf '%.2f'; }
goal() { [ "$(echo "$1 >= $2" | bc -l)" = 1 ] && echo "met" || echo "MISSED"; }
table=$out_dir/replication.txt
{
    echo
    echo "## Remote replication (d1: 3D+1P/64K P-VOL, 2D+1P journal ${jsz} MiB; d2: 4D+1P S-VOL, auto mode interval_ms=20; both tgtds on these cores)"
    printf '%-40s %12s %12s %8s %s\n' figure "journal on" "journal off" ratio "goal >= 0.80x"
    for w in "rw4k:IOPS:4:randwrite 4k QD16" "w4m:MB/s:3:write 4m QD4"; do
        IFS=: read -r wn unit col label <<<"$w"
        a=$(fig "$wn-on" "$col") b=$(fig "$wn-off" "$col")
        printf '%-40s %12s %12s %7sx %s\n' "$label ($unit)" "$a" "$b" "$(ratio "$a" "$b")" "$(goal "$(ratio "$a" "$b")" 0.8)"
        for c in 5:avg 6:p99; do
            IFS=: read -r cc cn <<<"$c"
            a=$(fig "$wn-on" "$cc") b=$(fig "$wn-off" "$cc")
            printf '%-40s %12s %12s %7sx\n' "  latency $cn (us)" "$a" "$b" "$(ratio "$a" "$b")"
        done
    done
    # host writes that waited for journal space, over all runs (0: the figures are not pull-limited)
    printf '%-40s %12s\n' "  journal-full waits, randwrite / write" "$(sum rw4k-on 7) / $(sum w4m-on 7)"
    printf '%-40s %12s\n' "  writes per journal batch, rw / w" "$(printf '%.1f / %.1f' "$(fig rw4k-on 8)" "$(fig w4m-on 8)")"
    echo "  (median of $RUNS runs of ${SECS}s; off = an unpaired twin of the P-VOL, runs interleaved;"
    echo "   latency ratio = on / off, lower is better; Ceph rbd-mirror journaling, as quoted in issue 7: 0.68x at 4k, 0.41x at 4M)"
    cp=$(fig copy 3) r1=$(fig read-qd1 3) r8=$(fig read-qd8 3)
    printf '%-40s %12s %12s %7sx %s\n' "copy formation vs read 1m QD8 (MB/s)" "$(printf '%.1f' "$cp")" "$r8" "$(ratio "$cp" "$r8")" "$(goal "$(ratio "$cp" "$r8")" 0.8)"
    printf '%-40s %12s %12s %7sx\n' "  (information: vs read 1m QD1)" "$(printf '%.1f' "$cp")" "$r1" "$(ratio "$cp" "$r1")"
    echo "  (copy: $((psize / 1048576)) MiB, median $(fig copy 4) ms from pair-create to d2 state=paired, of which"
    echo "   pair-create itself $(fig copy 5) ms; d2's pair-status polled every $(fig copy 6) ms)"
    n=$(wc -l < "$lag")
    printf '%-40s %12s %12s\n' "lag, randwrite 4k QD1 ${LAG_SECS}s" median max
    printf '%-40s %12s %12s\n' "  d2 lag_entries" "$(awk '{print $2}' "$lag" | median)" "$(mx 2)"
    printf '%-40s %12s %12s\n' "  d2 lag_bytes" "$(awk '{print $3}' "$lag" | median)" "$(mx 3)"
    printf '%-40s %12s %12s\n' "  d2 lag_seconds" "$(awk '{print $4}' "$lag" | median)" "$(mx 4)"
    printf '%-40s %12s %12s\n' "  d1 journal_in-1 - d2 restore_completed" "$(awk '{print $5}' "$lag" | median)" "$(mx 5)"
    echo "  (load: $(tio_fig "$lag_line" IOPS) IOPS, $(tio_fig "$lag_line" MBps) MB/s, lat avg $(tio_fig "$lag_line" lat_avg_us) us;"
    echo "   $n samples every ~0.2 s; drained $drain_ms ms after the load stopped, polled every 10 ms;"
    echo "   d2's lag_* count only entries whose records it has read, at most one acquisition batch"
    echo "   (2048) past restore_completed; the last line counts from d1's journal_in)"
} | tee "$table"
device_stop d1
device_stop d2
