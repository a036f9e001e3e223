"""Energy, cost and carbon per meter, per hour and per local day.

Fed with per-reading energy increments (kWh) from the counter / integration kernel; each increment
is priced at its reading's tariff period. Closed hours become agg-topic bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .carbon import CarbonFactors
from .tariff import MS_HOUR, Tariff


@dataclass(slots=True)
class _Bucket:
    kwh: float = 0.0
    cost: float = 0.0
    by_period: dict[str, float] = field(default_factory=dict)
    readings: int = 0
    kg: float = 0.0


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

    def add(self, meter: np.ndarray, ts: np.ndarray, kwh: np.ndarray) -> None:
        """Book increments; ``meter`` indexes ``self.meters``. Non-finite increments are ignored."""
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
            for book, key in ((self.hours[m], int(hour[i])), (self.days[m], day)):
                b = book.get(key)
                if b is None:
                    b = book[key] = _Bucket()
                b.kwh += float(kwh[i])
                b.cost += float(cost[i])
                b.kg += float(kg[i])
                b.by_period[p] = b.by_period.get(p, 0.0) + float(kwh[i])
                b.readings += 1

    def close(self, cutoff_ms: int) -> list[tuple[str, dict]]:
        """Bodies for every hour that ended at or before ``cutoff_ms``; old days are pruned."""
        out = []
        for m, name in enumerate(self.meters):
            for h in sorted(k for k in self.hours[m] if k + MS_HOUR <= cutoff_ms):
                b = self.hours[m].pop(h)
                out.append((name, self._body(name, m, h, b)))
            for d in [k for k in self.days[m] if k < cutoff_ms - 2 * 86_400_000]:
                del self.days[m][d]
        return out

    def _body(self, name: str, m: int, start: int, b: _Bucket) -> dict:
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
