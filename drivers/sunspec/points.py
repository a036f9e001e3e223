"""The points a SunSpec device offers (behaviour of its config, without pydantic): the model
(:mod:`.config`) and its plain twin, which the run time reads, inherit :class:`SunSpecBase`."""

from __future__ import annotations

from agent.contract import Point

POWER_LIMIT = "power_limit"
BATTERY_POWER = "battery_power"


class SunSpecBase:
    """Mixin of :class:`~.config.SunSpecConfig`."""

    def points(self) -> list[Point]:
        out = []
        if {123, 704} & set(self.models):
            out.append(Point(POWER_LIMIT, unit="%", low=0.0, high=100.0, writable=POWER_LIMIT in self.writable,
                             meaning="inverter output cap in % of WMax (export limit); 100 lifts it"))
        if 124 in self.models and self.battery_max_w is not None:
            out.append(Point(BATTERY_POWER, unit="W", low=-self.battery_max_w, high=self.battery_max_w,
                             writable=BATTERY_POWER in self.writable,
                             meaning="battery power set-point: positive discharges, negative charges, 0 holds"))
        return out
