"""Config models of the Modbus line kinds (``[lines.<name>]`` tables)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from ..contract.config import LineConfig
from ..contract.modbus import MODBUS_BUS
from .base import Parity
from .rtu import bits_per_char, default_gap
from .serial_settings import SerialSettings


class _ModbusTiming(LineConfig):
    timeout: float = Field(0.5, gt=0, le=60, description="Seconds to wait for a reply (a call may override it).")
    retries: int = Field(1, ge=0, le=5, description="Extra attempts after a garbled reply (bad CRC, short frame) while the unit is healthy; silence is never retried.")
    unit_backoff_max: float = Field(60.0, gt=0, le=3600, description="Longest pause (s) before a silent unit is probed again.")
    reconnect_max: float = Field(30.0, gt=0, le=3600, description="Longest pause (s) between attempts to reopen the line.")


class ModbusRtuLine(SerialSettings, _ModbusTiming):
    """Modbus RTU on a serial (RS-485) line; ``port`` may also be a pyserial URL such as socket://host:port."""

    BUS: ClassVar[str | None] = MODBUS_BUS

    type: Literal["modbus_rtu"]
    inter_frame_gap: float | None = Field(None, ge=0, le=1, description="Silence (s) before each request; default 3.5 characters (1.75 ms above 19200 baud).")
    turnaround: float = Field(0.0, ge=0, le=5, description="Extra silence (s) after a write or broadcast before the next request.")


class ModbusTcpLine(_ModbusTiming):
    """Modbus TCP (MBAP framing) to a device or a TCP gateway."""

    BUS: ClassVar[str | None] = MODBUS_BUS

    type: Literal["modbus_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    timeout: float = Field(1.0, gt=0, le=60, description="Seconds to wait for a reply (a call may override it).")
    pipeline: bool | Literal["auto"] = Field("auto", description='Send a device\'s block reads of one poll together, several transactions outstanding. "auto": together while the last poll of the device succeeded; a group that fails (a later request unanswered, the connection closed, exception 6/10/11 to a later request; or no reply at all, then the next poll) is read again at once one at a time, and if that succeeds for the second group in a row at the host and port, they are read one at a time from then on (warned once); true: together while the last poll of the device succeeded, nothing learnt; false: always one at a time. With "auto" and true, devices\' polls that wait for the busy line go out in one write (each unit read again one at a time if its replies do not all come).')

    @field_validator("pipeline", mode="before")
    @classmethod
    def _pipeline_value(cls, v: object) -> object:
        if v is True or v is False or v == "auto":
            return v
        raise ValueError(f'must be true, false or "auto", not {v!r}')


class ModbusRtuOverTcpLine(_ModbusTiming):
    """RTU frames tunnelled through a TCP serial gateway (transparent mode). The RS-485 side is paced here."""

    BUS: ClassVar[str | None] = MODBUS_BUS

    type: Literal["modbus_rtu_over_tcp"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    timeout: float = Field(1.0, gt=0, le=60, description="Seconds to wait for a reply (a call may override it).")
    baudrate: int = Field(9600, gt=0, description="Baud rate of the serial side, for pacing and wire-time estimates.")
    parity: Parity = Parity.NONE
    inter_frame_gap: float | None = Field(None, ge=0, le=1, description="Silence (s) before each request; default 3.5 characters.")
    turnaround: float = Field(0.0, ge=0, le=5, description="Extra silence (s) after a write or broadcast.")


ModbusLine = ModbusRtuLine | ModbusTcpLine | ModbusRtuOverTcpLine


__all__ = ["ModbusLine", "ModbusRtuLine", "ModbusRtuOverTcpLine", "ModbusTcpLine", "bits_per_char", "default_gap"]
