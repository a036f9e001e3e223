"""The contract for driver authors: everything a driver (or a line kind) may import from the core.

A driver package imports ``agent.contract`` and its own modules, nothing else of the agent:

- config: :class:`DeviceConfig` and the bus mixins :class:`ModbusDevice` (``line`` + ``unit``),
  :class:`SerialDevice` (``line``), :class:`I2cDevice` (``line`` + ``address``),
  :class:`GpioDevice` (``line`` + ``pin``); :class:`Frozen` for a driver's own nested models;
- bus handles (typing protocols): :class:`ModbusLine`, :class:`SerialPort`, :class:`I2cLine`,
  :class:`GpioLine`, returned by ``ctx.buses.get(config.line)``;
- what a driver returns: :class:`MetricSpec`, :class:`Sample`, :class:`Batch`, :class:`Quality`,
  :class:`MetricKind`;
- the typed errors a driver raises (:class:`DeviceTimeout`, :class:`ProtocolError`, ...);
- the charger capability (:class:`ChargerControl`, :class:`ChargerPoint`, :class:`IecState` ...)
  that the site controller and the command router drive;
- the points a device declares and the writes its driver accepts (:class:`Point`, :class:`PointKind`,
  :class:`DeclaresPoints`, :class:`PointControl`): the one vocabulary of the write gate;
- events a driver finds on its device (:class:`ReportsEvents`), published on the event topic;
- what a package exports: :class:`DriverSpec`, :class:`SimulatorSpec`, :class:`LineKind`;
  what it is handed: :class:`DriverContext` with its :class:`Clock`.

The config models (pydantic) are imported when first named; the running agent may be handed their
plain twins instead (:mod:`agent.contract.plain`), and then imports no pydantic for them.
"""

from typing import TYPE_CHECKING

from agent.errors import (
    BusUnavailable,
    ConfigError,
    DeviceError,
    DeviceException,
    DeviceTimeout,
    EdgeAgentError,
    ProtocolError,
)
from agent.model import Batch, MetricKind, MetricSpec, Quality, Sample

from . import modbus_values, plausibility
from .charger import ChargerControl, ChargerMetric, ChargerPoint, IecState
from .driver import (
    DRIVERS_GROUP,
    SIMULATORS_GROUP,
    Clock,
    Driver,
    DriverContext,
    DriverFactory,
    DriverSpec,
    MetricsLister,
    ReportsEvents,
    SimulatorSpec,
)
from .enums import EnergyMethod, PublishMode
from .lazy import lazy_exports
from .lines import LINES_GROUP, Bus, Buses, LineKind
from .modbus import MODBUS_BUS, ModbusLine
from .plausibility import NonDecreasing
from .points import DeclaresPoints, Point, PointControl, PointKind, aliases_of

# The config models (pydantic) and the families defined beside them are imported on first use: the
# running agent, handed a plain config (agent.contract.plain), imports this package without pydantic.
_LAZY = {
    "ChargerKeys": "agent.contract.charger_config",
    **dict.fromkeys(["NAME_PATTERN", "DeviceConfig", "Frozen", "LineConfig", "LineDevice", "Name"], "agent.contract.config"),
    **dict.fromkeys(["GPIO_BUS", "Edge", "EdgeCallback", "GpioLine", "Pull"], "agent.contract.gpio"),
    "GpioDevice": "agent.contract.gpio_config",
    **dict.fromkeys(["I2C_BUS", "I2cLine", "I2cTransport"], "agent.contract.i2c"),
    "I2cDevice": "agent.contract.i2c_config",
    "ModbusDevice": "agent.contract.modbus_config",
    **dict.fromkeys(["CheckConfig", "EnergyConfig"], "agent.contract.options"),
    **dict.fromkeys(["SERIAL_BUS", "FrameScan", "Scanner", "SerialPort"], "agent.contract.serial"),
    "SerialDevice": "agent.contract.serial_config",
}
__getattr__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from .charger_config import ChargerKeys
    from .config import NAME_PATTERN, DeviceConfig, Frozen, LineConfig, LineDevice, Name
    from .gpio import GPIO_BUS, Edge, EdgeCallback, GpioLine, Pull
    from .gpio_config import GpioDevice
    from .i2c import I2C_BUS, I2cLine, I2cTransport
    from .i2c_config import I2cDevice
    from .modbus_config import ModbusDevice
    from .options import CheckConfig, EnergyConfig
    from .serial import SERIAL_BUS, FrameScan, Scanner, SerialPort
    from .serial_config import SerialDevice

__all__ = [
    "BusUnavailable", "ConfigError", "DeviceError", "DeviceException", "DeviceTimeout", "EdgeAgentError",
    "ProtocolError",
    "Batch", "MetricKind", "MetricSpec", "Quality", "Sample",
    "ChargerControl", "ChargerKeys", "ChargerMetric", "ChargerPoint", "IecState",
    "DeclaresPoints", "Point", "PointControl", "PointKind", "aliases_of",
    "modbus_values", "plausibility", "NonDecreasing",
    "NAME_PATTERN", "DeviceConfig", "Frozen", "LineConfig", "LineDevice", "Name",
    "CheckConfig", "EnergyConfig", "EnergyMethod", "PublishMode",
    "DRIVERS_GROUP", "SIMULATORS_GROUP", "Clock", "Driver", "DriverContext", "DriverFactory", "DriverSpec",
    "MetricsLister", "ReportsEvents", "SimulatorSpec",
    "LINES_GROUP", "Bus", "Buses", "LineKind",
    "MODBUS_BUS", "SERIAL_BUS", "I2C_BUS", "GPIO_BUS",
    "ModbusDevice", "ModbusLine",
    "FrameScan", "Scanner", "SerialDevice", "SerialPort",
    "I2cDevice", "I2cLine", "I2cTransport",
    "Edge", "EdgeCallback", "GpioDevice", "GpioLine", "Pull",
]
