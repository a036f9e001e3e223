#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: installs mosquitto, a C compiler, the Arm
# cross toolchain, qemu-system-arm and Node.js/npm (those missing), the test dependencies, the npm
# package ocpp-rpc (tests/ocpp_rpc) and the example driver package, then pytest on two workers (which also checks the import contracts). Extra arguments go to pytest.
# Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
# mosquitto for the MQTT tests; node/npm for tests/ocpp_rpc; gcc, the Arm cross toolchain and qemu for the firmware bridge tests
PKGS=()
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then PKGS+=(mosquitto); fi
command -v cc >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || PKGS+=(build-essential)
command -v arm-none-eabi-gcc >/dev/null 2>&1 || PKGS+=(gcc-arm-none-eabi libnewlib-arm-none-eabi)
command -v qemu-system-arm >/dev/null 2>&1 || PKGS+=(qemu-system-arm)
# Node.js and npm for the independent OCPP charge point (npm ocpp-rpc, tests/ocpp_rpc)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)
# libfaketime and chrony (a loopback NTP server and client) for the RTC-less clock tests
{ command -v faketime && ls /usr/lib/*/faketime/libfaketime.so.1; } >/dev/null 2>&1 || PKGS+=(faketime libfaketime)
command -v chronyd >/dev/null 2>&1 || PKGS+=(chrony)
# the fleet path: a RabbitMQ cluster (MQTT plugin) and PostgreSQL 15, started by the tests themselves
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || PKGS+=(rabbitmq-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || PKGS+=(postgresql-15)
# Debian's chromium and its driver for the web page's browser tests (never a downloaded browser); a CJK font for the Chinese page
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || PKGS+=(chromium chromium-driver)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || PKGS+=(fonts-wqy-microhei)
if [ ${#PKGS[@]} -gt 0 ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
(cd tests/ocpp_rpc && npm ci --no-audit --no-fund --silent)  # versions pinned in package-lock.json
python3 -m pip install -q --disable-pip-version-check -e tests/example_driver  # a third-party driver, as users install one
# two workers, a test file at a time on one of them (its module fixtures built once), the longest files
# first (tests/conftest.py orders them) so both finish together; `-n 0` after this runs them one by one
exec python3 -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder "$@"
