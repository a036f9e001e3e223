"""ModbusBus against real pymodbus servers (TCP and RTU framing over socket://)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

import agent.config  # noqa: F401 - import order: config before bus
from agent.bus.modbus import ModbusBus
from agent.bus.modbus_config import ModbusRtuLine, ModbusRtuOverTcpLine, ModbusTcpLine
from agent.contract.modbus_values import decode
from agent.errors import BusUnavailable, DeviceException, DeviceTimeout, ProtocolError
from drivers.modbus_meter.sim import Fault, start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# a reply on loopback comes in microseconds, but a loaded machine may take seconds to schedule it
TIMEOUT = 5.0


def rtu_line(port: int, **kw) -> ModbusRtuLine:
    return ModbusRtuLine(type="modbus_rtu", port=f"socket://127.0.0.1:{port}", **{"timeout": TIMEOUT, **kw})


async def sim(kind: str, port: int, units=None, **kw):
    where = {"tcp": f"127.0.0.1:{port}"} if kind == "tcp" else {"rtu_socket": f"127.0.0.1:{port}"}
    return await start(units=units or {1: "sdm120"}, update_interval=None, **where, **kw)


def make_bus(kind: str, port: int, **kw) -> ModbusBus:
    if kind == "tcp":
        return ModbusBus("tcp", ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port, **{"timeout": TIMEOUT, **kw}))
    return ModbusBus("rtu", rtu_line(port, **kw))


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
async def test_reads_writes_and_counts_bytes(kind):
    port = free_port()
    h = await sim(kind, port)
    bus = make_bus(kind, port)
    try:
        regs = await bus.read_registers(1, fc=4, address=0, count=2)
        assert decode(regs, "float32", "ABCD") == h.values["voltage"]
        u = bus.stats()["units"][1]
        assert (u["transactions"], u["bytes_tx"], u["bytes_rx"]) == (1, 8 if kind == "rtu" else 12, 9)
        # writes queue on the same lock as concurrent reads and all land
        writes = [bus.write_registers(1, address=0xFFFE, values=[i], single=True) for i in range(3)]
        reads = [bus.read_registers(1, fc=4, address=0x46, count=2) for _ in range(3)]
        await asyncio.gather(*[x for pair in zip(writes, reads, strict=True) for x in pair])
        with pytest.raises(DeviceException) as ei:  # no holding register at 0x2000 in an SDM120 map
            await bus.read_registers(1, fc=3, address=0x2000, count=1)
        assert ei.value.code == 2
    finally:
        await bus.close()
        await h.stop()


async def test_writes_reach_the_device_in_order():
    port = free_port()
    h = await start(units={1: "dtsu666"}, update_interval=None, rtu_socket=f"127.0.0.1:{port}")
    bus = make_bus("rtu", port)
    try:
        await asyncio.gather(bus.write_registers(1, address=0x2000, values=[1, 2, 3, 4]),
                             bus.read_registers(1, fc=3, address=0x2000, count=4),
                             bus.write_registers(1, address=0x2001, values=[9], single=True))
        assert await h.server.async_getValues(1, 3, 0x2000, 4) == [1, 9, 3, 4]
        assert await bus.read_registers(1, fc=3, address=0x2000, count=4) == [1, 9, 3, 4]
        with pytest.raises(ValueError, match="0..65535"):
            await bus.write_registers(1, address=0, values=[70000])
        with pytest.raises(ValueError, match="fc must be"):
            await bus.read_registers(1, fc=5, address=0, count=1)
    finally:
        await bus.close()
        await h.stop()


@pytest.mark.parametrize("kind", ["tcp", "rtu"])
async def test_dead_unit_costs_at_most_one_timeout_per_cycle(kind):
    """On a bus clock the test moves (half a second per cycle), so the probes fall at the same
    cycles however long the machine takes to answer or to time out."""
    port = free_port()
    h = await sim(kind, port, units={1: "sdm120", 2: "sdm120", 3: "sdm120"})
    h.set_fault(2, Fault.DEAD)
    now = 1000.0
    kw = {"timeout": 2.0, "unit_backoff_max": 5}
    line = ModbusTcpLine(type="modbus_tcp", host="127.0.0.1", port=port, **kw) if kind == "tcp" else rtu_line(port, **kw)
    bus = ModbusBus(kind, line, clock=lambda: now)
    good = dead = 0
    cycles = 8
    try:
        for _ in range(cycles):
            res = await asyncio.gather(*[bus.read_registers(u, fc=4, address=0, count=2) for u in (1, 2, 3)],
                                       return_exceptions=True)
            good += sum(isinstance(r, list) for r in res)
            dead += sum(isinstance(r, DeviceTimeout) for r in res)
            now += 0.5
        u2 = bus.stats()["units"][2]
        assert good == 2 * cycles and dead == cycles
        # probes at 0, 1 and 3 s (backoff 1 s, then 2 s, then 4 s): one timeout each, the rest skipped at once
        assert u2["timeouts"] == 3 and u2["transactions"] == 3
        assert u2["skipped"] == cycles - u2["timeouts"]
        # when the unit comes back it is read again after its backoff
        h.set_fault(2, Fault.NONE)
        now += bus.unit_available(2)
        assert len(await bus.read_registers(2, fc=4, address=0, count=2)) == 2
        assert bus.stats()["units"][2]["failures"] == 0
    finally:
        await bus.close()
        await h.stop()


@pytest.mark.parametrize("kind", ["rtu", "tcp"])
@pytest.mark.parametrize(("fault", "error"), [(Fault.GARBAGE, ProtocolError), (Fault.SHORT, ProtocolError),
                                              (Fault.EXCEPTION, DeviceException)])
async def test_faulty_replies_give_typed_errors_and_recover(fault, error, kind):
    port = free_port()
    h = await sim(kind, port, units={1: "sdm120", 2: "sdm120"})
    bus = make_bus(kind, port, timeout=0.25, retries=1)
    try:
        h.set_fault(2, fault, code=6)
        with pytest.raises(error) as ei:
            await bus.read_registers(2, fc=4, address=0, count=2)
        assert not isinstance(ei.value, DeviceTimeout)
        if fault is Fault.EXCEPTION:
            assert ei.value.code == 6 and "busy" in str(ei.value)
        else:
            assert "garbled" in str(ei.value)
            assert bus.stats()["units"][2]["transactions"] == 2  # one retry while the unit was healthy
        # the neighbour on the line is unaffected, and unit 2 recovers once healed
        assert decode(await bus.read_registers(1, fc=4, address=0, count=2), "float32") == h.values_of(1)["voltage"]
        h.set_fault(2, Fault.NONE)
        await asyncio.sleep(bus.unit_available(2) + 0.05)
        assert decode(await bus.read_registers(2, fc=4, address=0, count=2), "float32") == h.values_of(2)["voltage"]
    finally:
        await bus.close()
        await h.stop()


async def test_tcp_exception_reply_is_device_exception():
    port = free_port()
    h = await sim("tcp", port)
    bus = make_bus("tcp", port)
    try:
        h.set_fault(1, Fault.EXCEPTION, code=2)
        with pytest.raises(DeviceException) as ei:
            await bus.read_registers(1, fc=4, address=0, count=2)
        assert ei.value.code == 2
        h.set_fault(1, Fault.NONE)
        assert len(await bus.read_registers(1, fc=4, address=0, count=2)) == 2
    finally:
        await bus.close()
        await h.stop()


@pytest.mark.parametrize("kind", ["tcp", "rtu", "rtu_over_tcp"])
async def test_unplug_and_replug_recovers(kind):
    port = free_port()
    h = await sim("tcp" if kind == "tcp" else "rtu", port)
    if kind == "rtu_over_tcp":
        bus = ModbusBus("gw", ModbusRtuOverTcpLine(type="modbus_rtu_over_tcp", host="127.0.0.1", port=port,
                                                    timeout=0.3, reconnect_max=0.5))
    else:
        bus = make_bus(kind, port, reconnect_max=0.5)
    try:
        assert len(await bus.read_registers(1, fc=4, address=0, count=2)) == 2
        await h.stop()
        await asyncio.sleep(0.2)
        errors = []
        for _ in range(3):
            try:
                await bus.read_registers(1, fc=4, address=0, count=2)
            except (BusUnavailable, DeviceTimeout) as e:
                errors.append(e)
        assert errors and isinstance(errors[-1], BusUnavailable)
        h = await sim("tcp" if kind == "tcp" else "rtu", port)
        deadline = time.monotonic() + 60
        while True:
            try:
                regs = await bus.read_registers(1, fc=4, address=0, count=2)
                break
            except (BusUnavailable, DeviceTimeout):
                assert time.monotonic() < deadline, "line did not recover after replug"
                await asyncio.sleep(0.1)
        assert decode(regs, "float32") == h.values["voltage"]
        assert bus.stats()["opens"] >= 2
    finally:
        await bus.close()
        await h.stop()


async def test_missing_serial_port_is_bus_unavailable_and_does_not_spin():
    bus = ModbusBus("x", ModbusRtuLine(type="modbus_rtu", port="/dev/ttyNOPE-edge-agent", reconnect_max=30))
    with pytest.raises(BusUnavailable, match="ttyNOPE"):
        await bus.open()
    for _ in range(20):
        with pytest.raises(BusUnavailable, match="next attempt in"):
            await bus.read_registers(1, fc=4, address=0, count=2)
    assert bus.stats()["open_failures"] == 1
    await bus.close()


def test_line_configs_validate_and_compute_timing():
    line = rtu_line(1, baudrate=9600, parity="E")
    bus = ModbusBus("l", line)
    assert bus.bits_per_char == 11 and bus.baudrate == 9600
    assert ModbusBus("f", rtu_line(1, baudrate=115200)).bits_per_char == 10
    with pytest.raises(ValueError, match="timeout"):
        ModbusTcpLine(type="modbus_tcp", host="h", timeout=0)
    with pytest.raises(ValueError, match="extra"):
        ModbusTcpLine(type="modbus_tcp", host="h", baud=9600)


class _QueueingDevice(asyncio.Protocol):
    """A Modbus TCP device that queues requests (pymodbus's server takes one frame per read): it
    answers every request received within 50 ms together, register i holding value i, and records
    how many were outstanding at once."""

    most_outstanding = 0

    def connection_made(self, transport) -> None:
        self.t, self.buf, self.queue = transport, b"", []

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 12:
            self.queue.append(struct.unpack_from(">HHHBBHH", self.buf))
            self.buf = self.buf[12:]
        if len(self.queue) == len(data) // 12:  # the first of a batch: answer in 50 ms
            asyncio.get_running_loop().call_later(0.05, self._answer)
        type(self).most_outstanding = max(type(self).most_outstanding, len(self.queue))

    def _answer(self) -> None:
        queue, self.queue = self.queue, []
        for tid, _, _, unit, fc, address, count in reversed(queue):  # out of order: matched by transaction id
            regs = struct.pack(f">{count}H", *range(address, address + count))
            self.t.write(struct.pack(">HHHBBB", tid, 0, 3 + 2 * count, unit, fc, 2 * count) + regs)


@pytest.mark.parametrize("pipeline", [False, True, "auto"])
async def test_tcp_pipeline_sends_a_polls_blocks_together(pipeline):
    _QueueingDevice.most_outstanding = 0
    server = await asyncio.get_running_loop().create_server(_QueueingDevice, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = make_bus("tcp", port, pipeline=pipeline)
    blocks = [(4, 0, 10), (3, 100, 3), (4, 0x200, 125)]
    try:
        got = await bus.read_register_blocks(7, blocks)
        assert [list(struct.unpack(f">{len(b) // 2}H", b)) for b in got] == [
            list(range(a, a + n)) for _, a, n in blocks]
        assert _QueueingDevice.most_outstanding == (3 if pipeline else 1)  # "auto": out of order is fine
        assert bus.stats()["units"][7]["transactions"] == 3
        assert await bus.read_registers(7, fc=4, address=5, count=2) == [5, 6]
    finally:
        await bus.close()
        server.close()


def test_pymodbus_errors_read_the_same_as_the_bus_own() -> None:
    # pymodbus's clients (RTU framings) raise its exceptions; the bus handles them as its own, same text
    from pymodbus import exceptions as pm

    from agent.bus.modbus_errors import ConnectionException, ModbusException, ModbusIOException, from_pymodbus

    for theirs, ours in ((pm.ModbusIOException("no reply"), ModbusIOException),
                         (pm.ConnectionException("lost"), ConnectionException),
                         (pm.ParameterException("bad"), ModbusException)):
        mapped = from_pymodbus(theirs)
        assert type(mapped) is ours and str(mapped) == str(theirs)
    assert str(ModbusIOException("no reply")) == str(pm.ModbusIOException("no reply"))
    assert str(ConnectionException("lost")) == str(pm.ConnectionException("lost"))
    other = ValueError("x")
    assert from_pymodbus(other) is other
