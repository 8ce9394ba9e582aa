#!/usr/bin/env bash
# LU mirror (docs/mirror.md) on one device: a 3D+1P primary mirrored to a 4D+1P secondary (other
# geometry, larger). mirror-create answers RUNNING with the mirror in state copying; the copy
# reaches duplex, the secondary's raid counters show full-stripe writes only (no rmw/rcw), the
# first size_bytes of both compare equal; a duplexed write keeps them equal; after mirror-split a
# write to the primary leaves the secondary as it was (tio verify with the pre-split seeds) and
# mirror-status dirty_bytes is exactly the granules written; mirror-resync copies exactly those
# bytes (copied_bytes delta), with no rmw/rcw on the secondary, and they compare equal again.
# mirror-status fields; refusals with their status (same volume, command device, smaller
# secondary, a volid already mirrored, an unknown mirror, split of a split mirror, resync of a
# duplex one, an existing id); mirror-delete (the bitmap file goes, the volumes stay). Host I/O
# during the initial copy: a log-writer runs while a new mirror copies; the copy reaches duplex
# with the writer still running, both volumes hold every acknowledged write, compare equal.
# SEED replays the writer.
. "$(dirname "$0")/functions.sh"
requires python3
SEED=${SEED:-$RANDOM}
log "seed $SEED (replay: SEED=$SEED $0)"

ctl() { "$TANDEMCTL" -d "$(device_url d1 9)" "$@"; }
# ctl_refused STATUS REGEX ARGS...: tandemctl exits 1 with "STATUS: ...REGEX..." on stderr.
ctl_refused() {
    local want=$1 re=$2 rc=0
    shift 2
    ctl "$@" > "$WORK/ctl.out" 2>&1 || rc=$?
    [ $rc -eq 1 ] && grep -Eq -- "$want: .*$re" "$WORK/ctl.out" ||
        fail "tandemctl $*: expected $want /$re/ and exit 1, got exit $rc: $(cat "$WORK/ctl.out")"
}
# mfield FIELD [ID]: a field of mirror-status id=ID (default 1)
# (text output and awk: a poll costs milliseconds, not python's start-up)
mfield() { ctl call mirror-status id="${2:-1}" | awk -v f="$1" '$1 == f { print $2 }'; }
mstate_is() { [ "$(mfield state "${2:-1}")" = "$1" ]; }
# vstat VOLID FIELD: a raid counter from vol-status
vstat() { ctl vol status "$1" | awk -v f="$2" '$1 == f { print $2 }'; }
tio_ok() {
    local what=$1; shift
    "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"
}
lines_at_least() { [ -f "$1" ] && [ "$(wc -l < "$1")" -ge "$2" ]; }

device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100;create=1;device=d1"
# primary 3D+1P/64K: 3 x 36 MiB = 108 MiB; secondary 4D+1P/64K: 4 x 36 MiB = 144 MiB (granule
# 256 KiB); a small 2D+1P for the refusals
lu_add d1 1 raid "$(members "$WORK/p" 4 40M)" "volid=1;layout=3D+1P;chunk_kib=64;create=1"
lu_add d1 2 raid "$(members "$WORK/s" 5 40M)" "volid=2;layout=4D+1P;chunk_kib=64;create=1"
lu_add d1 3 raid "$(members "$WORK/t" 3 20M)" "volid=3;layout=2D+1P;chunk_kib=64;create=1"
P=$(device_url d1 1) S=$(device_url d1 2)
PBLOCKS=$("$TIO" info "$P" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
PBYTES=$((PBLOCKS * 512))
G=$((4 * 65536))
tio_ok "primary pattern" write "$P" --seed 11 --qd 16
tio_ok "secondary garbage" write "$S" --seed 99 --qd 16

# ---------------- create: copying -> duplex ----------------
rmw0=$(vstat 2 rmw_writes) rcw0=$(vstat 2 rcw_writes) fsw0=$(vstat 2 full_stripe_writes)
ctl --json call mirror-create primary=1 secondary=2 > "$WORK/create.json" 2>&1 ||
    fail "mirror-create: $(cat "$WORK/create.json")"
python3 - "$WORK/create.json" "$G" "$PBYTES" <<'EOF' || fail "mirror-create result: $(cat "$WORK/create.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "RUNNING", d["name"]
m = d["records"][0]
assert m["id"] == 1 and m["primary"] == 1 and m["secondary"] == 2, m
assert m["state"] in ("copying", "duplex"), m["state"]   # the copy of 108 MiB may be that quick
assert m["granule_bytes"] == int(sys.argv[2]), m["granule_bytes"]
assert m["size_bytes"] == int(sys.argv[3]), m["size_bytes"]
assert "granule 262144 bytes: copying" in d["msg"], d["msg"]
EOF
log "mirror-create: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["msg"])' "$WORK/create.json")"
wait_for 60 mstate_is duplex || fail "the copy did not reach duplex: $(ctl call mirror-status id=1)"
log_has d1 "mirror 1: copier started as operation" || fail "no copier operation in the log"
log_has d1 "mirror 1 \(volid 1 -> 2\): duplex" || fail "duplex not logged"
[ "$(mfield copied_bytes)" = "$PBYTES" ] || fail "copied_bytes $(mfield copied_bytes), expected $PBYTES"
[ "$(mfield dirty_bytes)" = 0 ] || fail "dirty_bytes after the copy: $(mfield dirty_bytes)"
rmw1=$(vstat 2 rmw_writes) rcw1=$(vstat 2 rcw_writes) fsw1=$(vstat 2 full_stripe_writes)
[ "$rmw1" = "$rmw0" ] && [ "$rcw1" = "$rcw0" ] ||
    fail "the copy made the secondary do $((rmw1 - rmw0)) rmw and $((rcw1 - rcw0)) rcw writes"
[ $((fsw1 - fsw0)) -eq $((PBYTES / G)) ] || fail "the copy did $((fsw1 - fsw0)) full-stripe writes, expected $((PBYTES / G))"
tio_ok "compare after the copy" compare "$P" "$S" --blocks "$PBLOCKS"
ctl op list > "$WORK/ops" 2>&1
log "copy: $((PBYTES / G)) granules of $G bytes as full-stripe writes (rmw 0, rcw 0), volumes equal"

# ---------------- duplex ----------------
tio_ok "duplexed write" write "$P" --seed 12 --lba 0 --blocks 20000 --qd 8
tio_ok "duplexed write, small" write "$P" --seed 14 --lba 150001 --blocks 7 --xfer-blocks 1
tio_ok "compare in duplex" compare "$P" "$S" --blocks "$PBLOCKS"
[ "$(mfield duplexed_writes)" -gt 0 ] || fail "duplexed_writes is 0"
log "duplex: writes reach both volumes ($(mfield duplexed_writes) duplexed writes)"

# ---------------- split ----------------
# the intent bits of the duplexed writes are cleared once the volumes are idle for 2 s
wait_for 15 [ "$(mfield dirty_bytes)" = 0 ] || true
dirty_idle=$(mfield dirty_bytes)
ctl call mirror-split id=1 > "$WORK/split.out" 2>&1 || fail "mirror-split: $(cat "$WORK/split.out")"
grep -q "split: the secondary is a point-in-time copy" "$WORK/split.out" || fail "split result: $(cat "$WORK/split.out")"
mstate_is split || fail "state after mirror-split: $(mfield state)"
ctl_refused INVALID "cannot split in this state" call mirror-split id=1
LBA=100000 NB=30000
tio_ok "write while split" write "$P" --seed 13 --lba $LBA --blocks $NB --qd 8
# the granules of [LBA, LBA+NB) blocks
g0=$((LBA * 512 / G)) g1=$(((LBA + NB) * 512 - 1)); g1=$((g1 / G))
want=$(((g1 - g0 + 1) * G + dirty_idle))
dirty=$(mfield dirty_bytes)
[ "$dirty" -gt 0 ] || fail "dirty_bytes is 0 after writes while split"
[ "$dirty" -eq "$want" ] || fail "dirty_bytes $dirty, expected $want (granules $g0..$g1 of $G bytes + $dirty_idle left from duplex)"
[ "$(mfield recorded_writes)" -gt 0 ] || fail "recorded_writes is 0"
tio_ok "secondary unchanged (split writes)" verify "$S" --seed 11 --lba $LBA --blocks $NB
tio_ok "secondary unchanged (pre-split write)" verify "$S" --seed 12 --lba 0 --blocks 20000
tio_ok "primary has the split writes" verify "$P" --seed 13 --lba $LBA --blocks $NB
expect_fail "compare while split" "$TIO" compare "$P" "$S" --blocks "$PBLOCKS"
log "split: the secondary kept its point-in-time image; dirty_bytes $dirty = granules $g0..$g1"

# ---------------- resync ----------------
rmw0=$(vstat 2 rmw_writes) rcw0=$(vstat 2 rcw_writes)
c0=$(mfield copied_bytes)
ctl call mirror-resync id=1 > "$WORK/resync.out" 2>&1 || fail "mirror-resync: $(cat "$WORK/resync.out")"
grep -q "resync started" "$WORK/resync.out" || fail "resync result: $(cat "$WORK/resync.out")"
wait_for 60 mstate_is duplex || fail "the resync did not reach duplex: $(ctl call mirror-status id=1)"
c1=$(mfield copied_bytes)
[ $((c1 - c0)) -eq "$dirty" ] || fail "the resync copied $((c1 - c0)) bytes for $dirty dirty bytes"
rmw1=$(vstat 2 rmw_writes) rcw1=$(vstat 2 rcw_writes)
[ "$rmw1" = "$rmw0" ] && [ "$rcw1" = "$rcw0" ] ||
    fail "the resync made the secondary do $((rmw1 - rmw0)) rmw and $((rcw1 - rcw0)) rcw writes"
tio_ok "compare after the resync" compare "$P" "$S" --blocks "$PBLOCKS"
tio_ok "secondary has the split writes" verify "$S" --seed 13 --lba $LBA --blocks $NB
ctl_refused INVALID "cannot resync in this state" call mirror-resync id=1
log "resync: $((c1 - c0)) bytes copied for $dirty dirty bytes, rmw/rcw 0 on the secondary, equal"

# ---------------- mirror-status fields ----------------
ctl --json call mirror-status > "$WORK/status.json" 2>&1 || fail "mirror-status: $(cat "$WORK/status.json")"
python3 - "$WORK/status.json" "$PBYTES" <<'EOF' || fail "mirror-status: $(cat "$WORK/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "OK" and d["msg"] == "1 mirrors", d
m = d["records"][0]
want = {"record": "mirror", "id": 1, "primary": 1, "secondary": 2, "state": "duplex",
        "granule_bytes": 262144, "size_bytes": int(sys.argv[2]), "dirty_bytes": 0,
        "copied_percent": 100.0, "primary_attached": 1, "secondary_attached": 1,
        "secondary_errors": 0, "secondary_reads": 0}
for k, v in want.items():
    assert m[k] == v, (k, m[k], v)
for k in ("copied_bytes", "duplexed_writes", "recorded_writes"):
    assert isinstance(m[k], int) and m[k] > 0, (k, m[k])
EOF
ctl call mirror-status > "$WORK/status.txt" 2>&1 || fail "mirror-status (text)"
grep -Eq '^ +state +duplex$' "$WORK/status.txt" || fail "text mirror-status: $(cat "$WORK/status.txt")"
grep -aq "mirror id=1 primary=1 secondary=2 state=duplex granule_bytes=262144 size_bytes=$PBYTES copy_pos=432" "$WORK/d1.tables" ||
    fail "the tables do not record the mirror: $(strings "$WORK/d1.tables" | grep mirror)"
log "mirror-status: every field as expected; the tables record the mirror"

# ---------------- refusals ----------------
ctl_refused INVALID "same volume" call mirror-create primary=3 secondary=3
ctl_refused INVALID "command device cannot be mirrored" call mirror-create primary=3 secondary=100
ctl_refused INVALID "command device cannot be mirrored" call mirror-create primary=100 secondary=3
ctl_refused INVALID "must be at least as large as the primary" call mirror-create primary=2 secondary=3
ctl_refused EXISTS "volid 1 is already in mirror 1" call mirror-create primary=3 secondary=1
ctl_refused EXISTS "volid 2 is already in mirror 1" call mirror-create primary=3 secondary=2
ctl_refused EXISTS "mirror 1 exists" call mirror-create primary=3 secondary=2 id=1
ctl_refused NOT_FOUND "no volume with volid 55" call mirror-create primary=55 secondary=3
ctl_refused NOT_FOUND "no mirror 9" call mirror-status id=9
ctl_refused NOT_FOUND "no mirror 9" call mirror-split id=9
ctl_refused NOT_FOUND "no mirror 9" call mirror-resync id=9
ctl_refused NOT_FOUND "no mirror 9" call mirror-delete id=9
ctl_refused INVALID "primary=" call mirror-create secondary=3
ctl_refused INVALID "id=x" call mirror-split id=x
[ "$(ctl --json call mirror-status | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))')" = 1 ] ||
    fail "a refused mirror-create left a mirror behind: $(ctl call mirror-status)"
mstate_is duplex || fail "the refusals changed mirror 1: $(mfield state)"
log "refusals: same volume, command device, smaller secondary, mirrored volids, existing id, unknown volume and mirror, bad parameters"

# ---------------- delete ----------------
bm=$(ls "$WORK"/d1.tables.mirror1.bitmap 2>/dev/null) || fail "no bitmap file $WORK/d1.tables.mirror1.bitmap"
ctl call mirror-delete id=1 > "$WORK/del.out" 2>&1 || fail "mirror-delete: $(cat "$WORK/del.out")"
grep -q "mirror 1 deleted" "$WORK/del.out" || fail "mirror-delete result: $(cat "$WORK/del.out")"
[ ! -e "$bm" ] || fail "the bitmap file stays after mirror-delete"
ctl_refused NOT_FOUND "no mirror 1" call mirror-status id=1
tio_ok "write after delete" write "$P" --seed 15 --lba 0 --blocks 100
tio_ok "secondary not written after delete" verify "$S" --seed 12 --lba 0 --blocks 100
tio_ok "volumes stay" verify "$S" --seed 13 --lba $LBA --blocks $NB
log "mirror-delete: the bitmap file went, the volumes stay, writes are no longer duplexed"

# ---------------- host I/O during the initial copy ----------------
"$TIO" log-writer "$P" --out "$WORK/acked" --seed "$SEED" --qd 8 --max-blocks 64 > "$WORK/writer.log" 2>&1 &
wpid=$!
on_exit "kill $wpid 2>/dev/null"
wait_for 30 lines_at_least "$WORK/acked" 200 || fail "writer made no progress: $(tail -3 "$WORK/writer.log")"
ctl call mirror-create primary=1 secondary=2 id=2 > "$WORK/create2.out" 2>&1 ||
    fail "mirror-create under load: $(cat "$WORK/create2.out")"
n0=$(wc -l < "$WORK/acked") t0=$SECONDS
if ! wait_for 60 mstate_is duplex 2; then
    st=$(ctl call mirror-status id=2 | tr -s ' \n' ' ')
    kill -INT $wpid; wait $wpid || true
    wait_for 30 mstate_is duplex 2 && late="it reached duplex once the writer stopped" || late="not even after the writer stopped"
    fail "BUG: the initial copy did not reach duplex in 60 s while a log-writer ran ($st); $late"
fi
n1=$(wc -l < "$WORK/acked") t1=$SECONDS
[ "$n1" -gt "$n0" ] || fail "no write was acknowledged during the copy"
kill -0 $wpid 2>/dev/null || fail "the writer stopped during the copy: $(tail -3 "$WORK/writer.log")"
wait_for 30 lines_at_least "$WORK/acked" $((n1 + 200)) || fail "no writes acknowledged in duplex"
kill -INT $wpid
rc=0; wait $wpid || rc=$?
[ $rc -eq 0 ] || fail "writer exited $rc: $(tail -3 "$WORK/writer.log")"
mstate_is duplex 2 || fail "mirror 2 left duplex under load: $(ctl call mirror-status id=2)"
"$TIO" log-check "$P" --log "$WORK/acked" > "$WORK/check.out" 2>&1 || fail "primary: acknowledged writes lost: $(tail -5 "$WORK/check.out")"
"$TIO" log-check "$S" --log "$WORK/acked" > "$WORK/check2.out" 2>&1 || fail "secondary: acknowledged writes missing: $(tail -5 "$WORK/check2.out")"
tio_ok "compare after the copy under load" compare "$P" "$S" --blocks "$PBLOCKS"
log "copy under load: duplex after ~$((t1 - t0)) s, $((n1 - n0)) writes acknowledged during the copy, $(wc -l < "$WORK/acked") in all; log-check ok on both, equal"
ctl call mirror-delete id=2 > /dev/null || fail "mirror-delete 2"
# the deletions are in the tables: a restarted device has no mirror
device_stop d1
device_start d1
lu_add d1 9 cmddev "$WORK/d1.tables" "volid=100"
lu_add d1 1 raid "$(member_list "$WORK/p" 4)" "volid=1"
lu_add d1 2 raid "$(member_list "$WORK/s" 5)" "volid=2"
[ "$(ctl --json call mirror-status | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))')" = 0 ] ||
    fail "mirrors after mirror-delete and a restart: $(ctl call mirror-status)"
ls "$WORK"/d1.tables.mirror* >/dev/null 2>&1 && fail "bitmap files left: $(ls "$WORK"/d1.tables.mirror*)"
log "after a restart: no mirror, no bitmap file"
log "PASS"
