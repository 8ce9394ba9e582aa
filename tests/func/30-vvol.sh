#!/usr/bin/env bash
# Virtual volumes (docs/peer-and-vvol.md): device d1 forwards I/O of its vvol LUs to LUs of device
# d2 over its own peer sessions. Data written through d1 reads back directly from d2 and the other
# way round, for a 512-byte and a 4096-byte-block raid LU of d2 (tio write/verify, tio compare of
# the whole LUs after a random-write load); capacity and block size come from the peer; FUA
# writes and SYNCHRONIZE CACHE are forwarded. A vvol kind=cmddev to d2's command device runs
# commands on d2 (tandemctl info says d2; a raw block with tio session does the same); two hosts
# using one slot through d1 each read their own result (per-host peer sessions); with more hosts
# than sessions no host ever reads another's result. cmddev-add on d1 records d2's command device
# and tandemctl --via d2 uses it. LUN map: d1 restarted while d2 is down still opens its vvols
# (size and block size from d1's tables; a vvol without a record is refused), answers NOT READY
# (asc 0x08) within 2 x timeout_s, and serves again by itself once d2 is back on the same port.
. "$(dirname "$0")/functions.sh"
requires python3 iscsi-inq iscsi-test-cu

TIMEOUT_S=2                           # the vvols' timeout_s after the restart of d1
NR=$'\n'
ms_now() { echo $(( $(date +%s%N) / 1000000 )); }
# timed OUT CMD...: run CMD with stdout+stderr in OUT; sets RC and MS (elapsed milliseconds).
timed() {
    local out=$1 t0; shift
    t0=$(ms_now); RC=0
    "$@" > "$out" 2>&1 || RC=$?
    MS=$(( $(ms_now) - t0 ))
}
# capacity URL: "blocks=N block_bytes=B size_bytes=S" (tio info without the block limits).
capacity() { "$TIO" info "$1" | grep -o 'blocks=[0-9]* block_bytes=[0-9]* size_bytes=[0-9]*' | head -n 1; }
text() { tr -d '\0' < "$1"; }
# sess_run URL INITIATOR: 'tio session' with the lines on stdin, answers in $WORK/sess.out.
sess_run() { "$TIO" session "$1" -i "$2" > "$WORK/sess.out" 2>&1 || fail "tio session $1 ($2): $(cat "$WORK/sess.out")"; }
# answered FILE N: a tio session has written N answer lines to FILE
answered() { [ "$(grep -c '' "$1" 2>/dev/null || echo 0)" -ge "$2" ]; }
field() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["records"][0][sys.argv[1]])' "$1"; }

device_start d1 127.0.0.2
device_start d2 127.0.0.3
D2_PORT=${DEV_PORT[d2]}
# d2: its command device, a 512-byte-block raid LU, a 4096-byte-block raid LU
M512=$(members "$WORK/a" 4 20M)
M4K=$(members "$WORK/b" 3 20M)
d2_luns() { # create|assemble
    if [ "$1" = create ]; then
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100;create=1;device=d2"
        lu_add d2 2 raid "$M512" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
        lu_add d2 4 raid "$M4K" "volid=4;layout=2D+1P;chunk_kib=64;create=1" --blocksize 4096
    else
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100"
        lu_add d2 2 raid "$M512" "volid=1"
        lu_add d2 4 raid "$M4K" "volid=4"
    fi
}
d2_luns create
# d1: command device first (the vvols record themselves in its LUN map), then the vvols
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 vvol "$(device_url d2 2)" "volid=21" || fail "vvol to d2/2: $(tail -n 3 "$(device_log d1)")"
lu_add d1 3 vvol "$(device_url d2 1)" "volid=22;kind=cmddev" || fail "vvol kind=cmddev to d2/1"
lu_add d1 4 vvol "$(device_url d2 4)" "volid=24" || fail "vvol to d2/4 (4096-byte blocks)"
V=$(device_url d1 2) R=$(device_url d2 2)
V4=$(device_url d1 4) R4=$(device_url d2 4)
C1=$(device_url d1 1) VC=$(device_url d1 3) C2=$(device_url d2 1)

# ---- capacity and block size come from the peer ----
for pair in "$V $R" "$V4 $R4" "$VC $C2"; do
    read -r a b <<<"$pair"
    [ "$(capacity "$a")" = "$(capacity "$b")" ] || fail "capacity of $a: '$(capacity "$a")', of its peer $b: '$(capacity "$b")'"
done
grep -q ' block_bytes=4096 ' <<<"$(capacity "$V4") " || fail "the vvol to a 4096-byte-block LU: $(capacity "$V4")"
inq=$(iscsi-inq "$V") || fail "iscsi-inq of the vvol failed"
grep -q '^Product:TANDEM-VVOL' <<<"$inq" || fail "INQUIRY of the vvol: $(grep -i product <<<"$inq")"
log "capacity: $(capacity "$V") and $(capacity "$V4") as on d2; INQUIRY product TANDEM-VVOL"

# ---- data: through d1 = directly on d2, both ways ----
# a random-write load through d1 (16 in flight: all peer sessions), then the whole LUs compare
"$TIO" load "$V" --rw randwrite --bs 64k --qd 16 --ios 600 --seed 5 > "$WORK/load.out" 2>&1 || fail "load through the vvol: $(cat "$WORK/load.out")"
"$TIO" compare "$V" "$R" > "$WORK/cmp.out" 2>&1 || fail "tio compare vvol / d2: $(cat "$WORK/cmp.out")"
"$TIO" write "$V" --lba 0 --blocks 4096 --seed 11 >/dev/null || fail "write through the vvol"
"$TIO" verify "$R" --lba 0 --blocks 4096 --seed 11 >/dev/null || fail "d2 does not hold what was written through d1"
"$TIO" write "$R" --lba 5000 --blocks 3000 --seed 12 >/dev/null || fail "write on d2"
"$TIO" verify "$V" --lba 5000 --blocks 3000 --seed 12 >/dev/null || fail "d1's vvol does not read what d2 holds"
# odd sizes and places, small transfers, FUA (write + SYNCHRONIZE CACHE on the peer)
"$TIO" write "$V" --lba 9001 --blocks 77 --xfer-blocks 3 --qd 16 --seed 13 >/dev/null || fail "small writes through the vvol"
"$TIO" write "$V" --lba 9500 --blocks 100 --fua --seed 14 >/dev/null || fail "FUA writes through the vvol"
"$TIO" verify "$R" --lba 9001 --blocks 77 --seed 13 >/dev/null && "$TIO" verify "$R" --lba 9500 --blocks 100 --seed 14 >/dev/null ||
    fail "small or FUA writes through the vvol are not on d2"
log "data: after 600 random 64 KiB writes through d1 the LUs compare equal; d1 -> d2 and d2 -> d1 verify"

# ---- 4096-byte blocks ----
"$TIO" load "$V4" --rw randwrite --bs 16k --qd 8 --ios 300 --seed 6 > "$WORK/load.out" 2>&1 || fail "load on the 4096-byte vvol: $(cat "$WORK/load.out")"
"$TIO" compare "$V4" "$R4" > "$WORK/cmp.out" 2>&1 || fail "tio compare 4096-byte vvol / d2: $(cat "$WORK/cmp.out")"
"$TIO" write "$V4" --lba 0 --blocks 1000 --seed 41 >/dev/null || fail "write through the 4096-byte vvol"
"$TIO" verify "$R4" --lba 0 --blocks 1000 --seed 41 >/dev/null || fail "4096-byte blocks written through d1 are not on d2"
"$TIO" write "$R4" --lba 1200 --blocks 500 --seed 42 >/dev/null || fail "write on d2's 4096-byte LU"
"$TIO" verify "$V4" --lba 1200 --blocks 500 --seed 42 >/dev/null || fail "4096-byte blocks of d2 do not read through d1"
log "4096-byte blocks: the LUs compare equal after a load through d1; both ways verify"

# ---- SYNCHRONIZE CACHE ----
"$TIO" sync "$V" > "$WORK/sync.out" 2>&1 || fail "SYNCHRONIZE CACHE through the vvol: $(cat "$WORK/sync.out")"
"$TIO" sync "$V4" > "$WORK/sync.out" 2>&1 || fail "SYNCHRONIZE CACHE through the 4096-byte vvol: $(cat "$WORK/sync.out")"
log "SYNCHRONIZE CACHE through the vvols: GOOD (forwarded: it fails NOT READY while d2 is down, below)"

# ---- remote command device ----
"$TANDEMCTL" -d "$VC" --json info > "$WORK/info.json" 2>&1 || fail "tandemctl on d1's remote command device: $(cat "$WORK/info.json")"
[ "$(field name < "$WORK/info.json")" = d2 ] || fail "info through d1's LUN 3 is not d2's: $(cat "$WORK/info.json")"
"$TANDEMCTL" -d "$VC" vol list > "$WORK/vols" 2>&1 || fail "vol list through d1: $(cat "$WORK/vols")"
grep -Eq '^4 +raid +' "$WORK/vols" && ! grep -Eq '^2[124] +vvol' "$WORK/vols" || fail "vol list through d1 is not d2's: $(cat "$WORK/vols")"
printf 'TDM1 info tag=raw1\n' > "$WORK/raw1"
printf 'put 512 %s\nget 512 8 %s\n' "$WORK/raw1" "$WORK/raw1.res" | sess_run "$VC" "$IQN_BASE:rawhost"
grep -q '^TDM1 result status=0 name=OK tag=raw1 ' "$WORK/raw1.res" && grep -q '^device name=d2 ' "$WORK/raw1.res" ||
    fail "a raw command block through d1 did not run on d2: $(text "$WORK/raw1.res")"
log "remote command device: tandemctl and a raw block (tio session) through d1 LUN 3 run on d2"
# The remote command device takes the commands d2's own command device takes, and refuses the
# others the same way (INVALID OPERATION CODE, which iscsi-test-cu reports as "<CMD> is not
# implemented"). WRITE SAME, WRITE AND VERIFY, ORWRITE or VERIFY accepted by d1 would be forwarded
# as plain reads and writes on a pooled peer session (no host key): possibly another host's
# session on d2, so a command block they carry would run, and leave its result, in that host's
# nexus (checked at the end).
opcode_bugs=""
for t in WriteSame10.Simple WriteVerify10.Simple OrWrite.Simple Verify10.Simple; do
    for u in "$C2" "$VC"; do
        iscsi-test-cu --dataloss --verbose -i "$IQN_BASE:cu1" -I "$IQN_BASE:cu2" --test="ALL.$t" "$u" \
            > "$WORK/cu.out" 2>&1 || true
        if grep -q 'is not implemented' "$WORK/cu.out"; then echo refused; else echo accepted; fi
    done > "$WORK/cu.verdicts"
    [ "$(head -n 1 "$WORK/cu.verdicts")" = refused ] || fail "d2's command device accepts $t: harness problem?"
    [ "$(tail -n 1 "$WORK/cu.verdicts")" = refused ] || opcode_bugs+="${t%%.*} "
done
if [ -n "$opcode_bugs" ]; then
    log "BUG (reported at the end): the remote command device (kind=cmddev vvol) accepts what d2's command device refuses: $opcode_bugs"
else
    log "the remote command device refuses WRITE SAME, WRITE AND VERIFY, ORWRITE and VERIFY as d2's own does"
fi

# ---- two hosts, one slot, through d1 ----
# Each round: A and B write different commands to slot 2 (LBA 1024), in both orders, then each
# reads its own result, once. A fresh host on d2 itself sees nothing in that slot.
for r in 1 2 3 4; do
    printf 'TDM1 vol-list tag=a%d\n' $r > "$WORK/a.cmd"
    printf 'TDM1 info tag=b%d\n' $r > "$WORK/b.cmd"
    mkfifo "$WORK/a.in" "$WORK/b.in"
    "$TIO" session "$VC" -i "$IQN_BASE:hostA" < "$WORK/a.in" > "$WORK/a.out" 2>&1 & pa=$!
    "$TIO" session "$VC" -i "$IQN_BASE:hostB" < "$WORK/b.in" > "$WORK/b.out" 2>&1 & pb=$!
    exec {fa}> "$WORK/a.in" {fb}> "$WORK/b.in"
    if [ $((r % 2)) = 1 ]; then first=fa second=fb; f1=a f2=b; else first=fb second=fa; f1=b f2=a; fi
    echo "put 1024 $WORK/$f1.cmd" >&"${!first}"; wait_for 20 answered "$WORK/$f1.out" 1 || fail "round $r: no answer to $f1's put"
    echo "put 1024 $WORK/$f2.cmd" >&"${!second}"; wait_for 20 answered "$WORK/$f2.out" 1 || fail "round $r: no answer to $f2's put"
    echo "get 1024 8 $WORK/a.res" >&$fa; echo "get 1024 8 $WORK/a.again" >&$fa
    echo "get 1024 8 $WORK/b.res" >&$fb; echo "get 1024 8 $WORK/b.again" >&$fb
    exec {fa}>&- {fb}>&-
    wait $pa || fail "round $r: host A's session: $(cat "$WORK/a.out")"
    wait $pb || fail "round $r: host B's session: $(cat "$WORK/b.out")"
    rm -f "$WORK/a.in" "$WORK/b.in"
    grep -q "^TDM1 result status=0 name=OK tag=a$r " "$WORK/a.res" && grep -q '^vol volid=1 type=raid ' "$WORK/a.res" &&
        ! grep -q '^device ' "$WORK/a.res" || fail "round $r: host A read: $(text "$WORK/a.res")"
    grep -q "^TDM1 result status=0 name=OK tag=b$r " "$WORK/b.res" && grep -q '^device name=d2 ' "$WORK/b.res" ||
        fail "round $r: host B read: $(text "$WORK/b.res")"
    [ -z "$(text "$WORK/a.again")$(text "$WORK/b.again")" ] || fail "round $r: a result could be read twice"
done
"$TIO" get "$C2" --lba 1024 --blocks 8 -i "$IQN_BASE:hostC" | cmp -s - <(head -c 4096 /dev/zero) ||
    fail "a host of d2 itself read something in the slot the hosts of d1 used"
log "two hosts through d1, one slot, 4 rounds in both orders: each read its own result, once"

# ---- more hosts than peer sessions: never another host's result ----
# A kind=cmddev vvol with sessions=2 and three hosts taking turns: a host whose session was taken
# over by another host may lose its result (a new login on d2), but must never read another's.
lu_add d1 5 vvol "$(device_url d2 1)" "volid=25;kind=cmddev;sessions=2" || fail "vvol sessions=2"
VS=$(device_url d1 5)
mkfifo "$WORK/h1.in" "$WORK/h2.in" "$WORK/h3.in"
for h in 1 2 3; do
    "$TIO" session "$VS" -i "$IQN_BASE:multi$h" < "$WORK/h$h.in" > "$WORK/h$h.out" 2>&1 &
    eval "ph$h=\$!"
done
exec {g1}> "$WORK/h1.in" {g2}> "$WORK/h2.in" {g3}> "$WORK/h3.in"
lost=0
for r in 1 2 3; do
    for h in 1 2 3; do
        printf 'TDM1 info tag=h%dr%d\n' $h $r > "$WORK/h$h.cmd.$r"
        fd=g$h; echo "put 1536 $WORK/h$h.cmd.$r" >&"${!fd}"
        wait_for 20 answered "$WORK/h$h.out" $(( (r - 1) * 2 + 1 )) || fail "multi: host $h round $r: no answer"
    done
    for h in 1 2 3; do
        fd=g$h; echo "get 1536 8 $WORK/h$h.res.$r" >&"${!fd}"
        wait_for 20 answered "$WORK/h$h.out" $(( r * 2 )) || fail "multi: host $h round $r: no answer to get"
        got=$(text "$WORK/h$h.res.$r" | head -n 1)
        if [ -z "$got" ]; then
            lost=$((lost + 1))
        elif ! grep -q "^TDM1 result status=0 name=OK tag=h${h}r$r " <<<"$got"; then
            fail "BUG: host $h (round $r) read another host's result through a shared peer session: $got"
        fi
    done
done
exec {g1}>&- {g2}>&- {g3}>&-
wait "$ph1" "$ph2" "$ph3" || true
log "3 hosts on a kind=cmddev vvol with 2 peer sessions: no host read another's result ($lost of 9 results lost when a session was taken over)"
lu_del d1 5
# The same at once: 3 hosts x RACE_RUNS tandemctl runs on one slot of a kind=cmddev vvol with ONE
# peer session (every run is a new nexus on d1, so every run takes the session over). tandemctl
# exits 4 when the slot holds no result (lost: tolerated, counted) or another command's result
# (tag mismatch: a host read another host's result = BUG, reported at the end).
lu_add d1 5 vvol "$(device_url d2 1)" "volid=25;kind=cmddev;sessions=1" || fail "vvol sessions=1"
VS=$(device_url d1 5)
race_loop() {
    local h=$1 i rc
    for ((i = 1; i <= RACE_RUNS; i++)); do
        rc=0; "$TANDEMCTL" -d "$VS" -s 3 -i "$IQN_BASE:race$h" -t 30 info > "$WORK/race.$h.$i" 2>&1 || rc=$?
        echo "$rc $h $i" >> "$WORK/race.rc"
    done
}
RACE_RUNS=${RACE_RUNS:-100}
: > "$WORK/race.rc"
pids=(); for h in 1 2 3; do race_loop $h & pids+=($!); done
wait "${pids[@]}"
race_lost=$(cat "$WORK"/race.*.* | grep -c '^tandemctl: no result in slot 3' || true)
race_foreign=$(cat "$WORK"/race.*.* | grep -c '^tandemctl: slot 3 holds the result of another command' || true)
race_other=$(awk '$1 != 0 && $1 != 4' "$WORK/race.rc" | head -n 3)
[ -z "$race_other" ] || fail "concurrent hosts on a sessions=1 kind=cmddev vvol: tandemctl failed (rc host run): $race_other: $(cat "$WORK/race.$(awk '$1 != 0 && $1 != 4 { print $2 "." $3; exit }' "$WORK/race.rc")")"
race_bug=""
if [ "$race_foreign" -gt 0 ]; then
    race_bug="$race_foreign of $((3 * RACE_RUNS)) tandemctl runs (3 hosts at once, 1 peer session) read another host's result, e.g. '$(grep -h 'holds the result of another' "$WORK"/race.*.* | head -n 1)'"
    log "BUG (reported at the end): $race_bug"
fi
log "3 hosts at once on a kind=cmddev vvol with 1 peer session: $((3 * RACE_RUNS)) runs, $race_lost lost results, $race_foreign foreign results"
lu_del d1 5

# ---- the command-device table of d1 names d2's command device; --via ----
"$TANDEMCTL" -d "$C1" call cmddev-add device=d2 lun=3 volid=22 > "$WORK/add.out" 2>&1 || fail "cmddev-add on d1: $(cat "$WORK/add.out")"
"$TANDEMCTL" -d "$C1" --json cmddev show > "$WORK/show.json" || fail "cmddev show on d1"
python3 - "$WORK/show.json" <<'EOF' || fail "d1's command-device table: $(cat "$WORK/show.json")"
import json, sys
r = json.load(open(sys.argv[1]))["records"]
sys.exit(0 if r == [{"record": "cmddev", "device": "d2", "lun": 3, "volid": 22}] else 1)
EOF
"$TANDEMCTL" -d "$C1" --via d2 --json info > "$WORK/via.json" 2>&1 || fail "tandemctl --via d2: $(cat "$WORK/via.json")"
[ "$(field name < "$WORK/via.json")" = d2 ] || fail "--via d2 reached $(cat "$WORK/via.json")"
"$TANDEMCTL" -d "$C1" --json call lunmap-show > "$WORK/lunmap.json" || fail "lunmap-show on d1"
python3 - "$WORK/lunmap.json" "$(device_url d2 2)" "$(device_url d2 1)" "$(device_url d2 4)" <<'EOF' || fail "d1's LUN map: $(cat "$WORK/lunmap.json")"
import json, sys
r = {x["volid"]: x for x in json.load(open(sys.argv[1]))["records"]}
want = {21: (sys.argv[2], "data", 512), 22: (sys.argv[3], "cmddev", 512), 24: (sys.argv[4], "data", 4096)}
for v, (url, kind, block) in want.items():
    x = r.get(v)
    if not x or x["url"] != url or x["kind"] != kind or x["open"] != "yes" or x["sessions_connected"] < 1:
        sys.exit("volid %d: %s" % (v, x))
EOF
log "cmddev-add device=d2 lun=3 volid=22 is in d1's table, --via d2 reaches d2; lunmap-show lists volids 21, 22, 24 with their URLs"

# ---- LUN map: d1 restarted while d2 is down ----
size21=$(capacity "$V") size24=$(capacity "$V4")
device_kill d2
device_stop d1
device_start d1 127.0.0.2
V=$(device_url d1 2) V4=$(device_url d1 4) VC=$(device_url d1 3) C1=$(device_url d1 1)
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100" || fail "d1's command device does not reopen"
for spec in "2 2 21" "3 1 22;kind=cmddev" "4 4 24"; do
    read -r lun plun opts <<<"$spec"
    t0=$(ms_now)
    lu_add d1 "$lun" vvol "iscsi://127.0.0.3:$D2_PORT/$IQN_BASE:d2/$plun" "volid=$opts;timeout_s=$TIMEOUT_S" ||
        fail "with d2 down, vvol volid ${opts%%;*} does not open from the LUN map: $(grep 'cannot open' "$(device_log d1)" | tail -n 1)"
    log "with d2 down, vvol LUN $lun (volid ${opts%%;*}) opened from the LUN map in $(( $(ms_now) - t0 )) ms"
done
# (the reason is libiscsi's error text, which may end in a newline: the line can be split)
log_has d1 "vvol volid 21: peer .* is down" && log_has d1 "serving NOT READY until it returns \(size from the LUN map\)" ||
    fail "no log line saying volid 21 opened from the LUN map"
expect_fail "a vvol without a LUN map record opens while its peer is down" \
    lu_add d1 6 vvol "iscsi://127.0.0.3:$D2_PORT/$IQN_BASE:d2/2" "volid=26;timeout_s=$TIMEOUT_S"
log_has d1 "and the LUN map has no record of volid 26's size" || fail "the refused vvol's reason is not logged"
[ "$(capacity "$V")" = "$size21" ] && [ "$(capacity "$V4")" = "$size24" ] ||
    fail "sizes from the LUN map: '$(capacity "$V")' / '$(capacity "$V4")', before: '$size21' / '$size24'"
not_ready='sense key NOT READY \(0x2\), asc/ascq 0x08/0x0[01]'
for what in "read:$TIO verify $V --lba 0 --blocks 8 --seed 11" "write:$TIO write $V --lba 100 --blocks 8 --seed 15" \
            "sync:$TIO sync $V" "read-4k:$TIO verify $V4 --lba 0 --blocks 2 --seed 41" \
            "raw-cmddev:$TIO put $VC --lba 512 --file $WORK/raw1"; do
    name=${what%%:*}
    for i in 1 2 3; do
        timed "$WORK/nr.out" ${what#*:} -t 30
        [ $RC = 1 ] && grep -Eq "$not_ready" "$WORK/nr.out" ||
            fail "$name through the vvol with d2 down (try $i): rc $RC: $(cat "$WORK/nr.out")"
        log "d2 down: $name answered in $MS ms: $(grep -Eo 'sense key NOT READY.*' "$WORK/nr.out")"
    done
done
timed "$WORK/ctl.out" timeout 25 "$TANDEMCTL" -d "$VC" -t 30 info   # timeout: a hang guard only
[ $RC = 3 ] || fail "tandemctl through the vvol with d2 down: rc $RC in $MS ms: $(cat "$WORK/ctl.out")"
"$TANDEMCTL" -d "$C1" --json call lunmap-show > "$WORK/lunmap.json" || fail "lunmap-show on d1 with d2 down"
grep -q '"volid":21,' "$WORK/lunmap.json" || fail "lunmap-show with d2 down: $(cat "$WORK/lunmap.json")"
log "d2 down: reads, writes, SYNCHRONIZE CACHE and command blocks through d1 fail NOT READY (answered, not hung); d1 answers"

# ---- d2 back on the same port: the vvols serve again by themselves ----
device_start d2 127.0.0.3 "$D2_PORT"
d2_luns assemble
t0=$SECONDS
wait_for 30 "$TIO" verify "$V" --lba 0 --blocks 4096 --seed 11 || fail "the vvol does not serve again 30 s after d2 came back"
log "d2 back on port $D2_PORT: the vvol serves again after $((SECONDS - t0)) s, data intact"
wait_for 30 "$TIO" verify "$V4" --lba 1200 --blocks 500 --seed 42 || fail "the 4096-byte vvol does not serve again"
wait_for 30 "$TANDEMCTL" -d "$VC" info || fail "the remote command device does not serve again"
"$TANDEMCTL" -d "$VC" --json info > "$WORK/info.json" && [ "$(field name < "$WORK/info.json")" = d2 ] ||
    fail "info through d1 after d2 came back: $(cat "$WORK/info.json")"
"$TIO" write "$V" --lba 20000 --blocks 512 --seed 16 >/dev/null && "$TIO" verify "$R" --lba 20000 --blocks 512 --seed 16 >/dev/null ||
    fail "writes through d1 after d2 came back are not on d2"
"$TIO" compare "$V" "$R" > "$WORK/cmp.out" 2>&1 || fail "compare after d2 came back: $(cat "$WORK/cmp.out")"
! grep -Eq 'segfault|tgtd: .*(abort|assert)' "$(device_log d1)" || fail "d1's log shows a crash"
[ -z "$opcode_bugs" ] || fail "BUG: the remote command device (kind=cmddev vvol) accepts $opcode_bugs(d2's command device answers INVALID OPERATION CODE); d1 forwards them as reads/writes on any pooled peer session, possibly another host's${race_bug:+; and: $race_bug}"
[ -z "$race_bug" ] || fail "BUG: per-host peer sessions: $race_bug (replication/peer.c sess_get: a session taken over by another key between key_lock and the session lock)"
log "PASS"
