# A Debian userland of one architecture in a directory, native (amd64) or run under qemu-user (arm64,
# armhf): the cached debootstrap base, the mounts, a clean environment to run commands in, a copy of
# the checkout. Sourced by the package build and check (packaging/lib.sh) and the Pi checks
# (tests/pi/pi_check.sh, tests/pi/systemd_check.sh, tests/pi/systemd_image.sh). Functions only, every input an argument:
# sourcing this file sets no variable of the script that sources it.
# shellcheck shell=bash

# userland_tarball CACHE SUITE ARCH: the cached base (minbase + userland_packages). The version in
# the name changes with the package list: every script then debootstraps the new base once.
userland_tarball() { echo "$1/$2-$3-base-v2.tar"; }

# What Raspberry Pi OS Lite has and minbase lacks (sudo), Python to save minutes on every run; armhf:
# Debian's numpy (PyPI has no armv7 numpy wheels, piwheels is not always reachable).
userland_packages() {
  local p=python3,python3-venv,ca-certificates,sudo
  [ "$1" = armhf ] && p="$p,python3-numpy"
  echo "$p"
}

userland_emulated() { [ "$1" != "$(dpkg --print-architecture)" ]; }
userland_qemu() { [ "$1" = arm64 ] && echo qemu-aarch64 || echo qemu-arm; }

# userland_binfmt ARCH: qemu-user registered for ARCH's binaries (nothing to do for the native one).
userland_binfmt() {
  userland_emulated "$1" || return 0
  local q; q=$(userland_qemu "$1")
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable "$q" >/dev/null 2>&1 || true
  grep -q enabled "/proc/sys/fs/binfmt_misc/$q"
}

# userland_unpack CACHE MIRROR SUITE ARCH DIR: a fresh userland in DIR from the cached tarball
# (debootstrapped once when it is missing). Refuses while anything is mounted under DIR.
userland_unpack() {
  local cache="$1" mirror="$2" suite="$3" arch="$4" dir="$5" tarball
  tarball=$(userland_tarball "$cache" "$suite" "$arch")
  if [ -n "$(findmnt -rn -o TARGET | grep -F "$dir")" ]; then
    echo "refusing: something is still mounted under $dir"; return 1
  fi
  rm -rf --one-file-system "$dir"
  if [ ! -s "$tarball" ]; then
    echo "debootstrap $suite $arch (once; cached as $tarball)"
    mkdir -p "$cache"
    nice -n 19 debootstrap --arch="$arch" --variant=minbase --include="$(userland_packages "$arch")" \
      "$suite" "$dir" "$mirror" || return 1
    rm -rf "$dir/var/cache/apt/archives/"*.deb
    tar -C "$dir" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  else
    mkdir -p "$dir" && tar -C "$dir" -xf "$tarball"
  fi
}

# userland_mount DIR: /proc, /sys, /dev and the host's resolver and CA bundle (pip then trusts what
# the host trusts, e.g. a proxy). userland_unmount DIR undoes the mounts (and may run twice).
userland_mount() {
  mount -t proc proc "$1/proc"
  mount -t sysfs sys "$1/sys"
  mount --bind /dev "$1/dev"
  mount --bind /dev/pts "$1/dev/pts"
  cp /etc/resolv.conf "$1/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
}

userland_unmount() {
  [ -n "$1" ] || return 0
  local m
  for m in dev/pts dev sys proc; do
    mountpoint -q "$1/$m" && umount -l "$1/$m"
  done
  return 0
}

# userland_run DIR CMD...: CMD in the userland as root with a clean environment, as apt and dpkg would.
userland_run() {
  local dir="$1"; shift
  chroot "$dir" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1 "$@"
}

# userland_copy_checkout SRC DEST: the checkout's tracked and new (not ignored) files, as they are now.
userland_copy_checkout() {
  mkdir -p "$2" &&
  (cd "$1" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -C "$2" -xf -
}
