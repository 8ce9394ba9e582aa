#!/usr/bin/env bash
# The module also loads the distribution's way: `make install` puts bs_tandem.so in tgt's module
# directory, and an unmodified tgtd started without LD_PRELOAD dlopens it and serves raid LUs.
# Done inside a private mount namespace whose /usr/lib and /usr/sbin are overlays backed by
# $WORK, so nothing on the system changes. `make uninstall` removes what install put there.
. "$(dirname "$0")/functions.sh"
requires unshare
grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"

bsdir=$(grep -a -o -m1 '/[a-z/]*/backing-store' "$TGTD") || fail "cannot find tgtd's module directory"
log "tgtd's module directory: $bsdir"
mkdir -p "$WORK"/ov/{lib,sbin}/{up,work}
cat > "$WORK/in-ns.sh" <<EOS
set -e
mount -t overlay overlay -o lowerdir=/usr/lib,upperdir=$WORK/ov/lib/up,workdir=$WORK/ov/lib/work /usr/lib
mount -t overlay overlay -o lowerdir=/usr/sbin,upperdir=$WORK/ov/sbin/up,workdir=$WORK/ov/sbin/work /usr/sbin
EOS
# 1. make install / uninstall, in the namespace.
unshare -m --propagation private bash -c "
    . $WORK/in-ns.sh
    make -s -C '$TOP' install >/dev/null
    test -f '$bsdir/bs_tandem.so' || { echo 'install did not place the module in $bsdir'; exit 1; }
    test -x /usr/sbin/tandemctl || { echo 'install did not place tandemctl'; exit 1; }
    /usr/sbin/tandemctl --help >/dev/null
    make -s -C '$TOP' uninstall >/dev/null
    test ! -e '$bsdir/bs_tandem.so' || { echo 'uninstall left the module'; exit 1; }
    test ! -e /usr/sbin/tandemctl || { echo 'uninstall left tandemctl'; exit 1; }
" || fail "make install/uninstall in a private namespace"
[ ! -e "$bsdir/bs_tandem.so" ] || fail "the real $bsdir was touched"

# 2. tgtd, no LD_PRELOAD, loads the installed module.
cat > "$WORK/launch.sh" <<EOS
#!/usr/bin/env bash
exec unshare -m --propagation private bash -c '. $WORK/in-ns.sh; make -s -C "$TOP" install >/dev/null; exec "\$0" "\$@"' "\$@"
EOS
chmod +x "$WORK/launch.sh"
DEVICE_LAUNCHER=$WORK/launch.sh device_start d1
grep -q LD_PRELOAD "/proc/${DEV_PID[d1]}/environ" && fail "tgtd has LD_PRELOAD set"
list=$(members "$WORK/m" 3 24M)
lu_add d1 1 raid "$list" "volid=7;layout=2D+1P;chunk_kib=32;create=1"
"$TIO" write "$(device_url d1 1)" --lba 0 --blocks 2048 --seed 4
"$TIO" verify "$(device_url d1 1)" --lba 0 --blocks 2048 --seed 4
grep -q "$bsdir/bs_tandem.so" "/proc/${DEV_PID[d1]}/maps" || fail "module not mapped from $bsdir"
log "PASS: installed module loaded by tgtd from $bsdir"
