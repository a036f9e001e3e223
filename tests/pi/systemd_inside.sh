#!/bin/bash
# Runs inside the booted Pi image (systemd_check.sh), as a one-shot unit after network-online:
# the README's commands after the install (the MQTT password, `setup ... --enable`) under the real
# systemd, then checks of the service: active, Type=notify READY, watchdog pings and their
# enforcement, LoadCredential, the installed config, an invalid config (exit 2, no restart),
# EXTEND_TIMEOUT_USEC while the kernels compile from a cold cache (with the shipped jit = "auto",
# and blocking the start with jit = "on"). Results
# go to /var/log/edge-agent-systemd-check/results (step|PASS/FAIL|s|note), progress to the console;
# the machine powers off at the end.
set -u
R=/var/log/edge-agent-systemd-check
mkdir -p "$R"; : >"$R/results"
CMDS=/root/systemd-check/commands          # the README's commands (the install already ran)
SECRET=/root/systemd-check/mqtt-secret     # what the technician types at the password prompt
SVC=edge-agent
say() { echo "systemd-check: $*" >/dev/console; echo "$*" >>"$R/progress"; }
n=0
step() {
  local name="$1"; shift
  n=$((n + 1)); NOTE=""
  local log; log="$R/$(printf %02d $n)-$name.log"
  local t0 t1 rc; t0=$(date +%s.%N)
  "$@" >"$log" 2>&1; rc=$?
  t1=$(date +%s.%N)
  local secs; secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
  local res=PASS; [ $rc = 0 ] || res=FAIL
  echo "$name|$res|$secs|$NOTE" >>"$R/results"
  say "$name $res ${secs}s $NOTE"
  [ $rc = 0 ] || tail -n 15 "$log" | sed 's/^/  | /' >/dev/console
  return $rc
}
prop() { systemctl show -P "$1" "$SVC"; }
# notifications PID 1 received from the service since a journal cursor (PID 1 logs them at debug level)
notes_since() { journalctl -q --no-pager -o cat _PID=1 --after-cursor="$1" | grep -F "Got notification message from PID"; }
cursor() { journalctl -q -n 0 --show-cursor | sed -n 's/^-- cursor: //p'; }

do_boot() {
  echo "PID 1: $(ps -p 1 -o comm=)  $(systemctl --version | head -1)"
  echo "uname -m: $(uname -m)  dpkg: $(dpkg --print-architecture)  LONG_BIT: $(getconf LONG_BIT)"
  python3 -c 'import platform, struct; print("python:", platform.machine(), struct.calcsize("P") * 8, "bit")'
  /opt/edge-agent/bin/python -c 'from pip._vendor.packaging.tags import sys_tags; import pip
print("pip", pip.__version__, "first wheel tags:", [str(t) for t in list(sys_tags())[:4]])' || true
  systemd-analyze || true
  cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null && echo "cgroup v2"
  NOTE="$(ps -p 1 -o comm=) $(systemctl --version | head -1 | cut -d' ' -f1-2), uname -m $(uname -m), userland $(dpkg --print-architecture), $(systemd-analyze 2>/dev/null | head -1 | sed 's/.*= //')"
  [ "$(ps -p 1 -o comm=)" = systemd ]
}

# The README's commands, verbatim, as root in the project directory; a prompt reads what the
# technician types (the secret, then Ctrl-D).
do_readme() {
  NOTE="$(echo "$1" | cut -c1-80)"
  if [ -n "$NO_WARMUP" ]; then NOTE="NUMBA_DISABLE_JIT=1 $NOTE"; export NUMBA_DISABLE_JIT=1; fi
  (cd /src/edge-agent && /bin/sh -c "$1") <"$SECRET"
}

do_active() {
  systemctl status --no-pager -l "$SVC"
  systemctl show "$SVC" -p Type -p NotifyAccess -p ActiveState -p SubState -p StatusText -p MainPID \
    -p NRestarts -p WatchdogUSec -p ExecMainStartTimestamp -p ActiveEnterTimestamp
  NOTE="$(prop ActiveState)/$(prop SubState), Type=$(prop Type), STATUS \"$(prop StatusText)\""
  [ "$(prop ActiveState)" = active ] && [ "$(prop Type)" = notify ]
}

# Type=notify: the start job completed when the service said READY=1 (seen in PID 1's debug log)
do_ready() {
  notes_since "$BOOT_CURSOR" | grep -E "READY=1|EXTEND_TIMEOUT_USEC" | head -n 20
  local ready; ready=$(notes_since "$BOOT_CURSOR" | grep -c "READY=1")
  local start enter
  start=$(prop ExecMainStartTimestampMonotonic); enter=$(prop ActiveEnterTimestampMonotonic)
  NOTE="READY=1 received ($ready); active $(awk "BEGIN{printf \"%.1f\", ($enter - $start) / 1e6}") s after the main process started"
  [ "$ready" -ge 1 ]
}

do_watchdog() {
  local pid t1 t2 pings c
  pid=$(prop MainPID); t1=$(prop WatchdogTimestampMonotonic); c=$(cursor)
  echo "WatchdogUSec=$(prop WatchdogUSec) MainPID=$pid WatchdogTimestamp=$(prop WatchdogTimestamp)"
  sleep 45   # longer than WatchdogSec=30: the service must ping, or systemd kills it
  t2=$(prop WatchdogTimestampMonotonic)
  echo "after 45 s: WatchdogTimestamp=$(prop WatchdogTimestamp) MainPID=$(prop MainPID) NRestarts=$(prop NRestarts)"
  pings=$(notes_since "$c" | grep -c "WATCHDOG=1")
  NOTE="WatchdogUSec=$(prop WatchdogUSec); $pings WATCHDOG=1 pings in 45 s; timestamp advanced $(awk "BEGIN{printf \"%.1f\", ($t2 - $t1) / 1e6}") s; same PID, NRestarts=$(prop NRestarts)"
  [ "$t2" -gt "$t1" ] && [ "$pings" -ge 1 ] && [ "$(prop MainPID)" = "$pid" ] && [ "$(prop ActiveState)" = active ]
}

do_credential() {
  grep -n "LoadCredential" "/etc/systemd/system/$SVC.service"
  local pid; pid=$(prop MainPID)
  local dir; dir=$(tr '\0' '\n' <"/proc/$pid/environ" | sed -n 's/^CREDENTIALS_DIRECTORY=//p')
  echo "CREDENTIALS_DIRECTORY=$dir"; ls -l "$dir"
  NOTE="unit: $(grep -E '^LoadCredential=' "/etc/systemd/system/$SVC.service"); $dir/mqtt-password"
  [ -n "$dir" ] && cmp -s "$dir/mqtt-password" /etc/edge-agent/mqtt-password &&
    grep -qE '^LoadCredential=mqtt-password:/etc/edge-agent/mqtt-password' "/etc/systemd/system/$SVC.service"
}

do_config() {
  ls -ld /etc/edge-agent /var/lib/edge-agent; ls -l /etc/edge-agent
  diff /src/edge-agent/my-gateway.toml /etc/edge-agent/config.toml && echo "config.toml = my-gateway.toml"
  local pid; pid=$(prop MainPID)
  tr '\0' ' ' <"/proc/$pid/cmdline"; echo
  NOTE="$(stat -c '%n %a %U:%G' /etc/edge-agent/config.toml), same as my-gateway.toml; the service runs $(tr '\0' ' ' <"/proc/$pid/cmdline" | grep -o -- '--config [^ ]*')"
  cmp -s /src/edge-agent/my-gateway.toml /etc/edge-agent/config.toml &&
    [ "$(stat -c '%a %U:%G' /etc/edge-agent/config.toml)" = "640 root:edge-agent" ] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--config /etc/edge-agent/config.toml"
}

do_status_cli() {
  edge-agent status --config /etc/edge-agent/config.toml
  local rc=$?
  NOTE="exit $rc"
  [ $rc = 0 ]
}

# Start the service without waiting for the job and follow it until active or failed (at most $2
# seconds, default an hour, from $1, the start's epoch second); the state it ended in is left in START_STATE.
start_and_wait() {
  local t0=$1 limit=${2:-3600}
  START_STATE=""
  systemctl start --no-block "$SVC"
  while [ $(( $(date +%s) - t0 )) -lt "$limit" ]; do
    START_STATE="$(prop ActiveState)/$(prop SubState)"
    echo "$(( $(date +%s) - t0 ))s $START_STATE | $(prop StatusText)"
    case "$START_STATE" in active/*|failed/*) break;; esac
    sleep 5
  done
}

# seconds from the start job's begin (PID 1 leaving "inactive") to the service's first
# EXTEND_TIMEOUT_USEC after the journal cursor $1 ("none" when it sent none)
first_extend_s() {
  local t; t=$(journalctl -q --no-pager -o short-monotonic _PID=1 --after-cursor="$1" |
    grep -F "Got notification message from PID" | grep -m1 "EXTEND_TIMEOUT_USEC" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
  if [ -n "$t" ]; then awk "BEGIN{printf \"%.1f\", $t - $(prop InactiveExitTimestampMonotonic) / 1e6}"; else echo none; fi
}

# An invalid config: `run` validates it itself (the unit has no ExecStartPre check), extends its start
# first, exits 2, and RestartPreventExitStatus=2 keeps systemd from restarting it. The installed
# config is restored byte for byte afterwards and the service started again.
do_invalid_config() {
  local conf=/etc/edge-agent/config.toml unit="/etc/systemd/system/$SVC.service"
  cp "$unit" "$R/edge-agent.service.installed"
  grep -nE '^(ExecStartPre|ExecStart|Restart|RestartPreventExitStatus|TimeoutStartSec)=' "$unit"
  systemctl stop "$SVC"
  cp -p "$conf" "$R/config.toml.saved" || return 1
  printf '\n[[devices]]\nname = "broken"\ntype = "no_such_driver"\n' >>"$conf"
  local c t0; c=$(cursor); t0=$(date +%s)
  start_and_wait "$t0" 900
  sleep 20   # RestartSec=5 four times over: a restart would have been scheduled by now
  local state status result sched first why
  state="$(prop ActiveState)/$(prop SubState)"; status=$(prop ExecMainStatus); result=$(prop Result)
  first=$(first_extend_s "$c")
  journalctl -q --no-pager -u "$SVC" -o short-monotonic --after-cursor="$c" | grep -v "Got notification"
  sched=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -c "Scheduled restart job")
  why=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -m1 -o "no_such_driver")
  echo "state $state, exit status $status, result $result, NRestarts $(prop NRestarts), $sched restarts scheduled"
  cp -p "$R/config.toml.saved" "$conf"
  local restored=no; cmp -s "$R/config.toml.saved" "$conf" && restored=yes
  t0=$(date +%s); start_and_wait "$t0"
  NOTE="unit: $(grep -c '^ExecStartPre=' "$unit") ExecStartPre, $(grep -m1 '^RestartPreventExitStatus=' "$unit"); $state, exit status $status ($result), first EXTEND_TIMEOUT_USEC ${first} s after the start, journal names ${why:-nothing}; NRestarts $(prop NRestarts), $sched restarts scheduled; config restored: $restored, then $START_STATE after $(( $(date +%s) - t0 ))s"
  ! grep -q '^ExecStartPre=' "$unit" && [ "$state" = failed/failed ] && [ "$status" = 2 ] && [ "$sched" = 0 ] &&
    [ "$first" != none ] && [ -n "$why" ] && [ "$restored" = yes ] && [ "${START_STATE%%/*}" = active ]
}

# TimeoutStartSec in seconds ("3min" -> 180, "1min 30s" -> 90; infinity -> 0)
start_timeout_s() {
  echo $(( $(prop TimeoutStartUSec | sed 's/infinity/0/; s/min/*60+/; s/s$//; s/+$//') ))
}

# Cold cache: the kernels compile at start (minutes under emulation, longer than TimeoutStartSec);
# the service must extend its start timeout meanwhile instead of being killed and restarted.
do_cold_start() {
  systemctl stop "$SVC"
  local cache=/var/lib/edge-agent/numba-cache
  echo "cached before: $(find "$cache" -type f | wc -l) files"; rm -rf "${cache:?}"/*
  local c restarts0 t0 state=""; c=$(cursor); restarts0=$(prop NRestarts); t0=$(date +%s)
  start_and_wait "$t0"; state=$START_STATE
  local took=$(( $(date +%s) - t0 ))
  local ext; ext=$(notes_since "$c" | grep -c "EXTEND_TIMEOUT_USEC")
  notes_since "$c" | grep -E "EXTEND_TIMEOUT_USEC|READY=1" | head -n 5
  # a start by hand resets NRestarts: an automatic restart shows as NRestarts > 0 or in the journal
  local sched; sched=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -c "Scheduled restart job")
  echo "cached after: $(find "$cache" -type f | wc -l) files; NRestarts before the stop $restarts0, now $(prop NRestarts); $sched restarts scheduled"
  local limit; limit=$(start_timeout_s)
  local beyond="within"; [ "$took" -gt "$limit" ] && beyond="beyond"
  NOTE="active after ${took}s, $beyond TimeoutStartSec=$(prop TimeoutStartUSec); $ext EXTEND_TIMEOUT_USEC notifications, the first $(first_extend_s "$c") s after the start; NRestarts $(prop NRestarts) (reset by the start), $sched restarts scheduled; $(find "$cache" -type f | wc -l) files cached"
  if ! /opt/edge-agent/bin/python -c 'import numba' 2>/dev/null; then
    NOTE="no numba (kernels on numpy, nothing to compile): $NOTE"; ext=1
  fi
  [ "${state%%/*}" = active ] && [ "$ext" -ge 1 ] && [ "$(prop NRestarts)" = 0 ] && [ "$sched" = 0 ]
}

# jit = "on": the start blocks on numba's JIT compile, so the service must keep extending its start
# timeout until READY=1. The installed config gets `jit = "on"` for this step only (restored
# afterwards). On an idle host the emulated compile takes about 95 s, within TimeoutStartSec=180, so
# the service gets a CPU quota for this start (BLOCKING_CPU_QUOTA, default 30 %: a slower CPU, as on
# an older Pi or a loaded one) that makes it last longer than TimeoutStartSec.
do_cold_start_blocking() {
  local conf=/etc/edge-agent/config.toml cache=/var/lib/edge-agent/numba-cache quota="${BLOCKING_CPU_QUOTA:-30%}"
  systemctl stop "$SVC"
  [ "$quota" = none ] || systemctl set-property --runtime "$SVC" "CPUQuota=$quota" || return 1
  echo "CPUQuotaPerSecUSec=$(prop CPUQuotaPerSecUSec)"
  cp -p "$conf" "$R/config.toml.saved" || return 1
  printf '\n[processing]\njit = "on"\n' >>"$conf"
  tail -n 3 "$conf"; stat -c '%n %a %U:%G' "$conf"
  echo "cached before: $(find "$cache" -type f | wc -l) files"; rm -rf "${cache:?}"/*
  local c t0 state=""; c=$(cursor); t0=$(date +%s)
  start_and_wait "$t0"; state=$START_STATE
  local took=$(( $(date +%s) - t0 ))
  # from the end of "inactive" (the start job began) to active, by PID 1's monotonic timestamps
  local act; act=$(awk "BEGIN{printf \"%.1f\", ($(prop ActiveEnterTimestampMonotonic) - $(prop InactiveExitTimestampMonotonic)) / 1e6}")
  local notes; notes=$(journalctl -q --no-pager -o short-monotonic _PID=1 --after-cursor="$c" | grep -F "Got notification message from PID")
  local ext; ext=$(echo "$notes" | grep -c "EXTEND_TIMEOUT_USEC")
  echo "$notes" | grep -E "EXTEND_TIMEOUT_USEC|READY=1" | sed -n '1,3p;$p'
  # the longest silence between extensions, and the smallest margin: a silence against what the
  # extension before it granted (the first grants more, for the program's own start-up)
  local first; first=$(echo "$notes" | grep -m1 "EXTEND_TIMEOUT_USEC" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p')
  first=$(awk "BEGIN{printf \"%.1f\", ${first:-0} - $(prop InactiveExitTimestampMonotonic) / 1e6}")
  local gap; gap=$(echo "$notes" | grep "EXTEND_TIMEOUT_USEC" | sed -n 's/^\[ *\([0-9.]*\)\].*EXTEND_TIMEOUT_USEC=\([0-9]*\).*/\1 \2/p' |
    awk 'NR>1 {d=$1-p; if (d>g) g=d; r=u/1e6-d; if (NR==2 || r<m) m=r} {p=$1; u=$2}
      END{printf "%.1f s, smallest margin %.1f s (grants %s s)", g, m, grants}' grants="$(echo "$notes" |
      sed -n 's/.*EXTEND_TIMEOUT_USEC=\([0-9]*\)000000.*/\1/p' | sort -nu | paste -sd/ -)")
  local sched; sched=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -c "Scheduled restart job")
  local timedout; timedout=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -c "timed out")
  local ready; ready=$(journalctl -q --no-pager -u "$SVC" -o cat --after-cursor="$c" | grep -m1 -o "processing kernels ready in [0-9.]* s (jit [A-Za-z]*)")
  echo "$ready; cached after: $(find "$cache" -type f | wc -l) files; $sched restarts scheduled; $timedout timeouts"
  local limit; limit=$(start_timeout_s)
  NOTE="jit = \"on\", CPUQuota=$quota: active after ${took}s (PID 1: ${act} s activating), TimeoutStartSec=$(prop TimeoutStartUSec); $ext EXTEND_TIMEOUT_USEC, the first ${first} s after the start, longest gap $gap; \"$ready\"; $sched restarts scheduled, $timedout timeouts; $(find "$cache" -type f | wc -l) files cached"
  [ "$quota" = none ] || systemctl set-property --runtime "$SVC" CPUQuota=
  cp -p "$R/config.toml.saved" "$conf" && echo "config restored" || NOTE="config NOT restored: $NOTE"
  cmp -s "$R/config.toml.saved" "$conf" && systemctl restart --no-block "$SVC"
  [ "${state%%/*}" = active ] && [ "$took" -gt "$limit" ] && [ "$ext" -ge 2 ] && [ "$sched" = 0 ] &&
    [ "$timedout" = 0 ] && echo "$ready" | grep -q "jit True" && cmp -s "$R/config.toml.saved" "$conf"
}

# A hung service (SIGSTOP: no pings) is killed by the watchdog and restarted
do_watchdog_kill() {
  local pid t0 c; pid=$(prop MainPID); t0=$(date +%s); c=$(cursor)
  local r0; r0=$(prop NRestarts)
  kill -STOP "$pid"
  while [ $(( $(date +%s) - t0 )) -lt 1800 ]; do
    [ "$(prop NRestarts)" != "$r0" ] && [ "$(prop ActiveState)" = active ] && break
    sleep 5
  done
  local j; j=$(journalctl -q --no-pager -u "$SVC" -o short-monotonic --after-cursor="$c" | grep -v "Got notification")
  echo "$j" | grep -iE "watchdog|SIGABRT|ABRT|SIGKILL|Scheduled restart|Started" | head -n 20
  NOTE="NRestarts $r0 -> $(prop NRestarts) $(( $(date +%s) - t0 ))s after SIGSTOP; PID $pid -> $(prop MainPID); journal: $(echo "$j" | grep -m1 -io 'watchdog timeout[^!]*'); $(echo "$j" | grep -m1 -o 'Killing process [0-9]* ([^)]*) with signal SIG[A-Z]*'); $(echo "$j" | grep -m1 -o 'Main process exited, [^ ]* [^ ]*')"
  echo "$j" | grep -qi "watchdog timeout" &&
    [ "$(prop NRestarts)" != "$r0" ] && [ "$(prop MainPID)" != "$pid" ] && [ "$(prop ActiveState)" = active ]
}

# SYSTEMD_CHECK_STEPS (host's environment, written to $KNOBS): the checks to run after the README's
# commands, space-separated (default: all); SYSTEMD_CHECK_NO_WARMUP=1 runs setup with
# NUMBA_DISABLE_JIT=1, so it skips its kernel cache warm-up (minutes under TCG; the service does not
# inherit it)
KNOBS=/root/systemd-check/knobs
STEPS="" NO_WARMUP="" BLOCKING_CPU_QUOTA=""
# shellcheck source=/dev/null
[ -f "$KNOBS" ] && . "$KNOBS"
want() { [ -z "$STEPS" ] || [[ " $STEPS " == *" $1 "* ]]; }
say "started $(date -u +%FT%TZ)${STEPS:+; steps: $STEPS}${NO_WARMUP:+; setup without warm-up}"
systemd-analyze log-level debug   # PID 1 then logs every sd_notify message it receives
BOOT_CURSOR=$(cursor)
step boot do_boot
ok=1
i=1
while IFS= read -r line; do
  i=$((i + 1))
  step "readme-$i" do_readme "$line" || ok=0
done <"$CMDS"
if [ $ok = 1 ]; then
  want active && step active do_active
  want ready-notify && step ready-notify do_ready
  want watchdog && step watchdog do_watchdog
  want load-credential && step load-credential do_credential
  want installed-config && step installed-config do_config
  want invalid-config && step invalid-config do_invalid_config
  want status-cli && step status-cli do_status_cli
  want watchdog-kill && step watchdog-kill do_watchdog_kill
  want cold-kernel-start && step cold-kernel-start do_cold_start
  want cold-kernel-start-blocking && step cold-kernel-start-blocking do_cold_start_blocking
fi
systemd-analyze log-level info
journalctl -b --no-pager -u "$SVC" >"$R/journal-edge-agent.txt" 2>&1
say "done $(date -u +%FT%TZ)"
echo "done" >>"$R/results"
sync
systemctl poweroff --no-block
