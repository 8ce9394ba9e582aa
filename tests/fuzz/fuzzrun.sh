# Sourced by tests/fuzz/NN-*.sh (not a test itself): run a built libFuzzer target over its
# corpus for $secs seconds and say what came of it. The caller sets out, name, work, secs, seeds
# and say(); `keep=1` keeps its scratch directory. fuzz_run MAX_LEN OD_ARGS...
fuzz_run() {
    local max_len=$1 rc execs corpus_after crashes c; shift
    # -error_exitcode: libFuzzer's default (77) would read as "skipped".
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
    "$out/$name" -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$max_len" -timeout=10 \
        -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/fuzz.log" 2>&1
    rc=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '#[0-9]*' "$work/fuzz.log" | tail -1 | tr -d '#')
    corpus_after=$(ls "$work/corpus" | wc -l)
    crashes=$(find "$work/artifacts" -type f | sort)

    if [ $rc -eq 0 ] && [ -z "$crashes" ]; then
        say "PASS: ${execs:-?} execs in ${secs}s, corpus $seeds -> $corpus_after inputs, 0 crashes"
        return 0
    fi

    keep=1
    mkdir -p "$out/crashes"
    say "FAIL: libFuzzer exited $rc after ${execs:-?} execs; its report:"
    grep -E 'ERROR|SUMMARY|check failed|runtime error|#[0-9]+ 0x' "$work/fuzz.log" |
        grep -vE 'fuzzer::|libc|sanitizer_|_start|pthread_kill|raise|abort' | head -20 |
        sed -e 's/ (BuildId: [0-9a-f]*)//' -e 's/^/    /'
    if [ -z "$crashes" ]; then
        say "no crash input was written; the whole log: $work/fuzz.log"
        return 1
    fi
    for c in $crashes; do
        cp "$c" "$out/crashes/" 2>/dev/null
        say "crash input: $out/crashes/$(basename "$c") ($(stat -c %s "$c") bytes; also $c)"
        head -c 300 "$c" | od "$@" | head -8 | sed 's/^/    /'
    done
    say "replay: $out/$name $out/crashes/<input>    (full log: $work/fuzz.log)"
    return 1
}
