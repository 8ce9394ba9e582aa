#!/usr/bin/env bash
# Bad input to a command device: malformed, truncated and oversized blocks, unknown commands and
# parameters, a newer protocol version; on a device with a key, unsigned blocks, bad MACs and
# replayed or stale signed blocks. Each gets the right status and a clear message in the result,
# and one log line; nothing crashes and the tables do not change (except the sequence number a
# valid signed block records). Data that is not a command block (zeros, random bytes, an MBR, a
# block in the middle of a slot) executes nothing, leaves no result and logs nothing; reads of
# LBA 0 and of the last blocks (what a Linux initiator does at login) return zeros and consume
# nobody's result.
. "$(dirname "$0")/functions.sh"
requires python3

# ---- raw blocks (the command and the read of its result share one session) ----
# raw_file URL LBA FILE: FILE written at LBA, 8 blocks read back; prints the text (NULs stripped).
raw_file() {
    printf 'put %s %s\nget %s 8 %s\n' "$2" "$3" "$2" "$WORK/raw.out" |
        "$TIO" session "$1" > "$WORK/raw.log" 2>&1 || fail "tio session: $(cat "$WORK/raw.log")"
    tr -d '\0' < "$WORK/raw.out"
}
raw_cmd() { printf '%s\n' "$3" > "$WORK/raw.in"; raw_file "$1" "$2" "$WORK/raw.in"; }
# A session of its own, driven line by line through FIFOs (results stay pending between lines).
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
# sess NAME LINE: one command of that session; it must answer "ok ...".
sess() {
    local answer
    (echo "$2" >&"${SESS_W[$1]}") 2>/dev/null || fail "session $1 is gone: $(cat "$WORK/$1.err")"
    read -r -t 30 answer <&"${SESS_R[$1]}" || fail "session $1: no answer to '$2' ($(cat "$WORK/$1.err"))"
    [ "${answer%% *}" = ok ] || fail "session $1: '$2' -> $answer"
}
sess_close() {
    local w=${SESS_W[$1]} r=${SESS_R[$1]}
    exec {w}>&- {r}<&-
    wait_for 30 _dead "${SESS_PID[$1]}" || fail "session $1 did not end at EOF"
    wait "${SESS_PID[$1]}" || fail "session $1 ended badly: $(cat "$WORK/$1.err")"
}

# Log lines of command devices: "command device: host nexus N tag T: CMD -> NAME: msg".
cmdlog_count() { grep -c 'tandem: command device: ' "$(device_log "$1")" || true; }
cmdlog_last() { grep 'tandem: command device: ' "$(device_log "$1")" | tail -n 1; }
snapshot() {   # the state that bad input must not change
    sha256sum "$WORK/$1.tables"
    "$TANDEMCTL" -d "$(device_url "$1" 1)" -s 9 ${2:+-k "$2"} cmddev show
    "$TANDEMCTL" -d "$(device_url "$1" 1)" -s 9 ${2:+-k "$2"} info | grep -v uptime_s
}

# bad DEV URL FILE NAME TAG MSG_REGEX: the block in FILE, written to slot 0, gets a NAME result
# that echoes TAG ('-': none) with a msg matching MSG_REGEX, and exactly one log line saying so.
n=0
bad_file() {
    local dev=$1 url=$2 f=$3 name=$4 tag=$5 re=$6 t before line
    n=$((n + 1))
    before=$(cmdlog_count "$dev")
    t=$(raw_file "$url" 0 "$f")
    grep -q "^TDM1 result status=[0-9]* name=$name tag=$tag " <<<"$t" ||
        fail "case $n ($(head -c 60 "$f" | tr -c '[:print:]' '?')): expected $name tag $tag, got: ${t:-zeros}"
    grep -Eq -- "^msg .*$re" <<<"$t" || fail "case $n: msg does not match /$re/: $t"
    [ "$(cmdlog_count "$dev")" -eq $((before + 1)) ] || fail "case $n: not exactly one log line"
    line=$(cmdlog_last "$dev")
    grep -Eq -- "tag $tag: .* -> $name: .*$re" <<<"$line" || fail "case $n: log line: $line"
    log "case $n: $name: $(sed -n 's/^msg //p' <<<"$t")"
}
bad() { printf '%s\n' "$3" > "$WORK/bad.in"; bad_file "$1" "$2" "$WORK/bad.in" "$4" "$5" "$6"; }
# mkline PREFIX LENGTH: PREFIX followed by " pNN=aaa..." items up to exactly LENGTH bytes, no '\n'.
mkline() {
    python3 -c 'import sys
s, n, i = sys.argv[1], int(sys.argv[2]), 0
while n - len(s) > 0:
    rem = n - len(s)
    v = rem - 5 if rem <= 260 else 200
    s += " p%02d=" % i + "a" * v
    i += 1
assert len(s) == n
sys.stdout.write(s)' "$1" "$2"
}
# ignored URL FILE [LBA]: FILE written there executes nothing: no result in its slot, no log line.
ignored() {
    local url=$1 f=$2 lba=${3:-0} before t
    before=$(cmdlog_count d1)
    printf 'put %s %s\nget %s 8 %s\nget 0 8 %s\n' "$lba" "$f" "$((lba / 512 * 512))" "$WORK/ign.slot" \
        "$WORK/ign.0" | "$TIO" session "$url" > "$WORK/ign.log" 2>&1 || fail "tio session: $(cat "$WORK/ign.log")"
    t=$(tr -d '\0' < "$WORK/ign.slot"; tr -d '\0' < "$WORK/ign.0")
    [ -z "$t" ] || fail "$(basename "$f") at lba $lba left a result: $t"
    [ "$(cmdlog_count d1)" -eq "$before" ] || fail "$(basename "$f") at lba $lba was logged: $(cmdlog_last d1)"
}

device_start d1
lu_add d1 1 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
lu_add d1 2 raid "$(members "$WORK/m" 4 12M)" "volid=1;layout=3D+1P;chunk_kib=16;create=1"
U=$(device_url d1 1)
"$TANDEMCTL" -d "$U" cmddev add x1 1 10 >/dev/null
"$TANDEMCTL" -d "$U" cmddev add x2 2 >/dev/null
before=$(snapshot d1)

# ---- malformed ----
bad d1 "$U" "TDM1 vol-list tag=m1  x=1" INVALID m1 'empty item at offset 21 \(items are separated by one space\)'
bad d1 "$U" "TDM1 vol-list tag=m2 " INVALID m2 'trailing space'
bad d1 "$U" "TDM1 vol-status tag=m3 volid" INVALID m3 "item 'volid' is not key=value"
bad d1 "$U" "TDM1 Vol-list tag=m4" INVALID m4 "bad character 'V' in command name"
bad d1 "$U" "TDM1 vol-status tag=m5 volid=1 volid=2" INVALID m5 "parameter 'volid' given twice"
bad d1 "$U" "TDM1 info tag=m5a tag=m5b" INVALID m5a "parameter 'tag' given twice"
bad d1 "$U" "TDM1 info tag=m5c edit=1 edit=0" INVALID m5c "parameter 'edit' given twice"
bad d1 "$U" "TDM1 vol-status tag=m6 volid=abc" INVALID m6 'volid=abc: expected a number from 1 to '
bad d1 "$U" "TDM1 info tag=bad!tag" INVALID - "bad character '!' in the value of 'tag'"
bad d1 "$U" "TDM1 info tag=m8 edit=2" INVALID m8 'edit must be 0 or 1'
bad d1 "$U" "TDM1 info tag=m9 seq=0" INVALID m9 'seq must be a positive decimal number'
bad d1 "$U" "TDM1 info tag=m10 mac=zz" INVALID m10 'mac must be 64 hex digits'
bad d1 "$U" "TDM1 info tag=m11 Key=1" INVALID m11 "bad character 'K' in parameter name"
bad d1 "$U" "TDM1 info tag=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" INVALID - 'tag must be 1..32 characters'
bad d1 "$U" "TDM1info tag=m12" INVALID m12 'expected a space after TDM1'
bad d1 "$U" "TDMx info" INVALID - 'no protocol version after TDM'
printf 'TDM1 info tag=m13 \001\n' > "$WORK/ctl.in"
bad_file d1 "$U" "$WORK/ctl.in" INVALID m13 'byte 0x01 at offset 18: command blocks are printable ASCII'
printf 'TDM1 info tag=m14 x=\xc3\xa9\n' > "$WORK/utf8.in"
bad_file d1 "$U" "$WORK/utf8.in" INVALID m14 'byte 0xc3 at offset 20'
bad d1 "$U" "TDM1 help tag=m15$(for i in $(seq 25); do printf ' k%d=1' "$i"; done)" INVALID m15 'more than 24 parameters'
bad d1 "$U" "TDM1 help tag=m16 p=$(head -c 256 /dev/zero | tr '\0' a)" INVALID m16 "value of 'p' longer than 255 bytes"

# (A block that does not parse still echoes a well-formed tag=, found by a scan, so the host can
# match the error; blocks with no valid tag answer tag=-.)
# ---- truncated ----
bad d1 "$U" "TDM" INVALID - 'no protocol version after TDM'
bad d1 "$U" "TDM1" INVALID - 'no command after TDM1'
bad d1 "$U" "TDM1 " INVALID - 'no command after TDM1'
bad d1 "$U" "TDM1 vol-status tag=t1 volid=" INVALID t1 'volid=: expected a number'
bad d1 "$U" "TDM1 cmddev-add tag=t2 device=x9" INVALID t2 'cmddev-add needs lun=$'
# A line of 4096 bytes without '\n' or NUL, the write going on past it: it has no end.
mkline "TDM1 help tag=t3" 4096 > "$WORK/long.in"
head -c 512 /dev/zero | tr '\0' x >> "$WORK/long.in"
bad_file d1 "$U" "$WORK/long.in" INVALID t3 'command block longer than 4096 bytes without an end of line'
# The same 4096 bytes as the whole write (8 blocks, no padding): the end of the write ends the
# line, which parses (and is refused only for its parameters); so does 4096 bytes + '\n'.
mkline "TDM1 help tag=t4" 4096 > "$WORK/4096.in"
bad_file d1 "$U" "$WORK/4096.in" INVALID t4 'help does not take p00= \(it takes: nothing\)'
{ mkline "TDM1 help tag=t5" 4096; echo; } > "$WORK/4096nl.in"
bad_file d1 "$U" "$WORK/4096nl.in" INVALID t5 'help does not take p00='

# ---- oversized ----
{ mkline "TDM1 help tag=o1" 4097; echo; } > "$WORK/4097.in"
bad_file d1 "$U" "$WORK/4097.in" INVALID o1 'command block longer than 4096 bytes'
{ mkline "TDM1 help tag=o2" 6000; echo; } > "$WORK/6000.in"
bad_file d1 "$U" "$WORK/6000.in" INVALID o2 'command block longer than 4096 bytes'
# 1 MiB of one line (4 slots: only slot 0 starts with TDM, the others are data and ignored).
{ printf 'TDM1 info tag=o3 '; head -c $((1048576 - 17)) /dev/zero | tr '\0' y; } > "$WORK/1m.in"
bad_file d1 "$U" "$WORK/1m.in" INVALID o3 'command block longer than 4096 bytes'

# ---- unknown commands and parameters, other protocol versions ----
bad d1 "$U" "TDM1 frobnicate tag=u1" UNKNOWN_COMMAND u1 "unknown command 'frobnicate' \(TDM1 help lists them\)"
bad d1 "$U" "TDM1 99 tag=u2" UNKNOWN_COMMAND u2 "unknown command '99'"
bad d1 "$U" "TDM1 0 tag=u3" UNKNOWN_COMMAND u3 "unknown command '0'"
bad d1 "$U" "TDM1 1x tag=u4" UNKNOWN_COMMAND u4 "unknown command '1x'"
bad d1 "$U" "TDM1 4294967297 tag=u5" UNKNOWN_COMMAND u5 "unknown command '4294967297'"
bad d1 "$U" "TDM1 info tag=p1 color=blue" INVALID p1 'info does not take color= \(it takes: nothing\)'
bad d1 "$U" "TDM1 vol-status tag=p2 volid=1 vol=1" INVALID p2 'vol-status does not take vol= \(it takes: volid\)'
bad d1 "$U" "TDM1 cmddev-add tag=p3 device=x3 lun=1 dev=1" INVALID p3 'cmddev-add does not take dev= '
bad d1 "$U" "TDM1 cmddev-add tag=p4 device=x3 lun=1 id=1" INVALID p4 'cmddev-add does not take id= '
bad d1 "$U" "TDM2 info tag=v1" BAD_VERSION v1 'protocol version 2 is not supported \(this device speaks TDM1\)'
bad d1 "$U" "TDM0 info tag=v2" BAD_VERSION v2 'protocol version 0 is not supported'
bad d1 "$U" "TDM10 vol-list" BAD_VERSION - 'protocol version 10 is not supported'
after=$(snapshot d1)
[ "$before" = "$after" ] || fail "bad input changed the tables:
before: $before
after:  $after"
log "$n bad blocks refused; tables unchanged"

# ---- not command blocks: nothing executes, nothing is logged ----
head -c 512 /dev/zero > "$WORK/zeros"
head -c 4096 /dev/urandom | tr 'T' 'x' > "$WORK/random"        # (never starts with TDM)
{ head -c 446 /dev/urandom; printf '\x80\x00\x02\x00\x83\x0a\x08\x00\x00\x08\x00\x00\x00\xf8\x01\x00'
  head -c 48 /dev/zero; printf '\x55\xaa'; } > "$WORK/mbr"
printf 'tdm1 info tag=lower\n' > "$WORK/lower"
printf 'TD\n' > "$WORK/short"
printf 'TDM1 info tag=mid\n' > "$WORK/cmd"
for f in zeros random mbr lower short; do ignored "$U" "$WORK/$f"; done
ignored "$U" "$WORK/cmd" 1            # a command block in the second block of slot 0
ignored "$U" "$WORK/cmd" 1023         # in the last block of slot 1
ignored "$U" "$WORK/cmd" 8191         # in the last block of the LU
head -c 1048576 /dev/urandom | tr 'T' 'x' > "$WORK/random1m"   # 4 slots of random data
ignored "$U" "$WORK/random1m" 0
[ "$(snapshot d1)" = "$before" ] || fail "data that is not a command block changed the tables"
log "zeros, random data, an MBR, lowercase, blocks inside slots: ignored, nothing logged"

# One write over 4 slots runs the command at each slot's start, and only those.
python3 -c 'import sys
b = bytearray(1 << 20)
for slot, line in ((0, b"TDM1 info tag=w0\n"), (2, b"TDM1 help tag=w2\n"), (3, b"TDM1 bogus tag=w3\n")):
    b[slot << 18:(slot << 18) + len(line)] = line
b[(1 << 18) + 512:(1 << 18) + 530] = b"TDM1 info tag=w1x\n"   # inside slot 1, ignored
sys.stdout.buffer.write(b)' > "$WORK/4slots"
logs0=$(cmdlog_count d1)
printf 'put 0 %s\nget 0 8 %s\nget 512 8 %s\nget 1024 8 %s\nget 1536 8 %s\n' "$WORK/4slots" "$WORK/w0" \
    "$WORK/w1" "$WORK/w2" "$WORK/w3" | "$TIO" session "$U" >/dev/null
grep -q '^TDM1 result status=0 name=OK tag=w0 ' "$WORK/w0" || fail "slot 0: $(tr -d '\0' < "$WORK/w0")"
[ -z "$(tr -d '\0' < "$WORK/w1")" ] || fail "slot 1 has a result: $(tr -d '\0' < "$WORK/w1")"
grep -q '^TDM1 result status=0 name=OK tag=w2 ' "$WORK/w2" || fail "slot 2: $(tr -d '\0' < "$WORK/w2")"
grep -q '^TDM1 result status=4 name=UNKNOWN_COMMAND tag=w3 ' "$WORK/w3" || fail "slot 3: $(tr -d '\0' < "$WORK/w3")"
[ "$(cmdlog_count d1)" -eq $((logs0 + 1)) ] || fail "the 4-slot write: not exactly one log line"
log "a 4-slot write: commands at slot starts 0, 2, 3 ran; data elsewhere ignored"

# ---- reads at login: LBA 0 and the last 8 blocks read zeros and consume nothing; data written
# over a slot does not clear its host's result either ----
printf 'TDM1 info tag=keep0\n' > "$WORK/keep0"
printf 'TDM1 vol-list tag=keep15\n' > "$WORK/keep15"
sess_open h1 "$U"
sess h1 "put 0 $WORK/keep0"
sess h1 "put 7680 $WORK/keep15"
sess h1 "put 0 $WORK/zeros"             # data, not a command: the host's result stays
sess h1 "put 0 $WORK/mbr"
logs0=$(cmdlog_count d1)
"$TIO" get "$U" --lba 0 --blocks 8 > "$WORK/login0"
"$TIO" get "$U" --lba 8184 --blocks 8 > "$WORK/loginlast"
cmp -s "$WORK/login0" <(head -c 4096 /dev/zero) || fail "another session read LBA 0 as non-zero"
cmp -s "$WORK/loginlast" <(head -c 4096 /dev/zero) || fail "another session read the last blocks as non-zero"
sess h1 "get 8184 8 $WORK/h1.last"      # the tail of slot 15, past its result: zeros
cmp -s "$WORK/h1.last" <(head -c 4096 /dev/zero) || fail "the tail of slot 15 is not zero"
sess h1 "get 7680 8 $WORK/h1.15"
sess h1 "get 0 8 $WORK/h1.0"
sess_close h1
grep -q '^TDM1 result status=0 name=OK tag=keep15 ' "$WORK/h1.15" || fail "slot 15's result was lost: $(tr -d '\0' < "$WORK/h1.15")"
grep -q '^TDM1 result status=0 name=OK tag=keep0 ' "$WORK/h1.0" || fail "slot 0's result was lost: $(tr -d '\0' < "$WORK/h1.0")"
[ "$(cmdlog_count d1)" -eq "$logs0" ] || fail "reads were logged"
[ "$(snapshot d1)" = "$before" ] || fail "reads changed the tables"
log "reads of LBA 0 and of the last 8 blocks: zeros, no side effects; data writes keep results"

# A signed block on a device without a key: host/seq/mac are ignored, the tables do not change.
head -c 32 /dev/urandom > "$WORK/key"
"$TANDEMCTL" -k "$WORK/key" --host hA encode info tag=nokey > "$WORK/nokey.blk"
t=$(raw_file "$U" 0 "$WORK/nokey.blk")
grep -q '^TDM1 result status=0 name=OK tag=nokey ' <<<"$t" || fail "signed block on a device without a key: $t"
[ "$(snapshot d1)" = "$before" ] || fail "a signed block changed the tables of a device without a key"

# ---- authentication: a second device whose command device has a key ----
device_start d2
lu_add d2 1 cmddev "$WORK/d2.tables" "volid=200;create=1;device=d2;auth_key=$WORK/key"
log_has d2 "command device volid 200 of device 'd2' .*: 16 slots, signed blocks required" ||
    fail "the key is not in the open log line"
K=$(device_url d2 1)
gen2() { "$TANDEMCTL" -d "$K" -k "$WORK/key" --host gen --json info |
         python3 -c 'import json,sys; print(json.load(sys.stdin)["records"][0]["tables_generation"])'; }
rc=0; "$TANDEMCTL" -d "$K" info > /dev/null 2> "$WORK/err" || rc=$?
[ $rc -eq 1 ] || fail "unsigned tandemctl on a keyed device exited $rc, expected 1"
grep -q '^tandemctl: AUTH_REQUIRED: this device requires signed command blocks' "$WORK/err" ||
    fail "unsigned tandemctl: $(cat "$WORK/err")"
"$TANDEMCTL" -d "$K" -k "$WORK/key" info | grep -q '^  auth  *hmac-sha256$' || fail "signed tandemctl info"
g=$(gen2)             # (each accepted signed block records its seq: one update)
bad d2 "$K" "TDM1 info tag=a1" AUTH_REQUIRED a1 'this device requires signed command blocks \(host= seq= mac=\)'
bad d2 "$K" "TDM1 cmddev-add tag=a2 device=z1 lun=1 host=hA seq=5" AUTH_REQUIRED a2 'requires signed command blocks'
"$TANDEMCTL" -k "$WORK/key" --host hA encode info tag=s1 > "$WORK/s1.blk"
sed 's/TDM1 info /TDM1 help /' "$WORK/s1.blk" > "$WORK/altered.blk"
bad_file d2 "$K" "$WORK/altered.blk" AUTH_REQUIRED s1 "the block's MAC does not match \(wrong key, or the block was altered\)"
head -c 32 /dev/urandom > "$WORK/otherkey"
"$TANDEMCTL" -k "$WORK/otherkey" --host hA encode info tag=a3 > "$WORK/wrongkey.blk"
bad_file d2 "$K" "$WORK/wrongkey.blk" AUTH_REQUIRED a3 "the block's MAC does not match"
python3 -c 'import hmac, hashlib, sys
line = b"TDM1 info tag=a4"
sys.stdout.write((line + b" mac=" + hmac.new(open(sys.argv[1], "rb").read(), line, hashlib.sha256).hexdigest().encode()).decode() + "\n")' \
    "$WORK/key" > "$WORK/nohost.blk"
bad_file d2 "$K" "$WORK/nohost.blk" AUTH_REQUIRED a4 'signed blocks need host= and seq='
[ "$(gen2)" -eq $((g + 1)) ] || fail "refused blocks changed the tables of d2"
# Replay: the same signed bytes twice; the second is refused, from any session.
t=$(raw_file "$K" 0 "$WORK/s1.blk")
grep -q '^TDM1 result status=0 name=OK tag=s1 ' <<<"$t" || fail "a valid signed block was refused: $t"
seq1=$(sed -n 's/.* seq=\([0-9]*\) mac=.*/\1/p' "$WORK/s1.blk" | tr -d '\0')
bad_file d2 "$K" "$WORK/s1.blk" REPLAY s1 "replayed or stale block: seq $seq1 from host hA is not above the last accepted $seq1"
# Stale: s2 encoded before s3, s3 sent first; s2 is then stale. Another host has its own sequence.
"$TANDEMCTL" -k "$WORK/key" --host hA encode cmddev-add device=s2 lun=2 tag=s2 > "$WORK/s2.blk"
"$TANDEMCTL" -k "$WORK/key" --host hB encode cmddev-add device=b1 lun=3 tag=b1 > "$WORK/b1.blk"
"$TANDEMCTL" -k "$WORK/key" --host hA encode cmddev-add device=s3 lun=3 tag=s3 > "$WORK/s3.blk"
t=$(raw_file "$K" 0 "$WORK/s3.blk")
grep -q '^TDM1 result status=0 name=OK tag=s3 ' <<<"$t" || fail "s3 refused: $t"
bad_file d2 "$K" "$WORK/s2.blk" REPLAY s2 'replayed or stale block: seq [0-9]+ from host hA is not above'
t=$(raw_file "$K" 0 "$WORK/b1.blk")
grep -q '^TDM1 result status=0 name=OK tag=b1 ' <<<"$t" || fail "host hB's older seq was refused: $t"
bad_file d2 "$K" "$WORK/b1.blk" REPLAY b1 'from host hB is not above'
# Updates since g: the gen2 check above, s1 (seq), s3 and b1 (seq + entry each), this gen2: 7.
[ "$(gen2)" -eq $((g + 7)) ] || fail "tables generation of d2: $g -> $(gen2), expected $((g + 7))"
"$TANDEMCTL" -d "$K" -k "$WORK/key" cmddev show > "$WORK/out"
grep -Eq '^s3 +3 +- *$' "$WORK/out" && grep -Eq '^b1 +3 +- *$' "$WORK/out" && ! grep -q '^s2 ' "$WORK/out" ||
    fail "cmddev table of d2: $(cat "$WORK/out")"
log "authentication: unsigned, altered, wrong key, no host/seq, replayed, stale: refused"

# Everyone still answers.
"$TANDEMCTL" -d "$U" info > /dev/null || fail "d1 no longer answers"
"$TANDEMCTL" -d "$K" -k "$WORK/key" info > /dev/null || fail "d2 no longer answers"
! grep -Eq 'segfault|tgtd: .*(abort|assert)' "$(device_log d1)" "$(device_log d2)" || fail "tgtd log shows a crash"
log "PASS"
