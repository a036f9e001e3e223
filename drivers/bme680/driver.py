"""Bosch BME680 (temperature, humidity, pressure, gas resistance) on an I2C line.

Uses the adafruit-circuitpython-bme680 library (the ``pi`` extra) over the line's
``busio.I2C``-compatible transport. Every library call blocks on I2C, so it runs in a worker
thread through :meth:`agent.bus.i2c.I2cBus.run`.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import TYPE_CHECKING, Any

from agent.contract import (
    BusUnavailable,
    DeviceError,
    DeviceTimeout,
    DriverContext,
    I2cLine,
    MetricSpec,
    ProtocolError,
    Sample,
)
from agent.contract.lazy import lazy_exports

if TYPE_CHECKING:
    from .config import Bme680Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Bme680Config": "drivers.bme680.config"})


def _fallback_modules() -> dict[str, types.ModuleType]:
    """Minimal stand-ins for CircuitPython modules the library imports, for machines without Blinka."""
    mp = types.ModuleType("micropython")
    mp.const = lambda x: x  # type: ignore[attr-defined]
    busio = types.ModuleType("busio")

    class I2C:  # only used in annotations by the library
        pass

    class SPI:
        pass

    busio.I2C, busio.SPI = I2C, SPI  # type: ignore[attr-defined]
    digitalio = types.ModuleType("digitalio")

    class DigitalInOut:
        pass

    digitalio.DigitalInOut = DigitalInOut  # type: ignore[attr-defined]
    typing_mod = types.ModuleType("circuitpython_typing")
    typing_mod.ReadableBuffer = typing_mod.WriteableBuffer = bytes  # type: ignore[attr-defined]
    return {"micropython": mp, "busio": busio, "digitalio": digitalio, "circuitpython_typing": typing_mod}


def import_adafruit_bme680() -> Any:
    """Import ``adafruit_bme680``, providing the CircuitPython modules it needs only when absent.

    With Blinka installed its own modules are used. ``BLINKA_SKIP_DEPENDENCY_CHECK`` stops Blinka
    offering to pip-install packages on a Pi with a terminal.
    """
    os.environ.setdefault("BLINKA_SKIP_DEPENDENCY_CHECK", "1")
    for name, module in _fallback_modules().items():
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - ImportError off-Pi, NotImplementedError/RuntimeError from Blinka
            sys.modules[name] = module
    try:
        return importlib.import_module("adafruit_bme680")
    except ImportError as e:
        raise BusUnavailable(
            f"the BME680 driver needs adafruit-circuitpython-bme680 (pip install 'edge-agent[pi]'): {e}") from None


METRICS = [  # operating ranges from the datasheet
    MetricSpec("temperature", "degC", valid_min=-40.0, valid_max=85.0),
    MetricSpec("humidity", "%", valid_min=0.0, valid_max=100.0),
    MetricSpec("pressure", "hPa", valid_min=300.0, valid_max=1100.0),
    MetricSpec("gas_resistance", "ohm", valid_min=0.0),
]


def metrics_for(config: Bme680Config) -> list[MetricSpec]:
    """The metrics of a device (``DriverSpec.metrics``): the gas resistance only with the gas heater on."""
    return list(METRICS) if config.gas else METRICS[:3]


class Bme680Driver:
    def __init__(self, config: Bme680Config, ctx: DriverContext):
        self.config = config
        self.bus: I2cLine = ctx.buses.get(config.line)
        self.sensor: Any = None

    def metrics(self) -> list[MetricSpec]:
        return metrics_for(self.config)

    def _setup(self, i2c: Any) -> Any:
        lib = import_adafruit_bme680()
        cfg = self.config
        try:
            sensor = lib.Adafruit_BME680_I2C(i2c, address=cfg.address, refresh_rate=10)
        except ValueError as e:  # busdevice: "No I2C device at address: 0x77"
            raise DeviceError(f"BME680 not found on line {cfg.line}: {e} (check wiring and address)") from None
        except RuntimeError as e:  # "Failed to find BME680! Chip ID 0x.."
            raise ProtocolError(f"device at {cfg.address:#04x} on line {cfg.line} is not a BME680: {e}") from None
        except OSError as e:
            raise DeviceError(f"BME680 at {cfg.address:#04x}: I2C error: {e}") from None
        sensor.sea_level_pressure = cfg.sea_level_pressure
        if cfg.gas:
            sensor.set_gas_heater(cfg.heater_temp, cfg.heater_ms)
        else:
            sensor.set_gas_heater(None, None)
        return sensor

    async def open(self) -> None:
        await self.bus.open()
        self.sensor = await self.bus.run(self._setup)

    def _measure(self, _i2c: Any) -> list[float]:
        s = self.sensor
        try:
            values = [s.temperature, s.relative_humidity, s.pressure]  # one forced measurement
            if self.config.gas:
                values.append(s.gas)
        except RuntimeError as e:  # "Timeout while reading sensor data"
            raise DeviceTimeout(f"BME680 on line {self.config.line}: {e}") from None
        except OSError as e:
            raise DeviceError(f"BME680 on line {self.config.line}: I2C error: {e}") from None
        return [float(v) for v in values]

    async def read(self) -> list[Sample]:
        if self.sensor is None:
            raise DeviceError("BME680 driver read before open")
        values = await self.bus.run(self._measure)
        return [Sample(m.name, v) for m, v in zip(self.metrics(), values, strict=True)]

    async def close(self) -> None:
        self.sensor = None
