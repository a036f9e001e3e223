#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: installs mosquitto, a C compiler, the Arm
# cross toolchain and qemu-system-arm (those missing), the test dependencies and the example driver
# package, then pytest (which also checks the import contracts). Extra arguments go to pytest.
# Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
# mosquitto for the MQTT tests; gcc, the Arm cross toolchain and qemu for the firmware bridge tests
PKGS=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then PKGS+=(mosquitto); fi
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || PKGS+=(build-essential)
command -v arm-none-eabi-gcc >/dev/null 2>&1 || PKGS+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null 2>&1 || PKGS+=(qemu-system-arm)
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || PKGS+=(faketime)
if [ ${#PKGS[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
python3 -m pip install -q --disable-pip-version-check -e tests/example_driver  # a third-party driver, as users install one
exec python3 -m pytest -q "$@"
