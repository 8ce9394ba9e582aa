#!/usr/bin/env bash
# Run tandem's tests and print one closing line "N passed, N failed, N skipped".
#   scripts/run-tests.sh [unit|func|conformance|linux|fuzz]...   (default: all, in that order)
#   TESTS='pattern' limits the func/conformance/linux scripts to names matching the glob.
# Each script runs with a time limit; exit 77 means skipped (with its reason printed).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit fuzz func conformance linux)
results=$(mktemp)
trap 'rm -f "$results"' EXIT
pass=0 failn=0 skipn=0 failed=()

run_one() { # name limit_seconds cmd...
    local name=$1 limit=$2 start rc; shift 2
    start=$SECONDS
    printf '=== %s\n' "$name"
    timeout --kill-after=10 "$limit" "$@"
    rc=$?
    local took=$((SECONDS - start))
    case $rc in
        0) pass=$((pass + 1)); printf -- '--- PASS %s (%ss)\n' "$name" "$took" ;;
        77) skipn=$((skipn + 1)); printf -- '--- SKIP %s (%ss)\n' "$name" "$took" ;;
        124|137) failn=$((failn + 1)); failed+=("$name (timeout ${limit}s)")
            printf -- '--- FAIL %s: timed out after %ss\n' "$name" "$limit" ;;
        *) failn=$((failn + 1)); failed+=("$name"); printf -- '--- FAIL %s (rc %s, %ss)\n' "$name" "$rc" "$took" ;;
    esac
    echo "$name $rc $took" >> "$results"
}

for suite in "${suites[@]}"; do
    case $suite in
    unit)
        for t in "${BUILD_DIR:-build}"/unit/test_*; do
            [ -x "$t" ] || continue
            run_one "unit/$(basename "$t")" 300 "$t"
        done ;;
    func|conformance|linux)
        limit=600; [ "$suite" = linux ] && limit=900
        for t in tests/$suite/[0-9]*.sh; do
            [ -f "$t" ] || continue
            name=$suite/$(basename "$t" .sh)
            case $name in ${TESTS:-*}) ;; *) continue ;; esac
            run_one "$name" "$limit" bash "$t"
        done ;;
    fuzz)
        for t in tests/fuzz/[0-9]*.sh; do
            [ -f "$t" ] && run_one "fuzz/$(basename "$t" .sh)" 600 bash "$t"
        done ;;
    *) echo "run-tests: unknown suite '$suite'" >&2; exit 2 ;;
    esac
done

echo
echo "Summary:"
sort -k3 -n -r "$results" | awk '{printf "  %-40s rc=%-3s %4ss\n", $1, $2, $3}'
for f in "${failed[@]}"; do echo "  FAILED: $f"; done
echo "tests: $pass passed, $failn failed, $skipn skipped"
[ "$failn" -eq 0 ]
