#!/usr/bin/env bash
# The device tables survive kill -9 of tgtd. Entries added before a crash are there after it when
# the command device is reopened with only its volid (same device name, uuid, generation). Killed
# in the middle of a burst of cmddev-add/remove, the table comes back as the state after the
# last acknowledged command or the one after it, never anything else. A signed block accepted
# before a crash is a REPLAY after it (the sequence is in the tables). Opening refuses, with a
# log line: create=1 on existing tables, a device= name that is not the tables' own, a second
# command device, a tables file locked by another process. ROUNDS (default 3) and SEED replay.
. "$(dirname "$0")/functions.sh"
requires python3 flock
ROUNDS=${ROUNDS:-3}
SEED=${SEED:-$RANDOM}
log "seed $SEED, $ROUNDS rounds (replay: SEED=$SEED ROUNDS=$ROUNDS $0)"
RANDOM=$SEED

T=$WORK/d1.tables
KEY=$WORK/key
head -c 32 /dev/urandom > "$KEY"
ctl() { "$TANDEMCTL" -d "$(device_url d1 1)" "$@"; }
# table: the command-device table as sorted "device:lun:volid" words.
table() {
    ctl ${KEYED:+-k "$KEY" --host admin} --json cmddev show | python3 -c 'import json, sys
print(" ".join(sorted("%s:%s:%s" % (x["device"], x["lun"], x["volid"]) for x in json.load(sys.stdin)["records"])))'
}
info_field() {
    ctl ${KEYED:+-k "$KEY" --host admin} --json info |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["records"][0][sys.argv[1]])' "$1"
}
lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }
# raw_file URL FILE: FILE written to slot 0 and the result read back in one session.
raw_file() {
    printf 'put 0 %s\nget 0 8 %s\n' "$2" "$WORK/raw.out" | "$TIO" session "$1" > "$WORK/raw.log" 2>&1 ||
        fail "tio session: $(cat "$WORK/raw.log")"
    tr -d '\0' < "$WORK/raw.out"
}

# ---- entries survive kill -9; reopened with only the volid ----
device_start d1
lu_add d1 1 cmddev "$T" "volid=100;create=1;device=d1"
ctl cmddev add r1 1 11 >/dev/null
ctl cmddev add r2 2 22 >/dev/null
ctl cmddev add r3 3 >/dev/null
want="r1:1:11 r2:2:22 r3:3:-"
[ "$(table)" = "$want" ] || fail "before the crash: $(table)"
uuid=$(info_field uuid)
gen=$(info_field tables_generation)
device_kill d1
device_start d1
lu_add d1 1 cmddev "$T" "volid=100"
log_has d1 "command device volid 100 of device 'd1' \($uuid\): 16 slots$" || fail "reopen not logged"
[ "$(table)" = "$want" ] || fail "after kill -9: table '$(table)', expected '$want'"
[ "$(info_field uuid)" = "$uuid" ] && [ "$(info_field name)" = d1 ] || fail "device identity changed"
[ "$(info_field tables_generation)" -eq "$gen" ] || fail "generation $gen became $(info_field tables_generation)"
log "3 entries survived kill -9 (generation $gen, uuid $uuid)"

# ---- kill -9 during a burst of updates ----
# Operation j of round r: j % 3 == 0 removes k<r>_<j-2>, others add k<r>_<j>. The loop appends j
# to a log after tandemctl returned, so after the crash the table must be the state after the
# last logged j, or after j + 1 (acknowledged but not logged, or applied but not acknowledged).
burst() {
    local r=$1 j=0
    while :; do
        j=$((j + 1))
        if [ $((j % 3)) -eq 0 ]; then
            ctl -s 1 cmddev remove "k${r}_$((j - 2))" >/dev/null 2>&1 || break
        else
            ctl -s 1 cmddev add "k${r}_$j" $(( (j % 100) + 1 )) "$j" >/dev/null 2>&1 || break
        fi
        echo $j >> "$WORK/ops.$r"
    done
}
# state BASE R M: the table expected after operations 1..M of round R on top of BASE.
state() {
    python3 - "$1" "$2" "$3" <<'EOF'
import sys
base, r, m = sys.argv[1].split(), int(sys.argv[2]), int(sys.argv[3])
t = {w.split(":")[0]: w for w in base}
for j in range(1, m + 1):
    if j % 3 == 0:
        del t["k%d_%d" % (r, j - 2)]
    else:
        t["k%d_%d" % (r, j)] = "k%d_%d:%d:%d" % (r, j, j % 100 + 1, j)
print(" ".join(sorted(t.values())))
EOF
}
for ((r = 1; r <= ROUNDS; r++)); do
    base=$(table)
    burst $r & bpid=$!
    wait_for 30 lines_at_least "$WORK/ops.$r" 20 || fail "round $r: the burst made no progress"
    sleep "0.$((RANDOM % 5))"    # the crash moment is random on purpose
    device_kill d1
    wait $bpid || true
    m=$(tail -n 1 "$WORK/ops.$r")
    device_start d1
    lu_add d1 1 cmddev "$T" "volid=100" || fail "round $r: the tables do not open after kill -9"
    ctl info > /dev/null || fail "round $r: tandemctl info fails after the restart"
    got=$(table)
    if [ "$got" = "$(state "$base" $r "$m")" ]; then
        how="the state after operation $m (the last acknowledged)"
    elif [ "$got" = "$(state "$base" $r $((m + 1)))" ]; then
        how="the state after operation $((m + 1)) (in flight at the crash)"
    else
        fail "round $r: after $m acknowledged operations the table is '$got'
expected '$(state "$base" $r "$m")'
      or '$(state "$base" $r $((m + 1)))'"
    fi
    log "round $r: killed after $m acknowledged operations; table is $how"
done
grep -E 'table copy [AB] damaged' "$(device_log d1)" | sed "s/^/[$TEST_NAME] (expected after a crash mid-update) /" || true

# ---- a signed block accepted before a crash is a REPLAY after it ----
lu_del d1 1
lu_add d1 1 cmddev "$T" "volid=100;auth_key=$KEY"
KEYED=1
"$TANDEMCTL" -k "$KEY" --host h1 encode cmddev-add device=s1 lun=9 tag=e1 > "$WORK/e1.blk"
t=$(raw_file "$(device_url d1 1)" "$WORK/e1.blk")
grep -q '^TDM1 result status=0 name=OK tag=e1 ' <<<"$t" || fail "signed block refused: $t"
ctl -k "$KEY" --host h2 info > /dev/null || fail "signed tandemctl refused"
seq1=$(tr -d '\0' < "$WORK/e1.blk" | sed -n 's/.* seq=\([0-9]*\) mac=.*/\1/p')
device_kill d1

# ---- refused opens (on the restarted device, before the real reopen) ----
device_start d1
sum=$(sha256sum < "$T")
# refused LUN BACKING BSOPTS LOG_REGEX
refused() {
    local out
    if out=$(lu_add d1 "$1" cmddev "$2" "$3" 2>&1); then
        fail "bsopts '$3' on $2 were accepted"
    fi
    log_has d1 "cannot open command device: $4" || fail "bsopts '$3': log lacks /$4/ (tgtadm: $out)"
    log "refused: bsopts '$3': $(grep -o "cannot open command device: .*" "$(device_log d1)" | tail -n 1)"
}
refused 1 "$T" "volid=100;create=1;device=d1" \
    "$T already holds the tables of device 'd1'; refusing to initialise it again \(create=1 is for a new file\)"
refused 1 "$T" "volid=100;device=other" "device=other given, but $T holds the tables of device 'd1'"
refused 1 "$T" "volid=100;auth_key=$WORK/no-such-key" "auth_key $WORK/no-such-key: No such file or directory"
head -c 8 /dev/urandom > "$WORK/shortkey"
refused 1 "$T" "volid=100;auth_key=$WORK/shortkey" "auth_key $WORK/shortkey: a key needs at least 16 bytes, the file has 8"
exec {lock}< "$T"
flock -n "$lock" || fail "cannot lock $T for the test"
refused 1 "$T" "volid=100" "$T: in use by another command device or process"
exec {lock}<&-
[ "$(sha256sum < "$T")" = "$sum" ] || fail "a refused open changed the tables file"
lu_add d1 1 cmddev "$T" "volid=100;device=d1;auth_key=$KEY"      # the right name is fine
refused 2 "$WORK/second.tables" "volid=101;create=1;device=d9" "this device already has a command device \(volid 100"
[ ! -s "$WORK/second.tables" ] || fail "the refused second command device wrote its tables"
U=$(device_url d1 1)
t=$(raw_file "$U" "$WORK/e1.blk")
grep -q '^TDM1 result status=7 name=REPLAY tag=e1 ' <<<"$t" &&
    grep -q "^msg replayed or stale block: seq $seq1 from host h1 is not above the last accepted $seq1\$" <<<"$t" ||
    fail "the block accepted before the crash was not a REPLAY after it: $t"
log_has d1 "tag e1: cmddev-add -> REPLAY" || fail "REPLAY not logged"
"$TANDEMCTL" -k "$KEY" --host h1 encode cmddev-add device=s2 lun=9 tag=e2 > "$WORK/e2.blk"
t=$(raw_file "$U" "$WORK/e2.blk")
grep -q '^TDM1 result status=0 name=OK tag=e2 ' <<<"$t" || fail "a new signed block after the restart: $t"
[ "$(table | tr ' ' '\n' | grep -c '^s[12]:9:-$')" -eq 2 ] || fail "s1 and s2 not both there once: $(table)"
log "a signed block accepted before kill -9 is a REPLAY after it; newer ones are accepted"
log "PASS"
