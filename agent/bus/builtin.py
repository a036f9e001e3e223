"""The built-in line kinds, registered in the ``edge_agent.lines`` entry-point group (pyproject.toml)."""

from __future__ import annotations

from ..contract.lines import LineKind

# Models and factories named "module:attr" are imported when first used: validating imports the
# kind's model (pydantic), a run on a plain config only its bus (the run-time process while the config
# is validated beside it: agent.runtime.beside.preload). pymodbus (≈ 2.5 MB) is imported by the Modbus
# bus for the RTU framings only (modbus_tcp has its own client).

MODBUS_RTU = LineKind("agent.bus.modbus_config:ModbusRtuLine", "agent.bus.modbus:make_bus", "Modbus RTU on a serial (RS-485) line")
MODBUS_TCP = LineKind("agent.bus.modbus_config:ModbusTcpLine", "agent.bus.modbus:make_bus", "Modbus TCP to a device or gateway")
MODBUS_RTU_OVER_TCP = LineKind("agent.bus.modbus_config:ModbusRtuOverTcpLine", "agent.bus.modbus:make_bus", "Modbus RTU frames through a TCP serial gateway")
GPIO = LineKind("agent.bus.gpio_config:GpioLineConfig", "agent.bus.gpio:make_gpio_bus", "GPIO pins for pulse counters and digital inputs")
I2C = LineKind("agent.bus.i2c_config:I2cLineConfig", "agent.bus.i2c:make_i2c_bus", "An I2C bus (/dev/i2c-N) for sensors such as the BME680")
SERIAL = LineKind("agent.bus.serial_config:SerialLineConfig", "agent.bus.serial_port:make_serial_bus", "A serial port for UART sensors (PMS5003, SDS011, MH-Z19B)")
