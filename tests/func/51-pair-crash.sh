#!/usr/bin/env bash
# Remote replication under faults (docs/replication.md, "Failure handling"), with test 50's two
# devices; d2's three vvols onto d1 (P-VOL, journal, command device) pass through tproxy.
# (1) Autonomous mode keeps the S-VOL write-order consistent: at seeded moments during a
#     sequential (qd 1) log-writer on the P-VOL, pair-suspend freezes the S-VOL, `tio order-check`
#     finds it to be exactly the writer's state at one generation K (K = restore_completed minus
#     the sequence before the writer), K grows from check to check, pair-resume.
# (2) kill -9 of d2 with a backlog piled up in host mode, (a) during the acquisition and (b)
#     during the restore, while a writer runs: after a restart on the same port with the same LUs
#     (no create) d2's log says where it resumed (restore-completed N, read-completed M), it goes
#     on from there (acquired_entries / restored_entries after the restart = the pointers' growth
#     from M / N: nothing fetched or applied twice) and, once in auto mode, catches up: S == P.
# (3) kill -9 of d1 under a qd 8 random-write load (which exits 3): restarted, d1's log says the
#     pair was loaded and how many entries were redone; journal-in is past what was applied
#     before the kill; d2's vvols reconnect by themselves; more writes; catch-up; S == P.
# (4) The peer link cut (tproxy blackhole) under a write load: d2 reports link=down and a
#     last_error, d1's host writes go on (journaled); link back: catch-up without a gap, nothing
#     restored twice (restored_entries grew by exactly restore_completed's growth); S == P.
# SEED replays the random moments (printed at the start). A switch to auto mode must purge what
# host mode acquired, with no new write (checked after each switch).
. "$(dirname "$0")/functions.sh"
requires cc timeout
SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"
RANDOM=$SEED

device_start d1 127.0.0.2
device_start d2 127.0.0.3
D1_PORT=${DEV_PORT[d1]} D2_PORT=${DEV_PORT[d2]}
tproxy_start "127.0.0.2:$D1_PORT"
VIA="iscsi://127.0.0.4:$PX_PORT/$IQN_BASE:d1"     # d1's LUs as d2 sees them (through tproxy)

PLIST=$(members "$WORK/p" 4 40M) PJLIST=$(members "$WORK/pj" 3 20M)
SLIST=$(members "$WORK/s" 5 40M) SJLIST=$(members "$WORK/sj" 3 20M)
d1_luns() { # create|assemble
    if [ "$1" = create ]; then
        lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
        lu_add d1 2 raid "$PLIST" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
        lu_add d1 3 raid "$PJLIST" "volid=11;layout=2D+1P;chunk_kib=64;create=1"
    else
        lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100"
        lu_add d1 2 raid "$PLIST" "volid=10"
        lu_add d1 3 raid "$PJLIST" "volid=11"
    fi
    # d1's view of d2's command device (direct; on a restart d2 is up)
    [ "$1" = create ] || lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"
}
d2_luns() { # create|assemble
    if [ "$1" = create ]; then
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2"
        lu_add d2 2 raid "$SLIST" "volid=20;layout=4D+1P;chunk_kib=64;create=1"
        lu_add d2 3 raid "$SJLIST" "volid=21;layout=2D+1P;chunk_kib=64;create=1"
    else
        lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200"
        lu_add d2 2 raid "$SLIST" "volid=20"
        lu_add d2 3 raid "$SJLIST" "volid=21"
    fi
    # d2's view of d1: P-VOL, journal, command device, through the link proxy
    lu_add d2 10 vvol "$VIA/2" "volid=30;timeout_s=2"
    lu_add d2 11 vvol "$VIA/3" "volid=31;timeout_s=2"
    lu_add d2 12 vvol "$VIA/1" "volid=32;kind=cmddev;timeout_s=2"
}
d1_luns create
d2_luns create
lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"

P=$(device_url d1 2) S=$(device_url d2 2)
ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
ok1() { ctl1 "$@" > "$WORK/ctl.out" 2>&1 || fail "d1: tandemctl $*: $(cat "$WORK/ctl.out")"; }
ok2() { ctl2 "$@" > "$WORK/ctl.out" 2>&1 || fail "d2: tandemctl $*: $(cat "$WORK/ctl.out")"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
# snap1 / snap2: one pair-status of d1 / d2 (one consistent record); g1 / g2 FIELD read it
snap1() { ST1=$(ctl1 call pair-status id=1 2>&1) || fail "d1 pair-status: $ST1"; }
snap2() { ST2=$(ctl2 call pair-status id=1 2>&1) || fail "d2 pair-status: $ST2"; }
try2() { ST2=$(ctl2 call pair-status id=1 2>&1); }   # in wait_for conditions: no fail
g1() { awk -v f="$1" '$1 == f { print $2 }' <<< "$ST1"; }
g2() { awk -v f="$1" '$1 == f { print $2 }' <<< "$ST2"; }
g2all() { awk -v f="$1" '$1 == f { $1 = ""; sub(/^ +/, ""); print }' <<< "$ST2"; }
brief1() { ctl1 call pair-status id=1 2>&1 | awk '$1 ~ /^(state|ready|journal_in|journal_out|confirmed|applied|entries|used_percent|missing|reason)$/ { printf "%s=%s ", $1, $2 }'; }
brief2() { ctl2 call pair-status id=1 2>&1 | awk '$1 ~ /^(state|ready|mode|restore_completed|to_be_restored|read_completed|to_be_read|link|acquired_entries|restored_entries|missing|last_error)$/ { printf "%s=%s ", $1, $2 }'; }
both() { echo "d1: $(brief1) | d2: $(brief2)"; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
PBLOCKS=$("$TIO" info "$P" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
equal() { tio_ok "$1: compare P-VOL with S-VOL" compare "$P" "$S" --blocks "$PBLOCKS"; }
# caught up: d2 restored everything d1 journaled, and d1 purged it all
caught_up() { local j; j=$(f1 journal_in); [ -n "$j" ] && [ "$(f2 restore_completed)" = $((j - 1)) ] && [ "$(f1 journal_out)" = "$j" ]; }
catch_up() { wait_for "${2:-60}" caught_up || fail "$1: d2 did not catch up: $(both)"; }
auto() { ok2 call pair-mode id=1 mode=auto interval_ms=20; }
host() { ok2 call pair-mode id=1 mode=host; }
# bg_load TAG ARGS...: a background tio load on the P-VOL; sets BG; bg_wait TAG RC: its exit code
bg_load() { local tag=$1; shift; "$TIO" load "$P" --rw randwrite --bs 4096 "$@" > "$WORK/load.$tag" 2>&1 & BG=$!; }
bg_wait() { local rc=0; wait "$BG" || rc=$?; [ "$rc" = "$2" ] || fail "$1: the load exited $rc, not $2: $(tail -3 "$WORK/load.$1")"; }
# the line d2 logs when it loads the aux journal, after MARK: sets RN (restore-completed) RM (read-)
aux_line() { tail -n +"$(($1 + 1))" "$(device_log d2)" | grep -E "pair 1: auxiliary journal volid 21: restore-completed [0-9]+, read-completed [0-9]+" | tail -1; }
aux_loaded() { [ -n "$(aux_line "$1")" ]; }
aux_resumed() {
    local line
    wait_for 30 aux_loaded "$1" || fail "$2: d2's log does not say where the pair resumed: $(tail -n +"$(($1 + 1))" "$(device_log d2)" | grep 'pair 1' | tail -5)"
    line=$(aux_line "$1")
    RN=$(sed -n 's/.*restore-completed \([0-9]*\), read-completed \([0-9]*\).*/\1/p' <<< "$line")
    RM=$(sed -n 's/.*restore-completed \([0-9]*\), read-completed \([0-9]*\).*/\2/p' <<< "$line")
    [ "$RM" -ge "$RN" ] || fail "$2: d2 resumed with read-completed $RM < restore-completed $RN"
}
restart_d2() { device_start d2 127.0.0.3 "$D2_PORT" > /dev/null; d2_luns assemble; }
restart_d1() { device_start d1 127.0.0.2 "$D1_PORT" > /dev/null; d1_luns assemble; }
paired() { [ "$(f2 state)" = paired ]; }

# ---------------- set-up: the pair in autonomous mode; the first B blocks stay zero ----------------
B=8192                                  # the order-check writer's range (4 MiB)
tio_ok "initial pattern" write "$P" --seed 1 --lba $B --blocks $((PBLOCKS - B)) --qd 16
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 mode=auto interval_ms=20 overflow=throttle
wait_for 60 paired || fail "the copy did not finish: $(both)"
catch_up "after the copy"
equal "after the copy"
log "copy through the proxy done; caught up at $(f2 restore_completed); equal"

# ---------------- (1) write-order consistency of the S-VOL in auto mode ----------------
snap1; BASE=$(( $(g1 journal_in) - 1 ))   # generation g of the writer is sequence BASE + g
"$TIO" log-writer "$P" --out "$WORK/order.acked" --qd 1 --seconds 8 --blocks $B --seed $SEED \
    > "$WORK/writer.order" 2>&1 &
WPID=$!
restored_past() { [ "$(f2 restore_completed)" -gt "$1" ]; }
progress_or_end() { restored_past "$1" || ! kill -0 $WPID 2>/dev/null; }
prevK=0 prevRC=$BASE checks=0 ks=""
for i in 1 2 3 4; do
    wait_for 30 progress_or_end "$prevRC" || fail "(1) check $i: nothing restored past $prevRC: $(both)"
    restored_past "$prevRC" || break       # the writer ended and all of it was checked
    ms=$((RANDOM % 1500))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"   # a seeded random moment
    ok2 call pair-suspend id=1
    snap2; rc1=$(g2 restore_completed)
    [ "$(g2 state)" = suspended ] || fail "(1) check $i: not suspended: $(both)"
    "$TIO" order-check "$S" --log "$WORK/order.acked" --wait-s 20 > "$WORK/order.$i" 2>&1 ||
        fail "(1) check $i (restore_completed $rc1): the S-VOL is not a write-order consistent image: $(tail -8 "$WORK/order.$i")"
    snap2; rc2=$(g2 restore_completed)
    ok2 call pair-resume id=1
    K=$(sed -n 's/^order-check: ok: image = writer state at generation \([0-9]*\) .*/\1/p' "$WORK/order.$i")
    [ -n "$K" ] || fail "(1) check $i: order-check said: $(cat "$WORK/order.$i")"
    [ "$rc1" = "$rc2" ] || fail "(1) check $i: the S-VOL changed while suspended: restore_completed $rc1, then $rc2"
    [ "$K" -gt "$prevK" ] || fail "(1) check $i: K $K did not grow (previous check: $prevK)"
    [ "$K" -eq $((rc1 - BASE)) ] ||
        fail "(1) check $i: the image is the writer's state at generation $K, but restore_completed $rc1 says $((rc1 - BASE))"
    ks+=" $K"; prevK=$K prevRC=$rc1 checks=$((checks + 1))
    kill -0 $WPID 2>/dev/null || break
done
rc=0; wait $WPID || rc=$?
[ $rc = 0 ] || fail "(1) the log-writer exited $rc: $(tail -3 "$WORK/writer.order")"
[ $checks -ge 3 ] || fail "(1) only $checks checks while the writer ran"
catch_up "(1) after the writer"
"$TIO" order-check "$S" --log "$WORK/order.acked" > "$WORK/order.end" 2>&1 ||
    fail "(1) after the catch-up: $(tail -8 "$WORK/order.end")"
last=$(awk '!/^#/ && NF == 3 { g = $3 } END { print g }' "$WORK/order.acked")
grep -q "generation $last " "$WORK/order.end" || fail "(1) caught up, but the S-VOL is not the writer's last state ($last): $(cat "$WORK/order.end")"
equal "(1) after the writer"
log "(1) $checks suspended checks during the writer: S-VOL = the writer's state at generations$ks (= restore_completed - $BASE each time); caught up at generation $last; equal"

# ---------------- (2a) kill -9 of d2 during the acquisition of a backlog ----------------
host
px pass delay 10                        # a slow link: the acquisition takes a while
tio_ok "(2a) backlog" load "$P" --rw randwrite --bs 4096 --qd 8 --ios 4000 --seed 21
snap2; rc0=$(g2 restore_completed) rd0=$(g2 read_completed)
[ "$(g2 to_be_restored)" = "$rc0" ] || fail "(2a) a restore is pending in host mode: $(both)"
ok2 call pair-acquire id=1
read_past() { [ "$(f2 read_completed)" -gt "$1" ]; }
wait_for 30 read_past "$rd0" || fail "(2a) the acquisition did not start: $(both)"
bg_load 2a --qd 1 --ios 1500 --seed 22   # a writer runs meanwhile
snap2
[ "$(g2 read_completed)" -lt "$(g2 to_be_read)" ] || fail "(2a) the acquisition is too quick to interrupt: $(both)"
before="read_completed $(g2 read_completed) of to_be_read $(g2 to_be_read)"
tbr=$(g2 to_be_read)
device_kill d2
mark=$(log_mark d2)
px pass delay 0
restart_d2
aux_resumed "$mark" "(2a)"
[ "$RN" = "$rc0" ] || fail "(2a) restore-completed $RN after the restart; nothing was restored since $rc0"
[ "$RM" -ge "$rd0" ] && [ "$RM" -lt "$tbr" ] ||
    fail "(2a) read-completed $RM after the restart: outside [$rd0, $tbr), the acquisition was not interrupted?"
# host mode: the acquisition goes on by itself to the target it had (the header keeps it)
acquired_to() { try2 && [ "$(g2 read_completed)" -ge "$1" ] && [ "$(g2 read_completed)" = "$(g2 to_be_read)" ]; }
wait_for 60 acquired_to "$tbr" || fail "(2a) the acquisition did not resume to $tbr: $(both)"
snap2
[ "$(g2 acquired_entries)" -eq $(($(g2 read_completed) - RM)) ] ||
    fail "(2a) $(g2 acquired_entries) entries acquired after the restart for read_completed $RM -> $(g2 read_completed)"
[ "$(g2 restore_completed)" = "$rc0" ] || fail "(2a) host mode restored without a pair-restore: $(both)"
bg_wait 2a 0
auto
catch_up "(2a)"
equal "(2a)"
log "(2a) d2 killed during the acquisition ($before); resumed at restore-completed $RN, read-completed $RM; acquired on to $tbr by itself; caught up in auto mode; equal"

# ---------------- (2b) kill -9 of d2 during the restore ----------------
# The restore of a full journal takes a fraction of a second here, so the kill comes a seeded
# number of ms after pair-restore; an attempt counts when d2's log after the restart says it was
# killed between the first durable batch and the end (rc0 < N < T). Otherwise the delay adapts
# (longer if nothing was restored yet, shorter if all was) and, after a catch-up, it goes again.
restored_to() { try2 && [ "$(g2 restore_completed)" -ge "$1" ] && [ "$(g2 restore_completed)" = "$(g2 to_be_restored)" ]; }
D=$((30 + RANDOM % 60)) tries=""
for attempt in 1 2 3 4 5 6; do
    host
    tio_ok "(2b) backlog" load "$P" --rw randwrite --bs 4096 --qd 8 --ios 5000 --seed $((23 + attempt))
    upto=$(( $(f1 journal_in) - 1 ))
    ok2 call pair-acquire id=1 upto=$upto
    wait_for 60 acquired_to "$upto" || fail "(2b) the acquisition to $upto: $(both)"
    snap2; rc0=$(g2 restore_completed) T=$(g2 read_completed)
    [ "$T" -gt "$rc0" ] || fail "(2b) nothing to restore: $(both)"
    bg_load 2b --qd 1 --ios 1000 --seed $((33 + attempt))   # a writer runs meanwhile
    ok2 call pair-restore id=1
    sleep "$(printf '%d.%03d' $((D / 1000)) $((D % 1000)))"   # a seeded random moment
    device_kill d2
    mark=$(log_mark d2)
    restart_d2
    aux_resumed "$mark" "(2b)"
    [ "$RN" -ge "$rc0" ] && [ "$RN" -le "$T" ] || fail "(2b) restore-completed $RN after the restart, outside [$rc0, $T]"
    [ "$RM" -ge "$T" ] || fail "(2b) read-completed $RM after the restart < $T, acquired before"
    tries+=" ${D}ms:$((RN - rc0))/$((T - rc0))"
    if [ "$RN" -gt "$rc0" ] && [ "$RN" -lt "$T" ]; then break; fi
    if [ "$RN" = "$rc0" ]; then D=$((D + 40)); else D=$((D / 2)); fi
    bg_wait 2b 0
    auto
    catch_up "(2b) attempt $attempt"
    equal "(2b) attempt $attempt"
done
[ "$RN" -gt "$rc0" ] && [ "$RN" -lt "$T" ] ||
    fail "(2b) no kill landed inside the restore in $attempt attempts (delay:restored/to restore:$tries)"
# a batch was restored, so the header holds the target too: the restore goes on by itself
wait_for 60 restored_to "$T" || fail "(2b) the restore did not resume to $T: $(both)"
snap2
[ "$(g2 restored_entries)" -eq $(($(g2 restore_completed) - RN)) ] ||
    fail "(2b) $(g2 restored_entries) entries restored after the restart for restore_completed $RN -> $(g2 restore_completed)"
[ "$(g2 restore_completed)" = "$T" ] || fail "(2b) host mode restored past the target $T: $(both)"
bg_wait 2b 0
auto
catch_up "(2b)"
equal "(2b)"
log "(2b) d2 killed during the restore of $((rc0 + 1))..$T (attempts, delay:restored/to restore:$tries); resumed at restore-completed $RN, read-completed $RM; restored on to $T by itself ($(g2 restored_entries) entries, none twice); caught up; equal"

# ---------------- (3) kill -9 of d1 under a write load ----------------
j0=$(f1 journal_in)
bg_load 3 --qd 8 --seconds 60 --seed 31
journaled_past() { [ "$(f1 journal_in)" -gt "$1" ]; }
wait_for 30 journaled_past $((j0 + 3000)) || fail "(3) the load made no progress: $(both)"
sleep "0.$((RANDOM % 5))"
snap1; applied=$(g1 applied)
device_kill d1
bg_wait 3 3
mark=$(log_mark d1)
restart_d1
re='pair 1: journaling volid 10 into volid 11: journal-out [0-9]+, journal-in [0-9]+, [0-9]+ entries redone'
wait_for 30 log_has_since d1 "$mark" "$re" || fail "(3) d1's log does not say the pair was loaded: $(tail -n +"$((mark + 1))" "$(device_log d1)" | grep 'pair 1' | tail -5)"
line=$(tail -n +"$((mark + 1))" "$(device_log d1)" | grep -E "$re" | tail -1)
jin=$(sed -n 's/.*journal-in \([0-9]*\), \([0-9]*\) entries redone.*/\1/p' <<< "$line")
redone=$(sed -n 's/.*journal-in \([0-9]*\), \([0-9]*\) entries redone.*/\2/p' <<< "$line")
[ "$jin" -gt "$applied" ] || fail "(3) journal-in $jin after the restart; $applied were applied before the kill"
tio_ok "(3) writes after the restart" load "$P" --rw randwrite --bs 4096 --qd 8 --ios 3000 --seed 32
catch_up "(3)"
equal "(3)"
log "(3) d1 killed under load (applied $applied); restarted: journal-in $jin, $redone entries redone; d2 reconnected by itself; more writes; caught up at $(f2 restore_completed); equal"

# ---------------- (4) the peer link cut under a write load ----------------
snap2; rcA=$(g2 restore_completed) reA=$(g2 restored_entries)
j0=$(f1 journal_in)
bg_load 4 --qd 1 --ios 6000 --seed 41
wait_for 30 journaled_past $((j0 + 300)) || fail "(4) the load made no progress: $(both)"
px blackhole cut blackhole
link_down() { try2 && [ "$(g2 link)" = down ] && [ "$(g2 last_error)" != - ] && [ -n "$(g2 last_error)" ]; }
wait_for 30 link_down || fail "(4) d2 does not report the cut link: $(both)"
why=$(g2all last_error)
tio_ok "(4) host writes while the link is cut" write "$P" --seed 42 --lba 20000 --blocks 2048 --qd 4
tio_ok "(4) the P-VOL has them" verify "$P" --seed 42 --lba 20000 --blocks 2048
snap1
[ "$(g1 state)" = journaling ] || fail "(4) d1 stopped journaling while the link was cut: $(both)"
held=$(g1 entries)
rc_cut=$(f2 restore_completed)
px pass restore
bg_wait 4 0
catch_up "(4)"
snap2; snap1
rcB=$(g2 restore_completed) reB=$(g2 restored_entries)
[ "$rcB" = $(( $(g1 journal_in) - 1 )) ] || fail "(4) a gap: restore_completed $rcB, d1 journal_in $(g1 journal_in)"
[ $((reB - reA)) -eq $((rcB - rcA)) ] ||
    fail "(4) restored_entries grew by $((reB - reA)) while restore_completed went $rcA -> $rcB"
equal "(4)"
log "(4) link cut under load: d2 said link=down (last_error: $why); d1 journaled on ($held entries held, restore stopped near $rc_cut); link back: caught up at $rcB, $((reB - reA)) entries restored for $((rcB - rcA)) sequences; equal"
log "PASS"
