"""Sun and storage on site: charging modes, battery peak shaving and surplus charging, an export limit.

The connection limit never counts on the sun or the battery: the chargers' hard budget is the limit
less the site's own load *gross of PV and battery discharge* (and plus battery charging), so a cloud
or a battery that trips cannot push the grid over it. PV and the battery only decide who charges
when (the PV modes), cut the grid import (peak shaving, surplus charging) and keep export within
the limit the grid connection allows (curtailing the inverter by its power-limit point).

Charging modes, per charger (config) or per session (:meth:`SolarControl.set_mode`):

- ``off``: no charging;
- ``now``: as fast as the site limit allows;
- ``minpv``: at least the minimum current, more from surplus PV;
- ``pv``: only from surplus PV (paused when the surplus does not reach the minimum current).

Readings from the inverter or the battery older than ``stale_after`` (or missing) put this part in
fail-safe: the battery holds (0 W), PV-mode chargers pause, the export cap, if any, is set to the
export limit itself as share of the array, and PV counts as zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..contract.lazy import lazy_exports
from .bases import Mode

if TYPE_CHECKING:
    from .config import SolarConfig

# the [site.solar] model (pydantic) is in agent.site.config, imported on first use
__getattr__ = lazy_exports(__name__, {"SolarConfig": "agent.site.config"})

EASE_SHARE = 0.05  # the export cap is eased by at most this share of the array per step
VALLEY_EFFICIENCY = 0.95  # one-way charge efficiency assumed when sizing the valley charge

Reader = Callable[[str, str], tuple[float, int]]  # (device, metric) -> (value, ts ms)
Align = Callable[[str, int, float], float]  # (key, ts ms of a reading, value) -> value at the grid reading's instant


@dataclass
class Flows:
    """One step's view of the site (W)."""

    grid_w: float
    charging_w: float
    pv_w: float = 0.0
    battery_w: float = 0.0  # positive discharging
    soc: float = math.nan
    fresh: bool = True
    reason: str = ""
    unknown_w: float = 0.0  # battery power that cannot be seen (stale): counted against the limit

    @property
    def load_w(self) -> float:
        """The site's own consumption: neither chargers nor battery."""
        return self.grid_w - self.charging_w + self.pv_w + self.battery_w

    @property
    def gross_w(self) -> float:
        """What the limit must hold for the site's own load without the sun and the battery's discharge
        (a charging battery yields to the cars: its charge is capped by the room they leave)."""
        return max(0.0, self.load_w) + self.unknown_w


@dataclass
class SolarControl:
    config: SolarConfig
    read: Reader
    modes: dict[str, Mode] = field(default_factory=dict)
    align: Align = lambda key, ts, v: v  # noqa: E731
    battery_set_w: float | None = None  # what was last written
    cap_pct: float | None = None
    failsafe: bool = False
    last_write_ms: int = 0

    def mode(self, charger: str) -> Mode:
        return self.modes.get(charger) or self.config.modes.get(charger, self.config.default_mode)

    def set_mode(self, charger: str, mode: Mode | str) -> None:
        self.modes[charger] = Mode(mode)

    def flows(self, grid_w: float, charging_w: float, now_ms: int) -> Flows:
        """PV and battery power at the grid reading's instant (``align``), and the site's load from them."""
        c = self.config
        f = Flows(grid_w, charging_w)
        stale_ms = c.stale_after * 1000
        problems = []
        if c.inverter is not None:
            v, ts = self.read(c.inverter, c.pv_metric)
            if ts == 0 or math.isnan(v) or now_ms - ts > stale_ms:
                problems.append(f"{c.inverter}.{c.pv_metric} is stale")
                v = c.pv_peak_kw * 1000  # the load is judged as if the array gave all it can (and may stop)
            else:
                v = self.align("~pv", ts, v)
            f.pv_w = max(0.0, v)
        if c.battery is not None:
            w, wts = self.read(c.battery, c.battery_metric)
            soc, sts = self.read(c.battery, c.soc_metric)
            if min(wts, sts) == 0 or math.isnan(w) or math.isnan(soc) or now_ms - min(wts, sts) > stale_ms:
                problems.append(f"{c.battery} battery readings are stale")
                w = 0.0
                f.unknown_w = c.battery_max_kw * 1000  # it may be discharging (and stop) or charging at its rating
            else:
                f.soc = soc
                w = self.align("~battery", wts, w)
            f.battery_w = w
        if problems:
            f.fresh, f.reason = False, "; ".join(problems)
        return f

    def settled(self, grid_ts: int, lag_s: float) -> bool:
        """Whether the grid reading of ``grid_ts`` shows what the last write did."""
        return grid_ts >= self.last_write_ms + int((lag_s + self.config.settle) * 1000)

    def held_w(self, f: Flows) -> float:
        """While the inverter is held at its export cap, what the battery may take beyond the export: one
        easing step of the cap (5 % of the array), which the cap gives back in the same step."""
        if self.cap_pct is None or self.cap_pct >= 100 or not f.fresh:
            return 0.0
        return EASE_SHARE * self.config.pv_peak_kw * 1000 if f.pv_w >= 0.9 * self.cap_pct / 100 * self.config.pv_peak_kw * 1000 else 0.0

    def pv_shares(self, f: Flows, drawn: dict[str, float], potential_w: float | None = None) -> float:
        """Surplus W for the PV-mode chargers: what is exported, plus what they and a charging battery
        draw now (cars come before the battery), plus, while the inverter is held at its export cap,
        what the array could give beyond it (``potential_w``, default the array's peak): the cap is
        eased as soon as the cars draw it from the grid."""
        if not f.fresh:
            return 0.0
        pv_draw = sum(w for n, w in drawn.items() if self.mode(n) in (Mode.PV, Mode.MINPV))
        held = 0.0
        if self.cap_pct is not None and self.cap_pct < 100:
            cap_w = self.cap_pct / 100 * self.config.pv_peak_kw * 1000
            if f.pv_w >= 0.9 * cap_w:
                held = max(0.0, (self.config.pv_peak_kw * 1000 if potential_w is None else potential_w) - f.pv_w)
        return max(0.0, -f.grid_w + pv_draw + max(0.0, -f.battery_w) + held)

    def battery_target(self, f: Flows, hard_room_w: float, valley_left_s: float | None = None) -> tuple[float, str]:
        """The battery set-point (W, positive discharges) and why; ``valley_left_s``: seconds left of the
        tariff's valley period now (None outside it)."""
        c = self.config
        if c.battery is None:
            return 0.0, ""
        if not f.fresh:
            return 0.0, f"hold: {f.reason}"
        rating = c.battery_max_kw * 1000
        if c.battery_kwh is not None:  # near its bounds, slow it so a minute at the set-point cannot cross them
            rating_out = min(rating, max(0.0, f.soc - c.soc_min) / 100 * c.battery_kwh * 1000 * 60)
            rating_in = min(rating, max(0.0, c.soc_max - f.soc) / 100 * c.battery_kwh * 1000 * 60)
        else:
            rating_out = rating_in = rating
        without = f.grid_w + f.battery_w  # the grid import if the battery did nothing
        if c.peak_shave_kw is not None and without > c.peak_shave_kw * 1000:
            if f.soc <= c.soc_min:
                return 0.0, f"peak {without / 1000:.1f} kW over {c.peak_shave_kw:g} kW but SoC {f.soc:.0f} % at its floor"
            want = min(rating_out, without - c.peak_shave_kw * 1000)
            return want, f"peak shaving: grid would be {without / 1000:.1f} kW, threshold {c.peak_shave_kw:g} kW"
        surplus = -without + self.held_w(f)  # PV held back by the export cap is surplus too
        if c.surplus_charge and surplus > 0:
            if f.soc >= c.soc_max:
                return 0.0, f"surplus {surplus / 1000:.1f} kW but SoC {f.soc:.0f} % at its ceiling"
            want = min(rating_in, surplus, max(0.0, hard_room_w))
            return -want, f"surplus charging: {surplus / 1000:.1f} kW would be exported"
        if c.valley_charge and valley_left_s is not None and valley_left_s > 0:
            return self._valley(f, min(hard_room_w, rating_in), valley_left_s, without)
        return 0.0, "idle"

    def _valley(self, f: Flows, hard_room_w: float, left_s: float, without_w: float) -> tuple[float, str]:
        """Charge from the grid in the valley: to ``valley_soc`` by its end, spread over what is left of it
        (a quarter of an hour early), within the battery's rating, the room the cars leave and, with peak
        shaving, without raising the import over its threshold."""
        c = self.config
        target = min(c.valley_soc, c.soc_max)
        if f.soc >= target:
            return 0.0, f"valley: SoC {f.soc:.0f} % has reached {target:g} %"
        assert c.battery_kwh is not None
        need_wh = (target - f.soc) / 100 * c.battery_kwh * 1000 / VALLEY_EFFICIENCY
        # never so slow that it only creeps up to the target (nor below what the deadband would write)
        floor = max(2 * c.deadband_kw * 1000, 0.05 * c.battery_max_kw * 1000)
        rate = max(floor, need_wh / (max(left_s - 900.0, 300.0) / 3600.0))
        caps = {"rating": c.battery_max_kw * 1000, "site limit": max(0.0, hard_room_w)}
        if c.peak_shave_kw is not None:
            caps["peak threshold"] = max(0.0, c.peak_shave_kw * 1000 - without_w)
        want = min(rate, *caps.values())
        by = next((k for k, v in caps.items() if v <= rate and v == want), None)
        left_h = left_s / 3600
        return -want, (f"valley charging: SoC {f.soc:.0f} % to {target:g} % in {left_h:.1f} h, "
                       f"{want / 1000:.1f} kW from the grid" + (f" (held by the {by})" if by else ""))

    def export_cap(self, f: Flows, battery_next_w: float) -> tuple[float | None, str]:
        """The inverter cap (% of the array) that keeps export within the limit, or None to leave it."""
        c = self.config
        if c.export_limit_kw is None:
            return None, ""
        peak = c.pv_peak_kw * 1000
        allowed = c.export_limit_kw * 1000
        if not f.fresh:
            return max(0.0, min(100.0, allowed / peak * 100)), f"fail-safe: {f.reason}"
        # the export once the battery follows its set-point (more discharge, less import)
        export = -(f.grid_w - (battery_next_w - f.battery_w))
        over = export - (allowed - c.export_margin_kw * 1000)
        cap_w = (self.cap_pct if self.cap_pct is not None else 100.0) * peak / 100
        if over > 0:
            cap_w = max(0.0, min(cap_w, f.pv_w) - over)
            return round(cap_w / peak * 100, 1), f"export {export / 1000:.1f} kW over {c.export_limit_kw:g} kW"
        if self.cap_pct is not None and self.cap_pct < 100 and -over > 2 * c.export_margin_kw * 1000:
            step = min(-over - c.export_margin_kw * 1000, EASE_SHARE * peak)
            return round(min(100.0, (cap_w + step) / peak * 100), 1), "export below its limit: cap eased"
        return self.cap_pct, ""


def decision(kind: str, now_ms: int, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "ts": now_ms, **kw}
