"""Modbus charger driver: reads IEC 61851 state and meter values, writes current limit and enable.

The heartbeat some controllers need (KEBA's failsafe register, ABB's status polling) is sent from
``read()`` when due; the driver never sleeps. A current limit of 0 pauses charging (by setpoint 0
or by clearing enable, per profile); ``stop`` disables until ``start``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from agent.contract import DriverContext, MetricSpec, Sample
from agent.contract.lazy import lazy_exports
from drivers.charger_common import CHARGER_METRICS, ChargerDriver, ChargerStatus

from .registers import HeartbeatAction, Pause, decode_state, decode_value, encode_current

if TYPE_CHECKING:
    from agent.contract import ModbusLine

    from .config import ModbusChargerConfig
    from .profile import Profile

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"ModbusChargerConfig": "drivers.modbus_charger.config"})


def metrics_for(config: ModbusChargerConfig) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): a charger's, whatever its profile (loaded here as
    the driver loads it)."""
    config.loaded_profile()
    return list(CHARGER_METRICS)


class ModbusChargerDriver(ChargerDriver):
    def __init__(self, config: ModbusChargerConfig, ctx: DriverContext):
        self.config = config
        self.clock = ctx.clock
        self.bus: ModbusLine = ctx.buses.get(config.line)
        self.profile: Profile = config.loaded_profile()  # loaded at validation
        self.unit = config.unit if config.unit is not None else self.profile.profile.default_unit
        self.base = self.profile.offset(config.connector)
        self.fc = self.profile.profile.read_fc
        self._limit: float | None = None  # last limit written, A (0 = paused)
        self._enabled = True  # user start/stop
        self._last_hb = -math.inf

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    async def open(self) -> None:
        self._last_hb = -math.inf

    async def close(self) -> None:
        pass

    async def _read(self, address: int, count: int) -> list[int]:
        return await self.bus.read_registers(self.unit, fc=self.fc, address=self.base + address, count=count,
                                             timeout=self.config.timeout)

    async def _write(self, address: int, values: list[int], *, single: bool) -> None:
        await self.bus.write_registers(self.unit, address=self.base + address, values=values,
                                       timeout=self.config.timeout, single=single)

    async def _heartbeat(self) -> None:
        hb = self.profile.heartbeat
        if hb is None:
            return
        interval = self.config.heartbeat_interval or hb.interval
        now = self.clock.monotonic()
        if now - self._last_hb < interval:
            return
        if hb.action is HeartbeatAction.WRITE and hb.address is not None:
            await self._write(hb.address, [hb.value], single=hb.single)
        self._last_hb = now  # a READ heartbeat is the state read that follows

    async def read(self) -> list[Sample]:
        p = self.profile
        await self._heartbeat()
        st = p.state
        n = 2 if st.dtype.value.endswith("32") else 1
        regs = await self._read(st.address, n)
        cable = await self._read(st.cable_address, n) if st.cable_address is not None else None
        status = ChargerStatus(state=decode_state(st, regs, cable))
        volts: dict[str, float] = {}
        for v in p.values:
            value = decode_value(v, await self._read(v.address, v.count))
            if v.name.startswith("voltage_"):
                volts[v.name[-2:]] = value
            elif v.name == "enabled":
                status.enabled = value != 0
            elif v.name == "error":
                status.error = int(value)
            else:
                setattr(status, v.name, value)
        if status.enabled is None:
            status.enabled = self._enabled
        if status.current_limit is None and self._limit is not None:
            status.current_limit = self._limit if self._enabled else 0.0
        nominal = self.config.voltage
        if status.current_l1 is not None:
            status.power_l1 = status.current_l1 * volts.get("l1", nominal)
        if status.current_l2 is not None:
            status.power_l2 = status.current_l2 * volts.get("l2", nominal)
        if status.current_l3 is not None:
            status.power_l3 = status.current_l3 * volts.get("l3", nominal)
        return status.samples()

    # --- writes ---------------------------------------------------------------------------
    async def _set_enable(self, on: bool) -> None:
        en = self.profile.enable
        if en is not None:
            await self._write(en.address, [en.on if on else en.off], single=en.single)

    async def _set_current(self, amps: float) -> None:
        cur = self.profile.current
        await self._write(cur.address, encode_current(cur, amps), single=cur.single)

    async def set_current_limit(self, amps: float) -> float:
        cur = self.profile.current
        if not math.isfinite(amps) or amps < 0:
            raise ValueError(f"current limit must be >= 0 A, got {amps!r}")
        self._limit = amps
        if amps <= 0:
            if cur.pause is Pause.ENABLE:
                await self._set_enable(False)
            else:
                await self._set_current(0)
            return 0.0
        if self.profile.enable is None and not self._enabled:
            return 0.0  # stopped, and the setpoint is the only switch: remember it for start
        await self._set_current(amps)
        if cur.pause is Pause.ENABLE and self._enabled:
            await self._set_enable(True)
        return amps

    async def start(self) -> bool:
        return await self._switch(True)

    async def stop(self) -> bool:
        return await self._switch(False)

    async def _switch(self, on: bool) -> bool:
        cur = self.profile.current
        self._enabled = on
        if self.profile.enable is not None:
            await self._set_enable(on and not (cur.pause is Pause.ENABLE and self._limit == 0))
        elif on:
            await self._set_current(self._limit if self._limit is not None else self.config.current_limit_bounds[1])
        else:
            await self._set_current(0)
        return on
