#!/usr/bin/env bash
# Bootable Debian arm64 (or armhf userland) image for the real-systemd Pi check (systemd_check.sh):
# the Pi check's cached debootstrap base plus systemd as PID 1, udev, systemd-networkd (DHCP on
# qemu's user-mode network) and Debian's arm64 kernel with its initrd. Cached as a tarball, the
# kernel and initrd beside it, in SYSTEMD_CHECK_CACHE; the Pi check's own cache is only read.
#
#   sudo tests/pi/systemd_image.sh arm64|armhf      prints the tarball's path on its last line
#
# armhf: the userland is armhf but the kernel is arm64's (a Pi 4/5 running 32-bit Raspberry Pi OS
# boots a 64-bit kernel by default): the kernel package and its initrd are built in the arm64 image.
set -eu -o pipefail

ARCH="${1:?usage: $0 arm64|armhf}"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
. "$SRC/packaging/userland.sh"   # the cached base's name, binfmt, mounts, a clean environment in the root
SUITE="${PI_CHECK_SUITE:-trixie}"
PI_CACHE="${PI_CHECK_CACHE:-/var/cache/edge-agent-pi-check}"
CACHE="${SYSTEMD_CHECK_CACHE:-/var/cache/edge-agent-systemd-check}"
WORK="${SYSTEMD_CHECK_WORK:-/var/tmp/edge-agent-systemd-check}/image-$SUITE-$ARCH"
BASE="${SYSTEMD_CHECK_BASE:-$(userland_tarball "$PI_CACHE" "$SUITE" "$ARCH")}"   # pi_check.sh's tarball
IMAGE_VERSION=1   # bump when the packages or files below change
OUT="$CACHE/$SUITE-$ARCH-systemd-v$IMAGE_VERSION.tar"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-$SUITE-$ARCH"; flock 9   # one build per image at a time; the others wait for it
[ -s "$OUT" ] && { echo "$OUT"; exit 0; }
[ -s "$BASE" ] || { echo "no base userland $BASE: run PI_CHECK_SUITE=$SUITE tests/pi/pi_check.sh $ARCH once" >&2; exit 2; }
userland_binfmt "$ARCH" || { echo "qemu-user for $ARCH is not registered: apt-get install -y qemu-user-static binfmt-support" >&2; exit 2; }

ROOT="$WORK/root"
cleanup() { userland_unmount "$ROOT"; }
trap cleanup EXIT
cleanup; rm -rf --one-file-system "$WORK"; mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$BASE"   # read only: the Pi check's cache is never written here
CA=etc/ssl/certs/ca-certificates.crt   # userland_mount brings the host's CA bundle in; the image keeps its own
cp -p "$ROOT/$CA" "$WORK/ca-certificates.crt"
userland_mount "$ROOT"
rm -f "$ROOT/usr/local/bin/systemctl"   # the Pi check's stub, if the tarball has it
in_root() { userland_run "$ROOT" "$@"; }

in_root apt-get update -q
pkgs=(systemd-sysv udev dbus kmod iproute2 procps)
[ "$ARCH" = arm64 ] && pkgs+=(linux-image-arm64 initramfs-tools)
in_root apt-get install -y -q --no-install-recommends "${pkgs[@]}"
in_root groupadd -f --system i2c; in_root groupadd -f --system gpio   # as Raspberry Pi OS has them

# boot: root on the first virtio disk, DHCP on every wired link, no login prompts needed
echo "/dev/vda / ext4 defaults,noatime 0 1" >"$ROOT/etc/fstab"
echo "pi-check" >"$ROOT/etc/hostname"
mkdir -p "$ROOT/etc/systemd/network"
printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' >"$ROOT/etc/systemd/network/20-wired.network"
in_root systemctl enable systemd-networkd systemd-networkd-wait-online.service
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer || true
ln -sf /run/systemd/resolve/resolv.conf "$ROOT/etc/resolv.conf.dhcp" 2>/dev/null || true
echo "nameserver 10.0.2.3" >"$ROOT/etc/resolv.conf"   # qemu user-mode DNS
echo "root:pi-check" | in_root chpasswd
rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/var/lib/apt/lists/"*
cmp -s "/$CA" "$ROOT/$CA" && cp -p "$WORK/ca-certificates.crt" "$ROOT/$CA"   # unless apt rebuilt it

if [ "$ARCH" = arm64 ]; then
  cp -L "$ROOT/vmlinuz" "$CACHE/$SUITE-arm64-vmlinuz"
  cp -L "$ROOT/initrd.img" "$CACHE/$SUITE-arm64-initrd.img"
fi
cleanup
tar -C "$ROOT" -cf "$OUT.tmp" . && mv "$OUT.tmp" "$OUT"
rm -rf --one-file-system "$WORK"
echo "$OUT"
