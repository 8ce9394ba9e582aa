# Shared code of the conformance tests (tests/conformance/NN-*.sh): libiscsi's iscsi-test-cu
# --dataloss, one process per suite, against two LUs of one device, and the per-test comparison.
# Source it after ../func/functions.sh. The test script defines recover_device: called when a
# suite left tgtd dead or wedged, after that tgtd was killed; it starts a new device ($DEV) on the
# same backing files (setup_device's job in the scripts).
#
# Harness notes (measured, libiscsi 1.19): CUnit reports skipped tests as "passed", so the
# per-test lines are parsed ([SKIPPED] before the verdict = skip). One iscsi-test-cu process per
# suite: same results and the same time as one --test=ALL run (~15 s per rdwr LU here), but one
# suite cannot leak session state into the next and a hang or crash costs one suite only.
# The MultipathIO suite gets the LU's URL twice (two sessions to the same LU); without a second
# URL it skips. A suite that kills or wedges tgtd costs at most SUITE_TIMEOUT; its unfinished
# tests count as errors and the run goes on with a fresh device.
#
# Env: SUITE_TIMEOUT (seconds per suite process, default 60; the slowest rdwr suite takes ~6 s).

requires iscsi-test-cu timeout
SUITE_TIMEOUT=${SUITE_TIMEOUT:-60}
INIT1=iqn.2026-11.org.tandem:conformance-1
INIT2=iqn.2026-11.org.tandem:conformance-2
OUT_DIR=$BUILD/conformance
DEV=""
LIBISCSI=$(dpkg-query -W -f='libiscsi-bin ${Version}' libiscsi-bin 2>/dev/null || echo libiscsi)

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

# load_tests: SUITES (names) and $WORK/tests.list ("Suite.Test" lines) from iscsi-test-cu --list.
load_tests() {
    iscsi-test-cu --list > "$WORK/list.out" 2>&1 || fail "iscsi-test-cu --list failed: $(head -n 3 "$WORK/list.out")"
    SUITES=$(sed -n 's/^ALL\.\([^.]*\)$/\1/p' "$WORK/list.out")
    sed -n 's/^ALL\.\([^.]*\.[^.]*\)$/\1/p' "$WORK/list.out" > "$WORK/tests.list"
    [ -n "$SUITES" ] && [ -s "$WORK/tests.list" ] || fail "no suites/tests in iscsi-test-cu --list"
    log "iscsi-test-cu: $(echo $SUITES | wc -w) suites, $(wc -l < "$WORK/tests.list") tests"
}

# device_ok: $DEV's tgtd is alive and its main thread answers tgtadm.
device_ok() {
    kill -0 "${DEV_PID[$DEV]}" 2>/dev/null &&
        timeout 10 "$TGTADM" -C "${DEV_CTL[$DEV]}" --op show --mode sys >/dev/null 2>&1
}

# run_lu TAG LUN: every suite against LUN of $DEV, raw output in $WORK/TAG/, results in
# $WORK/TAG.res (one line per listed test; missing from the output = error).
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
            recover_device
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

# join_results A B: $WORK/A.res and $WORK/B.res side by side in list order, to stdout:
# test, A result, A message, B result, B message (tab-separated).
join_results() {
    LC_ALL=C join -t $'\t' -j 1 <(LC_ALL=C sort -t $'\t' -k1,1 "$WORK/$1.res") \
                                <(LC_ALL=C sort -t $'\t' -k1,1 "$WORK/$2.res") |
        awk -F'\t' 'NR == FNR { order[$1] = FNR; next } { print order[$1] "\t" $0 }' "$WORK/tests.list" - |
        sort -n | cut -f2-
}

# write_table FILE A B HEADER_LINES...: the per-test table of A vs B (from $WORK/joined) with
# the given header lines, in $WORK/FILE and $OUT_DIR/FILE. The note is B's message when the
# results differ, else A's.
write_table() {
    local file=$1 a=$2 b=$3 h; shift 3
    {
        for h in "$@"; do echo "# $h"; done
        echo "# note: the $b message when its result differs from $a's, else the $a message"
        printf '%-45s %-6s %-6s %s\n' test "$a" "$b" note
        awk -F'\t' -v b="$b" '{ n = ($2 != $4 && $5 != "") ? b ": " $5 : $3
                                printf "%-45s %-6s %-6s %s\n", $1, $2, $4, n }' "$WORK/joined"
    } > "$WORK/$file"
    mkdir -p "$OUT_DIR"
    cp "$WORK/$file" "$OUT_DIR/$file"
    log "table: $OUT_DIR/$file"
}
