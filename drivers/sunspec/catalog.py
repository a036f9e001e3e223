"""Which SunSpec points become which metrics: a short, stable name per point a site needs.

Names are unique across the models one device may chain (a hybrid inverter: inverter + storage +
meter), so one device's metrics never clash. ``scale`` converts the SunSpec unit to ours (Wh -> kWh),
``offset`` aligns an enum with its 1xx counterpart. The 7xx DER models deliver the metrics their 1xx/8xx
counterparts do (701 as an inverter, 704 as controls, 713 as a battery), so the site controller reads
either chain alike, and a config lists one model of each family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.contract import MetricKind, MetricSpec

from .models import INVERTERS, METERS


@dataclass(frozen=True, slots=True)
class Entry:
    point: str
    metric: str
    unit: str
    kind: MetricKind = MetricKind.GAUGE
    scale: float = 1.0
    description: str = ""
    offset: float = 0.0

    def spec(self) -> MetricSpec:
        return MetricSpec(self.metric, self.unit, self.kind, self.description,
                          anomaly=self.kind is MetricKind.GAUGE)


_G, _C, _S = MetricKind.GAUGE, MetricKind.COUNTER, MetricKind.STATE

_INVERTER = (
    Entry("W", "pv_power", "W", description="Inverter AC output power"),
    Entry("WH", "pv_energy", "kWh", _C, 0.001, "Inverter AC energy produced"),
    Entry("DCW", "pv_dc_power", "W", description="DC input power"),
    Entry("Hz", "pv_frequency", "Hz", description="AC frequency at the inverter"),
    Entry("PhVphA", "pv_voltage_l1", "V", description="Phase A voltage at the inverter"),
    Entry("TmpCab", "pv_temperature", "°C", description="Cabinet temperature"),
    Entry("St", "pv_state", "", _S, description="Operating state (1 off, 2 sleeping, 4 MPPT, 5 throttled, 7 fault)"),
)
_METER = (
    Entry("W", "power", "W", description="Total active power at the meter (import positive)"),
    Entry("TotWhImp", "energy_import", "kWh", _C, 0.001, "Energy imported"),
    Entry("TotWhExp", "energy_export", "kWh", _C, 0.001, "Energy exported"),
    Entry("Hz", "frequency", "Hz", description="Grid frequency"),
    Entry("PhVphA", "voltage_l1", "V", description="Phase A voltage"),
    Entry("A", "current", "A", description="Total current"),
)
_STORAGE = (
    Entry("ChaState", "storage_soc", "%", description="State of charge (% of Ah rating)"),
    Entry("WChaMax", "storage_max_charge_w", "W", description="Maximum charge power"),
    Entry("InWRte", "storage_charge_rate", "%", description="Charge rate set-point (% of WChaMax)"),
    Entry("OutWRte", "storage_discharge_rate", "%", description="Discharge rate set-point (% of WChaMax)"),
    Entry("ChaSt", "storage_state", "", _S, description="Charge state (1 off, 2 empty, 3 discharging, 4 charging, 5 full, 6 holding)"),
)
_BATTERY = (
    Entry("SoC", "battery_soc", "%", description="State of charge"),
    Entry("SoH", "battery_soh", "%", description="State of health"),
    Entry("W", "battery_power", "W", description="Battery DC power"),
    Entry("V", "battery_voltage", "V", description="Battery voltage"),
)
_CONTROLS = (
    Entry("WMaxLimPct", "power_limit", "%", description="Output power limit (% of WMax)"),
    Entry("WMaxLim_Ena", "power_limit_enabled", "", _S, description="Output power limit enabled (1)"),
)


_DER_AC = (  # 701
    Entry("W", "pv_power", "W", description="Inverter AC output power"),
    Entry("TotWhInj", "pv_energy", "kWh", _C, 0.001, "Inverter AC energy injected"),
    Entry("Hz", "pv_frequency", "Hz", description="AC frequency at the inverter"),
    Entry("VL1", "pv_voltage_l1", "V", description="Phase L1 voltage at the inverter"),
    Entry("TmpCab", "pv_temperature", "°C", description="Cabinet temperature"),
    Entry("InvSt", "pv_state", "", _S, description="Operating state, counted as in model 103 (InvSt + 1)", offset=1.0),
)
_DER_CAPACITY = (  # 702
    Entry("WMaxRtg", "rated_power", "W", description="Active power rating"),
    Entry("WMax", "max_power", "W", description="Active power setting (WMax)"),
    Entry("WChaRteMaxRtg", "rated_charge_w", "W", description="Charge power rating"),
    Entry("WDisChaRteMaxRtg", "rated_discharge_w", "W", description="Discharge power rating"),
)
_DER_CONTROLS = (  # 704
    Entry("WMaxLimPct", "power_limit", "%", description="Output power limit (% of WMax)"),
    Entry("WMaxLimPctEna", "power_limit_enabled", "", _S, description="Output power limit enabled (1)"),
)
_DER_STORAGE = (  # 713
    Entry("SoC", "battery_soc", "%", description="State of charge"),
    Entry("SoH", "battery_soh", "%", description="State of health"),
    Entry("WHRtg", "battery_energy_rating", "kWh", scale=0.001, description="Energy rating"),
    Entry("WHAvail", "battery_energy_available", "kWh", scale=0.001, description="Energy available to discharge"),
)


def entries(model_id: int) -> tuple[Entry, ...]:
    if model_id in INVERTERS:
        return _INVERTER
    if model_id in METERS:
        return _METER
    return {124: _STORAGE, 802: _BATTERY, 123: _CONTROLS, 701: _DER_AC, 702: _DER_CAPACITY, 704: _DER_CONTROLS,
            713: _DER_STORAGE}.get(model_id, ())


def metrics_for(config: Any) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): its models' entries, model by model, as the driver
    lists them (validation asks here: the driver imports numpy)."""
    return [e.spec() for m in config.models for e in entries(m)]
