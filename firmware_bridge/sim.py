"""A node simulator for ``edge-agent simulate mcu-node``: the reference firmware's behaviour in Python
(ring of unacknowledged readings, retransmission, time sync, commands) over a pty."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from dataclasses import dataclass

import click

from agent.contract import SimulatorSpec
from agent.simkit.serial_pty import SerialDeviceSim, serve_forever, sim_options

from . import codec as c
from .framing import scan

METRICS = (
    c.Metric(0, -2, c.Kind.GAUGE, "temperature", "degC"),
    c.Metric(1, -1, c.Kind.GAUGE, "humidity", "%"),
    c.Metric(2, 0, c.Kind.COUNTER, "pulses", ""),
    c.Metric(3, 0, c.Kind.STATE, "output0", ""),
)


@dataclass
class Slot:
    seq: int
    node_ms: int
    values: tuple[tuple[int, int], ...]
    sent_at: float | None = None


class McuNodeSim(SerialDeviceSim):
    scanner = staticmethod(scan)

    def __init__(self, *, node_id: int = 0x51_4D_00_01, interval_ms: int = 1000, ring: int = 32,
                 retransmit_s: float = 2.0, addr: int | None = None, **kw):
        super().__init__(**kw)
        self.node_id, self.interval_ms, self.capacity = node_id, interval_ms, ring
        self.retransmit_s, self.addr = retransmit_s, addr
        self.t0 = time.monotonic()
        self.output = 0
        self.pulses = 0
        self.polled = False
        self.reboot()

    def reboot(self) -> None:
        """Lose the RAM: a new boot id, seq from 1, an empty ring."""
        self.boot_id = self.rng.randrange(1, 1 << 32)
        self.ring: deque[Slot] = deque()
        self.next_seq, self.dropped = 1, 0
        self.t0 = time.monotonic()
        if self.plugged:
            self.describe()

    def node_ms(self) -> int:
        return int((time.monotonic() - self.t0) * 1000) & 0xFFFF_FFFF

    def out(self, msg: c.Message) -> None:
        self.send(c.encode(msg, self.addr))

    def describe(self) -> None:
        self.out(c.Hello(self.node_id, self.boot_id, self.interval_ms, self.capacity, len(METRICS), "sim-1.0.0"))
        for m in METRICS:
            self.out(m)

    async def start(self) -> McuNodeSim:
        await super().start()
        if self.addr is None:  # on a shared line the node waits to be asked
            self.write_raw(b"\x00")
            self.describe()
        return self

    def sample(self) -> None:
        t = time.monotonic() - self.t0
        self.pulses += self.rng.randint(0, 3)
        values = ((0, round(2100 + 150 * math.sin(t / 60))), (1, round(450 + self.rng.randint(-5, 5))),
                  (2, self.pulses), (3, self.output))
        if len(self.ring) == self.capacity:
            self.ring.popleft()
            self.dropped += 1
        self.ring.append(Slot(self.next_seq, self.node_ms(), values))
        self.next_seq += 1

    async def stream(self) -> None:
        next_sample = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= next_sample:
                next_sample += self.interval_ms / 1000
                self.sample()
            if self.plugged and (self.addr is None or self.polled):
                self.polled = False  # on a shared line: talk only in reply to a frame addressed to us
                for slot in list(self.ring)[:8]:
                    if slot.sent_at is None or now - slot.sent_at >= self.retransmit_s:
                        slot.sent_at = now
                        self.out(c.Data(self.boot_id, slot.seq, slot.node_ms, slot.values))
            await asyncio.sleep(min(0.05, max(0.0, next_sample - time.monotonic())))

    def handle(self, request: bytes) -> None:
        try:
            addr, msg = c.decode(request)
        except c.FrameError:
            return
        if self.addr is not None and addr not in (self.addr, 255):
            return
        self.polled = self.polled or addr == self.addr
        if isinstance(msg, c.Ack) and msg.boot_id == self.boot_id:
            while self.ring and self.ring[0].seq <= msg.seq:
                self.ring.popleft()
        elif isinstance(msg, c.TimeReq):
            oldest = self.ring[0].seq if self.ring else self.next_seq
            self.out(c.TimeResp(msg.token, self.boot_id, self.node_ms(), oldest, self.dropped))
        elif isinstance(msg, c.Command):
            self.command(msg)

    def command(self, cmd: c.Command) -> None:
        status, value = c.Status.OK, cmd.value
        if cmd.op == c.Op.SET_INTERVAL:
            if 10 <= cmd.value <= 86_400_000:
                self.interval_ms = cmd.value
            else:
                status, value = c.Status.BAD_VALUE, self.interval_ms
        elif cmd.op == c.Op.SET_OUTPUT:
            if cmd.target == 0 and cmd.value in (0, 1):
                self.output = cmd.value
            else:
                status = c.Status.BAD_VALUE
        elif cmd.op != c.Op.DESCRIBE:
            status, value = c.Status.UNKNOWN_OP, 0
        self.out(c.Result(cmd.id, status, value))
        if cmd.op == c.Op.DESCRIBE:
            self.describe()


async def start(*, link: str | None = None, interval_ms: int = 1000, addr: int | None = None,
                fault_rate: float = 0.0, seed: int | None = None) -> McuNodeSim:
    """Start a simulated node on a new pty; ``.path`` is what to configure, ``.stop()`` ends it."""
    return await McuNodeSim(link=link, interval_ms=interval_ms, addr=addr, fault_rate=fault_rate, seed=seed,
                            baudrate=115200).start()


@click.command("mcu-node")
@sim_options
@click.option("--interval-ms", type=click.IntRange(10, 86_400_000), default=1000, help="Sampling interval.")
@click.option("--address", type=click.IntRange(1, 254), default=None, help="Node address (RS-485 multi-drop).")
def command(link, port, fault_rate, seed, interval_ms, address) -> None:
    """Simulate a microcontroller sensor node (firmware bridge protocol)."""
    sim = McuNodeSim(interval_ms=interval_ms, addr=address, link=link, port=port, fault_rate=fault_rate,
                     seed=seed if seed is not None else random.randrange(1 << 30), baudrate=115200)
    serve_forever(sim, describe="Sensor node simulator")


SIMULATOR = SimulatorSpec(name="mcu-node", summary="Microcontroller sensor node (firmware bridge) over a pty.",
                          command=command, start=start)
