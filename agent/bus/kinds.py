"""The line kinds this agent knows, by their config ``type``."""

from __future__ import annotations

from .base import LineKind
from .gpio import GpioLineConfig, make_gpio_bus
from .i2c import I2cLineConfig, I2cSimLineConfig, make_i2c_bus, make_i2c_sim_bus
from .modbus import make_bus as _modbus_bus
from .modbus_config import ModbusRtuLine, ModbusRtuOverTcpLine, ModbusTcpLine
from .ocpp_server import OcppLineConfig
from .ocpp_server import make_server as _ocpp_server
from .serial_port import SerialLineConfig, make_serial_bus

LINE_KINDS: dict[str, LineKind] = {
    "modbus_rtu": LineKind(ModbusRtuLine, _modbus_bus, "Modbus RTU on a serial (RS-485) line"),
    "modbus_tcp": LineKind(ModbusTcpLine, _modbus_bus, "Modbus TCP to a device or gateway"),
    "modbus_rtu_over_tcp": LineKind(ModbusRtuOverTcpLine, _modbus_bus, "Modbus RTU frames through a TCP serial gateway"),
    "gpio": LineKind(GpioLineConfig, make_gpio_bus, "GPIO pins for pulse counters and digital inputs"),
    "i2c": LineKind(I2cLineConfig, make_i2c_bus, "An I2C bus (/dev/i2c-N) for sensors such as the BME680"),
    "i2c_sim": LineKind(I2cSimLineConfig, make_i2c_sim_bus, "An emulated I2C bus with an emulated BME680 (demos)"),
    "serial": LineKind(SerialLineConfig, make_serial_bus, "A serial port for UART sensors (PMS5003, SDS011, MH-Z19B)"),
    "ocpp": LineKind(OcppLineConfig, _ocpp_server, "OCPP 1.6J local central system (websocket server chargers connect to)"),
}
