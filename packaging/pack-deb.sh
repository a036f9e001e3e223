#!/usr/bin/env bash
# Pack a built virtual environment into edge-agent_VERSION_ARCH.deb (needs no root: dpkg-deb
# --root-owner-group). build-deb.sh calls it after building the venv; check-deb.sh calls it again
# with the next revision to test an upgrade.
#
#   packaging/pack-deb.sh TREE ARCH PYTHON DEB_VERSION OUT_DIR [EXTRA_DEPENDS]
#
# TREE holds opt/edge-agent (the venv, built at that path); PYTHON is the X.Y it was built with (the
# package depends on exactly that minor version: the venv's wheels are built for its ABI);
# EXTRA_DEPENDS is added to Depends (armhf: python3-numpy, which the venv uses from Debian).
set -euo pipefail

[ $# -ge 5 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
TREE="$1" ARCH="$2" PY="$3" VERSION="$4" OUT="$5" EXTRA="${6:-}"
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$(cd "$HERE/.." && pwd)"
[ -x "$TREE/opt/edge-agent/bin/edge-agent" ] || { echo "pack-deb: no $TREE/opt/edge-agent/bin/edge-agent" >&2; exit 2; }
[[ "$PY" =~ ^3\.[0-9]+$ ]] || { echo "pack-deb: PYTHON must be X.Y, got '$PY'" >&2; exit 2; }

PKG="$(mktemp -d "${TMPDIR:-/tmp}/edge-agent-deb.XXXXXX")"
trap 'rm -rf "$PKG"' EXIT
mkdir -p "$PKG/opt" "$PKG/DEBIAN" "$PKG/usr/bin" "$PKG/usr/share/doc/edge-agent" "$OUT"
# hard links when TREE is on the same file system (a venv is hundreds of MB), else a copy
cp -al "$TREE/opt/edge-agent" "$PKG/opt/" 2>/dev/null || { rm -rf "$PKG/opt/edge-agent"; cp -a "$TREE/opt/edge-agent" "$PKG/opt/"; }
ln -s /opt/edge-agent/bin/edge-agent "$PKG/usr/bin/edge-agent"   # on every PATH, sudo's secure_path too

# the config: a conffile (an edited one survives upgrades); setup gives it to group edge-agent
install -d -m 0750 "$PKG/etc/edge-agent"
install -m 0640 "$SRC/config/edge-agent.toml" "$PKG/etc/edge-agent/config.toml"
echo /etc/edge-agent/config.toml >"$PKG/DEBIAN/conffiles"

DOC="$PKG/usr/share/doc/edge-agent"
install -m 0644 "$SRC/README.md" "$DOC/README.md"    # the unit's Documentation= points here
cp -r "$SRC/docs" "$DOC/docs" && chmod -R u=rwX,go=rX "$DOC/docs"
install -m 0644 "$HERE/debian/copyright" "$DOC/copyright"
[ -f "$TREE/requirements-frozen.txt" ] && install -m 0644 "$TREE/requirements-frozen.txt" "$DOC/"

for s in postinst prerm postrm; do install -m 0755 "$HERE/debian/$s" "$PKG/DEBIAN/$s"; done

next="3.$(( ${PY#3.} + 1 ))"
depends="python3 (>= $PY), python3 (<< $next), ca-certificates, passwd${EXTRA:+, $EXTRA}"
size=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@DEPENDS@/$depends/" -e "s/@SIZE@/$size/" \
  "$HERE/debian/control.in" >"$PKG/DEBIAN/control"

deb="$OUT/edge-agent_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"${EDGE_DEB_COMPRESS:-zstd}" --build "$PKG" "$deb" >/dev/null
echo "$deb"
