"""Simulated devices for the demo: each starter returns the config text for its devices and a
handle to stop it. Every simulator is the same one `edge-agent simulate` starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..broker import free_port


@dataclass
class DemoSims:
    toml: list[str] = field(default_factory=list)
    handles: list[Any] = field(default_factory=list)

    async def stop(self) -> None:
        for h in reversed(self.handles):
            try:
                await h.stop()
            except Exception:  # noqa: BLE001 - stopping one simulator must not stop the others
                pass


async def start_meters(sims: DemoSims) -> None:
    """A three-phase SDM630 (unit 1) and a single-phase SDM120 (unit 2) on one RS-485 line (RTU framing)."""
    from drivers.modbus_meter.sim import start

    port = free_port()
    sims.handles.append(await start(units={1: "sdm630", 2: "sdm120"}, rtu_socket=f"127.0.0.1:{port}"))
    sims.toml.append(f'''
[lines.rs485-1]
type = "modbus_rtu"
port = "socket://127.0.0.1:{port}"
baudrate = 9600

[[devices]]
name = "main-meter"
type = "modbus_meter"
profile = "sdm630"
metrics = ["voltage_l1", "voltage_l2", "voltage_l3", "current_l1", "power_total", "energy_import", "frequency"]
unit = 1
line = "rs485-1"
poll_interval = 2.0

[[devices]]
name = "lighting-meter"
type = "modbus_meter"
profile = "sdm120"
metrics = ["voltage", "current", "power", "energy_import"]
unit = 2
line = "rs485-1"
poll_interval = 2.0
''')


STARTERS = [start_meters]
