#!/usr/bin/env bash
# libFuzzer over the command-block protocol (tests/fuzz/fuzz_cmdblock.c: cb_parse, cb_encode,
# cb_verify, res_render, cb_reply_parse, percent-encoding) with ASan and UBSan.
#   FUZZ_SECONDS=N   how long to fuzz (default 60)
#   CLANG=path       the compiler (default clang)
# Builds build/fuzz/fuzz_cmdblock straight from the sources, fuzzes a scratch copy of
# tests/fuzz/corpus/cmdblock (the repository's corpus is never written), and prints the exec
# count. Exit 0: no crash; 1: a crash, a leak, a timeout or a failed build (the input that did
# it is printed and kept in build/fuzz/crashes/); 77: no clang or no libFuzzer runtime.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
name=fuzz_cmdblock
secs=${FUZZ_SECONDS:-60}
clang=${CLANG:-clang}
out=$top/build/fuzz
corpus=$top/tests/fuzz/corpus/cmdblock

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

say "building $out/$name"
if ! "$clang" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -g -O1 \
        -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$top" \
        -o "$out/$name" \
        "$top/tests/fuzz/fuzz_cmdblock.c" "$top/cmdvol/cmdblock.c" "$top/raid/util.c" \
        -lisal -lcrypto 2>"$work/build.log"; then
    cat "$work/build.log"
    say "FAIL: build"
    exit 1
fi

mkdir -p "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/" || { say "FAIL: no seed corpus in $corpus"; exit 1; }
seeds=$(ls "$work/corpus" | wc -l)
say "fuzzing for ${secs}s from $seeds seeds (scratch: $work)"
# -max_len: one command block of at most 8 KiB
. "$top/tests/fuzz/fuzzrun.sh"
fuzz_run 8192 -c
exit $?
