"""``edge-agent simulate bme680``: the register-level emulator (drivers.bme680.emulator) read through the
adafruit library, and the emulated chip the demo and tests start. The agent's ``i2c_sim`` line loads the
emulator alone (no click in the running agent)."""

from __future__ import annotations

import click

from agent.contract import SimulatorSpec
from agent.simkit.snippets import banner, snippet_for_device

from .emulator import Bme680Emulator, Calibration, RawValues  # noqa: F401 - the emulator's names, re-exported


async def start(*, address: int = 0x77, vary: bool = True, seed: int | None = None) -> Bme680Emulator:
    """An emulated chip to hand to an ``I2cBus(transport=...)``; the ``i2c_sim`` line kind builds one too."""
    return Bme680Emulator(address=address, vary=vary, seed=seed)


@click.command("bme680")
@click.option("--address", type=click.Choice(["0x76", "0x77"]), default="0x77", show_default=True)
@click.option("--count", type=int, default=5, show_default=True, help="Readings to print.")
def command(address: str, count: int) -> None:
    """Read an emulated BME680 through the real adafruit library (checks the software stack)."""
    import time

    from .driver import import_adafruit_bme680

    lib = import_adafruit_bme680()
    emu = Bme680Emulator(address=int(address, 16), vary=True)
    sensor = lib.Adafruit_BME680_I2C(emu, address=int(address, 16), refresh_rate=10)
    line = {"type": "i2c_sim", "chip": "bme680"}
    device = {"type": "bme680", "address": int(address, 16)}
    click.echo(banner(snippet_for_device("i2c", line, "bme680", device)))
    click.echo('(a real sensor: [lines.i2c] type = "i2c", bus = 1)')
    for _ in range(count):
        click.echo(f"temperature={sensor.temperature:.2f} degC humidity={sensor.relative_humidity:.2f} % "
                   f"pressure={sensor.pressure:.2f} hPa gas={sensor.gas:.0f} ohm")
        time.sleep(0.2)


SIMULATOR = SimulatorSpec(name="bme680", summary="BME680 register-level I2C emulator read through the adafruit library.",
                          command=command, start=start)
