# Shared by build-deb.sh and check-deb.sh (sourced): the Debian userland a package is built or
# installed in (packaging/userland.sh, as the Pi check's: the same cached debootstrap tarballs,
# minbase + python3, python3-venv, ca-certificates, sudo; armhf also python3-numpy).
# shellcheck shell=bash

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$SRC/packaging/userland.sh"
CACHE="${EDGE_DEB_CACHE:-${PI_CHECK_CACHE:-/var/cache/edge-agent-pi-check}}"
WORK="${EDGE_DEB_WORK:-/var/tmp/edge-agent-deb}"
OUT="${EDGE_DEB_OUT:-$WORK/out}"
MIRROR="${EDGE_DEB_MIRROR:-http://deb.debian.org/debian}"
ROOT=""

require_root() {
  [ "$(id -u)" = 0 ] || { echo "$(basename "$0"): needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
  command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || {
    echo "$(basename "$0"): apt-get install -y debootstrap qemu-user-static binfmt-support" >&2; exit 2; }
}

suite_tag() {  # the Debian release a package is built for, in its version: 0.1.0-1+deb12
  case "$1" in bookworm) echo deb12 ;; trixie) echo deb13 ;; *) echo "$1" ;; esac
}

emulated() { userland_emulated "$1"; }
enable_binfmt() { userland_binfmt "$1"; }
unpack_base() { userland_unpack "$CACHE" "$MIRROR" "$1" "$2" "$3"; }  # SUITE ARCH DIR
mount_root() { userland_mount "$ROOT"; }
unmount_root() { userland_unmount "$ROOT"; }
in_root() { userland_run "$ROOT" "$@"; }  # CMD...: as root in the userland, a clean environment
