"""The built-in line kinds, registered in the ``edge_agent.lines`` entry-point group (pyproject.toml)."""

from __future__ import annotations

from ..contract.lines import Bus, LineKind
from .gpio import GpioLineConfig, make_gpio_bus
from .i2c import I2cLineConfig, make_i2c_bus
from .modbus_config import ModbusLine, ModbusRtuLine, ModbusRtuOverTcpLine, ModbusTcpLine
from .serial_port import SerialLineConfig, make_serial_bus


def _modbus_bus(name: str, config: ModbusLine) -> Bus:
    # pymodbus (≈ 2.5 MB) only for the RTU framings (modbus_tcp has its own client)
    from .modbus import make_bus

    return make_bus(name, config)


MODBUS_RTU = LineKind(ModbusRtuLine, _modbus_bus, "Modbus RTU on a serial (RS-485) line")
MODBUS_TCP = LineKind(ModbusTcpLine, _modbus_bus, "Modbus TCP to a device or gateway")
MODBUS_RTU_OVER_TCP = LineKind(ModbusRtuOverTcpLine, _modbus_bus, "Modbus RTU frames through a TCP serial gateway")
GPIO = LineKind(GpioLineConfig, make_gpio_bus, "GPIO pins for pulse counters and digital inputs")
I2C = LineKind(I2cLineConfig, make_i2c_bus, "An I2C bus (/dev/i2c-N) for sensors such as the BME680")
SERIAL = LineKind(SerialLineConfig, make_serial_bus, "A serial port for UART sensors (PMS5003, SDS011, MH-Z19B)")
