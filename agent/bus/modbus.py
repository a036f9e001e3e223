"""Modbus buses on pymodbus 3.16: RTU on a serial line, Modbus TCP, and RTU over TCP.

One ``ModbusBus`` per physical line. It owns the line lock (reads and writes queue on it in
arrival order), the inter-frame gap and turnaround, reopening the line with backoff, and a
per-unit health record: a unit that stops answering costs one timeout, then is skipped without
touching the wire until its backoff expires (doubling up to ``unit_backoff_max``). Failures
become typed errors: no reply -> DeviceTimeout, a garbled/short/CRC-failed reply ->
ProtocolError, a Modbus exception reply -> DeviceException(code=), a line that cannot be
opened -> BusUnavailable.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import BusUnavailable, DeviceException, DeviceTimeout, ProtocolError
from .mbap import EXCEPTION_NAMES, MbapClient, Reply
from .modbus_errors import ConnectionException, ModbusException, ModbusIOException, from_pymodbus
from .modbus_stats import UNIT_BACKOFF_MIN, LineStats, UnitState
from .modbus_tcp_reads import read_tcp_blocks
from .rtu import bits_per_char, default_gap

if TYPE_CHECKING:
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    from .modbus_config import ModbusLine
    from .modbus_tcp_group import Waiting

# pymodbus logs an ERROR of its own (with frame dumps) for every request that fails, while the
# scheduler logs a device's failure and its recovery once. Its log is kept for gateway.log_level =
# "debug" (see agent.logsetup.setup_logging); otherwise only its critical messages pass.
if logging.getLogger("pymodbus").level == logging.NOTSET:
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

_MAX_REGS = {3: 125, 4: 125}
_MAX_BITS = 2000


class ModbusBus:
    """A Modbus line. Public API (other drivers code against it): read_registers, read_bits,
    write_registers, write_coil, open, close, stats, unit_available."""

    def __init__(self, name: str, config: ModbusLine, *, clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.config = config
        self._clock = clock
        self._lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | MbapClient | None = None
        self._units: dict[int, UnitState] = {}
        self.line = LineStats()
        self._rtu = config.type != "modbus_tcp"
        if config.type == "modbus_rtu":
            self._bpc = bits_per_char(bytesize=config.bytesize, parity=config.parity, stopbits=config.stopbits)
            self._baud = config.baudrate
        elif config.type == "modbus_rtu_over_tcp":
            self._bpc = bits_per_char(parity=config.parity)
            self._baud = config.baudrate
        else:
            self._bpc, self._baud = 0, 0
        self._gap = 0.0
        self._turnaround = 0.0  # extra silence after a write or broadcast (RTU framings)
        if config.type in ("modbus_rtu", "modbus_rtu_over_tcp"):
            gap = config.inter_frame_gap
            self._gap = default_gap(self._baud, self._bpc) if gap is None else gap
            self._turnaround = config.turnaround
        self._quiet_until = 0.0  # monotonic time before which the line must stay silent
        self._reopen_at = 0.0
        self._reopen_delay = 0.0
        self._rx_len = 0  # bytes seen in the current reply (trace hook)
        self._waiting: Waiting | None = None  # polls waiting to be sent together (agent.bus.modbus_tcp_group)

    # -- lifecycle ---------------------------------------------------------------------
    def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient | MbapClient:
        cfg = self.config
        if cfg.type == "modbus_tcp":  # MBAP framing: the lean client (see agent.bus.mbap)
            return MbapClient(cfg.host, cfg.port, timeout=cfg.timeout, trace_packet=self._trace)
        # pymodbus's clients (and its transport, which needs the ssl module) only for the RTU framings
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        common: dict[str, Any] = dict(timeout=cfg.timeout, retries=0, reconnect_delay=0,
                                      trace_packet=self._trace, name=self.name)
        if cfg.type == "modbus_rtu":
            return AsyncModbusSerialClient(cfg.port, framer=FramerType.RTU, baudrate=cfg.baudrate,
                                           bytesize=cfg.bytesize, parity=str(cfg.parity),
                                           stopbits=cfg.stopbits, **common)
        return AsyncModbusTcpClient(cfg.host, port=cfg.port, framer=FramerType.RTU, **common)

    def _where(self) -> str:
        cfg = self.config
        return cfg.port if cfg.type == "modbus_rtu" else f"{cfg.host}:{cfg.port}"

    async def open(self) -> None:
        """Open the line. Raises BusUnavailable (and waits out a growing backoff before retrying)."""
        async with self._lock:
            await self._ensure_open()

    async def _ensure_open(self) -> None:
        if self._client is not None and self._client.connected:
            return
        now = self._clock()
        if now < self._reopen_at:
            raise BusUnavailable(f"line {self.name!r} ({self._where()}) is unavailable; "
                                 f"next attempt in {self._reopen_at - now:.1f} s")
        if self._client is not None:
            self._client.close()
        self._client = self._make_client()
        if not isinstance(self._client, MbapClient):
            self._client.set_max_no_responses(1 << 30)  # a silent unit must not drop the whole line
        try:
            ok = await self._client.connect()
        except Exception as e:  # noqa: BLE001 - pyserial/OS errors vary by platform
            ok, why = False, str(e)
        else:
            why = "connection refused or port missing"
        if not ok:
            self._client.close()
            self._client = None
            self._reopen_delay = min(max(self._reopen_delay * 2, 0.1), self.config.reconnect_max)
            self._reopen_at = self._clock() + self._reopen_delay
            self.line.open_failures += 1
            raise BusUnavailable(f"cannot open line {self.name!r} ({self._where()}): {why}")
        self._reopen_delay = 0.0
        self.line.opens += 1

    async def close(self) -> None:
        async with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # -- public API ----------------------------------------------------------------------
    async def read_registers(self, unit: int, *, fc: int, address: int, count: int,
                             timeout: float | None = None) -> list[int]:
        data = await self._read_block(unit, fc, address, count, timeout)
        return list(struct.unpack(f">{count}H", data))

    async def read_register_blocks(self, unit: int, blocks: Sequence[tuple[int, int, int]], *,
                                   timeout: float | None = None) -> list[bytes]:
        """Several register reads ``(fc, address, count)`` of one unit, each block's registers as
        big-endian bytes (what the wire carried: no Python int per register). The first failure
        fails the call, with the same errors as read_registers. On a modbus_tcp line the requests
        go out under one hold of the line, together or one after another as the line's ``pipeline``
        says and the device allows (see agent.bus.modbus_tcp_reads)."""
        if len(blocks) < 2 or self.config.type != "modbus_tcp":
            return [await self._read_block(unit, fc, address, count, timeout) for fc, address, count in blocks]
        for fc, address, count in blocks:
            if fc not in _MAX_REGS:
                raise ValueError(f"fc must be 3 (holding) or 4 (input) registers, not {fc!r}")
            _check(unit, address, count, _MAX_REGS[fc])
        return await read_tcp_blocks(self, unit, blocks, timeout)

    async def _read_block(self, unit: int, fc: int, address: int, count: int, timeout: float | None) -> bytes:
        if fc not in _MAX_REGS:
            raise ValueError(f"fc must be 3 (holding) or 4 (input) registers, not {fc!r}")
        _check(unit, address, count, _MAX_REGS[fc])

        def call(c):
            fn = c.read_holding_registers if fc == 3 else c.read_input_registers
            return fn(address, count=count, device_id=unit)

        rr = await self._transact(unit, call, timeout=timeout, rx=5 + 2 * count, tx=8)
        if isinstance(rr, Reply):
            data = rr.payload
        else:  # a pymodbus reply
            regs = list(getattr(rr, "registers", None) or [])
            data = struct.pack(f">{len(regs)}H", *regs)
        if len(data) != 2 * count:
            self._unit(unit).errors += 1
            raise ProtocolError(f"unit {unit} on {self.name!r}: asked for {count} registers at {address}, "
                                f"got {len(data) // 2}")
        return data

    async def read_bits(self, unit: int, *, fc: int, address: int, count: int,
                        timeout: float | None = None) -> list[bool]:
        if fc not in (1, 2):
            raise ValueError(f"fc must be 1 (coils) or 2 (discrete inputs), not {fc!r}")
        _check(unit, address, count, _MAX_BITS)

        def call(c):
            fn = c.read_coils if fc == 1 else c.read_discrete_inputs
            return fn(address, count=count, device_id=unit)

        rr = await self._transact(unit, call, timeout=timeout,
                                  rx=5 + math.ceil(count / 8), tx=8)
        bits = list(getattr(rr, "bits", None) or [])
        if len(bits) < count:
            self._unit(unit).errors += 1
            raise ProtocolError(f"unit {unit} on {self.name!r}: asked for {count} bits at {address}, got {len(bits)}")
        return [bool(b) for b in bits[:count]]

    async def write_registers(self, unit: int, *, address: int, values: Sequence[int],
                              timeout: float | None = None, single: bool = False) -> None:
        vals = [int(v) for v in values]
        if any(not 0 <= v <= 0xFFFF for v in vals):
            raise ValueError(f"register values must be 0..65535, got {vals}")
        if single and len(vals) != 1:
            raise ValueError("single=True (FC06) writes exactly one register")
        _check(unit, address, len(vals), 123, broadcast=True)

        def call(c):
            if single:
                return c.write_register(address, vals[0], device_id=unit, no_response_expected=unit == 0)
            return c.write_registers(address, vals, device_id=unit, no_response_expected=unit == 0)

        tx = 8 if single else 9 + 2 * len(vals)
        await self._transact(unit, call, timeout=timeout,
                             rx=8, tx=tx, write=True)

    async def write_coil(self, unit: int, *, address: int, value: bool, timeout: float | None = None) -> None:
        _check(unit, address, 1, 1, broadcast=True)
        await self._transact(unit, lambda c: c.write_coil(address, bool(value), device_id=unit,
                                                          no_response_expected=unit == 0),
                             timeout=timeout, rx=8, tx=8, write=True)

    @property
    def bits_per_char(self) -> int:
        """Bits per character on the serial side (0 for Modbus TCP)."""
        return self._bpc

    @property
    def baudrate(self) -> int:
        """Baud rate of the serial side (0 for Modbus TCP)."""
        return self._baud

    def unit_available(self, unit: int) -> float:
        """Seconds until ``unit`` will be tried again (0 = now)."""
        st = self._units.get(unit)
        return max(0.0, st.next_probe - self._clock()) if st else 0.0

    def stats(self) -> dict[str, Any]:
        units = {u: s.as_dict() for u, s in sorted(self._units.items())}
        totals = {k: sum(u[k] for u in units.values()) for k in UnitState.COUNTERS}
        return {"line": self.name, "kind": self.config.type, "connected": bool(self._client and self._client.connected),
                **totals, **self.line.as_dict(), "units": units}

    def unit_stats(self, unit: int) -> dict[str, Any]:
        """``stats()["units"][unit]`` (empty for a unit never read) without building every unit's: a
        device's diagnostics ask for their own unit, each device at every health report."""
        st = self._units.get(unit)
        return {} if st is None else st.as_dict()

    # -- internals -----------------------------------------------------------------------
    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:  # bytes seen since a request was sent tell a garbled reply from none
            self.line.sent += len(data)  # a chain writes several requests in one transaction
            self._rx_len = 0
        else:
            self._rx_len = max(self._rx_len, len(data))
        return data

    def _unit(self, unit: int) -> UnitState:
        st = self._units.get(unit)
        if st is None:
            st = self._units[unit] = UnitState()
        return st

    def _wire(self, nbytes: int) -> float:
        return (nbytes + 7) * self._bpc / self._baud if self._baud else 0.0

    async def _transact(self, unit: int, call: Callable[[Any], Awaitable[Any]], *, timeout: float | None,
                        rx: int, tx: int, write: bool = False, held: bool = False) -> Any:
        """One transaction under the line's lock (``held``: the caller holds it already)."""
        if held:
            return await self._transact_held(unit, call, timeout=timeout, rx=rx, tx=tx, write=write)
        async with self._lock:
            return await self._transact_held(unit, call, timeout=timeout, rx=rx, tx=tx, write=write)

    async def _transact_held(self, unit: int, call: Callable[[Any], Awaitable[Any]], *, timeout: float | None,
                             rx: int, tx: int, write: bool) -> Any:
        st = self._unit(unit)
        tmo = self.config.timeout if timeout is None else timeout
        now = self._clock()
        if st.next_probe > now:
            st.skipped += 1
            raise DeviceTimeout(f"unit {unit} on line {self.name!r} did not answer its last {st.failures} "
                                f"request(s); skipped, next try in {st.next_probe - now:.1f} s")
        await self._ensure_open()
        attempts = 1 + (self.config.retries if st.failures == 0 else 0)
        err: Exception | None = None
        for _ in range(attempts):
            try:
                rr = await self._once(unit, call, tmo, rx=rx, tx=tx, write=write)
            except DeviceException:
                st.ok(self._clock())  # it answered: the unit is alive
                raise
            except DeviceTimeout as e:
                err = e  # silence is not retried: a dead unit costs one timeout, then backs off
                break
            except ProtocolError as e:
                err = e  # a garbled reply (noise) is retried while the unit is healthy
                continue
            st.ok(self._clock())
            return rr
        assert err is not None
        st.fail(self._clock(), base=UNIT_BACKOFF_MIN, cap=self.config.unit_backoff_max)
        raise err

    async def _once(self, unit: int, call, tmo: float, *, rx: int, tx: int, write: bool) -> Any:
        assert self._client is not None
        st = self._unit(unit)
        delay = self._quiet_until - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        if isinstance(self._client, MbapClient):
            self._client.timeout = tmo
        else:
            self._client.ctx.comm_params.timeout_connect = tmo
        self._rx_len = 0
        self.line.sent = 0
        st.transactions += 1
        try:
            if isinstance(self._client, MbapClient):
                rr = await call(self._client)
            else:
                rr = await _pymodbus_call(call, self._client)
        except ModbusIOException as e:
            return self._no_reply(unit, st, e, tmo, tx)
        except ConnectionException as e:
            self._drop()
            raise BusUnavailable(f"line {self.name!r} ({self._where()}) lost: {e}") from None
        except ModbusException as e:
            st.errors += 1
            raise ProtocolError(f"unit {unit} on {self.name!r}: undecodable reply: {e}") from None
        finally:
            st.bytes_tx += self.line.sent or tx
            self._quiet_until = self._clock() + self._gap
        if rr is None:  # broadcast: no reply expected
            self._quiet_until += self._turnaround
            st.wire_time += self._wire(tx)
            return None
        if rr.isError():
            code = int(getattr(rr, "exception_code", 0) or 0)
            st.exceptions += 1
            st.bytes_rx += 5
            st.wire_time += self._wire(tx + 5)
            name = EXCEPTION_NAMES.get(code, "unknown")
            raise DeviceException(f"unit {unit} on {self.name!r} answered exception {code} ({name})", code=code)
        st.bytes_rx += rx
        st.wire_time += self._wire(tx + rx)
        if write:
            self._quiet_until += self._turnaround
        return rr

    def _no_reply(self, unit: int, st: UnitState, e: Exception, tmo: float, tx: int):
        st.bytes_rx += self._rx_len
        st.wire_time += self._wire(tx) + tmo
        if self._client is None or not self._client.connected:
            self._drop()
            raise BusUnavailable(f"line {self.name!r} ({self._where()}) closed while waiting for unit {unit}")
        if self._rx_len:
            st.errors += 1
            raise ProtocolError(f"unit {unit} on {self.name!r}: garbled or incomplete reply "
                                f"({self._rx_len} bytes, bad CRC or short frame)")
        st.timeouts += 1
        raise DeviceTimeout(f"unit {unit} on {self.name!r}: no reply within {tmo:g} s")

    def _restart(self, *, lost: bool) -> None:
        """Close the connection (a lost one counts as a drop); the next request opens a fresh one."""
        if lost:
            self._drop()
        elif self._client is not None:
            self._client.close()
            self._client = None

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.line.drops += 1


def _check(unit: int, address: int, count: int, limit: int, *, broadcast: bool = False) -> None:
    if not (0 if broadcast else 1) <= unit <= 255:
        raise ValueError(f"unit id must be {'0' if broadcast else '1'}..255, not {unit!r}")
    if not 0 <= address <= 0xFFFF:
        raise ValueError(f"address must be 0..65535, not {address!r}")
    if not 1 <= count <= limit or address + count > 0x10000:
        raise ValueError(f"count {count!r} at address {address} is out of range (1..{limit})")


def make_bus(name: str, config: ModbusLine) -> ModbusBus:
    return ModbusBus(name, config)


async def _pymodbus_call(call: Callable[[Any], Awaitable[Any]], client: Any) -> Any:
    """A transaction on one of pymodbus's clients, its exceptions raised as the bus's (agent.bus.modbus_errors)."""
    try:
        return await call(client)
    except Exception as e:
        mapped = from_pymodbus(e)
        if mapped is e:
            raise
        raise mapped from e
