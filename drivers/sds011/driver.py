"""Nova SDS011 PM2.5/PM10 sensor on a ``serial`` line, in query mode, with optional laser duty cycling.

With ``sleep_between_reads`` the laser and fan only run for ``warmup`` seconds before each
reading, once every ``read_every`` seconds. The driver never sleeps itself: each poll advances
a small state machine (asleep → woken → warm → read and back to sleep) on the agent's clock;
polls that fall in the sleeping or warming phase return no samples.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.contract import (
    DriverContext,
    MetricSpec,
    NonDecreasing,
    ProtocolError,
    Sample,
    SerialPort,
    plausibility,
)
from agent.contract.lazy import lazy_exports

from . import codec

if TYPE_CHECKING:
    from .config import Sds011Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Sds011Config": "drivers.sds011.config"})


PM_MAX = 999.9  # datasheet measuring range 0.0..999.9 ug/m3; the wire format reaches 6553.5
METRICS = [MetricSpec("pm2_5", "ug/m3", valid_min=0.0, valid_max=PM_MAX),
           MetricSpec("pm10", "ug/m3", valid_min=0.0, valid_max=PM_MAX)]
RULES = (NonDecreasing("pm2_5", "pm10"),)  # PM10 mass includes the PM2.5 mass


def frame_samples(f: codec.Sds011Frame) -> list[Sample]:
    """The readings of one decoded frame, IMPLAUSIBLE where PM2.5 exceeds PM10."""
    return plausibility.frame_samples(METRICS, {"pm2_5": f.pm2_5, "pm10": f.pm10}, RULES)


def _reply_to(cmd: int):
    return lambda f: f[1] == codec.REPLY and f[2] == cmd


def _is_data(frame: bytes) -> bool:
    return frame[1] == codec.DATA


def metrics_for(config: Sds011Config) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): every frame carries them all."""
    return list(METRICS)


class Sds011Driver:
    def __init__(self, config: Sds011Config, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: SerialPort = ctx.buses.get(config.line)
        self._wire_timeout = config.timeout * 0.9  # answer (or a typed error) before the poll's own timeout
        self.awake_since: float | None = None
        self.next_wake = 0.0

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    async def _command(self, frame: bytes, cmd: int) -> None:
        await self.bus.transact(frame, read_until=codec.scan, accept=_reply_to(cmd), timeout=self._wire_timeout)

    async def open(self) -> None:
        dev = self.config.device_id
        # A sensor left asleep by an earlier run answers nothing but "work": wake it first.
        await self._command(codec.work(dev), codec.CMD_SLEEP)
        self.awake_since = self.clock.monotonic()
        await self._command(codec.set_query_mode(dev), codec.CMD_REPORT_MODE)

    async def _query(self) -> list[Sample]:
        frame = await self.bus.transact(codec.query(self.config.device_id), read_until=codec.scan,
                                        accept=_is_data, timeout=self._wire_timeout)
        f = codec.decode(frame)
        if self.config.device_id != codec.ALL_SENSORS and f.device_id != self.config.device_id:
            raise ProtocolError(f"SDS011 answered with id {f.device_id:04X}, expected {self.config.device_id:04X}")
        return frame_samples(f)

    async def read(self) -> list[Sample]:
        cfg = self.config
        if not cfg.sleep_between_reads:
            return await self._query()
        now = self.clock.monotonic()
        if self.awake_since is None:
            if now < self.next_wake:
                return []
            await self._command(codec.work(cfg.device_id), codec.CMD_SLEEP)
            self.awake_since = now
            return []
        if now - self.awake_since < cfg.warmup:
            return []
        samples = await self._query()
        # one wire wait per poll: the sleep reply is not awaited (it is flushed before the next request)
        await self.bus.transact(codec.sleep(cfg.device_id), read_until=None, timeout=self._wire_timeout)
        self.next_wake = self.awake_since + cfg.read_every
        self.awake_since = None
        return samples

    async def close(self) -> None:
        """Leave a duty-cycled sensor asleep; the line itself belongs to the bus pool."""
        if self.config.sleep_between_reads and self.awake_since is not None:
            try:
                await self._command(codec.sleep(self.config.device_id), codec.CMD_SLEEP)
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            self.awake_since = None
