#!/usr/bin/env bash
# The conformance matrix per LU type (docs/conformance.md, "Matrix per LU type"), generated from
# the per-test tables of the conformance tests (tests/conformance/*.sh write
# build/conformance/<type>-vs-rdwr.txt: every iscsi-test-cu test on the LU type and on tgt's
# stock rdwr LU of the same device).
#
#   make conformance-matrix                  run the conformance tests (a few minutes), then write
#                                            the matrix into docs/conformance.md
#   scripts/conformance-matrix.sh            the same
#   scripts/conformance-matrix.sh --reuse    no run: the matrix from the existing tables
#   scripts/conformance-matrix.sh --reuse --stdout   print the Markdown, leave the page alone
#
# Options: --reuse (use the tables as they are), --stdout (print instead of editing the page),
# --doc FILE (the page to edit, default docs/conformance.md). Env: BUILD (default build/, as the
# tests use it), TESTS (with a run: which conformance tests, a glob as for scripts/run-tests.sh).
#
# The matrix has one column per LU type: rdwr (the baseline, from the first table), then raid,
# cmddev, vvol (and any other <type>-vs-rdwr.txt), with: the counts per LU type, the counts per
# suite, a table of every test whose result differs from rdwr on some LU type (with the expected-
# difference reason the test carries in its EXPECTED list, or its message when it is not an
# expected one), and every test in a collapsed table. Each LU type is compared with the rdwr LU of
# its own run, as the tests do. It replaces what is between the lines <!-- matrix:begin --> and
# <!-- matrix:end --> of the page; the rest of the page is hand-written.
#
# Exit status: 0; 1 when a conformance test failed (the matrix is still written when every table
# was rewritten by the run: it shows the unexpected differences) or when a table is missing or was
# not rewritten by the run (then the page is left alone); 2 on a usage error.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
reuse=0 to_stdout=0 doc=docs/conformance.md
while [ $# -gt 0 ]; do
    case $1 in
        --reuse) reuse=1 ;;
        --stdout) to_stdout=1 ;;
        --doc) doc=${2:?--doc FILE}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "conformance-matrix: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
build=${BUILD:-$top/build}
dir=$build/conformance
first=(raid cmddev vvol)   # column order; other <type>-vs-rdwr.txt follow, by name

mtime() { date -u -d "@$(stat -c %Y "$1")" '+%Y-%m-%d %H:%M UTC'; }
rc=0
if [ $reuse = 0 ]; then
    mkdir -p "$dir"
    stamp=$(mktemp); trap 'rm -f "$stamp"' EXIT
    log=$dir/run.log
    echo "conformance-matrix: running the conformance tests (output: ${log#$top/})..."
    set +e
    scripts/run-tests.sh conformance 2>&1 | tee "$log" | grep -E '^(===|---|tests:|\[.*\] FAIL)'
    rc=${PIPESTATUS[0]}
    set -e
    # each table must be this run's
    not_rewritten=()
    for f in "$dir"/*-vs-rdwr.txt; do
        [ -e "$f" ] || continue
        [ "$f" -nt "$stamp" ] || not_rewritten+=("${f#$top/} ($(mtime "$f"))")
    done
    if [ ${#not_rewritten[@]} -gt 0 ] && [ -z "${TESTS:-}" ]; then
        echo "conformance-matrix: not rewritten by this run: ${not_rewritten[*]}; see ${log#$top/}; page left alone" >&2
        exit 1
    fi
fi

# the tables, in column order
tables=()
for t in "${first[@]}"; do
    if [ -e "$dir/$t-vs-rdwr.txt" ]; then tables+=("$dir/$t-vs-rdwr.txt")
    else echo "conformance-matrix: ${dir#$top/}/$t-vs-rdwr.txt is missing (run without --reuse)" >&2; exit 1; fi
done
for f in "$dir"/*-vs-rdwr.txt; do
    t=$(basename "$f" -vs-rdwr.txt)
    case " ${first[*]} " in *" $t "*) ;; *) [ -e "$f" ] && tables+=("$f") ;; esac
done

# ---------------------------------------------------------------- the Markdown
gen() {
    local f meta=""
    for f in "${tables[@]}"; do meta+="$(basename "$f" -vs-rdwr.txt)|$(mtime "$f")|${f#$top/}"$'\n'; done
    # listed-but-no-longer-different entries, which the tables do not carry: from the log of the
    # run by this script (the tests print them as NOTE), when it is not older than the tables
    local runlog=$dir/run.log stale="" stale_from="" use=0
    if [ -e "$runlog" ]; then use=1; for f in "${tables[@]}"; do [ "$f" -nt "$runlog" ] && use=0; done; fi
    if [ $use = 1 ]; then
        stale=$(awk '/\] NOTE: listed as expected differences/ { on = 1; next }
                     on && /^  [^ ]/ { r0 = $2; sub(/^rdwr=/, "", r0); split($3, a, "=")
                                       print a[1] "|" $1 "|" r0 "|" a[2]; next }
                     { on = 0 }' "$runlog")
        stale_from="\`${runlog#$top/}\`, $(mtime "$runlog")"
    fi
    awk -v now="$(date -u '+%Y-%m-%d %H:%M UTC')" -v meta="$meta" -v stale="$stale" -v stale_from="$stale_from" '
    function esc(s) { gsub(/\|/, "\\|", s); return s }
    function counts(arr_p, arr_f, arr_s, arr_e, key,   o) {
        o = ""
        if (arr_p[key]) o = o ", " arr_p[key] " pass"
        if (arr_f[key]) o = o ", " arr_f[key] " fail"
        if (arr_s[key]) o = o ", " arr_s[key] " skip"
        if (arr_e[key]) o = o ", " arr_e[key] " error"
        return o == "" ? "-" : substr(o, 3)
    }
    BEGIN { split(meta, m, "\n") }
    # meta: "type|date|path" per table file, in the order of the files
    FNR == 1 {
        n++; split(m[n], a, "|"); type[n] = a[1]; date[n] = a[2]; path[n] = a[3]
        part = "head"
    }
    part == "head" && /^# iscsi-test-cu/ { lib = $0; sub(/^# /, "", lib) }
    part == "head" && /^# rdwr = / {
        d = $0; sub(/^# rdwr = (LUN [0-9]+, )?/, "", d); sub(/: [0-9]+ tests:.*/, "", d); rdesc[n] = d
    }
    part == "head" && index($0, "# " type[n] " = ") == 1 {
        d = $0; sub(/^# [^ ]+ = (LUN [0-9]+, )?/, "", d); sub(/: [0-9]+ tests:.*/, "", d); desc[n] = d
    }
    part == "head" && /^# [0-9]+ expected differences/ { d = $0; sub(/^# [0-9]+ expected differences */, "", d); listsrc[n] = d }
    part == "head" && /^test / { part = "body"; next }
    part == "head" { next }
    part == "body" && /^$/ { part = "tail"; next }
    part == "body" {
        t = $1; r0 = $2; r1 = $3
        note = $0; sub(/^[^ ]+ +[^ ]+ +[^ ]+ */, "", note); sub(/ +$/, "", note)
        if (!(t in seen)) { seen[t] = ++ntest; order[ntest] = t }
        base[n, t] = r0; res[n, t] = r1; msg[n, t] = note
        s = t; sub(/\..*/, "", s)
        if (!(s in sseen)) { sseen[s] = ++nsuite; sorder[nsuite] = s }
        suite[t] = s
        next
    }
    part == "tail" && /^# expected differences/ { part = "exp"; next }
    part == "exp" && NF >= 2 {
        t = $1; why = $0; sub(/^[^ ]+ +[^ ]+ */, "", why); sub(/ +$/, "", why)
        expres[n, t] = $2; expwhy[n, t] = why
        next
    }
    END {
        # rdwr column: the rdwr of the first table; any disagreement between the rdwr runs is noted
        for (i = 1; i <= ntest; i++) {
            t = order[i]; rd[t] = base[1, t]
            for (k = 2; k <= n; k++) if ((k, t) in base && base[k, t] != rd[t]) rdiff[t] = 1
        }
        print "<!-- generated by scripts/conformance-matrix.sh (make conformance-matrix) from build/conformance/*-vs-rdwr.txt; edit the script, not this section -->"
        print ""
        printf "Generated %s from the tables of `make conformance`: %s; %d tests in %d suites.\n", now, lib, ntest, nsuite
        print "Each LU type is compared with the rdwr LU of its own run (the same device, the same run); the"
        print "rdwr column is the raid run'"'"'s rdwr LU" (n > 1 ? ", and the rdwr LUs of the other runs agree with it " : "") \
              (length(rdiff) ? "except where marked †." : (n > 1 ? "test by test." : "."))
        print ""
        # ---------------------------------------------------------------- counts
        print "| LU type | LU | pass | fail | skip | error | differs from rdwr | expected differences | table |"
        print "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        for (i = 1; i <= ntest; i++) { t = order[i]; c0[rd[t]]++ }
        d = rdesc[1]
        for (k = 2; k <= n; k++) if (rdesc[k] != rdesc[1]) d = d "; in the " type[k] " run: " rdesc[k]
        printf "| rdwr (baseline) | %s | %d | %d | %d | %d | - | - | every table |\n", esc(d),
            c0["pass"], c0["fail"], c0["skip"], c0["error"]
        for (k = 1; k <= n; k++) {
            split("", c); nd = 0; ne = 0; nu = 0
            for (i = 1; i <= ntest; i++) {
                t = order[i]
                if (!((k, t) in res)) { c["missing"]++; nd++; nu++; continue }
                c[res[k, t]]++
                if (res[k, t] != base[k, t]) {
                    nd++
                    if ((k, t) in expres) ne++; else nu++
                }
            }
            ex = (k in listsrc) ? ne : "no list"
            if ((k in listsrc) && nu) ex = ex " (" nu " not listed)"
            printf "| %s | %s | %d | %d | %d | %d | %d | %s | %s |\n", type[k], esc(desc[k]),
                c["pass"], c["fail"], c["skip"], c["error"] + c["missing"], nd, ex, "`" path[k] "`, " date[k]
        }
        print ""
        print "Expected differences: the test'"'"'s `EXPECTED` list (result, message, reason); 01 (raid) has no"
        print "list and fails only when raid fails or errors a test that rdwr passes."
        # ---------------------------------------------------------------- per suite
        print ""
        print "### Per suite"
        print ""
        print "Results per suite; **bold**: the counts differ from rdwr'"'"'s."
        print ""
        hdr = "| suite | tests | rdwr"; sep = "| --- | --- | ---"
        thdr = "| test | rdwr"; tsep = "| --- | ---"
        for (k = 1; k <= n; k++) { hdr = hdr " | " type[k]; sep = sep " | ---"; thdr = thdr " | " type[k]; tsep = tsep " | ---" }
        print hdr " |"; print sep " |"
        for (j = 1; j <= nsuite; j++) {
            s = sorder[j]
            split("", P); split("", F); split("", S); split("", E); nt = 0
            for (i = 1; i <= ntest; i++) {
                t = order[i]; if (suite[t] != s) continue
                nt++
                r = rd[t]; if (r == "pass") P[0]++; else if (r == "fail") F[0]++; else if (r == "skip") S[0]++; else E[0]++
                for (k = 1; k <= n; k++) {
                    r = ((k, t) in res) ? res[k, t] : "error"
                    if (r == "pass") P[k]++; else if (r == "fail") F[k]++; else if (r == "skip") S[k]++; else E[k]++
                }
            }
            line = "| " s " | " nt " | " counts(P, F, S, E, 0)
            for (k = 1; k <= n; k++) {
                cell = counts(P, F, S, E, k)
                line = line " | " (cell != counts(P, F, S, E, 0) ? "**" cell "**" : cell)
            }
            print line " |"
        }
        # ---------------------------------------------------------------- differences
        print ""
        print "### Tests whose result differs from rdwr"
        print ""
        ndiff = 0
        for (i = 1; i <= ntest; i++) {
            t = order[i]
            for (k = 1; k <= n; k++) if (((k, t) in res) && res[k, t] != base[k, t] || !((k, t) in res)) { dt[t] = 1 }
            if (t in dt) ndiff++
        }
        if (ndiff == 0) { print "None: every LU type has the rdwr result in every test." }
        else {
            print ndiff " tests. Same as rdwr: `=`. Note: per LU type that differs, *expected*: the reason from"
            print "the test'"'"'s `EXPECTED` list; *not listed*: the LU'"'"'s message (a difference the test does not expect)."
            print ""
            print thdr " | note |"; print tsep " | --- |"
            for (i = 1; i <= ntest; i++) {
                t = order[i]; if (!(t in dt)) continue
                line = "| " t " | " rd[t] (t in rdiff ? " †" : ""); note = ""
                for (k = 1; k <= n; k++) {
                    if (!((k, t) in res)) {
                        line = line " | **(missing)**"
                        note = note (note == "" ? "" : "; ") type[k] ", not in its table (counted as an error)"
                        continue
                    }
                    if (res[k, t] == base[k, t]) { line = line " | ="; continue }
                    line = line " | **" res[k, t] "**" (base[k, t] != rd[t] ? " (its rdwr: " base[k, t] ")" : "")
                    if ((k, t) in expres) nt = "expected: " expwhy[k, t]
                    else nt = ((k in listsrc) ? "not listed: " : "") (msg[k, t] != "" ? msg[k, t] : "(no message)")
                    note = note (note == "" ? "" : "; ") type[k] ", " nt
                }
                print line " | " esc(note) " |"
            }
        }
        if (length(rdiff)) {
            print ""
            print "† the rdwr LUs of the runs disagree on this test:"
            for (i = 1; i <= ntest; i++) {
                t = order[i]; if (!(t in rdiff)) continue
                o = ""
                for (k = 1; k <= n; k++) o = o (o == "" ? "" : ", ") type[k] " run " base[k, t]
                print "- " t ": " o
            }
        }
        # ---------------------------------------------------------------- stale list entries
        ns = split(stale, sl, "\n")
        if (ns > 0 && sl[1] != "") {
            print ""
            print "### Listed as expected differences, but no longer different"
            print ""
            print "From the run'"'"'s log (" stale_from "): tests that an `EXPECTED` list still names but that now"
            print "give the rdwr result (the test passes and prints a NOTE); the list and the hand-written"
            print "sections of this page should be updated."
            print ""
            print "| test | rdwr | LU type | result |"; print "| --- | --- | --- | --- |"
            for (i = 1; i <= ns; i++) { split(sl[i], a, "|"); print "| " a[2] " | " a[3] " | " a[1] " | " a[4] " |" }
        }
        # ---------------------------------------------------------------- every test
        print ""
        print "<details><summary>Every test (" ntest "), per LU type</summary>"
        print ""
        print thdr " |"; print tsep " |"
        for (i = 1; i <= ntest; i++) {
            t = order[i]; line = "| " t " | " rd[t] (t in rdiff ? " †" : "")
            for (k = 1; k <= n; k++) {
                r = ((k, t) in res) ? res[k, t] : "(missing)"
                line = line " | " (r != base[k, t] ? "**" r "**" : r)
            }
            print line " |"
        }
        print ""
        print "</details>"
    }' "${tables[@]}"
}

# replace_marked FILE BEGIN END CONTENT_FILE: the lines strictly between the marker lines BEGIN and
# END of FILE become CONTENT_FILE's (the markers stay); fails when the markers are not there once.
replace_marked() {
    local file=$1 b=$2 e=$3 content=$4 nb ne
    nb=$(grep -cxF -- "$b" "$file" || true); ne=$(grep -cxF -- "$e" "$file" || true)
    if [ "$nb" != 1 ] || [ "$ne" != 1 ]; then
        echo "conformance-matrix: $file needs exactly one line '$b' and one '$e' (found $nb, $ne)" >&2
        return 1
    fi
    awk -v b="$b" -v e="$e" -v c="$content" '
        $0 == b { print; while ((getline l < c) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip' "$file" > "$file.tmp" && mv "$file.tmp" "$file"
}

out=$(mktemp); trap 'rm -f "$out" ${stamp:+"$stamp"}' EXIT
gen > "$out"
if [ $to_stdout = 1 ]; then
    cat "$out"
else
    replace_marked "$doc" '<!-- matrix:begin -->' '<!-- matrix:end -->' "$out"
    echo "conformance-matrix: matrix of ${#tables[@]} LU types written to $doc (from ${tables[*]#$top/})"
fi
[ "$rc" = 0 ] || echo "conformance-matrix: a conformance test failed (rc $rc): see ${log#$top/}; the matrix shows its differences" >&2
exit $((rc != 0))
