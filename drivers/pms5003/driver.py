"""Plantower PMS5003 particulate sensor on a ``serial`` line, in passive (polled) or active mode."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from agent.contract import (
    DriverContext,
    MetricSpec,
    NonDecreasing,
    Sample,
    SerialPort,
    plausibility,
)
from agent.contract.lazy import lazy_exports

from . import codec

if TYPE_CHECKING:
    from .config import Pms5003Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Pms5003Config": "drivers.pms5003.config"})


class Pms5003Mode(enum.StrEnum):
    PASSIVE = "passive"  # one frame per read command: every value is fresh
    ACTIVE = "active"  # the sensor streams a frame every 0.2..2.3 s; we take the next one


_COUNT = "1/0.1L"
PM_MAX = 1000.0  # datasheet: effective range 0..500 ug/m3, maximum range >= 1000
PM_CONSISTENCY = 10.0  # datasheet: +-10 ug/m3 below 100 ug/m3; a smaller change is never an anomaly
_PM = {"unit": "ug/m3", "valid_min": 0.0, "valid_max": PM_MAX, "significant": PM_CONSISTENCY}
_DERIVED = {"anomaly": False}  # the same measurement again (CF=1) or its raw counts: not watched by default
METRICS = [
    MetricSpec("pm1_0", description="PM1.0, atmospheric environment", **_PM),
    MetricSpec("pm2_5", description="PM2.5, atmospheric environment", **_PM),
    MetricSpec("pm10", description="PM10, atmospheric environment", **_PM),
    MetricSpec("pm1_0_cf1", description="PM1.0, CF=1 (standard particle)", **_PM, **_DERIVED),
    MetricSpec("pm2_5_cf1", description="PM2.5, CF=1", **_PM, **_DERIVED),
    MetricSpec("pm10_cf1", description="PM10, CF=1", **_PM, **_DERIVED),
    MetricSpec("gt0_3um", _COUNT, description="Particles > 0.3 um per 0.1 L", **_DERIVED),
    MetricSpec("gt0_5um", _COUNT, description="Particles > 0.5 um per 0.1 L", **_DERIVED),
    MetricSpec("gt1_0um", _COUNT, description="Particles > 1.0 um per 0.1 L", **_DERIVED),
    MetricSpec("gt2_5um", _COUNT, description="Particles > 2.5 um per 0.1 L", **_DERIVED),
    MetricSpec("gt5_0um", _COUNT, description="Particles > 5.0 um per 0.1 L", **_DERIVED),
    MetricSpec("gt10um", _COUNT, description="Particles > 10 um per 0.1 L", **_DERIVED),
]
# Mass below a size includes every smaller size; a count "> d" includes every larger size.
RULES = (
    NonDecreasing("pm1_0", "pm2_5", "pm10"),
    NonDecreasing("pm1_0_cf1", "pm2_5_cf1", "pm10_cf1"),
    NonDecreasing("gt10um", "gt5_0um", "gt2_5um", "gt1_0um", "gt0_5um", "gt0_3um"),
)


def frame_samples(r: codec.Pms5003Reading) -> list[Sample]:
    """The readings of one decoded frame, IMPLAUSIBLE where the frame contradicts itself."""
    return plausibility.frame_samples(METRICS, {m.name: float(getattr(r, m.name)) for m in METRICS}, RULES)


def metrics_for(config: Pms5003Config) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): every frame carries them all."""
    return list(METRICS)


class Pms5003Driver:
    def __init__(self, config: Pms5003Config, ctx: DriverContext):
        self.config = config
        self.bus: SerialPort = ctx.buses.get(config.line)
        self._wire_timeout = config.timeout * 0.9  # answer (or a typed error) before the poll's own timeout

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    async def open(self) -> None:
        # The sensor powers up active; say what we want every time we (re)start.
        await self.bus.transact(codec.WAKE, read_until=None, timeout=self._wire_timeout)
        mode = codec.PASSIVE_MODE if self.config.mode is Pms5003Mode.PASSIVE else codec.ACTIVE_MODE
        await self.bus.transact(mode, read_until=None, timeout=self._wire_timeout)

    async def read(self) -> list[Sample]:
        request = codec.READ if self.config.mode is Pms5003Mode.PASSIVE else None
        frame = await self.bus.transact(request, read_until=codec.scan, timeout=self._wire_timeout)
        return frame_samples(codec.decode(frame))

    async def close(self) -> None:
        """Nothing to release: the line belongs to the bus pool."""
