#!/usr/bin/env bash
# Remote replication I (docs/replication.md): device d1 (3D+1P P-VOL + journal) and device d2
# (4D+1P S-VOL + journal) on loopback. d2 reaches d1's P-VOL, journal and command device through
# vvols; d1 reaches d2's command device through a vvol. pair-create issued on d1 is forwarded to
# d2 (and one issued on d2 would go the other way). The copy runs under a write load on the P-VOL;
# the host-driven loop of Fig. 16 (tandemctl: status -> acquire -> status -> restore -> purge)
# brings the S-VOL equal to the P-VOL, and so does `tandemctl pair sync` (once and --loop); host writes to the journal and to the S-VOL are refused
# with DATA PROTECT; purge never passes what d2 confirmed; the autonomous mode converges by
# itself; pair-delete ends the pair on both devices.
. "$(dirname "$0")/functions.sh"
requires python3

device_start d1 127.0.0.2
device_start d2 127.0.0.3

lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 raid "$(members "$WORK/p" 4 40M)" "volid=10;layout=3D+1P;chunk_kib=64;create=1"
lu_add d1 3 raid "$(members "$WORK/pj" 3 20M)" "volid=11;layout=2D+1P;chunk_kib=64;create=1"
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2"
lu_add d2 2 raid "$(members "$WORK/s" 5 40M)" "volid=20;layout=4D+1P;chunk_kib=64;create=1"
lu_add d2 3 raid "$(members "$WORK/sj" 3 20M)" "volid=21;layout=2D+1P;chunk_kib=64;create=1"
# d2's view of d1: P-VOL, journal, command device
lu_add d2 10 vvol "$(device_url d1 2)" "volid=30"
lu_add d2 11 vvol "$(device_url d1 3)" "volid=31"
lu_add d2 12 vvol "$(device_url d1 1)" "volid=32;kind=cmddev"
# d1's view of d2's command device
lu_add d1 12 vvol "$(device_url d2 1)" "volid=40;kind=cmddev"

P=$(device_url d1 2) PJ=$(device_url d1 3) S=$(device_url d2 2) SJ=$(device_url d2 3)
ctl1() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
ctl2() { "$TANDEMCTL" -d "$(device_url d2 1)" "$@"; }
ok1() { ctl1 "$@" > "$WORK/ctl.out" 2>&1 || fail "d1: tandemctl $*: $(cat "$WORK/ctl.out")"; }
ok2() { ctl2 "$@" > "$WORK/ctl.out" 2>&1 || fail "d2: tandemctl $*: $(cat "$WORK/ctl.out")"; }
f1() { ctl1 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
f2() { ctl2 call pair-status id=1 | awk -v f="$1" '$1 == f { print $2 }'; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
PBLOCKS=$("$TIO" info "$P" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
equal() { tio_ok "$1: compare P-VOL with S-VOL" compare "$P" "$S" --blocks "$PBLOCKS"; }

tio_ok "initial pattern" write "$P" --seed 1 --qd 16

# ---- pair-create on d1, forwarded to d2; the copy runs under a write load ----
ok1 call pair-create id=1 role=primary pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 \
    s_peer=32 p_peer=40 mode=host overflow=throttle
[ "$(f1 role)" = primary ] && [ "$(f1 state)" = journaling ] || fail "d1: $(ctl1 call pair-status id=1)"
[ "$(f2 role)" = aux ] || fail "d2 has no aux half: $(ctl2 call pair-status)"
"$TIO" load "$P" --rw randwrite --bs 4096 --ios 3000 --qd 4 --seed 2 > "$WORK/load.out" 2>&1 || fail "load: $(cat "$WORK/load.out")"
copied() { [ "$(f2 state)" = paired ]; }
wait_for 60 copied || fail "the copy did not finish: $(ctl2 call pair-status id=1)"
log "copy done; d1 journal_in=$(f1 journal_in) entries=$(f1 entries)"

# ---- the host-driven loop of Fig. 16 ----
sync_once() {
    local jin upto rc
    jin=$(f1 journal_in); upto=$((jin - 1))
    ok2 call pair-acquire id=1 upto=$upto
    acquired() { [ "$(f2 read_completed)" = "$(f2 to_be_read)" ] && [ "$(f2 read_completed)" -ge "$upto" ]; }
    wait_for 30 acquired || fail "acquisition to $upto: $(ctl2 call pair-status id=1)"
    rc=$(f2 read_completed)
    ok2 call pair-restore id=1 upto=$rc
    restored() { [ "$(f2 restore_completed)" = "$(f2 to_be_restored)" ] && [ "$(f2 restore_completed)" -ge "$rc" ]; }
    wait_for 30 restored || fail "restore to $rc: $(ctl2 call pair-status id=1)"
    confirmed() { [ "$(f1 confirmed)" -ge "$rc" ]; }
    wait_for 30 confirmed || fail "d2 did not confirm $rc to d1: $(ctl1 call pair-status id=1)"
    ok1 call pair-purge id=1 upto=$rc
    [ "$(f1 journal_out)" = $((rc + 1)) ] || fail "purge to $rc: journal_out $(f1 journal_out)"
}
sync_once
equal "after the copy and one host-driven pass"
log "host-driven pass: restore_completed=$(f2 restore_completed) journal_out=$(f1 journal_out); equal"

# ---- guards: host writes to the journals and the S-VOL are refused ----
for u in "$PJ" "$SJ" "$S"; do
    if "$TIO" write "$u" --lba 0 --blocks 8 --seed 5 > "$WORK/g.out" 2>&1; then fail "a host write to $u was accepted"; fi
    grep -qi "data protect\|write protect" "$WORK/g.out" || fail "write to $u: not DATA PROTECT: $(cat "$WORK/g.out")"
done
log "host writes to both journals and the S-VOL: DATA PROTECT"

# ---- purge stops at what d2 confirmed ----
tio_ok "more writes" write "$P" --seed 3 --lba 100 --blocks 2000 --qd 4
jin=$(f1 journal_in); conf=$(f1 confirmed)
ok1 call pair-purge id=1 upto=$((jin - 1))
[ "$(f1 journal_out)" = $((conf + 1)) ] || fail "purge past the confirmation: journal_out $(f1 journal_out), confirmed $conf, journal_in $jin"
grep -q "confirmed no more" "$WORK/ctl.out" || fail "purge did not say it stopped early: $(cat "$WORK/ctl.out")"
# the same loop by tandemctl alone (command blocks only), once
jin=$(f1 journal_in)
ok1 pair sync 1 --aux "$(device_url d2 1)"
grep -q "acquired and restored" "$WORK/ctl.out" || fail "pair sync said: $(cat "$WORK/ctl.out")"
[ "$(f2 restore_completed)" = $((jin - 1)) ] && [ "$(f1 journal_out)" = "$jin" ] ||
    fail "after pair sync: d2 restore_completed $(f2 restore_completed), d1 journal_out $(f1 journal_out), journal_in was $jin"
equal "after tandemctl pair sync"
# and in a loop while a host writes
"$TIO" load "$P" --rw randwrite --bs 4096 --ios 3000 --qd 2 --seed 7 > "$WORK/load.out" 2>&1 &
loadpid=$!
ctl1 pair sync 1 --aux "$(device_url d2 1)" --loop 0.1 --count 8 > "$WORK/loop.out" 2>&1 || fail "pair sync --loop: $(cat "$WORK/loop.out")"
wait $loadpid || fail "load during the loop: $(cat "$WORK/load.out")"
ok1 pair sync 1 --aux "$(device_url d2 1)"
[ "$(grep -c "acquired and restored\|nothing to do" "$WORK/loop.out")" = 8 ] || fail "pair sync --loop --count 8: $(cat "$WORK/loop.out")"
equal "after pair sync --loop under writes"
log "tandemctl pair sync: once, and 8 rounds under writes; equal"

# ---- autonomous mode ----
ok2 call pair-mode id=1 mode=auto interval_ms=50
"$TIO" load "$P" --rw randwrite --bs 4096 --seconds 3 --qd 8 --seed 4 > "$WORK/load.out" 2>&1 || fail "load: $(cat "$WORK/load.out")"
caught_up() { local j; j=$(f1 journal_in); [ "$(f2 restore_completed)" = $((j - 1)) ] && [ "$(f1 journal_out)" = "$j" ]; }
wait_for 60 caught_up || fail "auto mode did not catch up: d1 $(ctl1 call pair-status id=1) d2 $(ctl2 call pair-status id=1)"
equal "in auto mode"
log "auto mode: caught up at sequence $(f2 restore_completed), journal purged; equal"

# ---- delete on d2, forwarded to d1 ----
ok2 call pair-delete id=1
ctl1 call pair-status id=1 > /dev/null 2>&1 && fail "pair 1 still on d1"
ctl2 call pair-status id=1 > /dev/null 2>&1 && fail "pair 1 still on d2"
tio_ok "the S-VOL is writable after delete" write "$S" --lba 0 --blocks 8 --seed 6

# ---- bad input: each refused with a reason, nothing created ----
bad() { # device expected-text params...
    local dev=$1 want=$2; shift 2
    if "ctl$dev" call pair-create "$@" > "$WORK/bad.out" 2>&1; then fail "accepted: pair-create $*"; fi
    grep -qi -- "$want" "$WORK/bad.out" || fail "pair-create $*: expected '$want', got: $(cat "$WORK/bad.out")"
}
A="id=2 pvol=10 pjnl=11 svol=20 sjnl=21 src_pvol=30 src_pjnl=31 s_peer=32 p_peer=40"
bad 1 "role=" $A
bad 1 "no volume with volid 99" role=primary ${A/pjnl=11/pjnl=99}
bad 1 "same" role=primary ${A/pjnl=11/pjnl=10}
bad 1 "must be a virtual volume of kind=cmddev" role=primary ${A/p_peer=40/p_peer=10}
bad 2 "kind=data" role=aux forwarded=1 ${A/src_pvol=30/src_pvol=32}
bad 2 "is a virtual volume" role=aux forwarded=1 ${A/svol=20/svol=30}
bad 2 "not a journal\|journal of pair\|no header" role=aux forwarded=1 ${A/src_pjnl=31/src_pjnl=30}
bad 1 "expected a volid" role=primary ${A/pvol=10/pvol=x}
bad 1 "expected auto or host" role=primary mode=fast $A
# forwarded halves: d2 refuses its half -> d1 undoes its own; d1 refuses -> d2 creates nothing
bad 1 "auxiliary device refused its half.*kind=data" role=primary ${A/src_pvol=30/src_pvol=32}
bad 2 "primary device refused its half.*no volume with volid 98" role=aux ${A/pvol=10/pvol=98}
[ "$(ctl1 call pair-status | grep -c '^pair\b')" = 0 ] || fail "a refused create left a pair on d1: $(ctl1 call pair-status)"
[ "$(ctl2 call pair-status | grep -c '^pair\b')" = 0 ] || fail "a refused create left a pair on d2: $(ctl2 call pair-status)"
log "bad pair-create parameters refused with reasons; no pair left behind"

# ---- pair-create issued on d2 (the auxiliary device) is forwarded to d1 ----
ok2 call pair-create role=aux mode=auto interval_ms=20 overflow=throttle $A
[ "$(ctl1 call pair-status id=2 | awk '$1 == "role" { print $2 }')" = primary ] || fail "d1 has no primary half of pair 2: $(ctl1 call pair-status)"
p2() { ctl2 call pair-status id=2 | awk -v f="$1" '$1 == f { print $2 }'; }
tio_ok "writes on pair 2" write "$P" --seed 8 --lba 5000 --blocks 4000 --qd 4
caught2() { local j; j=$(ctl1 call pair-status id=2 | awk '$1 == "journal_in" { print $2 }'); [ "$(p2 state)" = paired ] && [ "$(p2 restore_completed)" = $((j - 1)) ]; }
wait_for 60 caught2 || fail "pair 2 did not catch up: $(ctl2 call pair-status id=2)"
equal "pair 2, created from d2"
log "pair-create issued on d2 formed the pair on both devices; equal"
log "PASS"
