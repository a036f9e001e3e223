#!/usr/bin/env bash
# Run the whole test suite on a fresh Debian machine: installs mosquitto (if missing), the test
# dependencies and the example driver package, then pytest (which also checks the import contracts).
# Extra arguments go to pytest. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
python3 -m pip install -q --disable-pip-version-check -e tests/example_driver  # a third-party driver, as users install one
exec python3 -m pytest -q "$@"
