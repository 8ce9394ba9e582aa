#!/usr/bin/env bash
# libFuzzer over the replication journal's on-volume format (tests/fuzz/journal_fuzz.c:
# jrnl_hdr_parse, jrnl_entry_parse, their encode round trips, jrnl_entry_check / jrnl_place on a
# parsed header+entry pair, jrnl_hdr_read of copies A/B, jrnl_uuid_parse, jrnl_layout) with ASan
# and UBSan.
#   FUZZ_SECONDS=N   how long to fuzz (default 60)
#   CLANG=path       the compiler (default clang)
# Builds build/fuzz/journal_fuzz straight from the sources, and the same harness with
# -DJOURNAL_FUZZ_SEEDS as a generator of valid records (headers A/B, data and marker entries),
# which seed a scratch corpus (plus tests/fuzz/corpus/journal/ if it exists; the repository is
# never written), and prints the exec count. Exit 0: no crash; 1: a crash, a leak, a timeout or
# a failed build (the input that did it is printed and kept in build/fuzz/crashes/); 77: no clang
# or no libFuzzer runtime.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
name=journal_fuzz
secs=${FUZZ_SECONDS:-60}
clang=${CLANG:-clang}
out=$top/build/fuzz
corpus=$top/tests/fuzz/corpus/journal
srcs=("$top/tests/fuzz/journal_fuzz.c" "$top/replication/journal.c" "$top/raid/util.c")

say() { echo "[$name] $*"; }
case $secs in ''|*[!0-9]*) say "FUZZ_SECONDS='$secs' is not a number of seconds"; exit 1 ;; esac

command -v "$clang" >/dev/null 2>&1 || { say "SKIP: no clang (install clang to fuzz)"; exit 77; }
mkdir -p "$out" || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-$name.XXXXXX") || exit 1
keep=0
trap '[ $keep = 1 ] || rm -rf "$work"' EXIT

# Is the fuzzer runtime there? (clang without compiler-rt's libFuzzer links nothing.)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
    > "$work/probe.c"
if ! "$clang" -fsanitize=fuzzer,address,undefined -o "$work/probe" "$work/probe.c" \
        >"$work/probe.log" 2>&1; then
    say "SKIP: $clang cannot link -fsanitize=fuzzer,address,undefined (no libFuzzer runtime:"
    say "      install the clang/compiler-rt package that ships libclang_rt.fuzzer):"
    sed 's/^/    /' "$work/probe.log" | head -5
    exit 77
fi

say "building $out/$name and its seed generator"
cflags=(-fno-sanitize-recover=all -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror
        -Wmissing-prototypes -I"$top")
if ! "$clang" -fsanitize=fuzzer,address,undefined "${cflags[@]}" -o "$out/$name" "${srcs[@]}" \
        -lisal 2>"$work/build.log" ||
   ! "$clang" -fsanitize=address,undefined -DJOURNAL_FUZZ_SEEDS "${cflags[@]}" \
        -o "$work/seedgen" "${srcs[@]}" -lisal 2>>"$work/build.log"; then
    cat "$work/build.log"
    say "FAIL: build"
    exit 1
fi

mkdir -p "$work/corpus" "$work/artifacts"
# the generator runs every seed through the harness's checks once before writing it
if ! "$work/seedgen" "$work/corpus" >"$work/seedgen.log" 2>&1; then
    sed 's/^/    /' "$work/seedgen.log" | head -20
    say "FAIL: the seed generator failed (a valid record breaks a check)"
    keep=1
    exit 1
fi
if [ -d "$corpus" ]; then cp "$corpus"/* "$work/corpus/" 2>/dev/null; fi
seeds=$(ls "$work/corpus" | wc -l)
[ "$seeds" -gt 0 ] || { say "FAIL: no seeds"; exit 1; }
say "fuzzing for ${secs}s from $seeds seeds (scratch: $work)"
# -max_len: two header copies and three entry records (the input layout of journal_fuzz.c)
. "$top/tests/fuzz/fuzzrun.sh"
fuzz_run 8576 -A d -t x1
exit $?
