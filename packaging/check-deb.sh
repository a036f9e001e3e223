#!/usr/bin/env bash
# Check a package build-deb.sh made, as a technician uses it, in a fresh Debian userland of its
# architecture (arm64/armhf under qemu-user): apt install ./edge-agent_*.deb, the command on PATH
# for a non-root user and under sudo, what setup left (user, directories, unit, kernel cache), an
# upgrade to the next revision (an edited config and the state directory kept), remove (config and
# state kept), purge (nothing left behind). Prints pass/fail and the time of every step.
#
#   sudo packaging/check-deb.sh amd64|arm64|armhf [bookworm|trixie]      (after build-deb.sh)
#
# No systemd runs in a chroot: the maintainer scripts' systemctl calls are the "systemd is not
# running" path here. Too slow for pytest (minutes, tens of minutes emulated). Environment: as
# build-deb.sh; EDGE_DEB_KEEP=1 leaves the userland unpacked.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"

ARCH="${1:-}"; SUITE="${2:-bookworm}"
case "$ARCH" in amd64|arm64|armhf) ;; *) sed -n '2,12p' "$0" >&2; exit 2 ;; esac
require_root
STAGE="$WORK/stage-$SUITE-$ARCH"
[ -f "$STAGE/build.env" ] || { echo "check-deb: no build in $STAGE: run packaging/build-deb.sh $ARCH $SUITE" >&2; exit 2; }
. "$STAGE/build.env"
TAG=$(suite_tag "$SUITE")
DEB1=$(ls -t "$OUT"/edge-agent_"$UPSTREAM"-*+"$TAG"_"$ARCH".deb 2>/dev/null | head -n 1)
[ -n "$DEB1" ] || { echo "check-deb: no package for $ARCH $SUITE in $OUT" >&2; exit 2; }
V1=$(dpkg-deb -f "$DEB1" Version)
REV=${V1#"$UPSTREAM"-}; REV=${REV%%+*}
V2="$UPSTREAM-$((REV + 1))+$TAG"
ROOT="$WORK/check-$SUITE-$ARCH/root"
LOGS="$WORK/check-$SUITE-$ARCH/logs"
rm -rf "$LOGS"; mkdir -p "$LOGS"
trap unmount_root EXIT

RESULTS=() NOTE="" step_no=0
step() {  # step NAME CMD...: CMD's output to a log; PASS/FAIL with the wall time
  local name="$1"; shift
  step_no=$((step_no + 1)); NOTE=""
  local log; log="$LOGS/$(printf %02d $step_no)-$name.log"
  printf '[%s] %-16s ... ' "$ARCH" "$name"
  local t0 rc secs; t0=$(date +%s.%N)
  "$@" >"$log" 2>&1; rc=$?
  secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
  if [ $rc = 0 ]; then
    echo "PASS ${secs}s $NOTE"; RESULTS+=("$name|PASS|$secs|$NOTE")
  else
    echo "FAIL ${secs}s (exit $rc) $NOTE"; RESULTS+=("$name|FAIL|$secs|$NOTE; log $log")
    tail -n 25 "$log" | sed 's/^/    | /'
  fi
  return $rc
}
expect() { if "$@"; then echo "ok: $*"; else echo "FAILED: $*"; return 1; fi; }
in_tech() {  # a technician's shell: a normal user, a login PATH
  chroot --userspec=tech:tech "$ROOT" /usr/bin/env -i HOME=/home/tech LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin "$@"
}
# what is on the userland's disk, less what apt, dpkg and logs keep for themselves
snapshot() {
  (cd "$ROOT" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp -o -path ./run \
    -o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./var/cache -o -path ./var/log \) -prune -o -print) |
    sort >"$1"
}

do_pack_next() {
  "$SRC/packaging/pack-deb.sh" "$STAGE" "$ARCH" "$PY" "$V2" "$OUT" "$EXTRA_DEPENDS" >/dev/null &&
  NOTE="$(basename "$DEB1") $(du -h "$DEB1" | cut -f1); next revision $V2"
}

do_userland() {
  unpack_base "$SUITE" "$ARCH" "$ROOT" && mount_root && cp "$DEB1" "$OUT/edge-agent_${V2}_$ARCH.deb" "$ROOT/tmp/" &&
  in_root useradd --create-home --shell /bin/sh tech
}

do_apt_update() { in_root apt-get update -q; }

do_install() {
  snapshot "$LOGS/files-before"
  (cd "$ROOT/tmp" && in_root sh -c "cd /tmp && apt-get install -y -q ./$(basename "$DEB1")")
}

do_installed() {
  local st; st=$(in_root dpkg-query -W -f '${Status} ${Version}' edge-agent)
  expect [ "$st" = "install ok installed $V1" ] &&
  expect [ "$(readlink "$ROOT/usr/bin/edge-agent")" = /opt/edge-agent/bin/edge-agent ] &&
  expect grep -q '^ExecStart=/opt/edge-agent/bin/edge-agent run' "$ROOT/etc/systemd/system/edge-agent.service" &&
  # the unit of this tree, not an older one (setup only fills in the device groups that exist)
  expect diff <(grep -v 'SupplementaryGroups=' "$SRC/systemd/edge-agent.service") \
    <(grep -v 'SupplementaryGroups=' "$ROOT/etc/systemd/system/edge-agent.service") &&
  expect grep -q "^/etc/edge-agent/config.toml" <(in_root dpkg-query -W -f '${Conffiles}\n' edge-agent | sed 's/^ //') &&
  expect [ "$(in_root stat -c '%U:%G %a' /var/lib/edge-agent)" = "edge-agent:edge-agent 750" ] &&
  expect [ "$(in_root stat -c '%U:%G %a' /etc/edge-agent)" = "root:edge-agent 750" ] &&
  expect [ "$(in_root stat -c '%U:%G %a' /etc/edge-agent/config.toml)" = "root:edge-agent 640" ] || return 1
  local n; n=$(find "$ROOT/var/lib/edge-agent" -name '*.nbi' | wc -l)
  if in_root /opt/edge-agent/bin/python -c 'import numba' 2>/dev/null; then
    NOTE="$n cached kernel indexes"; expect [ "$n" -gt 0 ]
  else
    NOTE="no numba: numpy kernels, nothing to cache"
  fi
}

do_user_path() {
  in_root usermod --append --groups edge-agent tech &&
  expect [ "$(in_tech sh -c 'command -v edge-agent')" = /usr/local/bin/edge-agent ] &&
  chroot --userspec=tech:tech "$ROOT" /usr/bin/env -i HOME=/home/tech PATH=/usr/bin:/bin edge-agent --version &&
  in_tech edge-agent --version &&
  in_tech edge-agent check --config /etc/edge-agent/config.toml &&
  in_root sudo edge-agent --version &&   # sudo's secure_path
  in_root sudo -u tech edge-agent drivers >/dev/null &&
  NOTE="$(in_tech edge-agent --version)"
}

do_upgrade() {
  echo '# edited on site' >>"$ROOT/etc/edge-agent/config.toml"
  echo kept >"$ROOT/var/lib/edge-agent/state-marker"
  in_root sh -c "cd /tmp && apt-get install -y -q -o Dpkg::Options::=--force-confold ./edge-agent_${V2}_$ARCH.deb" &&
  expect [ "$(in_root dpkg-query -W -f '${Status} ${Version}' edge-agent)" = "install ok installed $V2" ] &&
  expect grep -q '^# edited on site' "$ROOT/etc/edge-agent/config.toml" &&
  expect [ "$(cat "$ROOT/var/lib/edge-agent/state-marker")" = kept ] &&
  expect [ "$(in_root stat -c '%U:%G %a' /etc/edge-agent/config.toml)" = "root:edge-agent 640" ] &&
  expect [ -f "$ROOT/etc/systemd/system/edge-agent.service" ] &&
  in_tech edge-agent --version
}

do_remove() {
  in_root apt-get remove -y -q edge-agent &&
  expect [ "$(in_root dpkg-query -W -f '${Status}' edge-agent)" = "deinstall ok config-files" ] &&
  expect [ ! -e "$ROOT/opt/edge-agent" ] && expect [ ! -e "$ROOT/usr/bin/edge-agent" ] &&
  expect [ ! -L "$ROOT/usr/local/bin/edge-agent" ] &&
  expect [ ! -e "$ROOT/etc/systemd/system/edge-agent.service" ] &&
  expect grep -q '^# edited on site' "$ROOT/etc/edge-agent/config.toml" &&
  expect [ -f "$ROOT/var/lib/edge-agent/state-marker" ]
}

do_purge() {
  in_root apt-get purge -y -q edge-agent &&
  expect [ -z "$(in_root dpkg-query -W -f '${Status}' edge-agent 2>/dev/null)" ] &&
  expect [ ! -e "$ROOT/etc/edge-agent" ] && expect [ ! -e "$ROOT/var/lib/edge-agent" ] || return 1
  snapshot "$LOGS/files-after"
  # left behind: the system user's entries (kept, as Debian's packages do) and their backups
  local left; left=$(comm -13 "$LOGS/files-before" "$LOGS/files-after" | grep -v -E '^\./etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$')
  echo "new files after purge:"; echo "${left:-(none)}"
  NOTE="new files after purge: $(echo "$left" | grep -c . )"
  [ -z "$left" ]
}

t_start=$(date +%s)
echo "== $ARCH: Debian $SUITE$(emulated "$ARCH" && echo " under qemu-user"), logs in $LOGS"
step binfmt enable_binfmt "$ARCH" &&
step pack-next do_pack_next &&
step userland do_userland &&
step apt-update do_apt_update &&
step install do_install &&
{ step installed do_installed; step user-path do_user_path; step upgrade do_upgrade; } &&
step remove do_remove &&
step purge do_purge
unmount_root
[ "${EDGE_DEB_KEEP:-0}" = 1 ] || rm -rf --one-file-system "$ROOT"

echo
echo "== package check, $ARCH Debian $SUITE ($(date -u +%FT%TZ)), total $(( $(date +%s) - t_start ))s"
fails=0
for r in "${RESULTS[@]}"; do
  IFS='|' read -r s res secs note <<<"$r"
  printf '%-16s %-5s %8s  %s\n' "$s" "$res" "$secs" "$note"
  [ "$res" = FAIL ] && fails=$((fails + 1))
done
echo "$fails step(s) failed"
[ $fails = 0 ] && [ ${#RESULTS[@]} = 10 ]
