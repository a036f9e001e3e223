"""Is the wall clock synchronised? A Pi without RTC boots in 1970 (or at fake-hwclock's last
saved time) until NTP catches up.

Two levels: a clock before 2024 is always unsynchronised; with ``gateway.require_time_sync`` a
time source must also confirm synchronisation. Sources are asked the way each reports it, cheapest
first, and the first that says "synchronised" decides:

1. the kernel (adjtimex: not TIME_ERROR, i.e. STA_UNSYNC clear), set by systemd-timesyncd, by
   ntpd with kernel discipline and by chrony with ``rtcsync``;
2. systemd-timesyncd's flag file ``/run/systemd/timesync/synchronized`` (touched on every sync);
3. chrony: ``chronyc -n tracking`` reports ``Leap status : Normal`` (chrony without ``rtcsync``
   leaves the kernel flag alone);
4. ntpd: ``ntpq -c "rv 0 leap"`` reports ``leap=00`` (or another value below 3).

If no source can be asked at all, the clock counts as synchronised (only the 2024 floor applies).
``time_sync_status()`` returns what was found and which source decided, for ``check`` and
``status``; its inputs (run directory, kernel query, command runner) are parameters for tests.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_EARLIEST_PLAUSIBLE = 1_704_067_200  # 2024-01-01
_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
_CACHE_S = 120.0  # the pipeline asks every cycle; the health loop refreshes more often than this

Runner = Callable[[list[str]], str | None]


@dataclass(frozen=True, slots=True)
class TimeSync:
    synchronized: bool | None  # None: no source could be asked
    source: str  # kernel, systemd-timesyncd, chrony, ntpd, or none
    detail: str

    def as_dict(self) -> dict:
        return {"synchronized": self.synchronized, "source": self.source, "detail": self.detail}


@functools.cache
def _adjtimex() -> Callable[[Any], int] | None:
    """The C library's adjtimex, looked up once: ``find_library`` runs ``ldconfig -p`` in a child
    process, which the health loop's refresh did with every report."""
    try:
        return ctypes.CDLL(None).adjtimex  # the process's own C library
    except (OSError, AttributeError):
        try:
            return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).adjtimex
        except (OSError, AttributeError):
            return None


def kernel_reports_synced() -> bool | None:
    """The kernel's NTP state; None if it cannot be asked."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    buf = ctypes.create_string_buffer(512)  # struct timex (mode 0 = read only) fits easily
    state = adjtimex(buf)
    return None if state < 0 else state != _TIME_ERROR


def run_command(argv: list[str]) -> str | None:
    """stdout of a short query command, or None if it is not installed or fails."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _chrony(run: Runner) -> bool | None:
    out = run(["chronyc", "-n", "tracking"])
    m = re.search(r"^Leap status\s*:\s*(.+)$", out or "", re.M)
    return None if m is None else m.group(1).strip().lower() != "not synchronised"


def _ntpd(run: Runner) -> bool | None:
    out = run(["ntpq", "-c", "rv 0 leap"])
    m = re.search(r"leap=(\d+)", out or "")
    return None if m is None else int(m.group(1)) != 11 and int(m.group(1)) != 3


def time_sync_status(*, run_dir: Path = Path("/run"), kernel: Callable[[], bool | None] = kernel_reports_synced,
                     run: Runner = run_command) -> TimeSync:
    """Ask each time source in turn; the first that confirms synchronisation decides."""
    said: list[str] = []
    k = kernel()
    if k:
        return TimeSync(True, "kernel", "adjtimex reports the clock synchronised")
    said.append("kernel: " + ("unsynchronised (STA_UNSYNC)" if k is False else "cannot be asked"))
    flag = run_dir / "systemd" / "timesync" / "synchronized"
    if flag.exists():
        return TimeSync(True, "systemd-timesyncd", f"{flag} exists")
    said.append(f"systemd-timesyncd: no {flag}")
    answers = [("kernel", k)]
    for name, ask in (("chrony", _chrony), ("ntpd", _ntpd)):
        a = ask(run)
        answers.append((name, a))
        if a:
            return TimeSync(True, name, f"{name} reports the clock synchronised")
        said.append(f"{name}: " + ("not synchronised" if a is False else "not running or not installed"))
    deniers = [n for n, a in answers if a is False]
    if not deniers:
        return TimeSync(None, "none", "; ".join(said))
    return TimeSync(False, deniers[0], "; ".join(said))


_cached: tuple[float, TimeSync] | None = None


def refresh_time_sync_status() -> TimeSync:
    """Ask the sources now (may run chronyc/ntpq: call it off the event loop) and cache the answer."""
    global _cached  # a cache of a machine-wide fact
    _cached = (time.monotonic(), time_sync_status())
    return _cached[1]


def cached_time_sync_status() -> TimeSync:
    """The cached answer; asked again only when older than _CACHE_S (the agent refreshes it off the
    event loop with every health report, so the pipeline's per-cycle question never waits on a query)."""
    if _cached is None or time.monotonic() - _cached[0] >= _CACHE_S:
        return refresh_time_sync_status()
    return _cached[1]


def clock_synchronized(*, require_kernel_sync: bool = False, now_s: float | None = None) -> bool:
    """``require_kernel_sync``: a time source must confirm synchronisation (``require_time_sync``);
    ``now_s``: the wall time to judge (default: now)."""
    if (time.time() if now_s is None else now_s) < _EARLIEST_PLAUSIBLE:
        return False
    if require_kernel_sync:
        return cached_time_sync_status().synchronized is not False
    return True


# ------------------------------------------------------------------------- boots and clock steps
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
STEP_MS = 1000  # a change of wall - monotonic larger than this is a clock step (NTP slews smaller errors)


def boot_id(path: Path = BOOT_ID_PATH) -> str:
    """The kernel's id of this boot (a new one after every reboot); the empty string when unknown."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass(slots=True)
class ClockStep:
    before_ms: int  # wall - monotonic before the step
    after_ms: int  # ... and after it

    @property
    def size_ms(self) -> int:
        return self.after_ms - self.before_ms


class ClockWatch:
    """Follows ``offset = wall - monotonic`` (ms) from one observation to the next: it changes only
    when the wall clock is set (an NTP step, a date command, fake-hwclock) or slewed."""

    def __init__(self, *, step_ms: int = STEP_MS):
        self.step_ms = step_ms
        self.offset_ms: int | None = None
        self.steps = 0

    def observe(self, wall_ms: int, mono_ms: int) -> ClockStep | None:
        """The step since the last observation, if the offset moved by more than ``step_ms``."""
        offset = wall_ms - mono_ms
        before, self.offset_ms = self.offset_ms, offset
        if before is None or abs(offset - before) <= self.step_ms:
            return None
        self.steps += 1
        return ClockStep(before, offset)
