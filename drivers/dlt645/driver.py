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
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from agent.contract import (
    DeviceError,
    DriverContext,
    EnergyConfig,
    MetricSpec,
    Point,
    PointKind,
    Sample,
    SerialDevice,
    SerialPort,
)
from drivers.meter_common.config import check_request_timeout, check_timezone

from . import blocks, codec
from .codec import Edition, MeterError
from .profiles import BY_METRIC, PROFILES, Item

log = logging.getLogger("edge_agent.drivers.dlt645")
MAX_FOLLOW = 8  # follow-up frames fetched for one identifier
TIME_SYNC = "time_sync"


class Dlt645Config(SerialDevice):
    type: Literal["dlt645"]
    line: str = Field(description="Name of a `serial` line: RS-485 (2400 baud, parity E typical) or socket://host:port (a DTU).")
    address: str = Field(pattern=r"^\d{12}$", description="The meter's 12-digit address (nameplate), e.g. \"123456781012\".")
    edition: Edition = Field(Edition.V2007, description="Protocol edition: \"2007\" or \"1997\".")
    profile: str = Field("basic", description=f"Identifiers to read: {', '.join(PROFILES)}.")
    metrics: tuple[str, ...] | None = Field(None, description="Read exactly these metrics instead of the profile's.")
    energy_interval: float = Field(300.0, ge=0, le=86_400, description="Seconds between reads of energy and demand registers (0: every poll).")
    request_timeout: float = Field(1.5, gt=0, le=30, description="Seconds to wait for the reply to one identifier.")
    wake: int = Field(4, ge=0, le=4, description="FE wake-up bytes sent before each request.")
    block_reads: bool = Field(True, description="2007: read phases and tariffs with one block request (DI1 = FF), falling back to single identifiers.")
    meter_timezone: str = Field("Asia/Shanghai", description="The meters' local time zone, for broadcast time sync.")
    writable: tuple[Literal["time_sync"], ...] = Field((), description='Points commands may write: "time_sync".')
    poll_interval: float = Field(30.0, gt=0, le=86_400, description="Seconds between polls.")
    timeout: float = Field(20.0, gt=0, le=600, description="Seconds before a poll counts as failed.")

    @model_validator(mode="before")
    @classmethod
    def _default_energy(cls, data: Any) -> Any:
        """The billing counter (forward active energy) feeds the energy ledger unless ``energy`` says otherwise."""
        if isinstance(data, dict) and "energy" not in data:
            names = data.get("metrics") or PROFILES.get(str(data.get("profile", "basic")), ())
            if "energy_import" in names:
                data = {**data, "energy": EnergyConfig(metric="energy_import")}
        return data

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r} (known: {', '.join(PROFILES)})")
        return v

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        bad = [m for m in v or () if m not in BY_METRIC]
        if bad:
            raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))} (known: {', '.join(BY_METRIC)})")
        return v

    _tz = field_validator("meter_timezone")(check_timezone)

    @model_validator(mode="after")
    def _fits(self) -> Dlt645Config:
        missing = [i.metric for i in self.items() if i.di(self.edition) is None]
        if self.metrics is not None and missing:
            raise ValueError(f"DL/T 645-{self.edition.value} has no identifier for {', '.join(missing)}")
        check_request_timeout(self.request_timeout, self.timeout)
        return self

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
