#!/usr/bin/env bash
# Pi check: run the commands of the README's "Install on a Raspberry Pi" section (read from the
# README, see readme_commands.py) inside an emulated Debian bookworm userland (arm64 = 64-bit Pi OS,
# armhf = 32-bit Pi OS), then the kernel tests and a short `edge-agent run` against a mosquitto on
# the host; print pass/fail and the time of every step.
#
#   sudo tests/pi/pi_check.sh [arm64|armhf|all]      (default: all)
#
# Needs root, debootstrap, qemu-user-static, binfmt-support, mosquitto and the project's Python
# dependencies on the host (paho-mqtt for the listener). Slow (tens of minutes): not part of pytest.
# Environment:
#   PI_CHECK_CACHE   base userland tarballs                  (default /var/cache/edge-agent-pi-check)
#   PI_CHECK_WORK    unpacked userlands and logs              (default /var/tmp/edge-agent-pi-check)
#   PI_CHECK_MIRROR  Debian mirror                            (default http://deb.debian.org/debian)
#   PI_CHECK_SUITE   bookworm or trixie                       (default bookworm)
#   PI_CHECK_RUN_SECONDS  how long to wait for telemetry      (default 900)
#   PI_CHECK_KEEP=1  leave the userland unpacked after the check (to look around with chroot)
set -u -o pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$SRC/tests/pi"
CACHE="${PI_CHECK_CACHE:-/var/cache/edge-agent-pi-check}"
WORK="${PI_CHECK_WORK:-/var/tmp/edge-agent-pi-check}"
MIRROR="${PI_CHECK_MIRROR:-http://deb.debian.org/debian}"
RUN_SECONDS="${PI_CHECK_RUN_SECONDS:-900}"
SUITE="${PI_CHECK_SUITE:-bookworm}"   # bookworm (Pi OS 12) or trixie (Pi OS 13, Python 3.13)
VENV=/opt/edge-agent
STATE=/var/lib/edge-agent

[ "$(id -u)" = 0 ] || { echo "pi_check: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
for tool in debootstrap update-binfmts mosquitto; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "pi_check: $tool missing: apt-get install -y debootstrap qemu-user-static binfmt-support mosquitto" >&2
    exit 2; }
done
mkdir -p "$CACHE" "$WORK"
. "$SRC/packaging/userland.sh"   # the userland: cached base, binfmt, mounts, copy of the checkout

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
    echo "FAIL ${secs}s (exit $rc)"
    local why; why="$(grep -m1 -E "error: command|ERROR: |Error: |No module named|No matching|^E  " "$log" | sed 's/^ *//' | cut -c1-120)"
    [ -n "$why" ] && NOTE="${NOTE:+$NOTE -> }$why"
    RESULTS+=("$ARCH|$name|FAIL|$secs|exit $rc; $NOTE; log $log")
    echo "    $NOTE"
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
qemu_name() { userland_qemu "$1"; }
py_platform() { [ "$1" = arm64 ] && echo aarch64 || echo armv7l; }

do_binfmt() {
  userland_binfmt "$ARCH" || return 1
  grep flags "/proc/sys/fs/binfmt_misc/$(qemu_name "$ARCH")"   # F: the host's qemu is used, no copy needed
}

# The debootstrapped base (minbase + Python) is cached as a tarball; each check unpacks it afresh.
do_userland() {
  local tarball; tarball=$(userland_tarball "$CACHE" "$SUITE" "$ARCH")
  NOTE="from cache $tarball"; [ -s "$tarball" ] || NOTE="debootstrap (first run; cached afterwards)"
  userland_unpack "$CACHE" "$MIRROR" "$SUITE" "$ARCH" "$ROOT" || return 1
  # Raspberry Pi OS has these groups (plain Debian does not); the README adds the user to them.
  in_root groupadd -f --system i2c && in_root groupadd -f --system gpio || return 1
  # no systemd in a chroot: systemctl only says what it was asked
  printf '#!/bin/sh\necho "systemctl $* (stub: no systemd in the Pi check)"\n' >"$ROOT/usr/local/bin/systemctl"
  chmod 0755 "$ROOT/usr/local/bin/systemctl"
}

# pip's cache is not kept between runs: pip caches the wheel it builds from file:///src/edge-agent
# under that URL and would install a stale build of the same version next time.
mount_userland() { userland_mount "$ROOT"; }
unmount_userland() { userland_unmount "$ROOT"; }

# A copy of the checkout (tracked and new files) at /src/edge-agent: the README's
# file:///path/to/edge-agent, and the working directory of its commands (`cp config/...`).
# my-gateway.toml stands for the config a user writes: the annotated example.
copy_project() {
  rm -rf "$ROOT/src" && mkdir -p "$ROOT/src/check"
  userland_copy_checkout "$SRC" "$ROOT/src/edge-agent" || return 1
  cp "$SRC/config/edge-agent.toml" "$ROOT/src/edge-agent/my-gateway.toml"
  # tests and pytest's config only: the installed package (not a source tree) is what the tests import
  cp -r "$SRC/tests" "$SRC/pyproject.toml" "$ROOT/src/check/"
  NOTE="$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)$(git -C "$SRC" diff --quiet HEAD 2>/dev/null || echo +changes)"
}

# One README command, as root in the project directory (sudo works as on Raspberry Pi OS).
do_readme() {
  NOTE="$(echo "$1" | cut -c1-90)"
  case "$1" in *systemctl*|*--enable*) NOTE="$NOTE (systemctl is a stub: no systemd in a chroot)";; esac
  in_root /bin/sh -c "cd /src/edge-agent && ${1//file:\/\/\/path\/to\/edge-agent/file:\/\/\/src\/edge-agent}"
}

# The README's pip install failed: the same command without extras, so the rest can still be checked.
do_install_core() {
  local cmd; cmd=$(echo "$1" | sed 's/edge-agent\[[^]]*\]/edge-agent/g')
  do_readme "$cmd"
}

# Last resort on 32-bit, where the install cannot get numpy (no armv7 wheels on PyPI, no compiler):
# a venv that sees Debian's python3-numpy, the project without dependency resolution, then each
# dependency but numpy.
do_install_nodeps() {
  in_root python3 -m venv --clear --system-site-packages "$VENV" &&
  in_root "$VENV/bin/pip" install --progress-bar off --no-deps /src/edge-agent || return 1
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

# After the README's commands: numba's kernels must be cached in the state directory (otherwise the
# service compiles them at every start, minutes on a Pi). Where numba is absent there is nothing to cache.
do_kernel_cache() {
  if ! in_root "$VENV/bin/python" -c 'import numba' 2>/dev/null; then
    NOTE="no numba: nothing to cache"; return 0
  fi
  [ -d "$ROOT$STATE" ] || { NOTE="$STATE does not exist"; return 1; }
  local n; n=$(find "$ROOT$STATE" -name '*.nbi' 2>/dev/null | wc -l)
  NOTE="$n cached kernel indexes under $STATE"
  [ "$n" -gt 0 ]
}

# For the run below: the user, the state directory and a warm cache, where the README's steps did
# not leave them behind.
do_prepare_run() {
  [ -n "$(in_root getent passwd edge-agent)" ] ||
    in_root useradd --system --home "$STATE" --shell /usr/sbin/nologin edge-agent || return 1
  [ -d "$ROOT$STATE" ] && NOTE="" || NOTE="created $STATE; "
  in_root install -d -m 0750 -o edge-agent -g edge-agent "$STATE" || return 1
  in_root install -d -m 0750 -o root -g edge-agent /etc/edge-agent || return 1
  as_agent NUMBA_CACHE_DIR="$STATE/numba-cache" "$VENV/bin/edge-agent" warmup --state-dir "$STATE" || return 1
  NOTE="${NOTE}warmup: $(find "$ROOT$STATE" -name '*.nbi' 2>/dev/null | wc -l) cached kernel indexes"
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
file = "/src/edge-agent/drivers/replay/samples/building_load_kw.csv"
metric = "power"
unit = "kW"
speed = 600
poll_interval = 1
EOF
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
  ARCH="$1"; ROOT="$WORK/$SUITE-$ARCH/root"; LOGS="$WORK/$SUITE-$ARCH/logs"; step_no=0
  set_prefixes
  rm -rf "$LOGS"; mkdir -p "$LOGS"
  local t_start; t_start=$(date +%s)
  echo "== $ARCH: Debian $SUITE under $(qemu_name "$ARCH"), logs in $LOGS"
  trap unmount_userland EXIT
  step binfmt do_binfmt || return 1
  step userland do_userland || return 1
  mount_userland
  step source copy_project || return 1
  local cmds
  cmds=$(python3 "$HERE/readme_commands.py" "$SRC/README.md" "$ARCH") || return 1
  local i=0 line
  while IFS= read -r line; do
    i=$((i + 1))
    if ! step "readme-$i" do_readme "$line" && [[ "$line" == *"pip install"* ]]; then
      step "readme-$i-no-extras" do_install_core "$line" ||
        { [ "$ARCH" = armhf ] && step "readme-$i-debian-numpy" do_install_nodeps; }
    fi
  done <<<"$cmds"
  if in_root test -x "$VENV/bin/edge-agent"; then
    step versions do_versions
    step kernel-cache do_kernel_cache
    step prepare-run do_prepare_run
    step test-deps do_test_deps && step kernel-tests do_kernel_tests
    step run-vs-host-broker do_run
  else
    for s in versions kernel-cache kernel-tests run-vs-host-broker; do skip "$s" "edge-agent not installed"; done
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
echo "== Pi check summary, Debian $SUITE ($(date -u +%FT%TZ), source $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null))"
printf '%-6s %-22s %-5s %8s  %s\n' arch step result seconds note
fails=0
for r in "${RESULTS[@]}"; do
  IFS='|' read -r a s res secs note <<<"$r"
  printf '%-6s %-22s %-5s %8s  %s\n' "$a" "$s" "$res" "$secs" "$note"
  [ "$res" = FAIL ] && fails=$((fails + 1))
done
echo "$fails step(s) failed"
[ $fails = 0 ]
