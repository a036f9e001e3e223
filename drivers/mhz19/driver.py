"""Winsen MH-Z19B CO2 sensor on a ``serial`` line.

The sensor needs a preheat period after power-up; readings taken within ``warmup`` seconds of
``open()`` are either flagged ESTIMATED or not reported at all (``warmup_mode``).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING

from agent.contract import DriverContext, MetricSpec, Quality, Sample, SerialPort
from agent.contract.lazy import lazy_exports

from . import codec

if TYPE_CHECKING:
    from .config import Mhz19Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Mhz19Config": "drivers.mhz19.config"})


class WarmupMode(enum.StrEnum):
    ESTIMATED = "estimated"  # report, flagged as estimated
    SKIP = "skip"  # report nothing until warm


class DetectionRange(enum.IntEnum):
    R2000 = 2000
    R5000 = 5000
    R10000 = 10000


METRICS = [
    MetricSpec("co2", "ppm", valid_min=0.0, valid_max=float(DetectionRange.R10000)),
    MetricSpec("temperature", "degC", description="Sensor-internal temperature (undocumented, coarse)"),
]


def metrics_for(detection_range: DetectionRange | None) -> list[MetricSpec]:
    """CO2 above the detection range set on open is out of range; unset, the widest range (10000) applies."""
    if detection_range is None:
        return list(METRICS)
    return [dataclasses.replace(METRICS[0], valid_max=float(detection_range)), *METRICS[1:]]


def _is_read_reply(frame: bytes) -> bool:
    return frame[1] == codec.CMD_READ


def config_metrics(config: Mhz19Config) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``)."""
    return metrics_for(config.detection_range)


class Mhz19Driver:
    def __init__(self, config: Mhz19Config, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: SerialPort = ctx.buses.get(config.line)
        self._wire_timeout = config.timeout * 0.9  # answer (or a typed error) before the poll's own timeout
        self.opened_at = 0.0

    def metrics(self) -> list[MetricSpec]:
        return config_metrics(self.config)

    async def open(self) -> None:
        cfg = self.config
        # Settings commands get no reply we rely on (firmware differs); send and move on.
        if cfg.abc is not None:
            await self.bus.transact(codec.ABC_ON if cfg.abc else codec.ABC_OFF, read_until=None, timeout=self._wire_timeout)
        if cfg.detection_range is not None:
            await self.bus.transact(codec.set_range(int(cfg.detection_range)), read_until=None, timeout=self._wire_timeout)
        self.opened_at = self.clock.monotonic()

    async def read(self) -> list[Sample]:
        cfg = self.config
        frame = await self.bus.transact(codec.READ, read_until=codec.scan, accept=_is_read_reply, timeout=self._wire_timeout)
        r = codec.decode_reading(frame)
        quality = 0
        if self.clock.monotonic() - self.opened_at < cfg.warmup:
            if cfg.warmup_mode is WarmupMode.SKIP:
                return []
            quality = int(Quality.ESTIMATED)
        return [Sample("co2", float(r.co2_ppm), quality), Sample("temperature", float(r.temperature_c), quality)]

    async def close(self) -> None:
        """Nothing to release: the line belongs to the bus pool."""
