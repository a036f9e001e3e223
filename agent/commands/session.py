"""The ``set_session`` command's fields: when the car on a site charger leaves and what it needs.

Nothing is written to the device: the site planner is told (``SiteController.plan_session``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .parse import Code, Refusal

MAX_ENERGY_KWH = 500.0
MAX_CAR_CURRENT_A = 100.0
MAX_AHEAD_MS = 7 * 86_400_000  # an epoch departure at most this far ahead
LOCAL_TIME = re.compile(r"^(\d{2}):(\d{2})$")
MODES = ("off", "now", "minpv", "pv")


@dataclass(frozen=True, slots=True)
class SessionRequest:
    departure: str | int  # "HH:MM": the next such local time (processing.timezone); or epoch ms
    energy_kwh: float
    max_current_a: float | None = None
    mode: str | None = None  # charging mode for this session (agent.site.solar): off, now, minpv, pv


def _number(body: dict[str, Any], key: str, high: float, unit: str) -> float:
    v = body.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise Refusal(Code.MALFORMED, f"set_session needs a finite number in \"{key}\" ({unit})")
    if not 0 < v <= high:
        raise Refusal(Code.OUT_OF_RANGE, f"\"{key}\" of {v:g} {unit} is outside (0, {high:g}]")
    return float(v)


def _departure(raw: Any, now_ms: int) -> str | int:
    if isinstance(raw, str) and (m := LOCAL_TIME.match(raw)):
        if int(m[1]) > 23 or int(m[2]) > 59:
            raise Refusal(Code.OUT_OF_RANGE, f"\"departure\" {raw!r} is not a time of day (00:00-23:59)")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise Refusal(Code.MALFORMED, "\"departure\" must be a local time \"HH:MM\" or epoch milliseconds")
    if raw <= now_ms:
        raise Refusal(Code.OUT_OF_RANGE, f"\"departure\" is {(now_ms - raw) / 1000:.0f} s in the past")
    if raw - now_ms > MAX_AHEAD_MS:
        raise Refusal(Code.OUT_OF_RANGE, f"\"departure\" is more than {MAX_AHEAD_MS // 86_400_000} days ahead")
    return raw


def parse_session(body: dict[str, Any], now_ms: int) -> SessionRequest:
    """Validate a ``set_session`` body; raises :class:`Refusal` (``malformed`` / ``out_of_range``)."""
    departure = _departure(body.get("departure"), now_ms)
    energy = _number(body, "energy_kwh", MAX_ENERGY_KWH, "kWh")
    car_a = _number(body, "max_current_a", MAX_CAR_CURRENT_A, "A") if body.get("max_current_a") is not None else None
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        raise Refusal(Code.MALFORMED, f"\"mode\" must be one of {', '.join(map(repr, MODES))}")
    return SessionRequest(departure, energy, car_a, mode)
