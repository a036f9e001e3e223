"""Config checks the metering families (DL/T 645, CJ/T 188) share."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def check_timezone(name: str) -> str:
    """``name`` when it is an IANA time zone; a ValueError saying what is expected otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as \"Asia/Shanghai\")") from None
    return name


def check_request_timeout(request_timeout: float, timeout: float) -> None:
    """One request must fit in the poll's time budget."""
    if request_timeout >= timeout:
        raise ValueError(f"request_timeout ({request_timeout:g} s) must be shorter than timeout ({timeout:g} s)")
