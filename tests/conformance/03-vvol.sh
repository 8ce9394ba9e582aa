#!/usr/bin/env bash
# SCSI/iSCSI conformance of a virtual volume (bstype vvol, docs/peer-and-vvol.md), measured
# against tgt's stock rdwr LU on the same device: iscsi-test-cu --dataloss runs every suite
# against LUN 1 of device dev (rdwr, 1 GiB sparse file) and LUN 2 of dev (a vvol forwarding to
# LUN 1 of a second device, peer: rdwr on a 1 GiB sparse file). The vvol passes every test the
# rdwr LU passes, or the difference is in EXPECTED below (test -> vvol result, message, reason);
# any other difference fails the test, and so does a listed test whose result or message is not
# the listed one. A listed test that no longer differs is reported (update the list and
# docs/conformance.md) but does not fail. After the suites: the vvol and its peer compare equal
# (every write the suites made through dev reached the peer) and dev still answers.
# The per-test table goes to $WORK and build/conformance/vvol-vs-rdwr.txt.
#
# Env: SUITE_TIMEOUT (seconds per suite process, default 60).
. "$(dirname "$0")/../func/functions.sh"
. "$(dirname "$0")/conformance.sh"
TABLE=vvol-vs-rdwr.txt

# ---------------------------------------------------------------- expected differences
# expect RESULT MESSAGE_ERE REASON TEST...: on the vvol TEST is RESULT (its message matching
# MESSAGE_ERE) where rdwr differs, because of REASON.
: > "$WORK/expected"
expect() {
    local res=$1 re=$2 why=$3 t; shift 3
    for t in "$@"; do printf '%s\t%s\t%s\t%s\n' "$t" "$res" "$re" "$why" >> "$WORK/expected"; done
}
# (measured; keep it minimal and give each entry its reason)

# ---------------------------------------------------------------- the devices
# peer: rdwr LUN 1 (fixed port, so a restarted peer is where the vvol's URL points).
# dev: rdwr LUN 1, vvol LUN 2 -> peer LUN 1. A suite that breaks dev gets a new dev on the same
# files; one that breaks the peer gets the peer restarted on its port.
truncate -s 1G "$WORK/rdwr.img" "$WORK/peer.img"
PEER_PORT=""
peer_start() {
    device_start peer 127.0.0.3 $PEER_PORT
    PEER_PORT=${DEV_PORT[peer]}
    lu_add peer 1 rdwr "$WORK/peer.img" || fail "cannot add the peer's rdwr LU"
}
peer_ok() {
    [ -n "${DEV_PID[peer]:-}" ] && kill -0 "${DEV_PID[peer]}" 2>/dev/null &&
        timeout 10 "$TGTADM" -C "${DEV_CTL[peer]}" --op show --mode sys >/dev/null 2>&1
}
DEV_SEQ=0
setup_device() {
    DEV_SEQ=$((DEV_SEQ + 1)); DEV=dev$DEV_SEQ
    device_start "$DEV" 127.0.0.2
    lu_add "$DEV" 1 rdwr "$WORK/rdwr.img" || fail "cannot add the rdwr LU"
    lu_add "$DEV" 2 vvol "$(device_url peer 1)" "volid=2" || fail "cannot add the vvol, see $(device_log "$DEV")"
}
recover_device() {
    if ! peer_ok; then
        log "the peer does not answer either: restarting it on port $PEER_PORT"
        [ -z "${DEV_PID[peer]:-}" ] || device_kill peer 2>/dev/null || true
        peer_start
    fi
    setup_device
}

load_tests
awk -F'\t' 'NR == FNR { t[$1] = 1; next } !($1 in t) { print $1 }' "$WORK/tests.list" "$WORK/expected" > "$WORK/unknown"
[ ! -s "$WORK/unknown" ] || fail "EXPECTED names tests iscsi-test-cu does not have: $(tr '\n' ' ' < "$WORK/unknown")"

peer_start
setup_device
VV=$(device_url "$DEV" 2)
[ "$(iscsi-readcapacity16 -s "$VV")" = "$(iscsi-readcapacity16 -s "$(device_url peer 1)")" ] ||
    fail "the vvol's capacity is not its peer's"

run_lu rdwr 1
run_lu vvol 2

# ---------------------------------------------------------------- after the suites
device_ok || fail "tgtd of $DEV does not answer after the suites"
peer_ok || fail "the peer does not answer after the suites"
"$TIO" compare "$(device_url "$DEV" 2)" "$(device_url peer 1)" > "$WORK/cmp.out" 2>&1 ||
    fail "the vvol and its peer read back differently after the suites: $(cat "$WORK/cmp.out")"
log "after: $DEV and the peer answer; the vvol and its peer LU compare equal (1 GiB)"

# ---------------------------------------------------------------- compare
join_results rdwr vvol > "$WORK/joined"   # test, rdwr res, rdwr msg, vvol res, vvol msg
# verdict per test: same | expected | stale (listed, no difference any more) | UNEXPECTED
awk -F'\t' 'FILENAME == ARGV[1] { res[$1] = $2; re[$1] = $3; why[$1] = $4; next }
    { t = $1; v = "same"
      if (t in res) {
          if ($4 == res[t] && $5 ~ re[t]) v = "expected"
          else if ($2 == $4) v = "stale"
          else v = "UNEXPECTED"
      } else if ($2 != $4) v = "UNEXPECTED"
      print t "\t" v "\t" $2 "\t" $4 "\t" ((t in why) ? why[t] : "") "\t" $5 }' \
    "$WORK/expected" "$WORK/joined" > "$WORK/verdicts"
n_exp=$(awk -F'\t' '$2 == "expected"' "$WORK/verdicts" | wc -l)
write_table "$TABLE" rdwr vvol "iscsi-test-cu --dataloss ($LIBISCSI), one process per suite" \
    "rdwr = LUN 1, tgt rdwr on a 1 GiB sparse file: $(counts "$WORK/rdwr.res")" \
    "vvol = LUN 2, tandem vvol to a tgt rdwr LU (1 GiB sparse file) of a second device: $(counts "$WORK/vvol.res")" \
    "$n_exp expected differences (tests/conformance/03-vvol.sh EXPECTED; reasons at the end)"
{
    echo
    echo "# expected differences: test, vvol result, reason"
    awk -F'\t' '$2 == "expected" { printf "%-45s %-6s %s\n", $1, $4, $5 }' "$WORK/verdicts"
} >> "$WORK/$TABLE"
cp "$WORK/$TABLE" "$OUT_DIR/$TABLE"

[ "$(awk -F'\t' '$2 == "pass"' "$WORK/rdwr.res" | wc -l)" -gt 0 ] ||
    fail "the rdwr baseline passed no test: harness problem (see $WORK/rdwr/)"
if awk -F'\t' '$2 == "stale"' "$WORK/verdicts" | grep -q .; then
    log "NOTE: listed as expected differences but now the same as rdwr (update EXPECTED and docs/conformance.md):"
    awk -F'\t' '$2 == "stale" { printf "  %-45s rdwr=%-5s vvol=%s\n", $1, $3, $4 }' "$WORK/verdicts"
fi
awk -F'\t' '$2 == "UNEXPECTED" { printf "  %-45s rdwr=%-5s vvol=%-5s %s\n", $1, $3, $4, $6 }' "$WORK/verdicts" > "$WORK/unexpected"
if [ -s "$WORK/unexpected" ]; then
    echo "[$TEST_NAME] unexpected differences (not in EXPECTED, or not the listed result/message):"
    cat "$WORK/unexpected"
    echo "[$TEST_NAME] what the vvol's device logged (forwarded commands that failed, by reason):"
    grep -h 'tid 1 lun 2: .*failed (opcode' "$WORK"/dev*.log | sed 's/offset [0-9]*, length [0-9]*/.../' |
        sort | uniq -c | sort -rn | head -n 8 || true
    fail "$(wc -l < "$WORK/unexpected") unexpected difference(s) between vvol and rdwr (table: $OUT_DIR/$TABLE)"
fi
log "PASS: $n_exp listed difference(s) from rdwr, no other (rdwr: $(counts "$WORK/rdwr.res"); vvol: $(counts "$WORK/vvol.res"))"
