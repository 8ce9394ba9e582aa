#!/usr/bin/env bash
# Every command of a command device, driven two ways: tandemctl (human and --json output, exit
# codes 0/1/2/3/4) and raw blocks as dd writes and reads them (tio session: the command block
# written to a slot, the result read back in the same session). A device with a cmddev LU and two
# raid LUs: info, vol-list, vol-status, cmddev-show/add/remove (EXISTS, NOT_FOUND), raid-status,
# raid-check (tandemctl --wait, and raw + op-status polling), op-status, op-list, help, process
# numbers instead of names, edit=0, and result frames that match their header (lines=, bytes=);
# a command device with 4 slots.
. "$(dirname "$0")/functions.sh"
requires python3

# ---- raw blocks: the command and the read of its result share one session ----
# raw_file URL LBA FILE [tio options]: FILE written at LBA, 8 blocks read back; prints the result
# text (NULs stripped, empty when the slot reads zeros) after checking its frame.
raw_file() {
    local url=$1 lba=$2 f=$3
    shift 3
    printf 'put %s %s\nget %s 8 %s\n' "$lba" "$f" "$lba" "$WORK/raw.out" |
        "$TIO" session "$url" "$@" > "$WORK/raw.log" 2>&1 || fail "tio session: $(cat "$WORK/raw.log")"
    frame_ok "$WORK/raw.out" || fail "bad result frame: $(tr -d '\0' < "$WORK/raw.out")"
    tr -d '\0' < "$WORK/raw.out"
}
# raw_cmd URL LBA LINE [tio options]: LINE plus '\n' as the command block.
raw_cmd() {
    local url=$1 lba=$2
    printf '%s\n' "$3" > "$WORK/raw.in"
    shift 3
    raw_file "$url" "$lba" "$WORK/raw.in" "$@"
}
# frame_ok FILE: zeros, or one result text "TDM1 result status= name= tag= lines=N bytes=B",
# "msg ...", N-1 records, "end" (B bytes in all), then only NULs.
frame_ok() {
    python3 - "$1" <<'EOF'
import re, sys
data = open(sys.argv[1], 'rb').read()
text = data.split(b'\0', 1)[0]
if data[len(text):].strip(b'\0'):
    sys.exit("bytes after the result text are not NUL")
if not text:
    sys.exit(0)
lines = text.decode('ascii').split('\n')
m = re.fullmatch(r'TDM1 result status=(\d+) name=([A-Z_]+) tag=(\S+) lines=(\d+) bytes=(\d+)', lines[0])
if not m:
    sys.exit("bad header: %r" % lines[0])
if int(m.group(5)) != len(text):
    sys.exit("bytes=%s but the text has %d bytes" % (m.group(5), len(text)))
if lines[-1] != '' or lines[-2] != 'end' or not lines[1].startswith('msg '):
    sys.exit("no msg line or no end line")
if len(lines) - 3 != int(m.group(4)):
    sys.exit("lines=%s but %d lines between header and end" % (m.group(4), len(lines) - 3))
EOF
}
# expect TEXT NAME TAG [REGEX]...: the result has status NAME, echoes TAG, and matches every REGEX.
expect() {
    local t=$1 name=$2 tag=$3 re
    shift 3
    grep -q "^TDM1 result status=[0-9]* name=$name tag=$tag " <<<"$t" ||
        fail "expected a $name result with tag $tag, got: ${t:-zeros}"
    for re in "$@"; do
        grep -Eq -- "$re" <<<"$t" || fail "result lacks /$re/: $t"
    done
}
# count_lines TEXT REGEX
count_lines() { grep -Ec -- "$2" <<<"$1" || true; }
# jcheck FILE EXPR: EXPR (python; d = the JSON object, r = its records) holds.
jcheck() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1])); r = d["records"]
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" || fail "JSON check '$2' failed on: $(cat "$1")"
}
# ctl EXPECTED_RC ARGS...: tandemctl on the command device, slot 3; stdout in $WORK/out,
# stderr in $WORK/err; the exit code must be EXPECTED_RC.
ctl() {
    local want=$1 rc=0
    shift
    "$TANDEMCTL" -d "$CU" -s 3 "$@" > "$WORK/out" 2> "$WORK/err" || rc=$?
    [ "$rc" -eq "$want" ] ||
        fail "tandemctl $* exited $rc, expected $want: $(cat "$WORK/out" "$WORK/err")"
}
out_has() { grep -Eq -- "$1" "$WORK/out" || fail "tandemctl output lacks /$1/: $(cat "$WORK/out")"; }
err_has() { grep -Eq -- "$1" "$WORK/err" || fail "tandemctl stderr lacks /$1/: $(cat "$WORK/err")"; }
generation() {
    raw_cmd "$CU" 0 "TDM1 info tag=gen" | sed -n 's/.* tables_generation=\([0-9]*\).*/\1/p'
}

device_start d1
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
A=$(members "$WORK/a" 4 24M)
B=$(members "$WORK/b" 5 24M)
lu_add d1 2 raid "$A" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
lu_add d1 3 raid "$B" "volid=2;layout=4D+1P;chunk_kib=64;create=1"
CU=$(device_url d1 1)
"$TIO" write "$(device_url d1 2)" --lba 0 --blocks 4096 --seed 1 >/dev/null
"$TIO" write "$(device_url d1 3)" --lba 77 --blocks 1000 --seed 2 >/dev/null

# ---- info (1) ----
ctl 0 info
out_has '^device d1$'
out_has '^  name +d1$'
out_has '^  volumes +3$'
out_has '^  cmddev_volid +100$'
out_has '^  auth +none$'
ctl 0 --json info
jcheck "$WORK/out" 'd["status"] == 0 and d["name"] == "OK" and len(r) == 1 and r[0]["record"] == "device"'
jcheck "$WORK/out" 'r[0]["name"] == "d1" and r[0]["volumes"] == 3 and r[0]["cmddev_volid"] == 100 and r[0]["slots"] == 16 and r[0]["auth"] == "none"'
uuid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"][0]["uuid"])' "$WORK/out")
t=$(raw_cmd "$CU" 0 "TDM1 info tag=i1")
expect "$t" OK i1 "^device name=d1 uuid=$uuid .*volumes=3 cmddev_volid=100 slots=16 .*auth=none tables_generation=[0-9]+$"
t=$(raw_cmd "$CU" 0 "TDM1 1 tag=i2")
expect "$t" OK i2 "^device name=d1 uuid=$uuid "
log "info: ok"

# ---- vol-list (2) ----
ctl 0 vol list
out_has '^3 volumes$'
out_has '^volid +type +size_bytes +block_bytes +state +layout +chunk_bytes$'
out_has '^100 +cmddev +4194304 +512 +online'
out_has '^1 +raid +[0-9]+ +512 +optimal +3D\+1P +16384 *$'
out_has '^2 +raid +[0-9]+ +512 +optimal +4D\+1P +65536 *$'
ctl 0 --json vol list
jcheck "$WORK/out" 'sorted(x["volid"] for x in r) == [1, 2, 100] and all(x["record"] == "vol" for x in r)'
jcheck "$WORK/out" '{x["volid"]: x.get("layout") for x in r} == {1: "3D+1P", 2: "4D+1P", 100: None}'
for cmd in vol-list 2; do
    t=$(raw_cmd "$CU" 0 "TDM1 $cmd tag=t1")
    expect "$t" OK t1 '^msg 3 volumes$' '^vol volid=100 type=cmddev size_bytes=4194304 block_bytes=512 state=online$' \
        '^vol volid=1 type=raid .*state=optimal layout=3D\+1P chunk_bytes=16384$' '^vol volid=2 type=raid .*state=optimal layout=4D\+1P chunk_bytes=65536$'
    grep -q ' lines=4 ' <<<"$t" || fail "vol-list: lines= is not 4: $t"
done
log "vol-list: ok"

# ---- vol-status (3) ----
ctl 0 vol status 1
out_has '^volid 1 \(raid\)$'
out_has '^  layout +3D\+1P$'
out_has '^  member_writes +[1-9][0-9]*$'
ctl 0 --json vol status 2
jcheck "$WORK/out" '[x["record"] for x in r] == ["vol", "stats"] and r[0]["volid"] == 2 and r[0]["layout"] == "4D+1P" and r[1]["member_writes"] > 0'
ctl 1 vol status 99
err_has '^tandemctl: NOT_FOUND: no volume with volid 99'
ctl 1 vol status abc
err_has '^tandemctl: INVALID: volid=abc: expected a number'
t=$(raw_cmd "$CU" 0 "TDM1 vol-status volid=100 tag=v1")
expect "$t" OK v1 '^vol volid=100 type=cmddev ' '^msg volid 100 \(cmddev\)$'
t=$(raw_cmd "$CU" 0 "TDM1 3 volid=2 tag=v2")
expect "$t" OK v2 '^vol volid=2 type=raid ' '^stats full_stripe_writes=[0-9]+ '
t=$(raw_cmd "$CU" 0 "TDM1 vol-status volid=12345 tag=v3")
expect "$t" NOT_FOUND v3 '^msg no volume with volid 12345'
t=$(raw_cmd "$CU" 0 "TDM1 vol-status tag=v4")
expect "$t" INVALID v4 '^msg vol-status needs volid=$'
log "vol-status: ok"

# ---- cmddev-show (4), cmddev-add (5), cmddev-remove (6); the tables generation counts updates ----
g0=$(generation)
ctl 0 cmddev show
out_has '^0 command devices$'
ctl 0 cmddev add d2 1 200
out_has '^command device of d2 added$'
out_has '^  device +d2$'
ctl 0 --json cmddev add d3 2
jcheck "$WORK/out" 'd["name"] == "OK" and r == [{"record": "cmddev", "device": "d3", "lun": 2, "volid": "-"}]'
ctl 1 cmddev add d2 5 500
err_has '^tandemctl: EXISTS: device d2 already has a command device entry'
ctl 1 cmddev add bad/name 1
err_has '^tandemctl: INVALID: device=bad/name'
ctl 1 cmddev add d9 0
err_has '^tandemctl: INVALID: lun=0: expected a number from 1 to 16383'
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-add device=d4 lun=7 volid=400 tag=a4")
expect "$t" OK a4 '^cmddev device=d4 lun=7 volid=400$'
t=$(raw_cmd "$CU" 0 "TDM1 5 device=d4 lun=8 tag=a5")
expect "$t" EXISTS a5 '^msg device d4 already has a command device entry'
ctl 0 cmddev show
out_has '^3 command devices$'
out_has '^d2 +1 +200 *$'
out_has '^d3 +2 +- *$'
out_has '^d4 +7 +400 *$'
ctl 0 --json cmddev show
jcheck "$WORK/out" 'sorted((x["device"], x["lun"], x["volid"]) for x in r) == [("d2", 1, 200), ("d3", 2, "-"), ("d4", 7, 400)]'
t=$(raw_cmd "$CU" 0 "TDM1 4 tag=s1")
expect "$t" OK s1 '^msg 3 command devices$' '^cmddev device=d2 lun=1 volid=200$' '^cmddev device=d4 lun=7 volid=400$'
ctl 0 cmddev remove d3
out_has '^command device of d3 removed$'
ctl 1 cmddev remove d3
err_has '^tandemctl: NOT_FOUND: no command device entry for device d3$'
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-remove device=nope tag=r1")
expect "$t" NOT_FOUND r1 '^msg no command device entry for device nope$'
t=$(raw_cmd "$CU" 0 "TDM1 6 device=d4 tag=r2")
expect "$t" OK r2 '^msg command device of d4 removed$'
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-show tag=s2")
expect "$t" OK s2 '^msg 1 command devices$' '^cmddev device=d2 lun=1 volid=200$'
# d2, d3, d4 added, d3 and d4 removed: 5 updates; the refused ones changed nothing.
g1=$(generation)
[ "$g1" -eq $((g0 + 5)) ] || fail "tables generation $g0 -> $g1 after 5 successful updates"
log_has d1 'tag a5: 5 -> EXISTS: device d4 already has' || fail "EXISTS not logged"
log_has d1 'tag r1: cmddev-remove -> NOT_FOUND: no command device entry for device nope' ||
    fail "NOT_FOUND not logged"
log "cmddev-show/add/remove: ok (generation $g0 -> $g1)"

# ---- raid-status (7) ----
ctl 0 raid status 1
out_has '^raid volid 1: 3D\+1P, optimal$'
out_has '^  layout +3D\+1P$'
out_has '^  members +4$'
for i in 0 1 2 3; do out_has "^$i +active +$WORK/a$i *\$"; done
ctl 0 --json raid status 2
jcheck "$WORK/out" 'r[0]["record"] == "raid" and r[0]["layout"] == "4D+1P" and r[0]["chunk_bytes"] == 65536 and r[0]["members"] == 5 and r[0]["state"] == "optimal"'
jcheck "$WORK/out" '[x["path"] for x in r if x["record"] == "member"] == ["'"$WORK"'/b%d" % i for i in range(5)]'
jcheck "$WORK/out" 'r[-1]["record"] == "stats"'
ctl 1 raid status 100
err_has '^tandemctl: INVALID: volid 100 is a cmddev volume, not raid$'
ctl 1 raid status 9
err_has '^tandemctl: NOT_FOUND: no volume with volid 9 '
t=$(raw_cmd "$CU" 0 "TDM1 7 volid=2 tag=rs")
expect "$t" OK rs '^raid volid=2 layout=4D\+1P chunk_bytes=65536 block_bytes=512 members=5 ' '^stats '
[ "$(count_lines "$t" '^member index=[0-4] state=active path=')" -eq 5 ] || fail "raid-status: not 5 members: $t"
log "raid-status: ok"

# ---- raid-check (8), op-status (9), op-list (10) ----
ctl 0 raid verify 1 --wait
out_has '^operation 1 done$'
out_has '^  result +[0-9]+ stripes checked, parity consistent'
ctl 0 --json raid verify 2 --wait
jcheck "$WORK/out" 'd["name"] == "OK" and r[0]["record"] == "op" and r[0]["id"] == 2 and r[0]["kind"] == "raid-check" and r[0]["state"] == "done" and r[0]["percent"] == 100'
jcheck "$WORK/out" 'r[0]["subject"] == "volid=2" and "parity consistent" in r[0]["result"] and r[0]["done"] == r[0]["total"] > 0'
ctl 0 raid verify 1
out_has '^raid-check of volid 1 started as operation 3$'
ctl 0 op status 3 --wait
out_has '^operation 3 done$'
ctl 1 raid verify 100
err_has '^tandemctl: INVALID: volid 100 is not a raid volume$'
ctl 1 op status 999
err_has '^tandemctl: NOT_FOUND: no operation 999 '
t=$(raw_cmd "$CU" 0 "TDM1 raid-check volid=2 tag=rc")
expect "$t" RUNNING rc '^op id=4 kind=raid-check subject=volid=2 state=running$' '^msg raid-check of volid 2 started as operation 4$'
op_done() {
    local r
    r=$(raw_cmd "$CU" 512 "TDM1 op-status op=$1 tag=p$1")
    grep -q "^TDM1 result status=0 name=OK tag=p$1 " <<<"$r" && grep -q "^op id=$1 .* state=done percent=100.0 " <<<"$r"
}
wait_for 30 op_done 4 || fail "operation 4 did not finish: $(raw_cmd "$CU" 0 "TDM1 op-status op=4 tag=p")"
t=$(raw_cmd "$CU" 0 "TDM1 9 op=4 tag=os")
expect "$t" OK os '^op id=4 kind=raid-check subject=volid=2 state=done percent=100.0 done=([0-9]+) total=\1 .* result=[0-9]+%20stripes%20checked,%20parity%20consistent'
t=$(raw_cmd "$CU" 0 "TDM1 op-status op=0 tag=o0")
expect "$t" INVALID o0
t=$(raw_cmd "$CU" 0 "TDM1 raid-check volid=100 tag=rc2")
expect "$t" INVALID rc2
ctl 0 op list
out_has '^4 operations$'
ctl 0 --json op list
jcheck "$WORK/out" '[x["id"] for x in r] == [1, 2, 3, 4] and all(x["state"] == "done" for x in r)'
t=$(raw_cmd "$CU" 0 "TDM1 10 tag=ol")
expect "$t" OK ol '^msg 4 operations$'
[ "$(count_lines "$t" '^op id=[1-4] kind=raid-check ')" -eq 4 ] || fail "op-list: $t"
t=$(raw_cmd "$CU" 0 "TDM1 8 volid=1 tag=n8")
expect "$t" RUNNING n8 '^op id=5 kind=raid-check subject=volid=1 state=running$'
wait_for 30 op_done 5 || fail "operation 5 did not finish"
log "raid-check, op-status, op-list: ok"

# ---- help (11) ----
names="info vol-list vol-status cmddev-show cmddev-add cmddev-remove raid-status raid-check op-status op-list help"
ctl 0 commands
out_has '^[0-9]+ commands$'
out_has '^5 +cmddev-add +device lun \[volid\] *$'
ctl 0 --json commands
jcheck "$WORK/out" '[(x["no"], x["name"]) for x in r][:11] == list(enumerate("'"$names"'".split(), 1)) and len(r) == int(d["msg"].split()[0])'
for cmd in help 11; do
    t=$(raw_cmd "$CU" 0 "TDM1 $cmd tag=h$cmd")
    expect "$t" OK "h$cmd" '^msg [0-9]+ commands$' '^command no=3 name=vol-status params=volid$' \
        '^command no=5 name=cmddev-add params=device%20lun%20\[volid\]$'
    nc=$(sed -n 's/^msg \([0-9]*\) commands$/\1/p' <<<"$t")
    [ "$(count_lines "$t" '^command no=')" -eq "$nc" ] && [ "$nc" -ge 11 ] || fail "help: $t"
    for c in $names; do grep -q "^command no=[0-9]* name=$c " <<<"$t" || fail "help lacks $c: $t"; done
done
log "help: ok"

# ---- edit=0: a successful result is discarded (the slot reads zeros), an error result is kept ----
g0=$(generation)
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-add device=e1 lun=5 edit=0 tag=e1")
[ -z "$t" ] || fail "edit=0: a successful result was kept: $t"
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-show tag=e2")
expect "$t" OK e2 '^cmddev device=e1 lun=5 volid=-$'
t=$(raw_cmd "$CU" 0 "TDM1 cmddev-add device=e1 lun=5 edit=0 tag=e3")
expect "$t" EXISTS e3 '^msg device e1 already has a command device entry'
t=$(raw_cmd "$CU" 0 "TDM1 6 edit=0 device=nope tag=e4")
expect "$t" NOT_FOUND e4
t=$(raw_cmd "$CU" 0 "TDM1 vol-list tag=e5 edit=1")
expect "$t" OK e5 '^vol volid=1 '
t=$(raw_cmd "$CU" 0 "TDM1 raid-check volid=1 edit=0 tag=e6")
[ -z "$t" ] || fail "edit=0: a RUNNING result was kept: $t"
wait_for 30 op_done 6 || fail "the edit=0 raid-check (operation 6) did not run"
[ "$(generation)" -eq $((g0 + 1)) ] || fail "edit=0: the tables generation did not count exactly one update"
# A new command replaces the host's unread result in the slot, even when its own is discarded:
# vol-list (unread), then an edit=0 info in the same slot and session: the slot reads zeros.
printf 'TDM1 vol-list tag=u1\n' > "$WORK/u1"
printf 'TDM1 info tag=u2 edit=0\n' > "$WORK/u2"
printf 'put 0 %s\nput 0 %s\nget 0 8 %s\n' "$WORK/u1" "$WORK/u2" "$WORK/u.out" | "$TIO" session "$CU" >/dev/null
[ -z "$(tr -d '\0' < "$WORK/u.out")" ] || fail "edit=0 did not clear the slot: $(tr -d '\0' < "$WORK/u.out")"
log "edit=0: ok"

# ---- results are read once; several slots hold results at once ----
printf 'TDM1 info tag=k0\n' > "$WORK/k0"
printf 'TDM1 help tag=k15\n' > "$WORK/k15"
printf 'put 0 %s\nput 7680 %s\nget 7680 8 %s\nget 0 8 %s\nget 0 8 %s\n' "$WORK/k0" "$WORK/k15" \
    "$WORK/k15.out" "$WORK/k0.out" "$WORK/k0.again" | "$TIO" session "$CU" >/dev/null
expect "$(tr -d '\0' < "$WORK/k15.out")" OK k15 '^command no=11 name=help '
expect "$(tr -d '\0' < "$WORK/k0.out")" OK k0 '^device name=d1 '
[ -z "$(tr -d '\0' < "$WORK/k0.again")" ] || fail "a result was read twice"
log "slots: ok"

# ---- tandemctl exit codes: 2 usage, 3 unreachable, 4 no valid result ----
ctl 2 vol status
err_has 'usage: tandemctl vol status VOLID'
ctl 2 bogus
err_has "unknown command 'bogus'"
ctl 2 -s 16 info
err_has 'slot 16 is beyond the command device'
ctl 2 call 'info x'
rc=0; env -u TANDEM_DEVICE "$TANDEMCTL" info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 2 ] || fail "tandemctl without a device exited $rc, expected 2"
err_has 'no command device'
rc=0; "$TANDEMCTL" -d "iscsi://127.0.0.1:1/$IQN_BASE:d1/1" info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 3 ] || fail "tandemctl on a closed port exited $rc, expected 3: $(cat "$WORK/err")"
err_has 'cannot log in'
rc=0; "$TANDEMCTL" -d "$(device_url d1 9)" info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 3 ] || fail "tandemctl on a missing LUN exited $rc, expected 3: $(cat "$WORK/err")"
rc=0; "$TANDEMCTL" -d "$WORK/no-such-device" info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 3 ] || fail "tandemctl on a missing path exited $rc, expected 3: $(cat "$WORK/err")"
# A LU that is not a command device: the block lands as data and no result comes back (exit 4).
# (LU 3 is raid volid 2; its first block is scratch for this.)
rc=0; "$TANDEMCTL" -d "$(device_url d1 3)" -s 0 info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 4 ] || fail "tandemctl on a raid LU exited $rc, expected 4: $(cat "$WORK/err")"
err_has 'slot 0 does not hold a TDM1 result'
log "exit codes: ok"

# Nothing above disturbed the device.
ctl 0 info
out_has '^  volumes +3$'
! grep -Eq 'segfault|tgtd: .*(abort|assert)' "$(device_log d1)" || fail "tgtd log shows a crash"

# ---- a command device with 4 slots: tandemctl's default slot must be one of them ----
device_start d2
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=100;create=1;device=d2;slots=4"
CU=$(device_url d2 1)
ctl 0 info
out_has '^  slots +4$'
ctl 2 -s 4 info
err_has 'slot 4 is beyond the command device'
t=$(raw_cmd "$CU" 1536 "TDM1 info tag=last")
expect "$t" OK last '^device name=d2 .* slots=4 '
rc=0; printf 'TDM1 info tag=beyond\n' | "$TIO" put "$CU" --lba 2048 > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 1 ] || fail "tio put past the end of a 4-slot command device exited $rc, expected 1"
err_has 'WRITE\(16\) lba=2048 blocks=1 .* failed: CHECK CONDITION, sense key ILLEGAL_REQUEST \(0x5\), asc/ascq 0x21/0x00 LBA_OUT_OF_RANGE'
nbad=0
for i in $(seq 8); do
    "$TANDEMCTL" -d "$CU" info > /dev/null 2> "$WORK/err" || { nbad=$((nbad + 1)); cp "$WORK/err" "$WORK/err.bad"; }
done
[ $nbad -eq 0 ] || fail "BUG: tandemctl without -s failed $nbad of 8 times on a 4-slot command device: $(cat "$WORK/err.bad")"
log "4 slots: ok"
log "PASS"
