#!/usr/bin/env bash
# make demo: two tandem devices on loopback (each a stock tgtd with bs_tandem.so preloaded).
#   device 1: a 3D+1P primary volume (P-VOL), its journal, a 5D+1P volume that mirrors the P-VOL,
#             a command device;
#   device 2: a 4D+1P auxiliary volume (S-VOL), its journal, a command device;
#   vvols in both directions (each device reaches the other's volumes and command device).
# It forms a mirror and an asynchronous replication pair, runs a write load while showing the
# replication status with its lag, swaps the pair's roles, writes on device 2, checks that the
# three volumes hold the same bytes (sha256 of each, read over iSCSI) and tears everything down.
# Everything lives in a temporary directory; it stops exactly the processes it started (by PID),
# also on failure or Ctrl-C. Prints "demo OK" and exits 0, or says what failed and exits 1.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "demo: must run as root (tgtd's control sockets live in /var/run/tgtd): sudo make demo" >&2
    exit 1
fi
for f in "$top/build/bs_tandem.so" "$top/build/tandemctl" "$top/build/tio" /usr/sbin/tgtd /usr/sbin/tgtadm; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "demo: $f is missing (run 'make demo', which sets up and builds)" >&2; exit 1; }
done
set -- ; . "$top/tests/func/functions.sh"
TEST_NAME=demo
T0=$SECONDS STEP=0 STEP_TITLE="start" FAIL_MSG="" WRITER="" U1=/nonexistent/1 U2=/nonexistent/2
RATE_MB=${DEMO_RATE_MB:-8}
log() { echo "    $*"; }

# ---------------------------------------------------------------- presentation helpers
B=$'\033[1m' G=$'\033[1;32m' R=$'\033[1;31m' N=$'\033[0m'
[ -t 1 ] || B="" G="" R="" N=""
step() { STEP=$((STEP + 1)); STEP_TITLE=$1; printf '\n%s%2d. %s%s   [%ss]\n' "$B" "$STEP" "$1" "$N" "$((SECONDS - T0))"; shift; local l; for l in "$@"; do echo "    $l"; done; }
# shown: a command line as a newcomer would type it ($W for the work directory, $D1/$D2 for the
# command devices; build/tandemctl and build/tio as in the source tree)
shown() { local s="$*"; s=${s//$WORK/\$W}; s=${s//$U1/\$D1}; s=${s//$U2/\$D2}; echo "  \$ $s"; }
fail() { FAIL_MSG=$*; exit 1; }

_demo_exit() {
    local rc=$? name f
    set +e
    trap '' INT TERM
    if [ -n "$WRITER" ]; then kill "$WRITER" 2>/dev/null; wait "$WRITER" 2>/dev/null; fi
    for name in "${!DEV_PID[@]}"; do
        echo "    stopping tgtd of $name (pid ${DEV_PID[$name]})"
        device_stop "$name" >/dev/null 2>&1
    done
    if [ $rc -eq 0 ]; then rm -rf "$WORK"; exit 0; fi
    for f in "$WORK"/d1.log "$WORK"/d2.log; do
        [ -f "$f" ] && { echo "---- last lines of $f"; tail -n 12 "$f"; }
    done
    echo "work directory kept: $WORK"
    if [ $rc -eq 130 ]; then echo "${R}demo interrupted${N} in step $STEP ($STEP_TITLE)" >&2; exit 130; fi
    echo "${R}demo FAILED${N} in step $STEP ($STEP_TITLE): ${FAIL_MSG:-a command failed (exit $rc)}" >&2
    exit 1
}
trap _demo_exit EXIT

# lu: add a logical unit and show the tgtadm command (device NAME, lun, bstype, backing, bsopts)
lu() {
    shown tgtadm -C "${DEV_CTL[$1]}" --lld iscsi --op new --mode logicalunit --tid 1 --lun "$2" \
        --bstype "$3" --backing-store "\"$4\"" --bsopts "'$5'"
    lu_add "$1" "$2" "$3" "$4" "$5" > "$WORK/lu.out" 2>&1 ||
        fail "tgtadm on $1 (lun $2): $(cat "$WORK/lu.out"); $(tail -n 2 "$(device_log "$1")")"
}
# c1/c2 ARGS: tandemctl on device 1/2, shown and run; its message (first line) indented, or with
# ALL=1 its whole output
c1() { ctl_run "$U1" '$D1' "$@"; }
c2() { ctl_run "$U2" '$D2' "$@"; }
ctl_run() {
    local url=$1 name=$2; shift 2
    shown build/tandemctl -d "$url" "$@"
    "$TANDEMCTL" -d "$url" "$@" > "$WORK/ctl.out" 2>&1 || fail "tandemctl -d $name $*: $(cat "$WORK/ctl.out")"
    if [ "${ALL:-0}" = 1 ]; then sed 's/^/      /' "$WORK/ctl.out"; else head -n 1 "$WORK/ctl.out" | sed 's/^/      /'; fi
}
# quiet status queries: q1/q2 COMMAND -> the result; fld FIELD TEXT -> a field's value
q1() { "$TANDEMCTL" -d "$U1" call "$@" 2>&1 || true; }
q2() { "$TANDEMCTL" -d "$U2" call "$@" 2>&1 || true; }
fld() { awk -v f="$1" '$1 == f { print $2; exit }' <<< "$2"; }
# excerpt TEXT FIELD...: "field=value ..." of the fields present
excerpt() { local t=$1 f v out=""; shift; for f in "$@"; do v=$(fld "$f" "$t"); [ -n "$v" ] && out+="$f=$v "; done; echo "${out% }"; }
tio_run() { shown build/tio "$@"; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "tio $*: $(cat "$WORK/tio.out")"; sed 's/^/      /' "$WORK/tio.out"; }
acked() { grep -vc '^#' "$WORK/writer.log" 2>/dev/null || true; }

# vol_sha256 URL BLOCKS: SUM := sha256 of the first BLOCKS blocks of a LU, read over iSCSI with
# tio (one session per 16 MiB: 1 MiB READs into files, hashed in order, then removed)
vol_sha256() {
    local url=$1 blocks=$2 lba n end dir=$WORK/sum
    rm -f "$WORK/sum.err"
    for ((lba = 0; lba < blocks; lba += 32768)); do
        end=$((lba + 32768 < blocks ? lba + 32768 : blocks))
        rm -rf "$dir"; mkdir -p "$dir"
        for ((n = lba; n < end; n += 2048)); do
            echo "get $n $((end - n < 2048 ? end - n : 2048)) $dir/$(printf %012d "$n")"
        done | "$TIO" session "$url" > "$WORK/session.out" 2>&1 ||
            { grep -v '^ok' "$WORK/session.out" | head -n 3 > "$WORK/sum.err"; exit 1; }
        cat "$dir"/*
    done | sha256sum > "$WORK/sum.out" || fail "reading $url over iSCSI: $(cat "$WORK/sum.err" 2>/dev/null)"
    rm -rf "$dir"
    SUM=$(cut -d' ' -f1 "$WORK/sum.out")
}
# (no $(...) inside $((...)) in this script: bash 5.2 then fails an INT trap with a parse error)
ms_now() { local ns; ns=$(date +%s%N); echo $((ns / 1000000)); }

# ---------------------------------------------------------------- the demo
step "Start two devices: each is Debian's tgtd with tandem's module (bs_tandem.so) preloaded" \
     "private portals on 127.0.0.2 and 127.0.0.3 and private control ports; files in W=$WORK"
device_start d1 127.0.0.2
device_start d2 127.0.0.3
U1=$(device_url d1 1) U2=$(device_url d2 1)
V1=$(device_url d1 2) V2=$(device_url d2 2) M1=$(device_url d1 4)
echo "    command devices (LUN 1):  D1=$U1"
echo "                              D2=$U2"

step "Device 1: a command device, the 3D+1P primary volume (P-VOL), its journal, a 5D+1P volume" \
     "Members are sparse files; create=1 formats them. Volids: 100 command device, 10 P-VOL," \
     "11 journal (no write-intent bitmap: a journal is written sequentially), 12 mirror copy."
lu d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu d1 2 raid "$(members "$WORK/p" 4 40M)" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
lu d1 3 raid "$(members "$WORK/pj" 3 64M)" "volid=11;layout=2D+1P;chunk_kib=64;bitmap=0;create=1"
lu d1 4 raid "$(members "$WORK/m" 6 32M)" "volid=12;layout=5D+1P;chunk_kib=32;create=1"

step "Device 2: a command device, the 4D+1P auxiliary volume (S-VOL) and its journal" \
     "Volids: 200 command device, 20 S-VOL, 21 journal."
lu d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2"
lu d2 2 raid "$(members "$WORK/s" 5 40M)" "volid=20;layout=4D+1P;chunk_kib=64;create=1"
lu d2 3 raid "$(members "$WORK/sj" 3 64M)" "volid=21;layout=2D+1P;chunk_kib=64;bitmap=0;create=1"

step "Virtual volumes (vvols): each device reaches the other's volume, journal and command device" \
     "A vvol is a LU forwarded over a second iSCSI session. Device 2 pulls the P-VOL and journal" \
     "through volids 30/31 and talks to device 1 through 32; device 1 uses 50/51/40 (after a swap)."
lu d2 10 vvol "$(device_url d1 2)" "volid=30"
lu d2 11 vvol "$(device_url d1 3)" "volid=31"
lu d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev"
lu d1 10 vvol "$(device_url d2 2)" "volid=50"
lu d1 11 vvol "$(device_url d2 3)" "volid=51"
lu d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"
ALL=1 c1 vol list
PBLOCKS=$("$TIO" info "$V1" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
[ -n "$PBLOCKS" ] || fail "tio info $V1 gave no capacity"
echo "    the P-VOL has $PBLOCKS blocks of 512 bytes ($((PBLOCKS / 2048)) MiB)"

step "A host writes a known pattern over the whole P-VOL (tio, a libiscsi client)"
tio_run write "$V1" --seed 1 --qd 16

step "Replication pair: P-VOL (device 1) -> S-VOL (device 2), asynchronous, journal-based" \
     "Issued on device 1, forwarded to device 2. Device 1 journals every host write; device 2 copies" \
     "the P-VOL, then pulls new journal entries with plain SCSI READs (it looks every 200 ms when" \
     "idle) and restores them in order. overflow=throttle: a full journal makes host writes wait."
c1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 r_src_pvol=50 r_src_pjnl=51 mode=auto interval_ms=200 overflow=throttle
paired() { [ "$(fld state "$(q2 pair-status id=1)")" = paired ]; }
wait_for 60 paired || fail "the initial copy did not finish: $(q2 pair-status id=1 | tr -s ' \n' ' ')"
shown build/tandemctl -d "$U2" pair status 1
echo "      $(excerpt "$(q2 pair-status id=1)" role state mode copy_percent restore_completed lag_entries)"

step "Mirror: the P-VOL (3D+1P) is mirrored to volid 12 (5D+1P) on the same device" \
     "The copy goes in granules of the secondary's full stripe; then every write goes to both (duplex)."
c1 call mirror-create primary=10 secondary=12
duplex() { [ "$(fld state "$(q1 mirror-status id=1)")" = duplex ]; }
wait_for 60 duplex || fail "the mirror did not reach duplex: $(q1 mirror-status id=1 | tr -s ' \n' ' ')"
shown build/tandemctl -d "$U1" call mirror-status id=1
echo "      $(excerpt "$(q1 mirror-status id=1)" id primary secondary state granule_bytes copied_percent dirty_bytes)"

step "Write load on the P-VOL while device 2 pulls over a slow link: the lag shows" \
     "pair-mode caps device 2's pull at $RATE_MB MB/s (a WAN link); the host writes faster, so device 2" \
     "falls behind: device 1's journal holds what device 2 has not pulled yet, and once it is full" \
     "(used_percent=100) host writes wait for room (overflow=throttle). The writer: tio log-writer," \
     "random writes of 1-16 blocks, one at a time, each acknowledged write logged."
c2 call pair-mode id=1 mode=auto "rate_mb=$RATE_MB"
WRITER_ARGS=(--out "$WORK/writer.log" --blocks $((PBLOCKS / 2)) --seed 2 --qd 1 --max-blocks 16 --seconds 90)
shown build/tio log-writer "$V1" "${WRITER_ARGS[@]}" "&"
"$TIO" log-writer "$V1" "${WRITER_ARGS[@]}" > "$WORK/writer.out" 2>&1 &
WRITER=$!
writing() { [ "$(acked)" -gt 100 ]; }
wait_for 30 writing || fail "the writer did not get going: $(cat "$WORK/writer.out")"
echo "    status, excerpts of:  build/tandemctl -d \$D1 pair status 1   and   build/tandemctl -d \$D2 pair status 1"
t_load=$(ms_now)
sample() { # N: one status sample of both devices
    local s1 s2 ms jin rc2
    s2=$(q2 pair-status id=1); s1=$(q1 pair-status id=1)   # d2 first: d1 is never behind it
    ms=$(ms_now); ms=$((ms - t_load))
    printf '    [%s] %d.%d s, %s host writes acknowledged\n' "$1" $((ms / 1000)) $((ms % 1000 / 100)) "$(acked)"
    echo "        d1: $(excerpt "$s1" role state journal_in journal_out used_percent)"
    echo "        d2: $(excerpt "$s2" role state restore_completed lag_entries lag_seconds)"
    jin=$(fld journal_in "$s1"); rc2=$(fld restore_completed "$s2")
    echo "        d2 is $((jin - 1 - rc2)) entries behind d1 (d1's journal_in - 1 - d2's restore_completed)"
}
for i in 1 2 3; do sleep 1.5; sample "$i"; done
kill -0 "$WRITER" 2>/dev/null || fail "the writer stopped early: $(cat "$WORK/writer.out")"

step "The link gets fast again: device 2 catches up (the writer keeps writing)"
c2 call pair-mode id=1 mode=auto rate_mb=0
t1=$(ms_now)
close() { # d2 within 500 entries of d1
    local rc2 jin
    rc2=$(fld restore_completed "$(q2 pair-status id=1)"); jin=$(fld journal_in "$(q1 pair-status id=1)")
    [ $((jin - 1 - rc2)) -lt 500 ]
}
wait_for 60 close || fail "device 2 does not catch up: $(q2 pair-status id=1 | tr -s ' \n' ' ')"
t2=$(ms_now)
echo "    device 2 was within 500 entries of device 1 after $((t2 - t1)) ms"
sample 4
kill -0 "$WRITER" 2>/dev/null || fail "the writer stopped early: $(cat "$WORK/writer.out")"

step "Swap, issued on device 2 while the writer still runs on device 1" \
     "Device 1 freezes (refuses new host writes), device 2 restores everything up to device 1's last" \
     "write and becomes primary; device 1 becomes auxiliary and pulls from device 2."
c2 call pair-swap id=1
swapmsg=$(grep -o 'held for [0-9]* ms; the swap took [0-9]* ms' "$WORK/ctl.out") || fail "pair-swap did not say how long it took"
echo "    ${B}swap: host writes $swapmsg${N}"

step "A host writes on device 2 right after the swap (1 MiB at the end of the volume)"
DLBA=$((PBLOCKS - 4096))
tio_run write "$V2" --seed 3 --lba "$DLBA" --blocks 2048 --qd 4
rc=0; wait "$WRITER" || rc=$?; WRITER=""
echo "    the writer on device 1 stopped (exit $rc) after $(acked) acknowledged writes; device 1 refused the next:"
echo "      $(grep -m1 -o 'failed: .*' "$WORK/writer.out" || tail -n 1 "$WORK/writer.out")"
echo "    every write device 1 acknowledged is on device 2's volume:"
tio_run log-check "$V2" --log "$WORK/writer.log"

step "Device 1 follows device 2: it pulls device 2's journal (roles swapped on both)"
caught_up() { local j; j=$(fld journal_in "$(q2 pair-status id=1)"); [ -n "$j" ] && [ "$(fld restore_completed "$(q1 pair-status id=1)")" = $((j - 1)) ]; }
wait_for 60 caught_up || fail "device 1 does not catch up: d1 $(q1 pair-status id=1 | tr -s ' \n' ' ') d2 $(q2 pair-status id=1 | tr -s ' \n' ' ')"
shown build/tandemctl -d "$U1" pair status 1 "   and   " build/tandemctl -d "$U2" pair status 1 "   (excerpts)"
echo "      d1: $(excerpt "$(q1 pair-status id=1)" role state restore_completed lag_entries lag_seconds)"
echo "      d2: $(excerpt "$(q2 pair-status id=1)" role state journal_in journal_out)"
echo "    device 2's write is on device 1 now:"
tio_run verify "$V1" --seed 3 --lba "$DLBA" --blocks 2048

step "Checksums: sha256 of each volume read over iSCSI (the first $PBLOCKS blocks: the P-VOL's size)"
shown build/tandemctl -d "$U1" call mirror-status id=1
echo "      $(excerpt "$(q1 mirror-status id=1)" state dirty_bytes copied_percent)"
vol_sha256 "$V1" "$PBLOCKS"; sum1=$SUM; echo "    $sum1  device 1, P-VOL (now auxiliary)"
vol_sha256 "$V2" "$PBLOCKS"; sum2=$SUM; echo "    $sum2  device 2, S-VOL (now primary)"
vol_sha256 "$M1" "$PBLOCKS"; sum3=$SUM; echo "    $sum3  device 1, mirror copy (5D+1P: it got every write to the P-VOL, also the restored ones)"
[ "$sum1" = "$sum2" ] || fail "device 1's and device 2's volumes differ"
[ "$sum1" = "$sum3" ] || fail "the P-VOL and its mirror copy differ"
echo "    ${G}all three equal${N}"

step "Tear down: delete the pair (both halves) and the mirror, stop both tgtds (by PID)"
c2 call pair-delete id=1
c1 call mirror-delete id=1
for d in d1 d2; do
    echo "    stopping tgtd of $d (pid ${DEV_PID[$d]})"
    device_stop "$d"
done
printf '\n%sdemo OK%s (%s s)\n' "$G" "$N" "$((SECONDS - T0))"
