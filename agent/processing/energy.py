"""Energy, cost and carbon per meter, per hour and per local day.

Fed with per-reading energy increments (kWh) from the counter / integration kernel; each increment
is priced at its reading's tariff period. Closed hours become agg-topic bodies.

An increment that accrued over longer than the gap length (a counter that sat still and then caught
up, or readings missing for a while) is spread pro rata over the time it accrued in, in
quarter-hour slices each priced and weighted at its own time, and counted as ``estimated_kwh``.
Slices that fall into hours already published go out as supplements for those hours
(``"supplement": true``; an hour's energy is the sum of its bodies).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .carbon import CarbonFactors
from .tariff import MS_HOUR, Tariff

SLICE_MS = 900_000  # spread energy is priced per quarter hour (tariff periods change on such boundaries)


@dataclass(slots=True)
class _Bucket:
    kwh: float = 0.0
    cost: float = 0.0
    by_period: dict[str, float] = field(default_factory=dict)
    readings: int = 0
    kg: float = 0.0
    estimated: float = 0.0


class EnergyLedger:
    def __init__(self, meters: list[str], methods: list[str], *, tariff: Tariff,
                 emission_factor: float | CarbonFactors):
        self.meters = meters
        self.methods = methods
        self.tariff = tariff
        self.carbon = (emission_factor if isinstance(emission_factor, CarbonFactors)
                       else CarbonFactors(emission_factor, tz=str(tariff.tz)))
        self.hours: list[dict[int, _Bucket]] = [{} for _ in meters]
        self.days: list[dict[int, _Bucket]] = [{} for _ in meters]
        self.supplements: list[dict[int, _Bucket]] = [{} for _ in meters]
        self.closed_before = 0  # hours starting before this were published

    def add(self, meter: np.ndarray, ts: np.ndarray, kwh: np.ndarray, *, since: np.ndarray | None = None,
            gap_ms: np.ndarray | None = None) -> None:
        """Book increments; ``meter`` indexes ``self.meters``. ``since[i]`` is when increment i started
        to accrue; one that accrued over more than ``gap_ms[i]`` is spread over that time, estimated."""
        if since is None or gap_ms is None:
            self._add(meter, ts, kwh)
            return
        spread = np.isfinite(kwh) & (kwh != 0.0) & (ts - since > gap_ms)
        if not spread.any():
            self._add(meter, ts, kwh)
            return
        self._add(meter[~spread], ts[~spread], kwh[~spread])
        for i in np.flatnonzero(spread):
            t0, t1 = int(since[i]), int(ts[i])
            edges = np.unique(np.concatenate([[t0], np.arange((t0 // SLICE_MS + 1) * SLICE_MS, t1, SLICE_MS), [t1]]))
            share = np.diff(edges) / (t1 - t0) * kwh[i]
            mid = (edges[:-1] + edges[1:]) // 2
            self._add(np.full(mid.shape[0], meter[i]), mid.astype(np.int64), share, estimated=True)

    def _add(self, meter: np.ndarray, ts: np.ndarray, kwh: np.ndarray, *, estimated: bool = False) -> None:
        """Non-finite increments are ignored."""
        ok = np.isfinite(kwh)
        if not ok.any():
            return
        meter, ts, kwh = meter[ok], ts[ok], kwh[ok]
        pidx, price = self.tariff.periods_and_prices_at(ts)  # prices may change by season
        cost = kwh * price
        kg = kwh * self.carbon.factors_at(ts)
        hour = (ts // MS_HOUR) * MS_HOUR
        for i in range(kwh.shape[0]):  # few meters x few readings per call
            m = int(meter[i])
            p = self.tariff.periods[int(pidx[i])]
            day = self.tariff.local_day_start(int(ts[i]))
            h = int(hour[i])
            hours = self.hours[m] if h >= self.closed_before else self.supplements[m]
            for book, key in ((hours, h), (self.days[m], day)):
                b = book.get(key)
                if b is None:
                    b = book[key] = _Bucket()
                b.kwh += float(kwh[i])
                b.cost += float(cost[i])
                b.kg += float(kg[i])
                b.by_period[p] = b.by_period.get(p, 0.0) + float(kwh[i])
                if estimated:
                    b.estimated += float(kwh[i])
                else:
                    b.readings += 1

    def close(self, cutoff_ms: int) -> list[tuple[str, dict]]:
        """Bodies for every hour that ended at or before ``cutoff_ms``; old days are pruned."""
        out = []
        self.closed_before = max(self.closed_before, (cutoff_ms // MS_HOUR) * MS_HOUR)
        for m, name in enumerate(self.meters):
            for h in sorted(self.supplements[m]):
                out.append((name, {**self._body(name, m, h, self.supplements[m].pop(h)), "supplement": True}))
            for h in sorted(k for k in self.hours[m] if k + MS_HOUR <= cutoff_ms):
                b = self.hours[m].pop(h)
                out.append((name, self._body(name, m, h, b)))
            for d in [k for k in self.days[m] if k < cutoff_ms - 2 * 86_400_000]:
                del self.days[m][d]
        return out

    def _body(self, name: str, m: int, start: int, b: _Bucket) -> dict:
        extra = {"estimated_kwh": round(b.estimated, 6)} if b.estimated else {}
        return {
            "v": 1,
            "device": name,
            "kind": "energy",
            "window": "1h",
            "start": start,
            "end": start + MS_HOUR,
            "method": self.methods[m],
            "kwh": round(b.kwh, 6),
            "cost": round(b.cost, 4),
            "currency": self.tariff.currency,
            "kgco2e": round(b.kg, 6),
            "by_period": {k: round(v, 6) for k, v in sorted(b.by_period.items())},
            "readings": b.readings,
            **extra,
        }

    def summary(self, now_ms: int) -> dict:
        hour = (now_ms // MS_HOUR) * MS_HOUR
        day = self.tariff.local_day_start(now_ms)
        out = {}
        for m, name in enumerate(self.meters):
            h = self.hours[m].get(hour, _Bucket())
            d = self.days[m].get(day, _Bucket())
            out[name] = {
                "method": self.methods[m],
                "today": self._totals(d),
                "this_hour": self._totals(h),
                "period_now": self.tariff.period_at(now_ms),
                "price_now": self.tariff.price_at(now_ms),
            }
        return out

    def _totals(self, b: _Bucket) -> dict:
        return {"kwh": round(b.kwh, 6), "cost": round(b.cost, 4), "kgco2e": round(b.kg, 6)}
