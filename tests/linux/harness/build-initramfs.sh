#!/bin/bash
# Build (or reuse) a Debian kernel + initramfs that boots under qemu and logs
# in to an iSCSI target with the real Linux open-iscsi initiator
# (kernel iscsi_tcp + iscsistart / iscsid+iscsiadm from Debian's open-iscsi).
#
# Idempotent: outputs are cached in $LINUX_VM_WORK (default /var/tmp/tandem-linux-vm) and
# only rebuilt when an input changes (this script, guest-init.sh, kernel or
# tool package versions). FORCE=1 forces a rebuild.
#
# Outputs:
#   $LINUX_VM_WORK/vmlinuz            guest kernel
#   $LINUX_VM_WORK/initramfs.cpio.gz  base initramfs (run-vm.sh appends the
#                                     per-run guest script as a 2nd cpio)
#   $LINUX_VM_WORK/kver               kernel release string
#
# Environment:
#   LINUX_VM_WORK   cache/work dir (default /var/tmp/tandem-linux-vm)
#   KERNEL_PKG      Debian kernel package to use (default: whatever
#                   linux-image-amd64 depends on, e.g. linux-image-6.1.0-NN-amd64)
#   EXTRA_MODULES   extra kernel module names to load in the guest (space sep.)
#   EXTRA_BINS      extra host binaries to copy in (with their shared libs)
#   INSTALL_DEPS    1 (default when root): apt-get install missing host tools
#   FORCE           1: rebuild even if the cache looks current
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=${LINUX_VM_WORK:-/var/tmp/tandem-linux-vm}
FORCE=${FORCE:-0}
EXTRA_MODULES=${EXTRA_MODULES:-}
EXTRA_BINS=${EXTRA_BINS:-}
if [ "$(id -u)" = 0 ]; then INSTALL_DEPS=${INSTALL_DEPS:-1}; else INSTALL_DEPS=${INSTALL_DEPS:-0}; fi

# Modules the guest needs, by name; dependencies are resolved from the
# kernel's own modules.dep (modprobe --show-depends) and loaded in order.
BASE_MODULES="virtio_pci virtio_net crc32c_generic crc32c_intel iscsi_tcp sd_mod sg ext4"

log() { echo "[build-initramfs] $*" >&2; }
die() { echo "[build-initramfs] ERROR: $*" >&2; exit 1; }

# ---------------------------------------------------------------- host tools
need_pkgs=()
is_static() { local o; o=$(ldd "$1" 2>&1 || true); case "$o" in *"not a dynamic"*) return 0 ;; esac; return 1; }
[ -x /bin/busybox ] && is_static /bin/busybox || need_pkgs+=(busybox-static)
command -v iscsistart >/dev/null 2>&1 || [ -x /usr/sbin/iscsistart ] || need_pkgs+=(open-iscsi)
[ -x /sbin/mke2fs ] || [ -x /usr/sbin/mke2fs ] || need_pkgs+=(e2fsprogs)
command -v cpio >/dev/null 2>&1 || need_pkgs+=(cpio)
command -v xz >/dev/null 2>&1 || need_pkgs+=(xz-utils)
command -v depmod >/dev/null 2>&1 || [ -x /sbin/depmod ] || need_pkgs+=(kmod)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need_pkgs+=(qemu-system-x86)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$INSTALL_DEPS" = 1 ]; then
        log "installing host packages: ${need_pkgs[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2 ||
            { apt-get update >&2 && apt-get install -y --no-install-recommends "${need_pkgs[@]}" >&2; } ||
            die "apt-get install ${need_pkgs[*]} failed"
    else
        die "missing host packages: ${need_pkgs[*]} (apt-get install them, or run as root with INSTALL_DEPS=1)"
    fi
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
BUSYBOX=/bin/busybox
is_static "$BUSYBOX" || die "$BUSYBOX is not static (install busybox-static)"

mkdir -p "$WORK"

# ---------------------------------------------------------------- kernel pkg
if [ -z "${KERNEL_PKG:-}" ]; then
    KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    if [ -z "$KERNEL_PKG" ]; then
        log "apt lists look empty; running apt-get update"
        apt-get update >&2 || true
        KERNEL_PKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    fi
    [ -n "$KERNEL_PKG" ] || die "cannot resolve linux-image-amd64; set KERNEL_PKG"
fi
KDIR="$WORK/kernel/$KERNEL_PKG"
if [ ! -f "$KDIR/.extracted" ]; then
    log "downloading $KERNEL_PKG (apt-get download; not installed on the host)"
    rm -rf "$KDIR"; mkdir -p "$KDIR"
    chmod 0777 "$KDIR"   # lets apt's _apt user write there (avoids a warning)
    (cd "$KDIR" && apt-get download "$KERNEL_PKG" >&2) || die "apt-get download $KERNEL_PKG failed"
    deb=$(ls "$KDIR"/*.deb | head -n1)
    log "extracting $(basename "$deb")"
    dpkg-deb -x "$deb" "$KDIR/root"
    rm -f "$deb"
    touch "$KDIR/.extracted"
fi
KVER=$(ls "$KDIR/root/lib/modules" | head -n1)
[ -n "$KVER" ] || die "no /lib/modules in $KERNEL_PKG"
[ -f "$KDIR/root/lib/modules/$KVER/modules.dep" ] || depmod -b "$KDIR/root" "$KVER"

# ---------------------------------------------------------------- cache key
pkgver() { dpkg-query -W -f='${Package}=${Version} ' "$@" 2>/dev/null || true; }
KEY=$( {
    echo "$KERNEL_PKG $KVER"
    echo "mods=$BASE_MODULES $EXTRA_MODULES bins=$EXTRA_BINS"
    pkgver busybox-static open-iscsi e2fsprogs libc6
    cat "$HERE/build-initramfs.sh" "$HERE/guest-init.sh"
} | sha256sum | cut -c1-16)
OUT_INITRD="$WORK/initramfs.cpio.gz"
if [ "$FORCE" != 1 ] && [ -f "$OUT_INITRD" ] && [ -f "$WORK/vmlinuz" ] &&
   [ "$(cat "$WORK/.key" 2>/dev/null)" = "$KEY" ]; then
    log "up to date ($WORK, kernel $KVER, key $KEY)"
    exit 0
fi

# ---------------------------------------------------------------- build root
ROOT="$WORK/root.tmp"
rm -rf "$ROOT"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,etc/iscsi,proc,sys,dev,run,tmp,mnt,root,var/lib/iscsi,var/lock/iscsi,linuxvm}
ln -s ../run "$ROOT/var/run"

# busybox + applet links (don't clobber real binaries copied later)
cp "$BUSYBOX" "$ROOT/bin/busybox"
for a in $("$BUSYBOX" --list-full); do
    [ -e "$ROOT/$a" ] || [ -L "$ROOT/$a" ] || ln -s /bin/busybox "$ROOT/$a"
done

# dynamic binaries + their libraries
copy_bin() { # host-path [dest-path]
    local src=$1 dst=${2:-$1}
    [ -x "$src" ] || die "missing binary $src"
    rm -f "$ROOT$dst"; mkdir -p "$(dirname "$ROOT$dst")"
    cp -L "$src" "$ROOT$dst"
    ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\//{print $1}' | while read -r lib; do
        [ -e "$ROOT$lib" ] && continue
        mkdir -p "$(dirname "$ROOT$lib")"
        cp -L "$lib" "$ROOT$lib"
    done
}
resolve() { # name -> host path
    local p; p=$(command -v "$1" 2>/dev/null) || true
    [ -n "$p" ] || for d in /usr/sbin /sbin /usr/bin /bin; do [ -x "$d/$1" ] && p="$d/$1" && break; done
    [ -n "$p" ] || die "cannot find $1 on host"
    readlink -f "$p"
}
copy_bin "$(resolve iscsistart)" /sbin/iscsistart
copy_bin "$(resolve iscsid)"     /sbin/iscsid
copy_bin "$(resolve iscsiadm)"   /sbin/iscsiadm
copy_bin "$(resolve mke2fs)"     /sbin/mke2fs
copy_bin "$(resolve e2fsck)"     /sbin/e2fsck
for n in mkfs.ext4 mkfs.ext2 mkfs.ext3; do ln -sf mke2fs "$ROOT/sbin/$n"; done
for n in fsck.ext4 fsck.ext2 fsck.ext3; do ln -sf e2fsck "$ROOT/sbin/$n"; done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$ROOT/etc/"
for b in $EXTRA_BINS; do p=$(resolve "$b"); copy_bin "$p" "$p"; done

# open-iscsi config for the guest (iscsid/iscsiadm mode)
sed -e 's|^iscsid.startup.*|iscsid.startup = /sbin/iscsid|' \
    /etc/iscsi/iscsid.conf > "$ROOT/etc/iscsi/iscsid.conf"
echo "InitiatorName=iqn.2004-10.com.example.linuxvm:guest" > "$ROOT/etc/iscsi/initiatorname.iscsi"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$ROOT/etc/passwd"
printf 'root:x:0:\n' > "$ROOT/etc/group"
: > "$ROOT/etc/fstab"
ln -sf /proc/mounts "$ROOT/etc/mtab"

# kernel modules (+ dependencies, in load order)
MODDIR="$KDIR/root/lib/modules/$KVER"
: > "$ROOT/linuxvm/modules.order"
for m in $BASE_MODULES $EXTRA_MODULES; do
    out=$(modprobe -d "$KDIR/root" -S "$KVER" --show-depends "$m" 2>&1) || die "module $m: $out"
    echo "$out" | awk '$1=="insmod"{print $2}' | while read -r ko; do
        rel=${ko#"$KDIR/root"}
        grep -qxF "$rel" "$ROOT/linuxvm/modules.order" && continue
        mkdir -p "$(dirname "$ROOT$rel")"
        cp "$ko" "$ROOT$rel"
        echo "$rel" >> "$ROOT/linuxvm/modules.order"
    done
done
cp "$MODDIR"/modules.builtin* "$MODDIR"/modules.order "$ROOT/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$ROOT" "$KVER"
echo "$KVER" > "$ROOT/linuxvm/kver"

install -m 0755 "$HERE/guest-init.sh" "$ROOT/init"

# ---------------------------------------------------------------- pack
log "packing initramfs ($(du -sh "$ROOT" | cut -f1) unpacked, $(wc -l < "$ROOT/linuxvm/modules.order") modules)"
find "$ROOT" -exec touch -h -d @0 {} +   # fixed mtimes: same inputs -> same bytes
(cd "$ROOT" && find . -print0 | LC_ALL=C sort -z |
    cpio --null -o -H newc --reproducible --owner=0:0 --quiet) | gzip -6 -n > "$OUT_INITRD.tmp"
mv "$OUT_INITRD.tmp" "$OUT_INITRD"
cp "$KDIR/root/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
# Under TCG the bzImage's own xz decompressor takes ~5 s per boot; qemu can
# boot the uncompressed ELF vmlinux directly via its PVH entry point
# (CONFIG_PVH=y), so extract it once here. run-vm.sh prefers vmlinux.
rm -f "$WORK/vmlinux"
if grep -q '^CONFIG_PVH=y' "$KDIR/root/boot/config-$KVER" 2>/dev/null; then
    off=$(LC_ALL=C grep -aboP '\xfd\x37\x7a\x58\x5a\x00' "$WORK/vmlinuz" | head -n1 | cut -d: -f1)
    if [ -n "$off" ]; then
        tail -c +$((off + 1)) "$WORK/vmlinuz" | xz -dc --single-stream > "$WORK/vmlinux.tmp" 2>/dev/null || true
        if [ "$(head -c 4 "$WORK/vmlinux.tmp" 2>/dev/null | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
            mv "$WORK/vmlinux.tmp" "$WORK/vmlinux"
        fi
    fi
    rm -f "$WORK/vmlinux.tmp"
fi
[ -f "$WORK/vmlinux" ] && log "extracted PVH-bootable vmlinux" || log "no PVH vmlinux; will boot vmlinuz (slower)"
echo "$KVER" > "$WORK/kver"
cp "$ROOT/linuxvm/modules.order" "$WORK/modules.order"
rm -rf "$ROOT"
echo "$KEY" > "$WORK/.key"
log "built $OUT_INITRD ($(du -h "$OUT_INITRD" | cut -f1)) + vmlinuz for $KVER"
