"""The identifiers a technician needs, by metric name, in both editions.

``slow``: read every ``energy_interval`` (energy and demand registers move slowly and a pass over a
line of meters at 2400 baud takes tens of seconds); the rest every poll. Formats follow DL/T
645-2007 appendix A (energy XXXXXX.XX kWh, voltage XXX.X V, current XXX.XXX A, power XX.XXXX kW,
power factor X.XXX, frequency XX.XX Hz) and DL/T 645-1997 (voltage XXX V, current XX.XX A, 2-byte
identifiers; no frequency, apparent power or current demand).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract import MetricKind, MetricSpec

from .codec import Edition, Fmt

ENERGY = Fmt(4, 2)
VOLT = Fmt(2, 1)
VOLT_1997 = Fmt(2, 0)
AMP_2007 = Fmt(3, 3, signed=True)
AMP_1997 = Fmt(2, 2)
KW = Fmt(3, 4, signed=True)
PF = Fmt(2, 3, signed=True)
HZ = Fmt(2, 2)
DEMAND = Fmt(3, 4)


@dataclass(frozen=True, slots=True)
class Item:
    metric: str
    unit: str
    di2007: int | None
    fmt2007: Fmt | None
    di1997: int | None = None
    fmt1997: Fmt | None = None
    kind: MetricKind = MetricKind.GAUGE
    slow: bool = False
    description: str = ""
    valid_min: float | None = None
    valid_max: float | None = None

    def di(self, edition: Edition) -> int | None:
        return self.di2007 if edition is Edition.V2007 else self.di1997

    def fmt(self, edition: Edition) -> Fmt | None:
        return self.fmt2007 if edition is Edition.V2007 else self.fmt1997

    def spec(self) -> MetricSpec:
        return MetricSpec(self.metric, self.unit, self.kind, self.description, self.valid_min, self.valid_max)


def _energy(metric: str, di2007: int, di1997: int, what: str) -> Item:
    return Item(metric, "kWh", di2007, ENERGY, di1997, ENERGY, MetricKind.COUNTER, slow=True, description=what,
                valid_min=0.0)


TARIFFS = ("t1", "t2", "t3", "t4")  # sharp/peak/flat/valley order is the meter's tariff table
ITEMS: tuple[Item, ...] = (
    _energy("energy_import", 0x00010000, 0x9010, "forward active energy, total"),
    *(_energy(f"energy_import_{t}", 0x00010000 + (i + 1) * 0x100, 0x9011 + i, f"forward active energy, tariff {i + 1}")
      for i, t in enumerate(TARIFFS)),
    _energy("energy_export", 0x00020000, 0x9020, "reverse active energy, total"),
    *(_energy(f"energy_export_{t}", 0x00020000 + (i + 1) * 0x100, 0x9021 + i, f"reverse active energy, tariff {i + 1}")
      for i, t in enumerate(TARIFFS)),
    *(Item(f"voltage_l{p}", "V", 0x02010000 + p * 0x100, VOLT, 0xB610 + p, VOLT_1997, valid_min=0.0, valid_max=799.9,
           description=f"phase {p} voltage") for p in (1, 2, 3)),
    *(Item(f"current_l{p}", "A", 0x02020000 + p * 0x100, AMP_2007, 0xB620 + p, AMP_1997, description=f"phase {p} current")
      for p in (1, 2, 3)),
    Item("power", "kW", 0x02030000, KW, 0xB630, KW, description="active power, total"),
    *(Item(f"power_l{p}", "kW", 0x02030000 + p * 0x100, KW, 0xB630 + p, KW, description=f"phase {p} active power")
      for p in (1, 2, 3)),
    Item("reactive_power", "kvar", 0x02040000, KW, 0xB640, Fmt(2, 2, signed=True), description="reactive power, total"),
    Item("apparent_power", "kVA", 0x02050000, KW, description="apparent power, total"),
    Item("power_factor", "", 0x02060000, PF, 0xB650, PF, valid_min=-1.0, valid_max=1.0, description="power factor, total"),
    Item("frequency", "Hz", 0x02800002, HZ, description="grid frequency", valid_min=40.0, valid_max=70.0),
    Item("demand", "kW", 0x02800004, DEMAND, description="current active demand"),
    Item("max_demand_import", "kW", 0x01010000, DEMAND, 0xA010, DEMAND, slow=True,
         description="maximum forward active demand this period (its timestamp is not read)"),
)
BY_METRIC = {i.metric: i for i in ITEMS}

PROFILES: dict[str, tuple[str, ...]] = {
    # what most sub-metering needs: the billing counters and the live values
    "basic": ("energy_import", "energy_export", "voltage_l1", "current_l1", "power", "power_factor", "frequency"),
    "single_phase": ("energy_import", "energy_export", "voltage_l1", "current_l1", "power", "power_factor",
                     "frequency"),
    "three_phase": ("energy_import", "energy_export", "voltage_l1", "voltage_l2", "voltage_l3", "current_l1",
                    "current_l2", "current_l3", "power", "power_l1", "power_l2", "power_l3", "reactive_power",
                    "apparent_power", "power_factor", "frequency", "demand"),
    "tariffs": ("energy_import", *(f"energy_import_{t}" for t in TARIFFS), "energy_export",
                *(f"energy_export_{t}" for t in TARIFFS)),
    "all": tuple(BY_METRIC),
}
