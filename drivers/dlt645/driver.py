"""``dlt645``: a DL/T 645-2007 (or -1997) meter on a ``serial`` line: an RS-485 adapter (2400 8E1
typical; the line's settings are the meter's) or a 4G DTU reached over TCP (``port =
"socket://host:port"``). Several meters share one line, each addressed by its 12-digit address.

Each poll reads the fast identifiers (voltage, current, power ...) and, every ``energy_interval``,
the slow ones (energy, maximum demand): a full pass over 16 meters at 2400 baud takes tens of
seconds. A meter that does not answer costs one request timeout per poll (the poll stops there); an
identifier the meter says it does not have is dropped from later polls and reported once.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.contract import (
    DeviceError,
    DriverContext,
    MetricSpec,
    Point,
    PointKind,
    Sample,
    SerialPort,
)
from agent.contract.lazy import lazy_exports

from . import blocks, codec
from .codec import Edition, MeterError
from .profiles import BY_METRIC, PROFILES, Item

log = logging.getLogger("edge_agent.drivers.dlt645")
MAX_FOLLOW = 8  # follow-up frames fetched for one identifier
TIME_SYNC = "time_sync"

if TYPE_CHECKING:
    from .config import Dlt645Config

# the config model (pydantic) is in .config; this module runs on the model or its plain twin
__getattr__ = lazy_exports(__name__, {"Dlt645Config": "drivers.dlt645.config"})


class Dlt645Base:
    """Mixin of :class:`~.config.Dlt645Config` (and its plain twin): what the driver asks of the config."""

    def items(self) -> list[Item]:
        """The identifiers this meter is read for (those the edition has)."""
        names = self.metrics if self.metrics is not None else PROFILES[self.profile]
        return [BY_METRIC[n] for n in names if self.metrics is not None or BY_METRIC[n].di(self.edition) is not None]

    def points(self) -> list[Point]:
        """What the gateway may tell the meters (agent.contract.DeclaresPoints)."""
        return [Point(TIME_SYNC, PointKind.ACTION, writable=TIME_SYNC in self.writable,
                      meaning="broadcast time sync (08H to 99…99): every meter on the line takes the gateway's "
                              "clock in meter_timezone; no meter answers")]


class Dlt645Driver:
    def __init__(self, config: Dlt645Config, ctx: DriverContext):
        self.config = config
        self.port: SerialPort = ctx.buses.get(config.line)
        self.clock = ctx.clock
        self.address = codec.parse_address(config.address)
        self._scan = codec.reply_scan(self.address, config.edition)
        self.items = config.items()
        self.unsupported: set[str] = set()
        self.no_block: set[int] = set()
        self._last_slow = -math.inf

    def metrics(self) -> list[MetricSpec]:
        return [i.spec() for i in self.items]

    async def open(self) -> None:
        """Nothing to set up: the line opens on the first request."""

    def _answer_to(self, di: int):
        """Accept only this meter's reply to ``di`` (or its error reply): a late answer to an earlier
        request is skipped, never taken for this one."""
        want = codec.di_bytes(di, self.config.edition)

        def accept(raw: bytes) -> bool:
            f = codec.fr.reply_from(codec.LAYOUT, raw, self.address)
            if f is None:
                return False
            return bool(f.control & codec.ERROR) or f.data[:len(want)] == want
        return accept

    async def _ask(self, request: bytes, di: int) -> codec.fr.Frame:
        raw = await self.port.transact(request, read_until=self._scan, accept=self._answer_to(di),
                                       timeout=self.config.request_timeout)
        assert raw is not None
        return codec.decode(raw)

    async def read_data(self, di: int) -> bytes:
        """The value bytes of one identifier, follow-up frames (12H) included; MeterError when refused."""
        ed = self.config.edition
        reply = codec.parse_read_reply(await self._ask(codec.read_request(self.address, di, ed, wake=self.config.wake), di), di, ed)
        data = bytearray(reply.data)
        seq = 1
        while reply.more and ed is Edition.V2007 and seq <= MAX_FOLLOW:
            req = codec.follow_request(self.address, di, seq, wake=self.config.wake)
            reply = codec.parse_read_reply(await self._ask(req, di), di, ed)
            data += reply.data[:-1]  # a follow-up reply ends with its sequence number
            seq += 1
        return bytes(data)

    async def read_value(self, item: Item) -> float:
        """One identifier's value; MeterError when the meter refuses it."""
        di, fmt = item.di(self.config.edition), item.fmt(self.config.edition)
        assert di is not None and fmt is not None
        return fmt.decode(await self.read_data(di))

    async def _read_block(self, block: blocks.Block, group: list[Item]) -> list[Sample] | None:
        """The group's values from one block read, or None when the meter does not do that block
        (then never asked again: the identifiers are read one by one)."""
        try:  # a garbled line (bad checksum, silence) raises as for any read; only a refusal or a
            # reply that does not fit the block means the meter does not do it
            data = await self.read_data(block[0])
            values = blocks.split(data, block, group)
        except (MeterError, blocks.BlockMismatch) as e:
            self.no_block.add(block[0])
            log.info("dlt645 %s: meter %s does not answer block %08X (%s); reading its identifiers singly",
                     self.config.name, self.config.address, block[0], e)
            return None
        return [Sample(m, v) for m, v in values.items()]

    async def read(self) -> list[Sample]:
        now = self.clock.monotonic()
        slow_due = now - self._last_slow >= self.config.energy_interval
        due = [i for i in self.items if (slow_due or not i.slow) and i.metric not in self.unsupported]
        groups = blocks.plan(due) if self.config.block_reads and self.config.edition is Edition.V2007 \
            else [(None, [i]) for i in due]
        out: list[Sample] = []
        for block, group in groups:
            if block is not None and block[0] not in self.no_block:
                got = await self._read_block(block, group)
                if got is not None:
                    out += got
                    continue
            out += await self._read_singly(group)
        if slow_due:
            self._last_slow = now
        return out

    async def _read_singly(self, group: list[Item]) -> list[Sample]:
        out: list[Sample] = []
        for item in group:
            try:
                value = await self.read_value(item)
            except MeterError as e:
                if not e.code & 0x02:
                    raise
                self.unsupported.add(item.metric)  # "no such data": do not ask again
                log.warning("dlt645 %s: meter %s has no %s (%s); not read again until restart",
                            self.config.name, self.config.address, item.metric, e)
                continue
            out.append(Sample(item.metric, value))
        return out

    async def write(self, point: str, value: float | None) -> bool:
        """Broadcast time sync: the gateway's wall clock, in the meters' time zone. No meter answers."""
        if point != TIME_SYNC:
            raise DeviceError(f"{point!r} is not a point of a dlt645 meter")
        when = datetime.fromtimestamp(self.clock.now_ms() / 1000, ZoneInfo(self.config.meter_timezone))
        await self.port.transact(codec.time_sync_request(when, wake=self.config.wake), read_until=None, timeout=1.0)
        return True

    async def close(self) -> None:
        """Nothing to release: the line belongs to the agent."""
