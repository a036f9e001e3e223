#!/usr/bin/env bash
# Build the edge-agent Debian package for one architecture and Debian release:
#
#   sudo packaging/build-deb.sh amd64|arm64|armhf [bookworm|trixie]     (default: bookworm)
#
# The virtual environment is built at its final path, /opt/edge-agent, inside a Debian userland of
# the target architecture (arm64/armhf run under qemu-user), so that pip picks the wheels (and builds
# the extensions) that fit that architecture's Python; then pack-deb.sh turns it into
# $EDGE_DEB_OUT/edge-agent_<version>-<revision>+debNN_<arch>.deb. The built tree is kept in
# $EDGE_DEB_WORK/stage-<suite>-<arch> (check-deb.sh packs it again as the next revision).
# Extras: amd64 fast; arm64 pi,fast; armhf pi on Debian's python3-numpy (no numba on 32-bit ARM).
# Environment: EDGE_DEB_WORK (/var/tmp/edge-agent-deb), EDGE_DEB_OUT ($EDGE_DEB_WORK/out),
# EDGE_DEB_CACHE (the Pi check's /var/cache/edge-agent-pi-check), EDGE_DEB_REVISION (1),
# EDGE_DEB_RESUME=1 (reuse a failed build's root and venv, else the last build's venv; the project is
# reinstalled; for project-only changes, not dependency changes), EDGE_DEB_MIRROR, EDGE_DEB_COMPRESS (zstd: dpkg >= 1.21.18, bookworm and later).
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

ARCH="${1:-}"; SUITE="${2:-bookworm}"
case "$ARCH" in amd64|arm64|armhf) ;; *) sed -n '2,16p' "$0" >&2; exit 2 ;; esac
require_root
REVISION="${EDGE_DEB_REVISION:-1}"
ROOT="$WORK/build-$SUITE-$ARCH"
STAGE="$WORK/stage-$SUITE-$ARCH"
trap unmount_root EXIT
t_all=$(date +%s)
t() { echo "[$ARCH $SUITE] $1: $(( $(date +%s) - $2 ))s"; }

t0=$(date +%s)
enable_binfmt "$ARCH" || { echo "binfmt for $ARCH not available (qemu-user-static, binfmt-support)" >&2; exit 1; }
# EDGE_DEB_RESUME=1: keep a build root whose venv exists (creating it is half an hour emulated), or
# else start from the last build's venv ($STAGE): the dependencies are kept, the project reinstalled
RESUME=0
[ "${EDGE_DEB_RESUME:-0}" = 1 ] && [ -x "$ROOT/opt/edge-agent/bin/pip" ] && RESUME=1
if [ $RESUME = 0 ] && [ "${EDGE_DEB_RESUME:-0}" = 1 ] && [ -x "$STAGE/opt/edge-agent/bin/pip" ]; then
  unpack_base "$SUITE" "$ARCH" "$ROOT" && tar -C "$STAGE" -cf - opt/edge-agent | tar -C "$ROOT" -xf - || exit 1
  RESUME=1
fi
[ $RESUME = 1 ] || unpack_base "$SUITE" "$ARCH" "$ROOT" || exit 1
mount_root
t userland "$t0"

case "$ARCH" in
  amd64) EXTRAS=fast VENV_OPTS="" EXTRA_DEPENDS="" BUILD_DEPS="" ;;
  arm64) EXTRAS=pi,fast VENV_OPTS="" EXTRA_DEPENDS="" BUILD_DEPS="" ;;
  armhf) EXTRAS=pi VENV_OPTS=--system-site-packages EXTRA_DEPENDS="python3-numpy (>= 1:1.24)"
         BUILD_DEPS="gcc python3-dev" ;;   # PyPI has no armv7 wheels for gpiod and sysv_ipc
esac

if [ -n "$BUILD_DEPS" ] && [ $RESUME = 0 ]; then
  t0=$(date +%s)
  in_root apt-get update -q >/dev/null && in_root apt-get install -y -q --no-install-recommends $BUILD_DEPS >/dev/null || exit 1
  t build-deps "$t0"
fi

t0=$(date +%s)
rm -rf "$ROOT/src" && userland_copy_checkout "$SRC" "$ROOT/src/edge-agent" || exit 1
[ $RESUME = 1 ] || in_root python3 -m venv $VENV_OPTS /opt/edge-agent || exit 1
# --retries: a connection reset by the index after half an hour of emulated work is not worth losing
# The project itself is pure Python: its wheel is built natively (seconds) rather than by an emulated
# pip in an isolated build environment (minutes, and one more download that can fail).
SPEC="file:///src/edge-agent"
if python3 -m pip wheel --no-deps --progress-bar off -w "$ROOT/src/wheel" "$ROOT/src/edge-agent" >/dev/null; then
  SPEC="file:///src/wheel/$(cd "$ROOT/src/wheel" && ls edge_agent-*.whl | head -n 1)"
fi
in_root /opt/edge-agent/bin/pip install --no-cache-dir --progress-bar off --retries 10 \
  "edge-agent[$EXTRAS] @ $SPEC" || exit 1
# pip keeps an installed project of the same version when given a wheel: a resumed venv gets this tree
[ $RESUME = 0 ] || in_root /opt/edge-agent/bin/pip install --no-cache-dir --progress-bar off --no-deps \
  --force-reinstall "$SPEC" || exit 1
in_root /opt/edge-agent/bin/edge-agent --version || exit 1
t venv "$t0"

PY=$(in_root /opt/edge-agent/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
UPSTREAM=$(in_root /opt/edge-agent/bin/python -c 'from importlib.metadata import version; print(version("edge-agent"))')
rm -rf "$STAGE" && mkdir -p "$STAGE/opt"
tar -C "$ROOT" -cf - opt/edge-agent | tar -C "$STAGE" -xf - || exit 1
in_root /opt/edge-agent/bin/pip freeze --all >"$STAGE/requirements-frozen.txt"
printf '%s\n' "ARCH=$ARCH" "SUITE=$SUITE" "PY=$PY" "UPSTREAM=$UPSTREAM" "EXTRA_DEPENDS=\"$EXTRA_DEPENDS\"" >"$STAGE/build.env"
unmount_root
rm -rf --one-file-system "$ROOT"

t0=$(date +%s)
deb=$("$(dirname "$0")/pack-deb.sh" "$STAGE" "$ARCH" "$PY" "$UPSTREAM-$REVISION+$(suite_tag "$SUITE")" "$OUT" "$EXTRA_DEPENDS") || exit 1
t pack "$t0"
echo "[$ARCH $SUITE] built $deb ($(du -h "$deb" | cut -f1), installed $(dpkg-deb -f "$deb" Installed-Size) KiB) in $(( $(date +%s) - t_all ))s"
