#!/usr/bin/env bash
# Real-systemd Pi check: boots the emulated Pi userland as a whole machine (qemu-system-aarch64
# -M virt -cpu cortex-a72, TCG; Debian's arm64 kernel; systemd as PID 1) and runs the README's
# "Install on a Raspberry Pi" commands there (systemd_inside.sh, a one-shot unit): the MQTT
# password and `setup ... --enable` under the real systemd, then checks of the service. The agent
# publishes to a password-protected mosquitto on the host (qemu user-mode network: the host is
# 10.0.2.2), so telemetry arriving proves the LoadCredential path end to end.
#
#   sudo tests/pi/systemd_check.sh arm64|armhf
#
# arm64: 64-bit Raspberry Pi OS. armhf: 32-bit Raspberry Pi OS on a 64-bit kernel (the default on
# a Pi 4/5): the armhf userland boots on the arm64 kernel, so `uname -m` says aarch64 as on the Pi.
# The README's install command (the first) runs in a chroot under qemu-user before the boot (much
# faster than under full-system emulation); SYSTEMD_CHECK_VENV=TARBALL instead unpacks /opt/edge-agent
# from an earlier run of that same command and reinstalls only the project from this checkout.
# Environment: PI_CHECK_SUITE (trixie), SYSTEMD_CHECK_CACHE, SYSTEMD_CHECK_WORK, SYSTEMD_CHECK_SECONDS
# (budget for the boot, default 7200), SYSTEMD_CHECK_SMP (2), SYSTEMD_CHECK_VENV,
# SYSTEMD_CHECK_BOOT_ONLY=1 (boot the image the last run left in SYSTEMD_CHECK_WORK again),
# SYSTEMD_CHECK_REUSE=1 (keep the root the last run installed with the README's first command, i.e.
# before its boot; copy this checkout in, reinstall only the project from a wheel built on the host
# (pure Python), then a fresh disk and boot: for re-running the checks after a change in minutes),
# SYSTEMD_CHECK_STEPS="watchdog cold-kernel-start-blocking" (only these checks after the README's
# commands; default all), SYSTEMD_CHECK_NO_WARMUP=1 (setup's kernel warm-up skipped: NUMBA_DISABLE_JIT=1
# for the README's commands inside, not for the service; saves minutes when only later checks matter),
# SYSTEMD_CHECK_BLOCKING_CPU_QUOTA (the service's CPUQuota= for cold-kernel-start-blocking, default
# 30%, "none" for no quota).
set -u -o pipefail

ARCH="${1:?usage: $0 arm64|armhf}"
SRC="${SYSTEMD_CHECK_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}"
# bash reads a script while running it: run a copy, so the checkout can change during the hour
if [ -z "${SYSTEMD_CHECK_COPY:-}" ]; then
  copy=$(mktemp /tmp/systemd_check.XXXXXX.sh) && cp "$0" "$copy" &&
    SYSTEMD_CHECK_COPY="$copy" SYSTEMD_CHECK_SRC="$SRC" exec bash "$copy" "$@"
fi
HERE="$SRC/tests/pi"
SUITE="${PI_CHECK_SUITE:-trixie}"
CACHE="${SYSTEMD_CHECK_CACHE:-/var/cache/edge-agent-systemd-check}"
WORK="${SYSTEMD_CHECK_WORK:-/var/tmp/edge-agent-systemd-check}/$SUITE-$ARCH"
BUDGET="${SYSTEMD_CHECK_SECONDS:-7200}"
ROOT="$WORK/root" LOGS="$WORK/logs" IMG="$WORK/disk.img"
VENV=/opt/edge-agent
[ "$(id -u)" = 0 ] || { echo "systemd_check: needs root (chroot, mkfs)" >&2; exit 2; }
. "$SRC/packaging/userland.sh"   # mounts, a clean environment in the root, a copy of the checkout

RESULTS=()
t_all=$(date +%s)
host_step() {   # host_step NAME CMD...: time CMD, log in LOGS
  local name="$1"; shift; NOTE=""
  printf '[%s] %-22s ... ' "$ARCH" "$name"
  local t0 rc; t0=$(date +%s.%N)
  "$@" >"$LOGS/host-$name.log" 2>&1; rc=$?
  local secs; secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
  local res=PASS; [ $rc = 0 ] || res=FAIL
  echo "$res ${secs}s $NOTE"
  [ $rc = 0 ] || tail -n 20 "$LOGS/host-$name.log" | sed 's/^/    | /'
  RESULTS+=("$name|$res|$secs|$NOTE")
  return $rc
}

cleanup() { userland_unmount "$ROOT"; }
trap 'cleanup; [ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null; [ -n "${LISTENER:-}" ] && kill "$LISTENER" 2>/dev/null' EXIT
in_root() { userland_run "$ROOT" "$@"; }

do_image() {
  TARBALL=$("$HERE/systemd_image.sh" "$ARCH" | tail -n 1) || return 1
  cleanup; rm -rf --one-file-system "$ROOT"; mkdir -p "$ROOT"
  tar -C "$ROOT" -xf "$TARBALL" || return 1
  NOTE="$(basename "$TARBALL")"
}

# Debian's arm64 kernel and initrd (from the arm64 image); under armhf (the Pi 4/5 case: a 64-bit
# kernel under the 32-bit userland) its modules are added to the armhf root, loaded by armhf's kmod.
do_kernel() {
  KERNEL="$CACHE/$SUITE-arm64-vmlinuz" INITRD="$CACHE/$SUITE-arm64-initrd.img"
  if [ "$ARCH" != arm64 ]; then
    local arm64; arm64=$("$HERE/systemd_image.sh" arm64 | tail -n 1) || return 1
    tar -C "$ROOT" -xf "$arm64" ./usr/lib/modules || return 1
  fi
  NOTE="$(basename "$KERNEL"), modules $(ls "$ROOT/usr/lib/modules" | paste -sd' ')"
  [ -s "$KERNEL" ] && [ -s "$INITRD" ]
}

do_source() {
  rm -rf "$ROOT/src/edge-agent"
  mkdir -p "$ROOT/root/systemd-check"
  userland_copy_checkout "$SRC" "$ROOT/src/edge-agent" || return 1
  NOTE="$(git -C "$SRC" rev-parse --short HEAD)$(git -C "$SRC" diff --quiet HEAD || echo +changes)"
}

# The README's install command, verbatim, in a chroot (qemu-user), or the venv of an earlier run of it.
do_install() {
  local first; first=$(head -n 1 "$WORK/commands")
  userland_mount "$ROOT"
  local rc
  in_root apt-get update -q || return 1   # the image keeps no package lists (as after `apt update` on a Pi)
  if [ -n "${SYSTEMD_CHECK_VENV:-}" ]; then
    tar -C "$ROOT" -xf "$SYSTEMD_CHECK_VENV" opt/edge-agent &&
      in_root "$VENV/bin/pip" install --no-deps --force-reinstall --no-cache-dir /src/edge-agent
    rc=$?
    NOTE="venv from $(basename "$SYSTEMD_CHECK_VENV") (the same command, earlier), project reinstalled from this checkout"
  else
    in_root /bin/sh -c "cd /src/edge-agent && ${first//file:\/\/\/path\/to\/edge-agent/file:\/\/\/src\/edge-agent}"
    rc=$?
    NOTE="$(echo "$first" | cut -c1-80)"
  fi
  echo "nameserver 10.0.2.3" >"$ROOT/etc/resolv.conf"
  cleanup
  return $rc
}

# SYSTEMD_CHECK_REUSE: the root of the last run keeps what the README's first command installed;
# only the project is replaced, by a wheel of this checkout (py3-none-any, so built on the host).
do_reinstall() {
  local whl="$WORK/wheel"; rm -rf "$whl"; mkdir -p "$whl"
  python3 -m pip wheel -q --no-deps -w "$whl" "$ROOT/src/edge-agent" || return 1
  rm -rf "$ROOT/src/edge-agent/build" "$ROOT/src/edge-agent/"*.egg-info
  local w; w=$(ls "$whl"/*.whl) && cp "$w" "$ROOT/tmp/" || return 1
  mount -t proc proc "$ROOT/proc"
  in_root "$VENV/bin/pip" install --no-deps --force-reinstall --no-cache-dir "/tmp/$(basename "$w")"
  local rc=$?; rm -f "$ROOT/tmp/$(basename "$w")"; cleanup
  NOTE="root installed by an earlier run of the README's first command ($(stat -c %y "$ROOT$VENV/bin/python" | cut -c1-16)); project reinstalled from this checkout"
  return $rc
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The config a technician writes (my-gateway.toml): the host's broker with a password given as
# ${cred:mqtt-password}, an SDM630 simulator on Modbus TCP (a unit in the image) and a replay device.
do_config() {
  MPORT=$(free_port)
  cat >"$ROOT/src/edge-agent/my-gateway.toml" <<EOF
[gateway]
id = "pi-systemd-$ARCH"
state_dir = "/var/lib/edge-agent"
require_time_sync = false

[mqtt]
host = "10.0.2.2"
port = $MPORT
protocol = "3.1.1"
username = "gateway"
password = "\${cred:mqtt-password}"

[lines.modbus-tcp]
type = "modbus_tcp"
host = "127.0.0.1"
port = 5020

[[devices]]
name = "sdm630-1"
type = "modbus_meter"
profile = "sdm630"
unit = 1
line = "modbus-tcp"
poll_interval = 1

[[devices]]
name = "load"
type = "replay"
file = "/src/edge-agent/drivers/replay/samples/building_load_kw.csv"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 1
EOF
  SECRET="pw-$(date +%s%N | sha256sum | cut -c1-16)"
  printf '%s\n' "$SECRET" >"$ROOT/root/systemd-check/mqtt-secret"
  tail -n +2 "$WORK/commands" >"$ROOT/root/systemd-check/commands"
  printf 'STEPS=%q\nNO_WARMUP=%q\nBLOCKING_CPU_QUOTA=%q\n' "${SYSTEMD_CHECK_STEPS:-}" "${SYSTEMD_CHECK_NO_WARMUP:-}" \
    "${SYSTEMD_CHECK_BLOCKING_CPU_QUOTA:-}" >"$ROOT/root/systemd-check/knobs"
  install -m 0755 "$HERE/systemd_inside.sh" "$ROOT/usr/local/sbin/edge-agent-systemd-check"
  cat >"$ROOT/etc/systemd/system/edge-agent-systemd-check.service" <<EOF
[Unit]
Description=Pi check: the README's setup under systemd, then checks of the service
Wants=network-online.target
After=network-online.target multi-user.target
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/edge-agent-systemd-check
StandardOutput=journal+console
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
EOF
  cat >"$ROOT/etc/systemd/system/sdm630-sim.service" <<EOF
[Unit]
Description=SDM630 meter simulator on Modbus TCP 127.0.0.1:5020 (stands for the meter on the wire)
[Service]
ExecStart=$VENV/bin/edge-agent simulate sdm630 --tcp 127.0.0.1:5020
[Install]
WantedBy=multi-user.target
EOF
  ln -sf /etc/systemd/system/edge-agent-systemd-check.service "$ROOT/etc/systemd/system/multi-user.target.wants/"
  ln -sf /etc/systemd/system/sdm630-sim.service "$ROOT/etc/systemd/system/multi-user.target.wants/"
  grep -q pi-check "$ROOT/etc/hosts" || echo "127.0.1.1 pi-check" >>"$ROOT/etc/hosts"
  rm -rf "$ROOT/var/log/edge-agent-systemd-check"
  NOTE="broker 10.0.2.2:$MPORT (host 127.0.0.1:$MPORT), password required"
}

do_disk() {
  local mb; mb=$(du -sm "$ROOT" | cut -f1)
  rm -f "$IMG"
  mkfs.ext4 -q -F -L pi-root -d "$ROOT" "$IMG" "$((mb + 2048))M" || return 1
  NOTE="ext4 $((mb + 2048)) MB from $mb MB of files"
}

do_broker() {
  local dir="$WORK/broker"; mkdir -p "$dir"
  : >"$dir/passwd"; mosquitto_passwd -b "$dir/passwd" gateway "$SECRET" || return 1
  mosquitto_passwd -b "$dir/passwd" listener listener || return 1
  chmod 0644 "$dir/passwd"
  printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\n' "$MPORT" "$dir/passwd" >"$dir/mosquitto.conf"
  /usr/sbin/mosquitto -c "$dir/mosquitto.conf" >"$LOGS/mosquitto.log" 2>&1 &
  BROKER=$!
  sleep 1; kill -0 "$BROKER"
}

# Boot and wait: the one-shot unit powers the machine off when done. Telemetry is awaited meanwhile.
do_boot() {
  local gw="pi-systemd-$ARCH"
  python3 "$HERE/await_telemetry.py" --port "$MPORT" --gateway "$gw" --timeout "$BUDGET" \
    --username listener --password listener sdm630-1 load >"$LOGS/telemetry.log" 2>&1 &
  LISTENER=$!
  local t0; t0=$(date +%s)
  timeout "$BUDGET" qemu-system-aarch64 -M virt -cpu cortex-a72 -smp "${SYSTEMD_CHECK_SMP:-2}" -m 2048 \
    -display none -monitor none -serial "file:$LOGS/console.log" -no-reboot \
    -kernel "$KERNEL" -initrd "$INITRD" -append "root=/dev/vda rw console=ttyAMA0 panic=10" \
    -drive "file=$IMG,format=raw,if=virtio" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
  local rc=$?
  NOTE="machine ran $(( $(date +%s) - t0 ))s, qemu exit $rc"
  [ $rc = 0 ]
}

do_telemetry() {
  wait "$LISTENER"; local rc=$?; LISTENER=""
  cat "$LOGS/telemetry.log"
  NOTE="$(sed -n 's/^  telemetry from \(.*\) after \(.*\) s$/\1 \2s/p' "$LOGS/telemetry.log" | paste -sd, -) after boot start"
  [ $rc = 0 ]
}

do_results() {
  rm -rf "$LOGS/inside"; mkdir -p "$LOGS/inside"
  e2fsck -fy "$IMG" >/dev/null 2>&1   # replays the journal when the budget cut the machine off
  debugfs -R "rdump /var/log/edge-agent-systemd-check $LOGS/inside" "$IMG" >/dev/null 2>&1
  ls "$LOGS/inside/edge-agent-systemd-check"
  grep -a "systemd-check:" "$LOGS/console.log" | tail -n 20
  grep -q '^done$' "$LOGS/inside/edge-agent-systemd-check/results"
}

mkdir -p "$WORK"; [ -n "${SYSTEMD_CHECK_BOOT_ONLY:-}" ] || rm -rf "$LOGS"; mkdir -p "$LOGS"
echo "== $ARCH: Debian $SUITE booted under qemu-system-aarch64 (TCG) with systemd; logs in $LOGS"
python3 "$HERE/readme_commands.py" "$SRC/README.md" "$ARCH" >"$WORK/commands" || exit 1
if [ -n "${SYSTEMD_CHECK_BOOT_ONLY:-}" ]; then   # boot the image the last run built, once more
  MPORT=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$ROOT/src/edge-agent/my-gateway.toml" | head -n 1)
  SECRET=$(cat "$ROOT/root/systemd-check/mqtt-secret")
  KERNEL="$CACHE/$SUITE-arm64-vmlinuz" INITRD="$CACHE/$SUITE-arm64-initrd.img"
  [ -s "$IMG" ] && [ -n "$MPORT" ] || { echo "no image from an earlier run in $WORK" >&2; exit 2; }
elif [ -n "${SYSTEMD_CHECK_REUSE:-}" ]; then   # the installed root of the last run, this checkout
  [ -x "$ROOT$VENV/bin/python" ] || { echo "no installed root from an earlier run in $WORK" >&2; exit 2; }
  host_step source do_source || exit 1
  host_step readme-1 do_reinstall || exit 1
  host_step config do_config || exit 1
  host_step kernel do_kernel || exit 1
  host_step disk do_disk || exit 1
else
  host_step image do_image || exit 1
  host_step source do_source || exit 1
  host_step readme-1 do_install || exit 1
  host_step config do_config || exit 1
  host_step kernel do_kernel || exit 1
  host_step disk do_disk || exit 1
fi
host_step broker do_broker || exit 1
host_step boot do_boot
[ -n "$LISTENER" ] && { kill -0 "$LISTENER" 2>/dev/null && sleep 5; kill "$LISTENER" 2>/dev/null; }
host_step telemetry-on-host do_telemetry
host_step results do_results
inside="$LOGS/inside/edge-agent-systemd-check/results"

echo
echo "== real-systemd Pi check, $SUITE $ARCH ($(date -u +%FT%TZ), source $(git -C "$SRC" rev-parse --short HEAD))"
printf '%-20s %-5s %8s  %s\n' step result seconds note
fails=0
for r in "${RESULTS[@]}"; do
  IFS='|' read -r s res secs note <<<"$r"
  [ "$s" = results ] && [ -s "$inside" ] && while IFS='|' read -r s2 res2 secs2 note2; do
    [ "$s2" = done ] && continue
    printf '%-20s %-5s %8s  %s\n' "  $s2" "$res2" "$secs2" "$note2"
    [ "$res2" = FAIL ] && fails=$((fails + 1))
  done <"$inside"
  printf '%-20s %-5s %8s  %s\n' "$s" "$res" "$secs" "$note"
  [ "$res" = FAIL ] && fails=$((fails + 1))
done
echo "total $(( $(date +%s) - t_all ))s; $fails step(s) failed"
[ $fails = 0 ]
