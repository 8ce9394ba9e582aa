#!/usr/bin/env bash
# SCSI/iSCSI conformance of a raid LU, measured against tgt's stock rdwr LU on the same device:
# libiscsi's iscsi-test-cu --dataloss runs every suite against LUN 1 (rdwr, 1 GiB sparse file)
# and LUN 2 (raid 3D+1P over four 400 MiB members, ~1.2 GiB). Fails when the raid LU fails (or
# errors) a test that the rdwr LU passes. The per-test table goes to $WORK and to
# build/conformance/raid-vs-rdwr.txt. How the suites are run and parsed: conformance.sh.
#
# A suite that kills or wedges tgtd costs at most SUITE_TIMEOUT; its unfinished tests count as
# errors and the run goes on with a fresh device on the same files (the raid LU reassembles).
#
# Env: SUITE_TIMEOUT (seconds per suite process, default 60; the slowest rdwr suite takes ~6 s).
. "$(dirname "$0")/../func/functions.sh"
. "$(dirname "$0")/conformance.sh"
TABLE=raid-vs-rdwr.txt

# The device under test: rdwr LUN 1, raid LUN 2 (setup_device BSOPTS of the raid LU). After a
# suite broke tgtd, a new device assembles the same members (no create=).
DEV_SEQ=0
RAID_CREATE="volid=2;layout=3D+1P;chunk_kib=64;create=1"
RAID_ASSEMBLE="volid=2"
setup_device() { # raid bsopts
    DEV_SEQ=$((DEV_SEQ + 1)); DEV=dev$DEV_SEQ
    device_start "$DEV" 127.0.0.1
    lu_add "$DEV" 1 rdwr "$WORK/rdwr.img" || fail "cannot add the rdwr LU"
    lu_add "$DEV" 2 raid "$RAID_MEMBERS" "$1" || fail "cannot add the raid LU ($1), see $(device_log "$DEV")"
}
recover_device() { setup_device "$RAID_ASSEMBLE"; }

load_tests

# ---------------------------------------------------------------- one device, two LUs
truncate -s 1G "$WORK/rdwr.img"
RAID_MEMBERS=$(members "$WORK/m" 4 400M)
setup_device "$RAID_CREATE"

run_lu rdwr 1
run_lu raid 2

# ---------------------------------------------------------------- compare
join_results rdwr raid > "$WORK/joined"   # test, rdwr res, rdwr msg, raid res, raid msg
write_table "$TABLE" rdwr raid "iscsi-test-cu --dataloss ($LIBISCSI), one process per suite" \
    "rdwr = LUN 1, tgt rdwr on a 1 GiB sparse file: $(counts "$WORK/rdwr.res")" \
    "raid = LUN 2, tandem raid 3D+1P, 4 x 400 MiB members, chunk 64 KiB: $(counts "$WORK/raid.res")"

awk -F'\t' '$2 != $4 { printf "  %-45s rdwr=%-5s raid=%-5s %s\n", $1, $2, $4, $5 }' "$WORK/joined" > "$WORK/differ"
awk -F'\t' '$2 == "pass" && ($4 == "fail" || $4 == "error") {
              printf "  %-45s raid=%s: %s\n", $1, $4, $5 }' "$WORK/joined" > "$WORK/regressions"
if [ -s "$WORK/differ" ]; then log "tests whose result differs:"; cat "$WORK/differ"; fi
[ "$(awk -F'\t' '$2 == "pass"' "$WORK/rdwr.res" | wc -l)" -gt 0 ] ||
    fail "the rdwr baseline passed no test: harness problem (see $WORK/rdwr/)"
if [ -s "$WORK/regressions" ]; then
    echo "[$TEST_NAME] raid fails tests that rdwr passes:"; cat "$WORK/regressions"
    fail "$(wc -l < "$WORK/regressions") test(s) pass on rdwr but not on raid (table: $OUT_DIR/$TABLE)"
fi
log "PASS: raid fails no test that rdwr passes (rdwr: $(counts "$WORK/rdwr.res"); raid: $(counts "$WORK/raid.res"))"
