#!/usr/bin/env bash
# Two hosts at once on one command device: results belong to the session that wrote the command.
# Two sessions (initiators hostA and hostB, then two sessions of one initiator) write different
# commands to the same slot in every order and each reads only its own result, once; a host's
# read never consumes another's. Then 2 x 50 tandemctl runs in parallel from two loops, on the
# same slot and on different slots: every run exits 0 (tandemctl itself refuses a result whose
# tag is not its own, exit 4) and prints what its command asked for. One host with two commands
# in flight to one slot reads the result of the one that ran last. Last, the result table:
# with 1024 unread results a new command is answered SCSI BUSY and not executed; the host that
# owns results can still replace its own, and a read frees room.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"
RANDOM=$SEED

# A session driven line by line through FIFOs (results stay pending between lines).
declare -A SESS_W SESS_R SESS_PID
sess_open() {
    local n=$1 url=$2 fd
    shift 2
    mkfifo "$WORK/$n.in" "$WORK/$n.answers"
    # (without the other sessions' FIFO ends: each session must see its own EOF)
    ( for fd in "${SESS_W[@]}" "${SESS_R[@]}"; do exec {fd}>&-; done
      exec "$TIO" session "$url" "$@" < "$WORK/$n.in" > "$WORK/$n.answers" 2> "$WORK/$n.err" ) &
    SESS_PID[$n]=$!
    exec {fd}> "$WORK/$n.in"; SESS_W[$n]=$fd
    exec {fd}< "$WORK/$n.answers"; SESS_R[$n]=$fd
}
# sess NAME LINE: one command of that session; its answer line in $ANSWER.
sess_try() {
    (echo "$2" >&"${SESS_W[$1]}") 2>/dev/null || fail "session $1 is gone: $(cat "$WORK/$1.err")"
    read -r -t 30 ANSWER <&"${SESS_R[$1]}" || fail "session $1: no answer to '$2' ($(cat "$WORK/$1.err"))"
}
# sess NAME LINE: the same, and it must answer "ok ...".
sess() { sess_try "$@"; [ "${ANSWER%% *}" = ok ] || fail "session $1: '$2' -> $ANSWER"; }
sess_close() {
    local w=${SESS_W[$1]} r=${SESS_R[$1]} rc=0
    exec {w}>&- {r}<&-
    wait_for 30 _dead "${SESS_PID[$1]}" || fail "session $1 did not end at EOF"
    wait "${SESS_PID[$1]}" || rc=$?
    [ $rc -eq "${2:-0}" ] || fail "session $1 exited $rc: $(cat "$WORK/$1.err")"
}
text() { tr -d '\0' < "$1"; }
# table_devices: the device names in the command-device table, space-separated.
table_devices() {
    "$TANDEMCTL" -d "$U" --json cmddev show |
        python3 -c 'import json, sys; print(" ".join(x["device"] for x in json.load(sys.stdin)["records"]))' ||
        fail "tandemctl cmddev show failed"
}

device_start d1
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1;slots=64"
lu_add d1 2 raid "$(members "$WORK/m" 4 12M)" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
U=$(device_url d1 1)

# ---- two sessions, one slot ----
# round SESSION_X SESSION_Y SLOT_LBA: X and Y each write a command with its own tag to the slot,
# then read it back, in a random order; each sees its own result exactly once.
r=0
round() {
    local x=$1 y=$2 lba=$3 order s
    r=$((r + 1))
    printf 'TDM1 vol-list tag=%s%d\n' "$x" $r > "$WORK/$x.cmd"
    printf 'TDM1 info tag=%s%d\n' "$y" $r > "$WORK/$y.cmd"
    case $((RANDOM % 4)) in     # puts before gets of the same session, otherwise any order
        0) order="px py gx gy" ;;
        1) order="px py gy gx" ;;
        2) order="py px gx gy" ;;
        3) order="px gx py gy" ;;   # sequential: x done before y starts
    esac
    for s in $order; do
        case $s in
            px) sess "$x" "put $lba $WORK/$x.cmd" ;;
            py) sess "$y" "put $lba $WORK/$y.cmd" ;;
            gx) sess "$x" "get $lba 8 $WORK/$x.res"; sess "$x" "get $lba 8 $WORK/$x.again" ;;
            gy) sess "$y" "get $lba 8 $WORK/$y.res"; sess "$y" "get $lba 8 $WORK/$y.again" ;;
        esac
    done
    grep -q "^TDM1 result status=0 name=OK tag=$x$r " "$WORK/$x.res" &&
        grep -q '^vol volid=1 type=raid ' "$WORK/$x.res" && ! grep -q '^device ' "$WORK/$x.res" ||
        fail "round $r ($order): $x read: $(text "$WORK/$x.res")"
    grep -q "^TDM1 result status=0 name=OK tag=$y$r " "$WORK/$y.res" &&
        grep -q '^device name=d1 ' "$WORK/$y.res" && ! grep -q '^vol ' "$WORK/$y.res" ||
        fail "round $r ($order): $y read: $(text "$WORK/$y.res")"
    [ -z "$(text "$WORK/$x.again")$(text "$WORK/$y.again")" ] ||
        fail "round $r: a result could be read twice: $(text "$WORK/$x.again") $(text "$WORK/$y.again")"
}
sess_open A "$U" -i "$IQN_BASE:hostA"
sess_open B "$U" -i "$IQN_BASE:hostB"
for i in $(seq 20); do round A B $(( (RANDOM % 64) * 512 )); done
for i in $(seq 5); do round B A 0; done
# B reading a slot where only A has a result sees zeros, and A's result stays.
printf 'TDM1 help tag=onlyA\n' > "$WORK/onlyA"
sess A "put 2560 $WORK/onlyA"
sess B "get 2560 8 $WORK/B.peek"
sess B "get 2560 512 $WORK/B.peekall"
[ -z "$(text "$WORK/B.peek")$(text "$WORK/B.peekall")" ] || fail "host B read host A's result"
sess A "get 2560 8 $WORK/A.own"
grep -q '^TDM1 result status=0 name=OK tag=onlyA ' "$WORK/A.own" || fail "host B's read consumed A's result"
# A fresh session (another host logging in and reading everything) sees only zeros.
sess A "put 0 $WORK/onlyA"
"$TIO" get "$U" --lba 0 --blocks 2048 -i "$IQN_BASE:hostC" | cmp -s - <(head -c 1048576 /dev/zero) ||
    fail "a third host read something in the first 4 slots"
sess A "get 0 8 $WORK/A.own"
grep -q '^TDM1 result status=0 name=OK tag=onlyA ' "$WORK/A.own" || fail "a third host's read consumed A's result"
# Two sessions of the same initiator are two hosts too.
sess_open A2 "$U" -i "$IQN_BASE:hostA"
for i in $(seq 5); do round A A2 512; done
sess_close A; sess_close A2; sess_close B
log "$r rounds: each session read only its own result, once"

# ---- tandemctl from two loops at once ----
# loop NAME IQN SLOT COUNT: tandemctl runs cycling through commands; one "i rc" line each.
loop() {
    local name=$1 iqn=$2 slot=$3 count=$4 i rc args
    for ((i = 1; i <= count; i++)); do
        case $((i % 4)) in
            1) args=(cmddev add "$name-$i" "$slot") ;;
            2) args=(cmddev remove "$name-$((i - 1))") ;;
            3) args=(info) ;;
            0) args=(vol list) ;;
        esac
        rc=0
        "$TANDEMCTL" -d "$U" -s "$slot" -i "$iqn" --json "${args[@]}" > "$WORK/$name.$i.json" \
            2> "$WORK/$name.$i.err" || rc=$?
        echo "$i $rc" >> "$WORK/$name.rc"
    done
}
# check_loop NAME COUNT SLOT: every run exited 0 and printed the result of its own command.
check_loop() {
    local name=$1 count=$2 slot=$3 bad
    bad=$(awk '$2 != 0' "$WORK/$name.rc")
    [ -z "$bad" ] || fail "loop $name: runs failed (i rc): $bad; e.g. $(cat "$WORK/$name.$(head -1 <<<"$bad" | cut -d' ' -f1).err")"
    [ "$(wc -l < "$WORK/$name.rc")" -eq "$count" ] || fail "loop $name: $(wc -l < "$WORK/$name.rc") runs, not $count"
    python3 - "$WORK" "$name" "$count" "$slot" <<'EOF' || fail "loop $name printed a wrong result"
import json, re, sys
work, name, count, slot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(1, count + 1):
    d = json.load(open("%s/%s.%d.json" % (work, name, i)))
    r = d["records"]
    ok = d["status"] == 0 and re.fullmatch(r"c[0-9a-f]{8}", d["tag"])
    k = i % 4
    if k == 1:
        ok = ok and r == [{"record": "cmddev", "device": "%s-%d" % (name, i), "lun": slot, "volid": "-"}]
    elif k == 2:
        ok = ok and d["msg"] == "command device of %s-%d removed" % (name, i - 1)
    elif k == 3:
        ok = ok and r[0]["record"] == "device" and r[0]["name"] == "d1"
    else:
        ok = ok and sorted(x["volid"] for x in r) == [1, 100]
    if not ok:
        sys.exit("%s run %d: %s" % (name, i, d))
EOF
}
N=50
# (loop name, initiator, slot) pairs: same slot with two initiators, different slots, and the same
# slot with one initiator name in two sets of sessions.
for pair in "a1 hostA 5 b1 hostB 5" "a2 hostA 6 b2 hostB 7" "a3 hostA 8 b3 hostA 8"; do
    read -r n1 i1 s1 n2 i2 s2 <<<"$pair"
    loop "$n1" "$IQN_BASE:$i1" "$s1" $N & p1=$!
    loop "$n2" "$IQN_BASE:$i2" "$s2" $N & p2=$!
    wait $p1; wait $p2
    check_loop "$n1" $N "$s1"
    check_loop "$n2" $N "$s2"
    log "2 x $N tandemctl in parallel ($i1 slot $s1, $i2 slot $s2): all exit 0 with their own results"
done
[ -z "$(table_devices)" ] || fail "the loops left entries behind: $(table_devices)"

# ---- one host, two commands in flight to one slot ----
# The target may run them in either order (the table's record order tells which ran first); the
# slot then holds the result of the one that ran last, or nothing when that one had edit=0.
# Checked after the BUSY part so a failure here does not hide that part.
race_bugs=""
sess_open R "$U" -i "$IQN_BASE:hostR"
for i in $(seq 20); do
    printf 'TDM1 cmddev-add device=ra%d lun=1 edit=%d tag=ra%d\n' "$i" $((i % 2)) "$i" > "$WORK/ra.cmd"
    printf 'TDM1 cmddev-add device=rb%d lun=2 tag=rb%d\n' "$i" "$i" > "$WORK/rb.cmd"
    sess R "puts 4608 $WORK/ra.cmd $WORK/rb.cmd"
    sess R "get 4608 8 $WORK/race.$i"
done
sess_close R
names=" $(table_devices) "
for i in $(seq 20); do
    a=${names%% ra$i *}; b=${names%% rb$i *}
    [ "$a" != "$names" ] && [ "$b" != "$names" ] || fail "race round $i: ra$i or rb$i did not run: $names"
    if [ ${#a} -lt ${#b} ]; then want="tag=rb$i"; last=rb$i          # ra ran first
    elif [ $((i % 2)) -eq 1 ]; then want="tag=ra$i"; last=ra$i
    else want=""; last="ra$i (edit=0)"
    fi
    got=$(text "$WORK/race.$i" | head -n 1)
    if [ -n "$want" ]; then
        grep -q "^TDM1 result status=0 name=OK $want " <<<"$got" && continue
    else
        [ -z "$got" ] && continue
    fi
    race_bugs+="round $i: $last ran last, the slot holds '${got:-zeros}'; "
done
[ -z "$race_bugs" ] && log "two commands in flight to one slot: the slot holds the result of the last one (20 rounds)"
for i in $(seq 20); do "$TANDEMCTL" -d "$U" cmddev remove "ra$i" >/dev/null; "$TANDEMCTL" -d "$U" cmddev remove "rb$i" >/dev/null; done

# ---- 1024 unread results: BUSY ----
# 15 sessions leave 64 results each (one 1 MiB write = 4 slots, 16 writes = all 64 slots) and
# log out unread; a 16th session, kept open, fills the table to 1024.
python3 -c 'import sys
b = bytearray(1 << 20)
for s in range(4):
    b[s << 18:(s << 18) + 16] = b"TDM1 info tag=f\n"
sys.stdout.buffer.write(b)' > "$WORK/fill"
for h in $(seq 15); do
    for k in $(seq 0 15); do echo "put $((k * 2048)) $WORK/fill"; done |
        "$TIO" session "$U" -i "$IQN_BASE:filler$h" > "$WORK/fill.$h.log" ||
        fail "filling session $h: $(cat "$WORK/fill.$h.log")"
done
sess_open H "$U" -i "$IQN_BASE:holder"
for k in $(seq 0 15); do sess H "put $((k * 2048)) $WORK/fill"; done   # (fails if BUSY came early)
# A new session's command is answered BUSY and not executed.
busy_cmd() { printf 'TDM1 cmddev-add device=%s lun=1 tag=%s\n' "$1" "$1" > "$WORK/$1.cmd"; }
busy_cmd busy0
rc=0; "$TIO" put "$U" --file "$WORK/busy0.cmd" > /dev/null 2> "$WORK/busy.err" || rc=$?
[ $rc -eq 1 ] || fail "tio put with 1024 unread results exited $rc, expected 1: $(cat "$WORK/busy.err")"
grep -q 'WRITE(16) lba=0 blocks=1 on .* failed: BUSY' "$WORK/busy.err" || fail "tio put: $(cat "$WORK/busy.err")"
log "$(cat "$WORK/busy.err")"
rc=0; "$TANDEMCTL" -d "$U" cmddev add busy2 1 > /dev/null 2> "$WORK/busy.err" || rc=$?
[ $rc -ne 0 ] || fail "tandemctl succeeded with 1024 unread results"
grep -q 'busy' "$WORK/busy.err" || fail "tandemctl with a full result table: $(cat "$WORK/busy.err")"
log "tandemctl: exit $rc: $(cat "$WORK/busy.err")"
log_has d1 'command device: 1024 unread results: answering BUSY to nexus' || fail "BUSY not logged"
# The holder's new commands replace its own unread results: no new entry, so they run.
busy_cmd busy1
printf 'TDM1 vol-list tag=mine\n' > "$WORK/mine.cmd"
sess H "put 512 $WORK/mine.cmd"
sess H "put 1024 $WORK/busy1.cmd"
sess H "get 512 8 $WORK/mine.res"        # read: one entry free
grep -q '^TDM1 result status=0 name=OK tag=mine ' "$WORK/mine.res" || fail "holder's result: $(text "$WORK/mine.res")"
sess H "get 1024 8 $WORK/busy1.res"      # and another
grep -q '^TDM1 result status=0 name=OK tag=busy1 ' "$WORK/busy1.res" || fail "holder's busy1: $(text "$WORK/busy1.res")"
[ "$(table_devices)" = busy1 ] || fail "after a read freed room: entries '$(table_devices)', expected busy1 only"
# Full again (the holder refills its two slots), and a new session is BUSY once more.
sess H "put 512 $WORK/mine.cmd"
sess H "put 1024 $WORK/mine.cmd"
busy_cmd busy3
rc=0; "$TIO" put "$U" --lba 512 --file "$WORK/busy3.cmd" > /dev/null 2> "$WORK/busy.err" || rc=$?
[ $rc -eq 1 ] && grep -q 'failed: BUSY' "$WORK/busy.err" || fail "not BUSY again: rc $rc $(cat "$WORK/busy.err")"
sess H "get 512 8 $WORK/mine.res"
sess_close H
[ "$(table_devices)" = busy1 ] || fail "BUSY commands were executed: entries '$(table_devices)'"
log "1024 unread results: new commands BUSY and not executed; own results replaceable; a read frees room"
! grep -Eq 'segfault|tgtd: .*(abort|assert)' "$(device_log d1)" || fail "tgtd log shows a crash"
[ -z "$race_bugs" ] || fail "BUG: two commands of one host in flight to one slot lose the result: $race_bugs"
log "PASS"
