#!/usr/bin/env bash
# Packaging (docs/install.md): `make install` places the module in tgt's module directory,
# tandemctl, its man page, the systemd template unit tandem@.service and the targets.conf
# examples; `make uninstall` removes exactly those. Every example is then run the way the unit
# runs it: the unit's own ExecStart/ExecStartPost/ExecStop lines (systemd's %i, ${VAR}, $VAR and
# $$ expanded from the example environment file) start an unmodified tgtd that loads the
# installed module and tgt-admin loads the example (its paths moved into $WORK). Each LU must be
# there with its bstype; RAID volumes take I/O, are clean after the unit's stop and assemble at
# the next start; create=1 left in fails the start cleanly; command devices answer tandemctl
# (signed where the example has a key); vvols reach their peer over CHAP; the two-device
# replication layout comes up in its documented first-start order, later in either order, and
# a pair created on it copies the P-VOL.
# All of it inside a private mount namespace whose /usr/lib, /usr/sbin, /usr/share and /etc are
# overlays backed by $WORK (like 04-module-dir): nothing on the system changes.
. "$(dirname "$0")/functions.sh"
requires unshare nsenter perl python3 man tgt-admin
grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"
perl -MConfig::General -e 1 2>/dev/null || skip "needs perl's Config::General (tgt-admin's)"

PK=$TOP/scripts/packaging
EXAMPLES=$(cd "$PK/examples" && ls)
bsdir=$(grep -a -o -m1 '/[a-z/]*/backing-store' "$TGTD") || fail "cannot find tgtd's module directory"
unitdir=/lib/systemd/system
UNIT=$unitdir/tandem@.service

# ---- the namespace: one holder process; every command below enters it with nsenter ----
ovdirs=(/usr/lib /usr/sbin /usr/share /etc)
[ -L /lib ] || ovdirs+=(/lib)                  # no merged /usr: /lib/systemd/system is elsewhere
mkdir -p "$WORK/etc-tandem"
{
    echo "set -e"
    i=0
    for d in "${ovdirs[@]}"; do
        mkdir -p "$WORK/ov/$i/up" "$WORK/ov/$i/work"
        echo "mount -t overlay overlay -o lowerdir=$d,upperdir=$WORK/ov/$i/up,workdir=$WORK/ov/$i/work $d"
        i=$((i + 1))
    done
    echo "mkdir -p /etc/tandem && mount --bind $WORK/etc-tandem /etc/tandem"
} > "$WORK/in-ns.sh"
unshare -m --propagation private bash -c ". '$WORK/in-ns.sh' && touch '$WORK/ns.ready' && exec sleep 100000" \
    > "$WORK/ns.log" 2>&1 < /dev/null &
NS=$!
# (on_exit runs last-registered first: the devices are stopped before their sockets are removed)
on_exit 'for n in "${!DEV_PID[@]}"; do device_stop "$n"; done
         for p in "${U_PORT[@]}"; do rm -f /var/run/tgtd/socket.$p /var/run/tgtd/socket.$p.lock; done'
on_exit "kill $NS 2>/dev/null; wait $NS 2>/dev/null"
wait_for 10 test -e "$WORK/ns.ready" || fail "cannot set up the mount namespace: $(cat "$WORK/ns.log")"
ns() { nsenter -t "$NS" -m -- "$@"; }
tctl() { ns /usr/sbin/tandemctl "$@"; }

# ---- 1. make install: every file in place, nothing outside the namespace ----
installed=("$bsdir/bs_tandem.so" /usr/sbin/tandemctl /usr/share/man/man8/tandemctl.8 "$UNIT")
for e in $EXAMPLES; do installed+=("/usr/share/doc/tandem/examples/$e"); done
host_state() { ls -ld "${installed[@]}" /usr/share/doc/tandem 2>/dev/null || true; }
host_before=$(host_state)
ns make -s -C "$TOP" install > "$WORK/install.log" 2>&1 || fail "make install: $(cat "$WORK/install.log")"
for f in "${installed[@]}"; do ns test -f "$f" || fail "make install did not place $f"; done
[ "$(host_state)" = "$host_before" ] || fail "make install in the namespace changed the system: $(host_state)"
ns test -x /usr/sbin/tandemctl || fail "tandemctl is not executable"
ns cmp -s "$PK/tandem@.service" "$UNIT" || fail "the installed unit differs from scripts/packaging"
for e in $EXAMPLES; do
    ns cmp -s "$PK/examples/$e" "/usr/share/doc/tandem/examples/$e" || fail "installed example $e differs"
done
[ "$(ns man -w tandemctl)" = /usr/share/man/man8/tandemctl.8 ] || fail "man -w tandemctl: $(ns man -w tandemctl 2>&1)"
ns env MANWIDTH=100 man -P cat tandemctl > "$WORK/man.out" 2> "$WORK/man.err" || true
grep -q 'tandemctl.*command device' "$WORK/man.out" || fail "man tandemctl does not render: $(cat "$WORK/man.err")"
if command -v systemd-analyze >/dev/null; then
    ns systemd-analyze verify tandem@x.service > "$WORK/verify.out" 2>&1 ||
        fail "systemd-analyze verify tandem@x.service: $(cat "$WORK/verify.out")"
fi
log "make install: module in $bsdir, tandemctl, man page, $UNIT, $(echo "$EXAMPLES" | wc -w) examples"

# ---- the unit, as systemd runs it ----
# unit_argv NAME KEY INDEX: the INDEX-th KEY= line of the installed unit for instance NAME, split
# and expanded as systemd does (line continuations, prefixes -@+!:, %i %I %n %%, ${VAR} anywhere,
# $VAR as a whole word split at whitespace, $$) with the variables of /etc/tandem/NAME.env: the
# arguments, NUL-terminated, on stdout. Exit 1 when there is no such line.
cat > "$WORK/unit_argv.py" <<'EOF'
import re, shlex, sys
unit, envfile, name, key, index = sys.argv[1:6]
text = re.sub(r'\\\n', ' ', open(unit).read())
lines = [l[len(key) + 1:] for l in text.split('\n') if l.startswith(key + '=')]
if int(index) >= len(lines):
    sys.exit(1)
line = lines[int(index)].lstrip('-@+!:')
env = {}
for l in open(envfile):
    l = l.strip()
    if l and not l.startswith('#') and '=' in l:
        k, v = l.split('=', 1)
        env[k] = v
spec = {'i': name, 'I': name, 'n': 'tandem@%s.service' % name, '%': '%'}
line = re.sub(r'%(.)', lambda m: spec[m.group(1)], line)
argv = []
for w in shlex.split(line):
    m = re.fullmatch(r'\$([A-Za-z_][A-Za-z0-9_]*)', w)
    if m:
        argv += env.get(m.group(1), '').split()
        continue
    argv.append(re.sub(r'\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}',
                       lambda m: '$' if m.group(0) == '$$' else env.get(m.group(1), ''), w))
sys.stdout.write(''.join(a + '\0' for a in argv))
EOF
ns cat "$UNIT" > "$WORK/unit"
# unit_cmd NAME KEY INDEX: CMD=(that line, to run in the namespace in the service's environment);
# fails when the unit has no such line.
unit_cmd() {
    local name=$1 argv=() envv=() l
    python3 "$WORK/unit_argv.py" "$WORK/unit" "$WORK/etc-tandem/$name.env" "$@" > "$WORK/argv" || return 1
    mapfile -d '' argv < "$WORK/argv"
    while IFS= read -r l; do
        case $l in ''|'#'*) ;; *=*) envv+=("$l") ;; esac
    done < "$WORK/etc-tandem/$name.env"
    CMD=(nsenter -t "$NS" -m -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "${envv[@]}" "${argv[@]}")
}

# Two device names, fixed addresses and ports: the examples' peers point at each other.
declare -A U_IP=([array1]=127.0.0.2 [array2]=127.0.0.3) U_PORT
U_PORT[array1]=$(_free_ctl) || fail "no free port"
while :; do U_PORT[array2]=$(_free_ctl) || fail "no free port"; [ "${U_PORT[array2]}" != "${U_PORT[array1]}" ] && break; done

# subst FILE: an example with its paths under $PH (the phase's directory) and its peers' addresses.
subst() {
    sed -e "s|/srv/tandem/|$PH/srv/|g; s|/var/lib/tandem/|$PH/lib/|g" \
        -e "s|192\\.0\\.2\\.11:3260|${U_IP[array1]}:${U_PORT[array1]}|g" \
        -e "s|192\\.0\\.2\\.12:3260|${U_IP[array2]}:${U_PORT[array2]}|g" "$1"
}
# first_start: the "# first start: LINE" convention of the examples (raid.conf's header): LINE
# replaces the line after it when that line sets the same option, else it is added.
first_start() {
    awk 'skip != "" { t = $0; sub(/^[ \t]+/, "", t); split(t, w, /[ \t]+/); s = skip; skip = ""; if (w[1] == s) next }
         /^[ \t]*# first start: / { l = $0; sub(/# first start: /, "", l); print l
                                    t = l; sub(/^[ \t]+/, "", t); split(t, w, /[ \t]+/); skip = w[1]; next }
         { print }'
}
# lus CONF: "TARGET LUN BSTYPE BACKING-STORE" per LU of a targets.conf, parsed as tgt-admin does.
lus() {
    perl -MConfig::General -e '
        my %c = Config::General->new(-ConfigFile => $ARGV[0], -UseApacheInclude => 1,
            -IncludeDirectories => 1, -IncludeGlob => 1, -MergeDuplicateBlocks => 1)->getall;
        for my $t (sort keys %{$c{target}}) {
            my $bs = $c{target}{$t}{"backing-store"};
            for my $p (sort keys %$bs) { print "$t $bs->{$p}{lun} $bs->{$p}{\"bs-type\"} $p\n" }
        }' "$1"
}
# prepare EXAMPLE SIZE: member files for each raid LU (members PREFIX COUNT SIZE: the examples
# name them PREFIX0..PREFIXn-1), then the example's "# before the first start:" commands.
prepare() {
    local conf=$WORK/$1.sub size=$2 t lun type store first n cmd
    mkdir -p "$PH/srv" "$PH/lib"
    subst "$PK/examples/$1" > "$conf"
    while read -r t lun type store; do
        [ "$type" = raid ] || continue
        first=${store%%;*}; n=$(tr ';' '\n' <<< "$store" | wc -l)
        [ "$(members "${first%0}" "$n" "$size")" = "$store" ] ||
            fail "$conf LUN $lun: members not named ${first%0}0..$((n - 1))"
    done < <(lus "$conf")
    while IFS= read -r cmd; do
        ns bash -c "$cmd" > "$WORK/before.out" 2>&1 || fail "before the first start: $cmd: $(cat "$WORK/before.out")"
    done < <(sed -n 's/^[ \t]*# before the first start: //p' "$conf")
}

# unit_start NAME EXAMPLE first|normal [expect-fail]: write /etc/tandem/NAME.env (from the example
# environment file) and /etc/tandem/NAME/targets.conf (EXAMPLE, substituted, in its first-start
# or normal form), run ExecStart (tgtd, no LD_PRELOAD) and the ExecStartPost lines.
unit_start() {
    local name=$1 ex=$2 form=$3 expect=${4:-} ip=${U_IP[$1]} port=${U_PORT[$1]} i rc=0
    mkdir -p "$WORK/etc-tandem/$name"
    sed -e "s/^TANDEM_CONTROL_PORT=.*/TANDEM_CONTROL_PORT=$port/" \
        -e "s/^TANDEM_PORTAL=.*/TANDEM_PORTAL=$ip:$port/" "$PK/examples/device.env" > "$WORK/etc-tandem/$name.env"
    if [ "$form" = first ]; then subst "$PK/examples/$ex" | first_start; else subst "$PK/examples/$ex"; fi \
        > "$WORK/etc-tandem/$name/targets.conf"
    cp "$WORK/etc-tandem/$name/targets.conf" "$WORK/$name.conf"
    unit_cmd "$name" ExecStart 0 || fail "the unit has no ExecStart"
    setsid "${CMD[@]}" >> "$WORK/$name.log" 2>&1 < /dev/null &
    DEV_PID[$name]=$!; DEV_CTL[$name]=$port; DEV_IP[$name]=$ip; DEV_PORT[$name]=$port
    wait_for 10 "$TGTADM" -C "$port" --op show --mode sys || fail "$name: tgtd did not start"
    grep -q LD_PRELOAD "/proc/${DEV_PID[$name]}/environ" && fail "$name: tgtd has LD_PRELOAD set"
    for ((i = 0; ; i++)); do
        unit_cmd "$name" ExecStartPost "$i" || break
        "${CMD[@]}" >> "$WORK/$name-admin.log" 2>&1 || { rc=$?; break; }
    done
    if [ "$expect" = expect-fail ]; then
        [ $rc != 0 ] || fail "$name: the start with $ex ($form) succeeded"
        wait_for 20 _dead "${DEV_PID[$name]}" || fail "$name: tgtd still runs after the failed start"
        wait "${DEV_PID[$name]}" 2>/dev/null || true; unset "DEV_PID[$name]"
        return 0
    fi
    [ $rc = 0 ] || fail "$name: ExecStartPost $i failed (rc $rc): $(tail -n 5 "$WORK/$name-admin.log")"
    log "$name: tandem@$name started ($ex, $form form): tgtd pid ${DEV_PID[$name]} portal $ip:$port"
}
# unit_stop NAME: the ExecStop lines; tgtd must exit by itself.
unit_stop() {
    local name=$1 i rc
    for ((i = 0; ; i++)); do
        unit_cmd "$name" ExecStop "$i" || break
        rc=0; "${CMD[@]}" >> "$WORK/$name-admin.log" 2>&1 || rc=$?
        [ $rc = 0 ] || fail "$name: ExecStop $i failed (rc $rc): $(tail -n 5 "$WORK/$name-admin.log")"
    done
    wait_for 20 _dead "${DEV_PID[$name]}" || fail "$name: tgtd did not exit after ExecStop"
    wait "${DEV_PID[$name]}" 2>/dev/null || true
    unset "DEV_PID[$name]"
}
# check_lus NAME [LUN...]: every LU of NAME's targets.conf but the LUNs given is served, with the
# bstype and backing store of the file (tgtadm --op show).
check_lus() {
    local name=$1 skip=" ${*:2} "
    lus "$WORK/$name.conf" | awk -v skip="$skip" 'index(skip, " " $2 " ") == 0' | sort > "$WORK/lus.want"
    "$TGTADM" -C "${U_PORT[$name]}" --op show --mode target |
        awk '/^Target [0-9]+: / { t = $3 } /^ +LUN: / { lun = $2 } /Backing store type:/ { ty = $4 }
             /Backing store path:/ { p = $0; sub(/.*Backing store path: /, "", p); if (lun > 0) print t, lun, ty, p }' |
        sort > "$WORK/lus.have"
    diff "$WORK/lus.want" "$WORK/lus.have" > "$WORK/lus.diff" || fail "$name: LUs differ from its targets.conf: $(cat "$WORK/lus.diff")"
}
url() { echo "iscsi://${U_IP[$1]}:${U_PORT[$1]}/iqn.2026-11.org.example:$1/$2"; }
tio_ok() { local what=$1; shift; "$TIO" "$@" > "$WORK/tio.out" 2>&1 || fail "$what: tio $*: $(cat "$WORK/tio.out")"; }
ctl_ok() { tctl "$@" > "$WORK/ctl.out" 2>&1 || fail "tandemctl $*: $(cat "$WORK/ctl.out")"; cat "$WORK/ctl.out"; }
field() { awk -v k="$1" '$1 == k { print $2; exit }'; }     # a record's KEY in tandemctl's output
# eventually DESCRIPTION CMD...: CMD succeeds within 15 s. For the first I/O through a vvol whose
# peer has just (re)started: it answers NOT READY until its session is back (backoff <= 5 s).
eventually() {
    local what=$1; shift
    wait_for 15 "$@" || { "$@" > "$WORK/ev.out" 2>&1; fail "$what: $* still fails: $(cat "$WORK/ev.out")"; }
}
remote_name() { [ "$(tctl -d "$1" info 2>/dev/null | field name)" = "$2" ]; }

# ---- 2. raid.conf: a volume formatted by its first start, one formatted offline ----
PH=$WORK/raid
prepare "raid.conf" 24M
unit_start array1 raid.conf first
check_lus array1
tio_ok "LUN 1" write "$(url array1 1)" --lba 0 --blocks 4096 --seed 61
tio_ok "LUN 2" write "$(url array1 2)" --lba 0 --blocks 512 --seed 62
"$TIO" info "$(url array1 2)" > "$WORK/info.out" 2>&1 || fail "tio info LUN 2: $(cat "$WORK/info.out")"
grep -q 'block_bytes=4096' "$WORK/info.out" || fail "LUN 2 has not 4096-byte blocks: $(cat "$WORK/info.out")"
unit_stop array1
for m in "$PH"/srv/array1-vol1-m0 "$PH"/srv/array1-vol2-m0; do
    tctl raid examine "$m" > "$WORK/examine.out" 2>&1 || fail "tandemctl raid examine $m: $(cat "$WORK/examine.out")"
    grep -q clean "$WORK/examine.out" && ! grep -q dirty "$WORK/examine.out" ||
        fail "$m is not clean after the unit's stop: $(cat "$WORK/examine.out")"
done
unit_start array1 raid.conf first expect-fail          # create=1 left in: refused, never formats twice
grep -q 'refusing to format' "$WORK/array1.log" || fail "no reason logged for the refused create=1"
unit_start array1 raid.conf normal
check_lus array1
tio_ok "LUN 1 after restart" verify "$(url array1 1)" --lba 0 --blocks 4096 --seed 61
tio_ok "LUN 2 after restart" verify "$(url array1 2)" --lba 0 --blocks 512 --seed 62
unit_stop array1
log "raid.conf: created, clean after stop, create=1 again refused cleanly, assembled, data intact"

# ---- 3. cmddev.conf: a command device with a key ----
PH=$WORK/cmddev
prepare "cmddev.conf" 24M
KEY=$WORK/etc-tandem/array1.key
[ -s "$KEY" ] || fail "the example's command did not create the key"
unit_start array1 cmddev.conf first
check_lus array1
uuid=$(ctl_ok -k /etc/tandem/array1.key -d "$(url array1 9)" info | field uuid)
[ -n "$uuid" ] || fail "tandemctl info: no uuid: $(cat "$WORK/ctl.out")"
rc=0; tctl -d "$(url array1 9)" info > "$WORK/ctl.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q AUTH_REQUIRED "$WORK/ctl.out" || fail "an unsigned command was not refused: $(cat "$WORK/ctl.out")"
unit_stop array1
unit_start array1 cmddev.conf normal
check_lus array1
[ "$(ctl_ok -k /etc/tandem/array1.key -d "$(url array1 9)" info | field uuid)" = "$uuid" ] ||
    fail "the device tables did not survive the restart"
unit_stop array1
log "cmddev.conf: signed commands answered, unsigned refused, tables kept across a restart"

# ---- 4. vvol-peer.conf + vvol.conf: vvols over CHAP ----
PH=$WORK/vvol
prepare "vvol-peer.conf" 24M
prepare "vvol.conf" 24M
read -r _ chap_user chap_pass < <(grep -m1 '^[ \t]*incominguser' "$PK/examples/vvol-peer.conf")
[ "$(cat "$WORK/etc-tandem/array1-peer.chap")" = "$chap_user $chap_pass" ] ||
    fail "vvol.conf's chap file does not match vvol-peer.conf's incominguser"
unit_start array2 vvol-peer.conf first
unit_start array1 vvol.conf first
check_lus array2; check_lus array1
expect_fail "a login to array2 without CHAP" "$TIO" info "$(url array2 2)"
peer2() { local u; u=$(url array2 "$1"); echo "iscsi://$chap_user%$chap_pass@${u#iscsi://}"; }
tio_ok "through the data vvol" write "$(url array1 2)" --lba 0 --blocks 2048 --seed 64
tio_ok "on array2 directly" verify "$(peer2 2)" --lba 0 --blocks 2048 --seed 64
[ "$(ctl_ok -d "$(url array1 3)" info | field name)" = array2 ] || fail "the remote command device is not array2's"
[ "$(ctl_ok -d "$(peer2 1)" info | field name)" = array2 ] || fail "array2's own command device"
grep -q "$chap_pass" "$WORK/array1.log" && fail "the CHAP password reached array1's log"
# Later starts: array1 first, array2 down: the vvols open from array1's LUN map.
unit_stop array1; unit_stop array2
unit_start array1 vvol.conf normal
check_lus array1
unit_start array2 vvol-peer.conf normal
eventually "the data vvol, array1 started first" "$TIO" verify "$(url array1 2)" --lba 0 --blocks 2048 --seed 64
eventually "the remote command device, array1 started first" remote_name "$(url array1 3)" array2
unit_stop array1; unit_stop array2
log "vvol.conf: data and command-device vvols over CHAP; array1 starts before array2 once recorded"

# ---- 5. replication-device1.conf + replication-device2.conf ----
PH=$WORK/repl
prepare "replication-device1.conf" 16M
prepare "replication-device2.conf" 16M
# The documented first bring-up: array1 (first start, ignore-errors: its vvols onto array2 cannot
# open yet), array2 (first start), array1 restarted in its normal form.
unit_start array1 replication-device1.conf first
check_lus array1 10 11 12
unit_start array2 replication-device2.conf first
check_lus array2
unit_stop array1
unit_start array1 replication-device1.conf normal
check_lus array1
unit_stop array2
unit_start array2 replication-device2.conf normal
check_lus array2
# From now on either order: both down, array2 first.
unit_stop array1; unit_stop array2
unit_start array2 replication-device2.conf normal
check_lus array2
unit_start array1 replication-device1.conf normal
check_lus array1
# Every vvol reaches its peer.
for v in "array1 10 array2 2" "array1 11 array2 3" "array2 10 array1 2" "array2 11 array1 3"; do
    set -- $v
    eventually "vvol $1/$2 -> $3/$4" "$TIO" compare "$(url "$1" "$2")" "$(url "$3" "$4")" --blocks 2048
done
eventually "array1's vvol onto array2's command device" remote_name "$(url array1 12)" array2
eventually "array2's vvol onto array1's command device" remote_name "$(url array2 12)" array1
# The pair-create command of replication-device1.conf, as written there.
P=$(url array1 2) S=$(url array2 2)
tio_ok "P-VOL pattern" write "$P" --seed 65 --qd 8
pc=$(awk '/^#[ \t]+tandemctl .*pair-create/ { on = 1 }
          on { l = $0; sub(/^#[ \t]*/, "", l); c = sub(/[ \t]*\\$/, "", l); printf "%s ", l; if (!c) exit }' \
     "$PK/examples/replication-device1.conf")
[ -n "$pc" ] || fail "no pair-create command in replication-device1.conf"
pc=$(subst <(echo "$pc") | sed 's/^tandemctl //')
ctl_ok $pc > /dev/null
paired() { [ "$(tctl -d "$(url array2 1)" call pair-status id=1 | field state)" = paired ]; }
wait_for 60 paired || fail "the pair did not reach paired: $(tctl -d "$(url array2 1)" call pair-status id=1)"
PBLOCKS=$("$TIO" info "$P" | sed -n 's/^blocks=\([0-9]*\) .*/\1/p')
tio_ok "S-VOL equals P-VOL" compare "$P" "$S" --blocks "$PBLOCKS"
# Both restarted: tgt-admin opens the RAID volumes before the command device (sorted backing
# stores), harmless because hosts are kept out until every LU is open; the pair resumes and new
# writes reach the S-VOL.
unit_stop array1; unit_stop array2
unit_start array1 replication-device1.conf normal
unit_start array2 replication-device2.conf normal
[ "$(tctl -d "$(url array1 1)" call pair-status id=1 | field state)" = journaling ] ||
    fail "array1's pair after the restart: $(tctl -d "$(url array1 1)" call pair-status id=1 2>&1)"
tio_ok "P-VOL after the restarts" write "$P" --seed 66 --lba 1000 --blocks 2048
wait_for 60 "$TIO" verify "$S" --seed 66 --lba 1000 --blocks 2048 ||
    fail "writes after the restarts did not reach the S-VOL: $(tctl -d "$(url array2 1)" call pair-status id=1 2>&1)"
tio_ok "S-VOL equals P-VOL after the restarts" compare "$P" "$S" --blocks "$PBLOCKS"
unit_stop array1; unit_stop array2
log "replication: first bring-up as documented, then either order; every vvol connects; a pair copies and resumes after restarts"

# ---- 6. make uninstall ----
ns make -s -C "$TOP" uninstall > "$WORK/uninstall.log" 2>&1 || fail "make uninstall: $(cat "$WORK/uninstall.log")"
for f in "${installed[@]}"; do ns test ! -e "$f" || fail "make uninstall left $f"; done
ns test ! -e /usr/share/doc/tandem || fail "make uninstall left /usr/share/doc/tandem"
[ "$(host_state)" = "$host_before" ] || fail "the real system was touched: $(host_state)"
log "PASS: make install/uninstall; every example runs under the unit's own command lines"
