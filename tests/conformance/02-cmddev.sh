#!/usr/bin/env bash
# SCSI/iSCSI conformance of a command device LU (bstype cmddev, docs/command-device.md),
# measured against tgt's stock rdwr LU of the same size on the same device: iscsi-test-cu
# --dataloss runs every suite against LUN 1 (rdwr, 4 MiB sparse file) and LUN 2 (cmddev, 16
# slots = 4 MiB). A command device is not a disk: reads return zeros (or this host's results),
# writes are consumed, WRITE SAME / UNMAP / COMPARE AND WRITE / ORWRITE / VERIFY / WRITE AND
# VERIFY / REPORT SUPPORTED OPCODES are not supported (INVALID OPERATION CODE), capacity is
# slots x 256 KiB. Every test whose result differs from rdwr's must be in EXPECTED below (test ->
# cmddev result, message, reason); any other difference fails the test, and so does a listed test
# whose result or message is not the listed one. A listed test that no longer differs is reported
# (update the list and docs/conformance.md) but does not fail. Direct checks before the suites:
# capacity, a full-LU write is consumed and reads back zeros; after: the suites executed no
# command (no command error logged, tables generation still 1) and the device still answers.
# The per-test table goes to $WORK and build/conformance/cmddev-vs-rdwr.txt.
#
# Env: SUITE_TIMEOUT (seconds per suite process, default 60).
. "$(dirname "$0")/../func/functions.sh"
. "$(dirname "$0")/conformance.sh"
TABLE=cmddev-vs-rdwr.txt
SLOTS=16 SLOT_BYTES=262144

# ---------------------------------------------------------------- expected differences
# expect RESULT MESSAGE_ERE REASON TEST...: on the command device TEST is RESULT (its message
# matching MESSAGE_ERE) where rdwr differs, because of REASON. libiscsi prints "<CMD> is not
# implemented" and skips when the target answers ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE.
: > "$WORK/expected"
expect() {
    local res=$1 re=$2 why=$3 t; shift 3
    for t in "$@"; do printf '%s\t%s\t%s\t%s\n' "$t" "$res" "$re" "$why" >> "$WORK/expected"; done
}
expect skip '^ORWRITE is not implemented' "ORWRITE(16) is not supported: nothing to OR into (INVALID OPCODE)" \
    OrWrite.{Simple,BeyondEol,ZeroBlocks,Protect,DpoFua,Verify}
for n in 10 12 16; do
    expect skip "^VERIFY$n is not implemented" "VERIFY($n) is not supported: no medium to verify (INVALID OPCODE)" \
        Verify$n.{Simple,BeyondEol,ZeroBlocks,VerifyProtect,Flags,Dpo,Mismatch,MismatchNoCmp}
    expect skip "^WRITEVERIFY$n is not implemented" "WRITE AND VERIFY($n) is not supported: writes are consumed, nothing to verify (INVALID OPCODE)" \
        WriteVerify$n.{Simple,BeyondEol,ZeroBlocks,WriteProtect,Flags,Dpo} iSCSIResiduals.WriteVerify${n}Residuals
done
for n in 10 16; do
    expect skip "^WRITESAME$n is not implemented" "WRITE SAME($n) is not supported: a command block is one block, not a pattern (INVALID OPCODE)" \
        WriteSame$n.{Simple,BeyondEol,ZeroBlocks,WriteProtect,UnmapVPD,Check}
done
expect skip '^REPORT_SUPPORTED_OPCODES is not implemented' \
    "REPORT SUPPORTED OPERATION CODES (MAINTENANCE IN) is not in the command device's opcode set (INVALID OPCODE)" \
    ReportSupportedOpcodes.{Simple,RCTD,SERVACTV}
expect skip '^REPORT_SUPPORTED_OPCODES is not implemented' \
    "asks REPORT SUPPORTED OPERATION CODES whether DPO/FUA are supported; not supported here (INVALID OPCODE)" \
    Read{10,12,16}.DpoFua Write{10,12,16}.DpoFua
expect skip '^WRITESAME10 is not implemented' \
    "prepares the blocks with WRITE SAME(10), not supported (INVALID OPCODE); then COMPARE AND WRITE, not supported either (rdwr fails: tgt answers CAW with INVALID OPCODE, not MISCOMPARE)" \
    MultipathIO.CompareAndWriteAsync
expect fail 'Block was not written correctly' \
    "writes data and reads it back: writes are consumed, reads return zeros" \
    iSCSIResiduals.Write{10,12,16}Residuals
expect fail 'test_multipathio_simple\.c:[0-9]+ +- CU_ASSERT_EQUAL\(0,ret\)' \
    "writes through one path, reads back through the other and compares: writes are consumed, reads return zeros" \
    MultipathIO.Simple

# ---------------------------------------------------------------- the device under test
# rdwr LUN 1, cmddev LUN 2. After a suite broke tgtd, a new device opens the same tables file.
DEV_SEQ=0
setup_device() { # cmddev bsopts
    DEV_SEQ=$((DEV_SEQ + 1)); DEV=dev$DEV_SEQ
    device_start "$DEV" 127.0.0.1
    lu_add "$DEV" 1 rdwr "$WORK/rdwr.img" || fail "cannot add the rdwr LU"
    lu_add "$DEV" 2 cmddev "$WORK/cmddev.tables" "$1" || fail "cannot add the cmddev LU ($1), see $(device_log "$DEV")"
}
recover_device() { setup_device "volid=100"; }

load_tests
awk -F'\t' 'NR == FNR { t[$1] = 1; next } !($1 in t) { print $1 }' "$WORK/tests.list" "$WORK/expected" > "$WORK/unknown"
[ ! -s "$WORK/unknown" ] || fail "EXPECTED names tests iscsi-test-cu does not have: $(tr '\n' ' ' < "$WORK/unknown")"

truncate -s $((SLOTS * SLOT_BYTES)) "$WORK/rdwr.img"
setup_device "volid=100;create=1;device=c1;slots=$SLOTS"
CU=$(device_url "$DEV" 2)

# ---------------------------------------------------------------- direct checks
size=$(iscsi-readcapacity16 -s "$CU") || fail "iscsi-readcapacity16 failed on the command device"
[ "$size" = $((SLOTS * SLOT_BYTES)) ] || fail "capacity $size, want $SLOTS slots x $SLOT_BYTES"
"$TIO" write "$CU" --seed 7 --blocks $((SLOTS * SLOT_BYTES / 512)) >/dev/null || fail "writing the whole command device failed"
"$TIO" verify "$CU" --zero --blocks $((SLOTS * SLOT_BYTES / 512)) >/dev/null ||
    fail "the command device does not read zeros after a full write of non-command data"
log "direct: capacity $size = $SLOTS x 256 KiB; a full write of data is consumed, reads return zeros"

run_lu rdwr 1
run_lu cmddev 2

# ---------------------------------------------------------------- after the suites
device_ok || fail "tgtd of $DEV does not answer after the suites"
CU=$(device_url "$DEV" 2)
"$TANDEMCTL" -d "$CU" --json info > "$WORK/info.json" 2>&1 || fail "tandemctl info after the suites: $(cat "$WORK/info.json")"
grep -q '"name":"c1",' "$WORK/info.json" && grep -q '"tables_generation":1}' "$WORK/info.json" ||
    fail "after the suites the device is not c1 at tables generation 1: $(cat "$WORK/info.json")"
if grep -h 'tandem: command device: host nexus' "$WORK"/dev*.log > "$WORK/cmd-errors"; then
    cat "$WORK/cmd-errors"; fail "the suites' I/O made the command device run (and refuse) commands"
fi
log "after: the suites executed no command (no command error logged, tables generation 1), info answers"

# ---------------------------------------------------------------- compare
join_results rdwr cmddev > "$WORK/joined"   # test, rdwr res, rdwr msg, cmddev res, cmddev msg
# verdict per test: same | expected | stale (listed, no difference any more) | UNEXPECTED
awk -F'\t' 'NR == FNR { res[$1] = $2; re[$1] = $3; why[$1] = $4; next }
    { t = $1; v = "same"
      if (t in res) {
          if ($4 == res[t] && $5 ~ re[t]) v = "expected"
          else if ($2 == $4) v = "stale"
          else v = "UNEXPECTED"
      } else if ($2 != $4) v = "UNEXPECTED"
      print t "\t" v "\t" $2 "\t" $4 "\t" ((t in why) ? why[t] : "") "\t" $5 }' \
    "$WORK/expected" "$WORK/joined" > "$WORK/verdicts"
n_exp=$(awk -F'\t' '$2 == "expected"' "$WORK/verdicts" | wc -l)
write_table "$TABLE" rdwr cmddev "iscsi-test-cu --dataloss ($LIBISCSI), one process per suite" \
    "rdwr = LUN 1, tgt rdwr on a 4 MiB sparse file: $(counts "$WORK/rdwr.res")" \
    "cmddev = LUN 2, tandem command device, $SLOTS slots (4 MiB): $(counts "$WORK/cmddev.res")" \
    "$n_exp expected differences (tests/conformance/02-cmddev.sh EXPECTED; reasons at the end)"
{
    echo
    echo "# expected differences: test, cmddev result, reason"
    awk -F'\t' '$2 == "expected" { printf "%-45s %-6s %s\n", $1, $4, $5 }' "$WORK/verdicts"
} >> "$WORK/$TABLE"
cp "$WORK/$TABLE" "$OUT_DIR/$TABLE"

[ "$(awk -F'\t' '$2 == "pass"' "$WORK/rdwr.res" | wc -l)" -gt 0 ] ||
    fail "the rdwr baseline passed no test: harness problem (see $WORK/rdwr/)"
log "$n_exp tests differ from rdwr as listed (cmddev: $(awk -F'\t' '$2 == "expected" { n[$4]++ } END { printf "%d skip, %d fail", n["skip"], n["fail"] }' "$WORK/verdicts"))"
if awk -F'\t' '$2 == "stale"' "$WORK/verdicts" | grep -q .; then
    log "NOTE: listed as expected differences but now the same as rdwr (update EXPECTED and docs/conformance.md):"
    awk -F'\t' '$2 == "stale" { printf "  %-45s rdwr=%-5s cmddev=%s\n", $1, $3, $4 }' "$WORK/verdicts"
fi
awk -F'\t' '$2 == "UNEXPECTED" { printf "  %-45s rdwr=%-5s cmddev=%-5s %s\n", $1, $3, $4, $6 }' "$WORK/verdicts" > "$WORK/unexpected"
if [ -s "$WORK/unexpected" ]; then
    echo "[$TEST_NAME] unexpected differences (not in EXPECTED, or not the listed result/message):"
    cat "$WORK/unexpected"
    fail "$(wc -l < "$WORK/unexpected") unexpected difference(s) between cmddev and rdwr (table: $OUT_DIR/$TABLE)"
fi
log "PASS: every difference from rdwr is an expected one (rdwr: $(counts "$WORK/rdwr.res"); cmddev: $(counts "$WORK/cmddev.res"))"
