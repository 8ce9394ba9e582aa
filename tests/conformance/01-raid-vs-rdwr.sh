#!/usr/bin/env bash
# SCSI/iSCSI conformance of a raid LU, measured against tgt's stock rdwr LU on the same device:
# libiscsi's iscsi-test-cu --dataloss runs every suite against LUN 1 (rdwr, 1 GiB sparse file)
# and LUN 2 (raid 3D+1P over four 400 MiB members, ~1.2 GiB). Fails when the raid LU fails (or
# errors) a test that the rdwr LU passes. The per-test table goes to $WORK and to
# build/conformance/raid-vs-rdwr.txt.
#
# Harness notes (measured, libiscsi 1.19): CUnit reports skipped tests as "passed", so the
# per-test lines are parsed ([SKIPPED] before the verdict = skip). One iscsi-test-cu process per
# suite: same results and the same time as one --test=ALL run (~15 s per rdwr LU here), but one
# suite cannot leak session state into the next and a hang or crash costs one suite only.
# The MultipathIO suite gets the LU's URL twice (two sessions to the same LU); without a second
# URL it skips.
#
# A suite that kills or wedges tgtd costs at most SUITE_TIMEOUT; its unfinished tests count as
# errors and the run goes on with a fresh device on the same files (see setup_device).
#
# Env: SUITE_TIMEOUT (seconds per suite process, default 60; the slowest rdwr suite takes ~6 s).
. "$(dirname "$0")/../func/functions.sh"

requires iscsi-test-cu timeout
SUITE_TIMEOUT=${SUITE_TIMEOUT:-60}
INIT1=iqn.2026-11.org.tandem:conformance-1
INIT2=iqn.2026-11.org.tandem:conformance-2
OUT_DIR=$BUILD/conformance
TABLE=raid-vs-rdwr.txt

# parse_results: iscsi-test-cu verbose output (one or more runs) on stdin ->
# "Suite.Test<TAB>pass|fail|skip|error<TAB>message" on stdout.
parse_results() {
    awk '
    function note(m) {
        gsub(/\t/, " ", m); sub(/ +$/, "", m)
        if (m == "") return
        if (nnotes < 4) msg = (msg == "") ? m : msg " | " m
        nnotes++
    }
    function flush() {
        if (cur != "") {
            if (res == "") { res = "error"; note("no verdict (iscsi-test-cu died or timed out)") }
            if (res == "pass") msg = ""
            else if (nnotes > 4) msg = msg " | (+" nnotes - 4 " more)"
            print cur "\t" res "\t" msg
        }
        cur = ""; res = ""; msg = ""; nnotes = 0; skipped = 0
    }
    /^Suite: / { flush(); suite = $2; next }
    /^Run Summary:/ { flush(); next }
    /^  Test: / {
        flush()
        line = $0; sub(/^  Test: /, "", line)
        name = line; sub(/ \.\.\..*/, "", name)
        cur = suite "." name
        $0 = substr(line, index(line, " ...") + 4)
    }
    cur == "" { next }
    res == "" && /^passed/ { res = skipped ? "skip" : "pass"; sub(/^passed/, "") }
    res == "" && /^FAILED/ { res = "fail"; sub(/^FAILED/, "") }
    /\[SKIPPED\]/ { if (res == "") skipped = 1; m = $0; sub(/.*\[SKIPPED\] */, "", m); if (msg == "") note(m) }
    /\[FAILED\]/  { m = $0; sub(/.*\[FAILED\] */, "", m); note(m) }
    /^ *[0-9]+\. [^ ]+:[0-9]+ +- / { m = $0; sub(/^ */, "", m); note(m) }
    END { flush() }'
}

# The device under test. If a suite leaves tgtd dead or wedged (its main thread no longer
# answers tgtadm), the suite's unfinished tests are errors, tgtd is killed and a new device is
# started on the same backing files (the raid LU reassembles, no create=), and the run goes on.
DEV="" DEV_SEQ=0
RAID_CREATE="volid=2;layout=3D+1P;chunk_kib=64;create=1"
RAID_ASSEMBLE="volid=2"
setup_device() { # raid bsopts
    DEV_SEQ=$((DEV_SEQ + 1)); DEV=dev$DEV_SEQ
    device_start "$DEV" 127.0.0.1
    lu_add "$DEV" 1 rdwr "$WORK/rdwr.img" || fail "cannot add the rdwr LU"
    lu_add "$DEV" 2 raid "$RAID_MEMBERS" "$1" || fail "cannot add the raid LU ($1), see $(device_log "$DEV")"
}
device_ok() {
    kill -0 "${DEV_PID[$DEV]}" 2>/dev/null &&
        timeout 10 "$TGTADM" -C "${DEV_CTL[$DEV]}" --op show --mode sys >/dev/null 2>&1
}

# run_lu TAG LUN: every suite against LUN, raw output in $WORK/TAG/, results in $WORK/TAG.res
run_lu() {
    local tag=$1 lun=$2 url suite rc t0=$SECONDS extra why
    mkdir -p "$WORK/$tag"
    : > "$WORK/$tag.broken"
    for suite in $SUITES; do
        url=$(device_url "$DEV" "$lun")
        extra=()
        [ "$suite" = MultipathIO ] && extra=("$url")
        rc=0
        timeout -k 10 "$SUITE_TIMEOUT" iscsi-test-cu --dataloss --verbose -i "$INIT1" -I "$INIT2" \
            --test="ALL.$suite" "$url" "${extra[@]}" >"$WORK/$tag/$suite.out" 2>&1 || rc=$?
        # iscsi-test-cu exits 1 when a test fails; more is a crash or our timeout (124)
        why=""
        [ $rc -gt 1 ] && why="iscsi-test-cu exit $rc$([ $rc = 124 ] && echo " (timeout ${SUITE_TIMEOUT}s)")"
        if ! device_ok; then
            if kill -0 "${DEV_PID[$DEV]}" 2>/dev/null; then why="${why:+$why, }tgtd wedged (tgtadm gets no answer)"
            else why="${why:+$why, }tgtd died"; fi
            log "$tag: suite $suite: $why: killing $DEV, starting a new device"
            device_kill "$DEV" 2>/dev/null || true
            setup_device "$RAID_ASSEMBLE"
        elif [ -n "$why" ]; then
            log "$tag: suite $suite: $why"
        fi
        [ -z "$why" ] || printf '%s\t%s\n' "$suite" "$why" >> "$WORK/$tag.broken"
    done
    for suite in $SUITES; do cat "$WORK/$tag/$suite.out"; done | parse_results > "$WORK/$tag.parsed"
    # every listed test gets a result: missing from the output = error; say why the suite broke
    awk -F'\t' 'FILENAME == ARGV[1] { broken[$1] = $2; next }
                 FILENAME == ARGV[2] { r[$1] = $0; res[$1] = $2; next }
                 { s = $1; sub(/\..*/, "", s)
                   line = ($1 in r) ? r[$1] : $1 "\terror\tnot run"
                   if ((s in broken) && !(res[$1] == "pass" || res[$1] == "fail" || res[$1] == "skip"))
                       line = line "; suite: " broken[s]
                   print line }' \
        "$WORK/$tag.broken" "$WORK/$tag.parsed" "$WORK/tests.list" > "$WORK/$tag.res"
    log "$tag (LUN $lun): $(counts "$WORK/$tag.res") in $((SECONDS - t0)) s"
}
counts() { awk -F'\t' '{ n[$2]++ } END { printf "%d tests: %d pass, %d fail, %d skip, %d error",
                                        NR, n["pass"], n["fail"], n["skip"], n["error"] }' "$1"; }

# ---------------------------------------------------------------- the test list
iscsi-test-cu --list > "$WORK/list.out" 2>&1 || fail "iscsi-test-cu --list failed: $(head -n 3 "$WORK/list.out")"
SUITES=$(sed -n 's/^ALL\.\([^.]*\)$/\1/p' "$WORK/list.out")
sed -n 's/^ALL\.\([^.]*\.[^.]*\)$/\1/p' "$WORK/list.out" > "$WORK/tests.list"
[ -n "$SUITES" ] && [ -s "$WORK/tests.list" ] || fail "no suites/tests in iscsi-test-cu --list"
log "iscsi-test-cu: $(echo $SUITES | wc -w) suites, $(wc -l < "$WORK/tests.list") tests"

# ---------------------------------------------------------------- one device, two LUs
truncate -s 1G "$WORK/rdwr.img"
RAID_MEMBERS=$(members "$WORK/m" 4 400M)
setup_device "$RAID_CREATE"

run_lu rdwr 1
run_lu raid 2

# ---------------------------------------------------------------- compare
LC_ALL=C join -t $'\t' -j 1 <(LC_ALL=C sort -t $'\t' -k1,1 "$WORK/rdwr.res") \
                            <(LC_ALL=C sort -t $'\t' -k1,1 "$WORK/raid.res") |
    awk -F'\t' 'NR == FNR { order[$1] = FNR; next } { print order[$1] "\t" $0 }' "$WORK/tests.list" - |
    sort -n | cut -f2- > "$WORK/joined"   # test, rdwr res, rdwr msg, raid res, raid msg
{
    echo "# iscsi-test-cu --dataloss ($(dpkg-query -W -f='libiscsi-bin ${Version}' libiscsi-bin 2>/dev/null || echo libiscsi)), one process per suite"
    echo "# rdwr = LUN 1, tgt rdwr on a 1 GiB sparse file: $(counts "$WORK/rdwr.res")"
    echo "# raid = LUN 2, tandem raid 3D+1P, 4 x 400 MiB members, chunk 64 KiB: $(counts "$WORK/raid.res")"
    echo "# note: the raid message when its result differs from rdwr's, else the rdwr message"
    printf '%-45s %-6s %-6s %s\n' test rdwr raid note
    awk -F'\t' '{ n = ($2 != $4 && $5 != "") ? "raid: " $5 : $3
                  printf "%-45s %-6s %-6s %s\n", $1, $2, $4, n }' "$WORK/joined"
} > "$WORK/$TABLE"
mkdir -p "$OUT_DIR"
cp "$WORK/$TABLE" "$OUT_DIR/$TABLE"
log "table: $OUT_DIR/$TABLE"

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
