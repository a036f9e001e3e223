# Shared by build-deb.sh and check-deb.sh (sourced): the Debian userland a package is built or
# installed in, native (amd64) or emulated with qemu-user (arm64, armhf), from the same cached
# debootstrap tarballs the Pi check uses (tests/pi/pi_check.sh: minbase + python3, python3-venv,
# ca-certificates, sudo; armhf also python3-numpy).
# shellcheck shell=bash

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EDGE_DEB_CACHE:-${PI_CHECK_CACHE:-/var/cache/edge-agent-pi-check}}"
WORK="${EDGE_DEB_WORK:-/var/tmp/edge-agent-deb}"
OUT="${EDGE_DEB_OUT:-$WORK/out}"
MIRROR="${EDGE_DEB_MIRROR:-http://deb.debian.org/debian}"
BASE_VERSION=2   # the Pi check's BASE_VERSION: same tarball names, same package list
ROOT=""

require_root() {
  [ "$(id -u)" = 0 ] || { echo "$(basename "$0"): needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
    echo "$(basename "$0"): apt-get install -y debootstrap qemu-user-static binfmt-support" >&2; exit 2; }
}

suite_tag() {  # the Debian release a package is built for, in its version: 0.1.0-1+deb12
  case "$1" in bookworm) echo deb12 ;; trixie) echo deb13 ;; *) echo "$1" ;; esac
}

emulated() { [ "$1" != "$(dpkg --print-architecture)" ]; }

enable_binfmt() {
  emulated "$1" || return 0
  local q; q=$([ "$1" = arm64 ] && echo qemu-aarch64 || echo qemu-arm)
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable "$q" >/dev/null 2>&1 || true
  grep -q enabled "/proc/sys/fs/binfmt_misc/$q"
}

# unpack_base SUITE ARCH DIR: a fresh userland in DIR from the cached tarball (debootstrap once).
unpack_base() {
  local suite="$1" arch="$2" dir="$3"
  local tarball="$CACHE/$suite-$arch-base-v$BASE_VERSION.tar"
  local pkgs=python3,python3-venv,ca-certificates,sudo
  [ "$arch" = armhf ] && pkgs="$pkgs,python3-numpy"
  if [ -n "$(findmnt -rn -o TARGET | grep -F "$dir")" ]; then
    echo "refusing: something is still mounted under $dir"; return 1
  fi
  rm -rf --one-file-system "$dir"
  if [ ! -s "$tarball" ]; then
    echo "debootstrap $suite $arch (once; cached as $tarball)"
    mkdir -p "$CACHE"
    nice -n 10 debootstrap --arch="$arch" --variant=minbase --include="$pkgs" "$suite" "$dir" "$MIRROR" || return 1
    rm -rf "$dir/var/cache/apt/archives/"*.deb
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  else
    mkdir -p "$dir" && tar -C "$dir" -xf "$tarball" || return 1
  fi
}

mount_root() {
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sys "$ROOT/sys"
  mount --bind /dev "$ROOT/dev"
  mount --bind /dev/pts "$ROOT/dev/pts"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
}

unmount_root() {
  [ -n "$ROOT" ] || return 0
  local m
  for m in dev/pts dev sys proc; do
    mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"
  done
  return 0
}

# in_root CMD...: run CMD in the userland as root with a clean environment, as apt and dpkg would.
in_root() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}
