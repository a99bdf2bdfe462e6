#!/usr/bin/env bash
# Builds a tiny Linux test guest for QEMU: Debian 12's own kernel plus a busybox initramfs that brings up
# eth0 (virtio-net over vhost-user) with the IP given on the kernel command line and then leaves a shell on
# the serial console for tests to type into (see io.vswitch.testing.QemuGuest).
#
# Output, in ${VSWITCH_GUEST_DIR:-$HOME/.cache/vswitch/guest}: vmlinuz, initramfs.gz, and a stamp holding this
# script's sha256. Both files are rebuilt only when missing or when this script changed, so calling it before
# every test run costs a few milliseconds.
#
# Needs only Debian packages: apt (to download the kernel .deb), busybox-static, cpio, gzip. Runs as root.
#
# Guest kernel command line parameters read by /init:
#   vs.ip=<addr/prefix>   address for eth0 (none: eth0 is brought up without an address)
# Console markers printed by /init (tests wait for these):
#   VSGUEST BOOT                          /init started
#   VSGUEST READY ip=<addr/prefix> mac=<mac>
#   VSGUEST FAILED <reason>               the network could not be brought up (the shell still starts)
set -euo pipefail

OUT="${VSWITCH_GUEST_DIR:-$HOME/.cache/vswitch/guest}"
SELF="$(readlink -f "${BASH_SOURCE[0]}")"
HASH="$(sha256sum "$SELF" | cut -d' ' -f1)"

# Load order matters: insmod does not resolve dependencies, so each module comes after the ones it needs.
MODULES=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net)

log() { echo "build-guest: $*" >&2; }

mkdir -p "$OUT"
# Several test JVMs (or modules built in parallel) may call this at once: one builds, the others wait.
exec 9>"$OUT/.lock"
flock 9

if [[ -s "$OUT/vmlinuz" && -s "$OUT/initramfs.gz" && "$(cat "$OUT/stamp" 2>/dev/null)" == "$HASH" ]]; then
    log "up to date in $OUT"
    exit 0
fi

need=()
# The guest has no libc, so its busybox must be the static build (the plain busybox package is dynamic).
[[ -x /bin/busybox && "$(ldd /bin/busybox 2>&1 || true)" == *"not a dynamic"* ]] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v gzip >/dev/null || need+=(gzip)
command -v xz >/dev/null || need+=(xz-utils)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The kernel image package that the linux-image-amd64 metapackage currently points at.
kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9].*-amd64$/ {print $2; exit}'; }
PKG="$(kernel_pkg)"
if [[ -z "$PKG" ]]; then
    log "apt lists empty, running apt-get update"
    apt-get update -qq
    PKG="$(kernel_pkg)"
fi
[[ -n "$PKG" ]] || { log "cannot resolve the kernel package behind linux-image-amd64"; exit 1; }

WORK="$(mktemp -d /tmp/vswitch-guest-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
# apt drops privileges to _apt for downloads; a world-writable dir avoids its "unsandboxed" warning.
chmod 777 "$WORK"

log "downloading $PKG"
if ! (cd "$WORK" && apt-get download -qq "$PKG"); then
    # Stale apt lists name a version the mirror no longer has: refresh and resolve again.
    log "download failed, running apt-get update and retrying"
    apt-get update -qq
    PKG="$(kernel_pkg)"
    (cd "$WORK" && apt-get download -qq "$PKG")
fi
dpkg-deb -x "$WORK"/"$PKG"_*.deb "$WORK/kernel"

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,root,lib/modules,etc}
cp "$(ls "$WORK"/kernel/boot/vmlinuz-* | head -1)" "$WORK/vmlinuz"

for m in "${MODULES[@]}"; do
    ko="$(find "$WORK/kernel/lib/modules" \( -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" \) | head -1)"
    [[ -n "$ko" ]] || { log "module $m not found in $PKG"; exit 1; }
    # Debian 12 ships plain .ko files; should a later kernel compress them, unpack here so busybox insmod
    # (which only reads compressed modules when built with that feature) never has to.
    case "$ko" in
        *.xz) xz -dc "$ko" >"$ROOT/lib/modules/$m.ko" ;;
        *.zst) zstd -qdc "$ko" >"$ROOT/lib/modules/$m.ko" ;;
        *) cp "$ko" "$ROOT/lib/modules/$m.ko" ;;
    esac
done

# busybox-static: no shared libraries needed in the guest. Applet links are made here rather than with
# `busybox --install -s` at boot, because that would need /proc mounted first and links to /proc/self/exe.
cp /bin/busybox "$ROOT/bin/busybox"
for applet in $(/bin/busybox --list-full); do
    [[ -e "$ROOT/$applet" ]] || ln -s /bin/busybox "$ROOT/$applet"
done

echo "${MODULES[*]}" >"$ROOT/etc/modules"

cat >"$ROOT/init" <<'INIT'
#!/bin/sh
# PID 1 of the vswitch test guest. Console: ttyS0 (stdin/stdout of QEMU).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
# Kernel messages (link up, module taint, ...) would interleave with command output the tests parse.
echo 1 >/proc/sys/kernel/printk
echo "VSGUEST BOOT"

IP=""
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vs.ip=*) IP="${arg#vs.ip=}" ;;
    esac
done

# insmod does not resolve dependencies and a module can fail while the one before it still initialises,
# so retry the whole list until virtio_net is in.
tries=0
while [ ! -d /sys/module/virtio_net ] && [ $tries -lt 5 ]; do
    for m in $(cat /etc/modules); do
        [ -d /sys/module/$m ] || insmod /lib/modules/$m.ko 2>/dev/null
    done
    tries=$((tries + 1))
    [ -d /sys/module/virtio_net ] || sleep 1
done

ok=1
if [ ! -d /sys/module/virtio_net ]; then
    echo "VSGUEST FAILED modules not loaded: $(ls /sys/module | tr '\n' ' ')"
    ok=0
fi

ip link set lo up
if [ $ok = 1 ]; then
    n=0
    while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 100000; n=$((n + 1)); done
    if [ ! -e /sys/class/net/eth0 ]; then
        echo "VSGUEST FAILED no eth0"
        ok=0
    fi
fi
if [ $ok = 1 ]; then
    [ -n "$IP" ] && ip addr add "$IP" dev eth0
    ip link set eth0 up
    echo "VSGUEST READY ip=${IP:-none} mac=$(cat /sys/class/net/eth0/address)"
fi

# A fixed, plain prompt; QemuGuest does not depend on it but humans reading the log do.
export PS1='vsguest# '
# A serial line has no window size, so ash's line editor assumes 80 columns and wraps long typed commands
# with redraw sequences; a wide terminal keeps each typed command on one line of the log.
stty -F /dev/ttyS0 cols 4000 rows 50 2>/dev/null
# Sessions never end: if the shell exits, start another (PID 1 must not exit or the kernel panics).
while true; do
    setsid cttyhack sh
    echo "VSGUEST SHELL EXITED, restarting"
done
INIT
chmod 755 "$ROOT/init"

log "packing initramfs (busybox + ${#MODULES[@]} modules)"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 >"$WORK/initramfs.gz"

# Replace atomically so a concurrent reader never sees a half-written file.
mv -f "$WORK/vmlinuz" "$OUT/vmlinuz.new" && mv -f "$OUT/vmlinuz.new" "$OUT/vmlinuz"
mv -f "$WORK/initramfs.gz" "$OUT/initramfs.gz.new" && mv -f "$OUT/initramfs.gz.new" "$OUT/initramfs.gz"
echo "$PKG" >"$OUT/kernel-package"
echo "$HASH" >"$OUT/stamp"
log "built $OUT/vmlinuz ($PKG) and $OUT/initramfs.gz ($(du -h "$OUT/initramfs.gz" | cut -f1))"
