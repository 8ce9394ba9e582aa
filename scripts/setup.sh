#!/usr/bin/env bash
# Install what tandem needs from Debian's archive and fetch tgt's headers for the installed tgt.
# Idempotent: a second run on a set-up machine does nothing but check.
#   scripts/setup.sh            packages + tgt headers (into build/tgt-src)
#   SETUP_VM=0 scripts/setup.sh   skip the packages only the Linux-initiator VM needs
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
src_dir=${TGT_SRC_DIR:-$top/build/tgt-src}

pkgs=(build-essential pkg-config tgt libiscsi-dev libiscsi-bin libssl-dev check libisal-dev
      clang libclang-rt-14-dev dpkg-dev)
vm_pkgs=(qemu-system-x86 open-iscsi busybox-static e2fsprogs cpio kmod)
[ "${SETUP_VM:-1}" = 1 ] && pkgs+=("${vm_pkgs[@]}")

say() { echo "setup: $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

# deb-src entry so 'apt-get source tgt' works (the headers must match the installed tgtd).
srcfile=/etc/apt/sources.list.d/tandem-deb-src.sources
need_update=0
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    say "adding a deb-src entry ($srcfile)"
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    as_root tee "$srcfile" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $codename $codename-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    need_update=1
fi
if [ ${#missing[@]} -gt 0 ] || [ $need_update = 1 ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -i Sources)" ]; then
    say "apt-get update"
    as_root apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tgt headers from the source package of exactly the installed version.
inst_ver=$(dpkg-query -W -f='${Version}' tgt)
stamp=$src_dir/.tgt-version
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$inst_ver" ]; then
    say "fetching tgt source $inst_ver for its headers"
    rm -rf "$src_dir"; mkdir -p "$src_dir"
    (cd "$src_dir" && apt-get source -qq --download-only "tgt=$inst_ver" >/dev/null 2>&1) || {
        echo "setup: ERROR: 'apt-get source tgt=$inst_ver' failed: the archive no longer has the source of the" >&2
        echo "setup:        installed tgt. Install the tgt version whose source is available (apt-get install tgt)." >&2
        exit 1; }
    # dpkg-source -x applies Debian's patches: they are part of the installed binary.
    (cd "$src_dir" && dpkg-source -x -q ./*.dsc tgt >/dev/null)
    [ -f "$src_dir/tgt/usr/tgtd.h" ] || { echo "setup: ERROR: tgt source has no usr/tgtd.h" >&2; exit 1; }
    echo "$inst_ver" > "$stamp"
fi
# Refuse a mismatch between the headers and the tgtd that will load the module.
hdr_ver=$(cat "$stamp")
if [ "$hdr_ver" != "$inst_ver" ]; then
    echo "setup: ERROR: tgt headers are $hdr_ver but the installed tgtd is $inst_ver; rerun scripts/setup.sh" >&2
    exit 1
fi
say "ok (tgt $inst_ver, headers in ${src_dir#$top/}/tgt/usr)"
