#!/usr/bin/env bash
# Pi check: install edge-agent the way the README's "Install on a Raspberry Pi" section says, inside
# an emulated Debian bookworm userland (arm64 = 64-bit Pi OS, armhf = 32-bit Pi OS), run the kernel
# tests and a short `edge-agent run` against a mosquitto on the host; print pass/fail and timings.
#
#   sudo tests/pi/pi_check.sh [arm64|armhf|all]      (default: all)
#
# Needs root, debootstrap, qemu-user-static, binfmt-support, mosquitto and the project's Python
# dependencies on the host (paho-mqtt for the listener). Slow (tens of minutes): not part of pytest.
# Environment:
#   PI_CHECK_CACHE   base userland tarballs and pip caches   (default /var/cache/edge-agent-pi-check)
#   PI_CHECK_WORK    unpacked userlands and logs              (default /var/tmp/edge-agent-pi-check)
#   PI_CHECK_MIRROR  Debian mirror                            (default http://deb.debian.org/debian)
#   PI_CHECK_RUN_SECONDS  how long to wait for telemetry      (default 900)
#   PI_CHECK_KEEP=1  leave the userland unpacked after the check (to look around with chroot)
set -u -o pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$SRC/tests/pi"
CACHE="${PI_CHECK_CACHE:-/var/cache/edge-agent-pi-check}"
WORK="${PI_CHECK_WORK:-/var/tmp/edge-agent-pi-check}"
MIRROR="${PI_CHECK_MIRROR:-http://deb.debian.org/debian}"
RUN_SECONDS="${PI_CHECK_RUN_SECONDS:-900}"
SUITE=bookworm
BASE_VERSION=1   # bump when the package list below changes: the cached tarballs are rebuilt
VENV=/opt/edge-agent
STATE=/var/lib/edge-agent

[ "$(id -u)" = 0 ] || { echo "pi_check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
for tool in debootstrap update-binfmts mosquitto; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "pi_check: $tool missing: apt-get install -y debootstrap qemu-user-static binfmt-support mosquitto" >&2
    exit 2; }
done
mkdir -p "$CACHE" "$WORK"

# ------------------------------------------------------------------------------------ step runner
RESULTS=()          # "arch|step|PASS/FAIL/SKIP|seconds|note"
ARCH="" ROOT="" LOGS="" NOTE=""
step_no=0

# step NAME CMD...: run CMD with its output in a log file; record PASS/FAIL and the wall time.
# CMD may set NOTE (shown beside the result). Returns CMD's status.
step() {
  local name="$1"; shift
  step_no=$((step_no + 1))
  local log; log="$LOGS/$(printf %02d $step_no)-$name.log"
  NOTE=""
  printf '[%s] %-22s ... ' "$ARCH" "$name"
  local t0 t1 rc
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
  if [ $rc = 0 ]; then
    echo "PASS ${secs}s ${NOTE}"
    RESULTS+=("$ARCH|$name|PASS|$secs|$NOTE")
  else
    echo "FAIL ${secs}s (exit $rc) ${NOTE}"
    [ -n "$NOTE" ] || NOTE="$(grep -m1 -E "error: command|ERROR: |No module named|No matching" "$log" | cut -c1-110)"
    RESULTS+=("$ARCH|$name|FAIL|$secs|exit $rc; $NOTE; log $log")
    tail -n 25 "$log" | sed 's/^/    | /'
  fi
  return $rc
}

skip() {
  printf '[%s] %-22s ... SKIP (%s)\n' "$ARCH" "$1" "$2"
  RESULTS+=("$ARCH|$1|SKIP|0|$2")
}

# The command prefixes that run something inside the userland with a clean environment: as root,
# and as the edge-agent user (what `sudo -u edge-agent` does). Arrays, not functions, so that
# `"${AS_AGENT[@]}" cmd &` puts the chrooted process itself in $! (a function would be a subshell).
set_prefixes() {
  IN_ROOT=(chroot "$ROOT" /usr/bin/env -i HOME=/root
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DEFAULT_TIMEOUT=180 PIP_DISABLE_PIP_VERSION_CHECK=1)
  AS_AGENT=(chroot --userspec=edge-agent:edge-agent "$ROOT" /usr/bin/env -i HOME="$STATE"
    PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
}
in_root() { "${IN_ROOT[@]}" "$@"; }
as_agent() { "${AS_AGENT[@]}" "$@"; }

# ------------------------------------------------------------------------------------ the steps
qemu_name() { [ "$1" = arm64 ] && echo qemu-aarch64 || echo qemu-arm; }
py_platform() { [ "$1" = arm64 ] && echo aarch64 || echo armv7l; }

do_binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable "$(qemu_name "$ARCH")" || true
  grep -q enabled "/proc/sys/fs/binfmt_misc/$(qemu_name "$ARCH")"
  grep flags "/proc/sys/fs/binfmt_misc/$(qemu_name "$ARCH")"   # F: the host's qemu is used, no copy needed
}

base_packages() {
  local p=python3,python3-venv,ca-certificates
  # 32-bit: PyPI has no armv7 numpy wheels and piwheels is not always reachable: Debian's numpy.
  [ "$ARCH" = armhf ] && p="$p,python3-numpy"
  echo "$p"
}

# The debootstrapped base (minbase + Python) is cached as a tarball; each check unpacks it afresh.
do_userland() {
  local tarball="$CACHE/$SUITE-$ARCH-base-v$BASE_VERSION.tar"
  if [ -n "$(findmnt -rn -o TARGET | grep -F "$ROOT")" ]; then
    echo "refusing: something is still mounted under $ROOT"; return 1
  fi
  rm -rf --one-file-system "$ROOT"
  if [ ! -s "$tarball" ]; then
    NOTE="debootstrap (first run; cached afterwards)"
    nice -n 19 debootstrap --arch="$ARCH" --variant=minbase --include="$(base_packages)" \
      "$SUITE" "$ROOT" "$MIRROR" || return 1
    rm -rf "$ROOT/var/cache/apt/archives/"*.deb
    tar -C "$ROOT" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  else
    NOTE="from cache $tarball"
    mkdir -p "$ROOT" && tar -C "$ROOT" -xf "$tarball" || return 1
  fi
  # Raspberry Pi OS has these groups (plain Debian does not); the README adds the user to them.
  in_root groupadd -f --system i2c && in_root groupadd -f --system gpio
}

mount_userland() {
  mount -t proc proc "$ROOT/proc"
  mount -t sysfs sys "$ROOT/sys"
  mount --bind /dev "$ROOT/dev"
  mount --bind /dev/pts "$ROOT/dev/pts"
  mkdir -p "$CACHE/pip-$ARCH" "$ROOT/root/.cache/pip"
  mount --bind "$CACHE/pip-$ARCH" "$ROOT/root/.cache/pip"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
}

unmount_userland() {
  [ -n "$ROOT" ] || return 0
  local m
  for m in root/.cache/pip dev/pts dev sys proc; do
    mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"
  done
  return 0
}

do_wheel() {
  # built from a copy of the tracked and new files, so the build leaves nothing in the work tree
  rm -rf "$WORK/wheel" "$WORK/src" && mkdir -p "$WORK/wheel" "$WORK/src"
  (cd "$SRC" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - | tar -C "$WORK/src" -xf -) || return 1
  (cd "$WORK/src" && pip wheel --no-deps -q -w "$WORK/wheel" . ) || return 1
  WHEEL=$(ls "$WORK/wheel"/edge_agent-*.whl) && NOTE="$(basename "$WHEEL")"
}

copy_project() {
  mkdir -p "$ROOT/src/check"
  cp "$WHEEL" "$ROOT/src/"
  # tests and pytest's config only: the installed package (not a source tree) is what the tests import
  cp -r "$SRC/tests" "$SRC/pyproject.toml" "$ROOT/src/check/"
  cp -r "$SRC/config" "$SRC/systemd" "$ROOT/src/"
}

# README: sudo apt-get install -y python3-venv
do_apt() { in_root apt-get install -y python3-venv; }

# README: sudo python3 -m venv /opt/edge-agent   (32-bit: with Debian's numpy visible)
do_venv() {
  local flags=""
  [ "$ARCH" = armhf ] && flags="--system-site-packages" && NOTE="$flags (Debian's python3-numpy)"
  in_root python3 -m venv $flags "$VENV"
}

# README: sudo /opt/edge-agent/bin/pip install 'edge-agent[pi] @ file:///path/to/edge-agent'
do_install() {
  local spec="$1"
  in_root "$VENV/bin/pip" install --progress-bar off "edge-agent$spec @ file:///src/$(basename "$WHEEL")"
}

# The [pi] install failed: install the project without the extra so the rest can still be checked.
do_install_core() { do_install ""; }

# Last resort, for a dependency the base install cannot satisfy here (numpy's floor above Debian's on
# 32-bit): the project without dependency resolution, then each dependency but numpy.
do_install_nodeps() {
  in_root "$VENV/bin/pip" install --progress-bar off --no-deps "/src/$(basename "$WHEEL")" || return 1
  local reqs
  reqs=$(in_root "$VENV/bin/python" - <<'EOF'
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
out = []
for r in requires("edge-agent"):
    req = Requirement(r)
    if req.name != "numpy" and (req.marker is None or req.marker.evaluate({"extra": ""})):
        out.append(str(req).split(";")[0])
print("\n".join(out))
EOF
  ) || return 1
  NOTE="numpy from Debian: $(in_root "$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')"
  echo "$reqs" | xargs -d '\n' chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$VENV/bin/pip" install --progress-bar off
}

do_versions() {
  in_root "$VENV/bin/python" - <<'EOF'
import importlib, platform
print("python", platform.python_version(), platform.machine())
for m in ("numpy", "numba", "llvmlite", "pydantic", "RPi.GPIO", "gpiod", "board"):
    try:
        mod = importlib.import_module(m)
        print(f"{m:10s}", getattr(mod, "__version__", getattr(mod, "VERSION", "?")), mod.__file__)
    except Exception as e:  # report what is missing, do not fail
        print(f"{m:10s} absent ({type(e).__name__})")
EOF
  NOTE="$(in_root "$VENV/bin/python" -c '
import importlib.util as u
print("numba" if u.find_spec("numba") else "no numba (numpy kernels)")')"
}

# README: useradd / usermod / install -d / cp config
do_user() {
  in_root useradd --system --home "$STATE" --shell /usr/sbin/nologin edge-agent &&
  in_root usermod -aG dialout,i2c,gpio edge-agent &&
  in_root install -d -m 0750 -o root -g edge-agent /etc/edge-agent &&
  in_root cp /src/config/edge-agent.toml /etc/edge-agent/config.toml
}

# README: sudo /opt/edge-agent/bin/edge-agent check --config /etc/edge-agent/config.toml
do_check() { in_root "$VENV/bin/edge-agent" check --config /etc/edge-agent/config.toml; }

# README: sudo -u edge-agent NUMBA_CACHE_DIR=... edge-agent warmup --state-dir /var/lib/edge-agent
# A warmup that exits 0 but leaves no cache behind counts as a failure where numba is installed.
do_warmup() {
  as_agent NUMBA_CACHE_DIR="$STATE/numba-cache" "$VENV/bin/edge-agent" warmup --state-dir "$STATE"
  local rc=$?
  [ $rc = 0 ] || { NOTE="warmup exit $rc"; return $rc; }
  if in_root "$VENV/bin/python" -c 'import numba' 2>/dev/null; then
    local n; n=$(find "$ROOT$STATE" -name '*.nbi' 2>/dev/null | wc -l)
    NOTE="warmup exit 0, $n cached kernel indexes under $STATE"
    [ "$n" -gt 0 ]
  else
    NOTE="no numba: nothing to compile"
  fi
}

# Prepare the state directory the way a working install needs it (the README does not create it).
do_state_dir() {
  [ -d "$ROOT$STATE" ] && NOTE="existed" || NOTE="created by the check (README does not)"
  in_root install -d -m 0750 -o edge-agent -g edge-agent "$STATE"
}

do_test_deps() {
  in_root "$VENV/bin/pip" install --progress-bar off pytest pytest-asyncio pytest-timeout hypothesis
}

do_kernel_tests() {
  chroot "$ROOT" /usr/bin/env -i HOME=/root PATH=/usr/bin:/bin LANG=C.UTF-8 \
    NUMBA_CACHE_DIR=/var/tmp/kernel-test-cache \
    /bin/sh -c "cd /src/check && timeout 3600 $VENV/bin/python -m pytest -q -p no:cacheprovider \
      -o addopts= --timeout=3600 tests/test_processing_kernels.py"
  local rc=$?
  NOTE="$(grep -E '(passed|failed|error)' "$LOGS/$(printf %02d $step_no)-kernel-tests.log" | tail -n 1)"
  return $rc
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A short `edge-agent run` (as the service user, warm cache from warmup) against mosquitto on the
# host: a replay device and an SDM630 simulator on Modbus TCP, both in the userland. Passes when
# telemetry of both reaches the broker and the agent then stops cleanly on SIGTERM.
do_run() {
  local mport sport
  mport=$(free_port); sport=$(free_port)
  /usr/sbin/mosquitto -p "$mport" >"$LOGS/mosquitto.log" 2>&1 &
  local broker=$!
  "${IN_ROOT[@]}" "$VENV/bin/edge-agent" simulate sdm630 --tcp "127.0.0.1:$sport" >"$LOGS/simulator.log" 2>&1 &
  local sim=$!
  cat >"$ROOT/etc/edge-agent/run-check.toml" <<EOF
[gateway]
id = "pi-check"
state_dir = "$STATE"
require_time_sync = false

[mqtt]
host = "127.0.0.1"
port = $mport

[lines.modbus-tcp]
type = "modbus_tcp"
host = "127.0.0.1"
port = $sport

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
file = "/src/check/drivers-samples/building_load_kw.csv"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 1
EOF
  mkdir -p "$ROOT/src/check/drivers-samples"
  cp "$SRC"/drivers/replay/samples/*.csv "$ROOT/src/check/drivers-samples/"
  chmod 0644 "$ROOT/etc/edge-agent/run-check.toml"
  chgrp --reference="$ROOT/etc/edge-agent" "$ROOT/etc/edge-agent/run-check.toml"
  sleep 1
  local t0; t0=$(date +%s.%N)
  "${AS_AGENT[@]}" NUMBA_CACHE_DIR="$STATE/numba-cache" "$VENV/bin/edge-agent" run \
    --config /etc/edge-agent/run-check.toml >"$LOGS/agent.log" 2>&1 &
  local agent=$!
  python3 "$HERE/await_telemetry.py" --port "$mport" --gateway pi-check --timeout "$RUN_SECONDS" sdm630-1 load
  local rc=$?
  local first; first=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
  kill -TERM "$agent" 2>/dev/null
  local waited=0
  while kill -0 "$agent" 2>/dev/null && [ $waited -lt 60 ]; do sleep 1; waited=$((waited + 1)); done
  # the agent should stop on SIGTERM within seconds: exit 0 (143 = killed by the signal, unhandled)
  local arc=0
  if kill -0 "$agent" 2>/dev/null; then kill -KILL "$agent"; arc=137; else wait "$agent"; arc=$?; fi
  kill -TERM "$sim" "$broker" 2>/dev/null; wait "$sim" "$broker" 2>/dev/null
  echo "--- agent log (tail)"; tail -n 30 "$LOGS/agent.log"
  local heard; heard=$(sed -n 's/^  telemetry from \(.*\) after \(.*\) s$/\1 \2s/p' "$LOGS/$(printf %02d $step_no)-run-vs-host-broker.log" | paste -sd, -)
  NOTE="first telemetry after start: $heard; agent exit $arc ${waited}s after SIGTERM"
  [ $rc = 0 ] || NOTE="telemetry missing after ${first}s; agent exit $arc"
  [ $rc = 0 ] && [ $arc = 0 ]
}

# ------------------------------------------------------------------------------------ one arch
check_arch() {
  ARCH="$1"; ROOT="$WORK/$ARCH/root"; LOGS="$WORK/$ARCH/logs"; step_no=0
  set_prefixes
  rm -rf "$LOGS"; mkdir -p "$LOGS"
  local t_start; t_start=$(date +%s)
  echo "== $ARCH: Debian $SUITE under $(qemu_name "$ARCH"), logs in $LOGS"
  trap unmount_userland EXIT
  step binfmt do_binfmt || return 1
  step userland do_userland || return 1
  mount_userland
  [ -n "${WHEEL:-}" ] || step wheel do_wheel || return 1
  copy_project
  step readme-apt do_apt
  step readme-venv do_venv || return 1
  local installed=0
  if step readme-install-pi do_install "[pi]"; then installed=1
  elif step install-without-pi do_install_core; then installed=1
  elif step install-debian-numpy do_install_nodeps; then installed=1
  fi
  if [ $installed = 1 ]; then
    step versions do_versions
    step readme-user do_user
    step readme-check do_check
    step readme-warmup do_warmup
    step state-dir do_state_dir
    step warmup-again do_warmup
    step test-deps do_test_deps && step kernel-tests do_kernel_tests
    step run-vs-host-broker do_run
  else
    for s in versions readme-user readme-check readme-warmup kernel-tests run-vs-host-broker; do
      skip "$s" "no install"
    done
  fi
  unmount_userland
  [ "${PI_CHECK_KEEP:-0}" = 1 ] || rm -rf --one-file-system "$ROOT"
  local total=$(( $(date +%s) - t_start ))
  RESULTS+=("$ARCH|TOTAL|-|$total|")
  echo "== $ARCH done in ${total}s"
}

case "${1:-all}" in
  arm64|armhf) ARCHES=("$1") ;;
  all) ARCHES=(arm64 armhf) ;;
  *) echo "usage: $0 [arm64|armhf|all]" >&2; exit 2 ;;
esac

for a in "${ARCHES[@]}"; do check_arch "$a"; done

echo
echo "== Pi check summary ($(date -u +%FT%TZ), source $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null))"
printf '%-6s %-22s %-5s %8s  %s\n' arch step result seconds note
fails=0
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a s res secs note <<<"$r"
  printf '%-6s %-22s %-5s %8s  %s\n' "$a" "$s" "$res" "$secs" "$note"
  [ "$res" = FAIL ] && fails=$((fails + 1))
done
echo "$fails step(s) failed"
[ $fails = 0 ]
