"""Where the energy goes: the site's power split into flows, and each charging session's share of them.

``split`` divides one instant's PV, battery and grid power into PV → site, PV → battery, PV → grid,
battery → site, battery → grid, grid → site and grid → battery (site = the building and the
chargers). PV serves the site first, then the battery, then the grid; a discharging battery serves
the site before the grid.

``EnergyBook`` integrates the flows step by step. The battery carries what charged it: its stored
energy keeps a PV share, a carbon content and a cost, drawn out in proportion when it discharges.
Each session on a charger gets the share of the site's flows its power is of the site's consumption:
PV energy (zero carbon), battery energy (at the battery's content) and grid energy (at the hour's
emission factor and price).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Split:
    """One instant's flows (W, all >= 0)."""

    pv_site: float = 0.0
    pv_battery: float = 0.0
    pv_grid: float = 0.0
    battery_site: float = 0.0
    battery_grid: float = 0.0
    grid_site: float = 0.0
    grid_battery: float = 0.0

    @property
    def site(self) -> float:
        return self.pv_site + self.battery_site + self.grid_site


def split(pv_w: float, battery_w: float, grid_w: float) -> Split:
    """Flows from PV power, battery power (positive discharging) and grid power (import positive)."""
    pv = max(0.0, pv_w)
    charge, discharge = max(0.0, -battery_w), max(0.0, battery_w)
    site = max(0.0, grid_w + pv + battery_w)  # what the building and the chargers consume
    pv_site = min(pv, site)
    pv_battery = min(pv - pv_site, charge)
    battery_site = min(discharge, site - pv_site)
    return Split(pv_site=pv_site, pv_battery=pv_battery, pv_grid=pv - pv_site - pv_battery,
                 battery_site=battery_site, battery_grid=discharge - battery_site,
                 grid_site=site - pv_site - battery_site, grid_battery=charge - pv_battery)


@dataclass
class SessionEnergy:
    """One session's energy by source (Wh), its grid cost and its carbon (g CO2e)."""

    pv_wh: float = 0.0
    battery_wh: float = 0.0
    grid_wh: float = 0.0
    battery_pv_wh: float = 0.0  # of battery_wh: what the sun had put in the battery
    cost: float = 0.0
    co2_g: float = 0.0

    @property
    def total_wh(self) -> float:
        return self.pv_wh + self.battery_wh + self.grid_wh

    def report(self) -> dict[str, float]:
        total = self.total_wh
        solar = self.pv_wh + self.battery_pv_wh
        return {"energy_kwh": round(total / 1000, 3), "pv_kwh": round(self.pv_wh / 1000, 3),
                "battery_kwh": round(self.battery_wh / 1000, 3), "grid_kwh": round(self.grid_wh / 1000, 3),
                "pv_share": round(solar / total, 3) if total > 0 else 0.0, "cost": round(self.cost, 2),
                "kgco2e": round(self.co2_g / 1000, 3)}


@dataclass
class EnergyBook:
    battery_wh: float = 0.0  # energy the book has seen go into the battery and not yet out
    battery_pv_wh: float = 0.0
    battery_co2_g: float = 0.0
    battery_cost: float = 0.0
    totals: dict[str, float] = field(default_factory=dict)  # Wh per flow
    sessions: dict[str, SessionEnergy] = field(default_factory=dict)

    def step(self, s: Split, seconds: float, *, chargers_w: Mapping[str, float], factor_kg_kwh: float,
             price_per_kwh: float) -> None:
        """Book ``seconds`` of the flows ``s``; ``chargers_w``: what each charging session draws (W)."""
        if seconds <= 0:
            return
        h = seconds / 3600.0
        for name in Split.__slots__:
            self.totals[name] = self.totals.get(name, 0.0) + getattr(s, name) * h
        g_per_wh = factor_kg_kwh  # kg/kWh == g/Wh
        # battery out first, at its content before this step's charge
        out_wh = (s.battery_site + s.battery_grid) * h
        frac = min(1.0, out_wh / self.battery_wh) if self.battery_wh > 0 else 0.0
        pv_frac = self.battery_pv_wh / self.battery_wh if self.battery_wh > 0 else 0.0
        co2_per_wh = self.battery_co2_g / self.battery_wh if self.battery_wh > 0 else 0.0
        cost_per_wh = self.battery_cost / self.battery_wh if self.battery_wh > 0 else 0.0
        self.battery_wh, self.battery_pv_wh = self.battery_wh * (1 - frac), self.battery_pv_wh * (1 - frac)
        self.battery_co2_g, self.battery_cost = self.battery_co2_g * (1 - frac), self.battery_cost * (1 - frac)
        grid_in = s.grid_battery * h
        self.battery_wh += s.pv_battery * h + grid_in
        self.battery_pv_wh += s.pv_battery * h
        self.battery_co2_g += grid_in * g_per_wh
        self.battery_cost += grid_in / 1000 * price_per_kwh
        if s.site <= 0:
            return
        for name, w in chargers_w.items():
            if w <= 0:
                continue
            share = min(1.0, w / s.site)
            e = self.sessions.setdefault(name, SessionEnergy())
            grid = share * s.grid_site * h
            batt = share * s.battery_site * h
            e.pv_wh += share * s.pv_site * h
            e.grid_wh += grid
            e.battery_wh += batt
            e.battery_pv_wh += batt * pv_frac
            e.co2_g += grid * g_per_wh + batt * co2_per_wh
            e.cost += grid / 1000 * price_per_kwh + batt * cost_per_wh

    def close(self, name: str) -> dict[str, float] | None:
        """The finished session's report (None when it drew nothing)."""
        e = self.sessions.pop(name, None)
        return e.report() if e is not None and e.total_wh > 0 else None
