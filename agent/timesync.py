"""Is the wall clock synchronised? A Pi without RTC boots in 1970 (or at fake-hwclock's last
saved time) until NTP catches up.

Two levels: a clock before 2024 is always unsynchronised; with ``gateway.require_time_sync`` the
kernel's NTP state (adjtimex) must also report synchronised, which chrony and systemd-timesyncd
maintain on a Pi.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time

_EARLIEST_PLAUSIBLE = 1_704_067_200  # 2024-01-01
_TIME_ERROR = 5  # adjtimex() return value: clock not synchronised


def kernel_reports_synced() -> bool | None:
    """The kernel's NTP state; None if it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex (mode 0 = read only) fits easily
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != _TIME_ERROR


def clock_synchronized(*, require_kernel_sync: bool = False) -> bool:
    if time.time() < _EARLIEST_PLAUSIBLE:
        return False
    if require_kernel_sync:
        return kernel_reports_synced() is not False
    return True
