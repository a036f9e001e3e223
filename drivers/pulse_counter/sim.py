"""Pulse-counter simulator: a simulated GPIO chip with a pulsing pin, counted by the real driver.

GPIO cannot be shared with another process, so the agent simulates pins in-process with a
``gpio_sim`` line (``pulse_hz`` makes pins pulse by themselves). This
command shows the same thing live, so a technician can check constants and debounce settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click

from agent.contract import DriverContext, GpioLine, SimulatorSpec
from agent.simkit import StaticBuses
from agent.simkit.gpio import GpioSimLineConfig, SimGpioBackend, make_gpio_sim_bus
from agent.simkit.snippets import banner, snippet_for_device


@dataclass
class SimGpioHandle:
    """A running simulated chip; ``bus`` can be handed to a BusPool-like lookup by the demo."""

    backend: SimGpioBackend
    bus: GpioLine
    path: str = ""

    async def stop(self) -> None:
        await self.bus.close()


async def start(*, pulse_hz: dict[int, float] | None = None) -> SimGpioHandle:
    """Start a simulated GPIO chip whose pins pulse at the given rates (pin -> pulses/s)."""
    bus = make_gpio_sim_bus("gpio", GpioSimLineConfig(type="gpio_sim", pulse_hz=pulse_hz or {17: 2.0}))
    await bus.open()
    assert isinstance(bus.backend, SimGpioBackend)
    return SimGpioHandle(bus.backend, bus)


@click.command("pulse_counter")
@click.option("--pin", type=int, default=17, show_default=True)
@click.option("--hz", type=click.FloatRange(min=0.01), default=2.0, show_default=True, help="Pulses per second.")
@click.option("--constant", type=float, default=1000.0, show_default=True, help="Pulses per kWh.")
@click.option("--seconds", type=float, default=0, help="Stop after this long (0 = until Ctrl-C).")
def command(pin: int, hz: float, constant: float, seconds: float) -> None:
    """Simulate an S0 energy meter pulsing a GPIO pin, counted by the pulse_counter driver."""
    from . import SPEC

    async def main() -> None:
        bus = make_gpio_sim_bus("gpio", GpioSimLineConfig(type="gpio_sim", pulse_hz={pin: hz}))
        cfg = SPEC.config_model(name="s0", type="pulse_counter", line="gpio", pin=pin, pulses_per_unit=constant)
        with tempfile.TemporaryDirectory() as tmp:
            drv = SPEC.factory(cfg, DriverContext("sim", Path(tmp), StaticBuses({"gpio": bus})))
            await drv.open()
            click.echo(f"simulated GPIO{pin} pulsing at {hz:g}/s")
            line = {"type": "gpio_sim", "pulse_hz": {str(pin): hz}}
            device = {"type": "pulse_counter", "pin": pin, "pulses_per_unit": constant}
            click.echo(banner(snippet_for_device("gpio", line, "s0-meter", device)))
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds if seconds else None
            try:
                while end is None or loop.time() < end:
                    await asyncio.sleep(1.0)
                    vals = {s.metric: s.value for s in await drv.read()}
                    click.echo("  ".join(f"{k}={v:g}" for k, v in vals.items()))
            finally:
                await drv.close()
                await bus.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


SIMULATOR = SimulatorSpec(name="pulse_counter", summary="S0 pulses on a simulated GPIO pin, counted live.",
                          command=command, start=start)
