"""Gateway side of one node link: description, time sync, dedupe by (boot id, seq), ack after commit.

Pure state, no I/O: the driver feeds received frames in, takes readings out, tells the link when
the pipeline has committed, and sends whatever :meth:`NodeLink.outgoing` returns.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field

from . import codec as c
from .framing import FrameError, split
from .timemap import TimeMap

log = logging.getLogger("edge_agent.firmware_bridge")
KEEP_BOOTS = 4
SYNC_EXPIRY = 5.0  # seconds an unanswered TIME_REQ is kept
MAX_HELD = 256  # readings of a boot without a time sync yet, kept until the sync arrives


@dataclass(frozen=True, slots=True)
class Description:
    hello: c.Hello
    metrics: tuple[c.Metric, ...]  # by index


@dataclass(slots=True)
class Reading:
    boot_id: int
    seq: int
    node_ms: int
    ts_ms: int
    error_ms: float
    values: dict[int, int]  # metric index -> raw


@dataclass(slots=True)
class BootState:
    boot_id: int
    floor: int = 0  # every seq <= floor is committed upstream (or given up by the node) and acknowledged
    acked: int = 0  # the floor last sent in an ACK
    in_flight: dict[int, float] = field(default_factory=dict)  # seq -> monotonic time handed to the pipeline
    committed: set[int] = field(default_factory=set)
    oldest: int = 0  # the node's oldest held seq (from TIME_RESP)
    dropped: int = 0  # the node's overflow count
    times: TimeMap = field(default_factory=TimeMap)

    def seen(self, seq: int) -> bool:
        return seq <= self.floor or seq in self.in_flight or seq in self.committed

    def advance(self) -> None:
        while True:
            nxt = self.floor + 1
            if nxt in self.committed:
                self.committed.discard(nxt)
            elif nxt < self.oldest and nxt not in self.in_flight:
                pass  # the node gave this reading up (ring overflow, counted in ``dropped``)
            else:
                return
            self.floor = nxt


class NodeLink:
    def __init__(self, *, addr: int | None = None, node_id: int | None = None, sync_interval: float = 30.0,
                 boot_id: int | None = None, floor: int = 0, committed: tuple[int, ...] = (),
                 description: Description | None = None):
        self.addr = addr
        self.expect_node_id = node_id
        self.sync_interval = sync_interval
        self.description = description
        self._hello: c.Hello | None = None
        self._metrics: dict[int, c.Metric] = {}
        self.boots: OrderedDict[int, BootState] = OrderedDict()
        self.current: BootState | None = None
        if boot_id:
            self.current = self._boot(boot_id)
            self.current.floor = self.current.acked = floor
            self.current.committed = {s for s in committed if s > floor}
        self._tokens = itertools.count(1)
        self._time_req: dict[int, tuple[float, float]] = {}  # token -> (sent mono, sent utc ms)
        self._last_sync = float("-inf")
        self._last_describe = float("-inf")
        self._ack_again = False
        self._need_sync = False
        self._held: list[c.Data] = []
        self._cmd_ids = itertools.cycle(range(1, 0x10000))
        self.results: dict[int, c.Result] = {}
        self.ready: list[Reading] = []
        self.last_heard: float | None = None
        self.logs: list[c.Log] = []
        self.counters = dict.fromkeys(("frames", "bad_frames", "foreign_frames", "readings", "duplicates",
                                       "held_no_time", "held_no_description", "acks_sent", "time_syncs"), 0)

    # -- state ---------------------------------------------------------------------------------
    def _boot(self, boot_id: int) -> BootState:
        st = self.boots.get(boot_id)
        if st is None:
            st = self.boots[boot_id] = BootState(boot_id)
            while len(self.boots) > KEEP_BOOTS:
                self.boots.popitem(last=False)
        return st

    def _set_current(self, boot_id: int) -> None:
        if self.current is None or self.current.boot_id != boot_id:
            if self.current is not None:
                log.info("node %s rebooted (boot id %08x -> %08x)", self.node_label, self.current.boot_id, boot_id)
            self.current = self._boot(boot_id)

    @property
    def node_label(self) -> str:
        return f"{self.description.hello.node_id:08x}" if self.description else "?"

    def time_error_ms(self, now_mono: float) -> float | None:
        return None if self.current is None else self.current.times.error_ms(now_mono)

    # -- receive -------------------------------------------------------------------------------
    def receive(self, data: bytes, now_mono: float) -> None:
        """Process every frame in ``data`` (wire bytes, delimited)."""
        for wire in split(data):
            try:
                addr, msg = c.decode(wire)
            except FrameError:
                self.counters["bad_frames"] += 1
                continue
            if addr != self.addr:
                self.counters["foreign_frames"] += 1
                continue
            self.counters["frames"] += 1
            self.last_heard = now_mono
            self._on(msg, now_mono)

    def _on(self, msg: c.Message, now: float) -> None:
        if isinstance(msg, c.Data):
            self._on_data(msg, now)
        elif isinstance(msg, c.TimeResp):
            self._on_time(msg, now)
        elif isinstance(msg, c.Hello):
            if self.expect_node_id is not None and msg.node_id != self.expect_node_id:
                log.warning("node id %08x answered where %08x is configured; ignored", msg.node_id, self.expect_node_id)
                return
            if msg != self._hello:
                self._hello, self._metrics = msg, {}
            self._set_current(msg.boot_id)
        elif isinstance(msg, c.Metric):
            if self._hello is not None:
                self._metrics[msg.index] = msg
                if len(self._metrics) == self._hello.n_metrics and set(self._metrics) == set(range(self._hello.n_metrics)):
                    self.description = Description(self._hello, tuple(self._metrics[i] for i in range(self._hello.n_metrics)))
        elif isinstance(msg, c.Result):
            self.results[msg.id] = msg
        elif isinstance(msg, c.Log):
            self.logs.append(msg)
            log.log({0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING}.get(msg.level, logging.ERROR),
                    "node %s: %s", self.node_label, msg.text)

    def _on_time(self, msg: c.TimeResp, now: float) -> None:
        self._set_current(msg.boot_id)
        st = self.current
        assert st is not None
        st.oldest = max(st.oldest, msg.oldest_seq)
        st.dropped = msg.dropped
        sent = self._time_req.pop(msg.token, None)
        if sent is not None:
            st.times.add(sent_mono=sent[0], sent_utc_ms=sent[1], recv_mono=now, node_ms=msg.node_ms)
            self.counters["time_syncs"] += 1
            held, self._held = [m for m in self._held if m.boot_id == st.boot_id], [m for m in self._held if m.boot_id != st.boot_id]
            for m in held:
                self._on_data(m, now)
        st.advance()

    def _on_data(self, msg: c.Data, now: float) -> None:
        st = self._boot(msg.boot_id)
        if st.seen(msg.seq):
            self.counters["duplicates"] += 1
            self._ack_again = True  # our ACK may have been lost
            return
        if self.description is None:
            self.counters["held_no_description"] += 1
            return
        ts = st.times.to_utc_ms(msg.node_ms, now)
        if ts is None:  # not accepted yet: held until a time sync with this boot (the node keeps it too)
            self.counters["held_no_time"] += 1
            self._need_sync = True
            if len(self._held) < MAX_HELD:
                self._held.append(msg)
            return
        st.in_flight[msg.seq] = float("inf")  # handed out by take_readings()
        self.ready.append(Reading(msg.boot_id, msg.seq, msg.node_ms, ts, st.times.error_ms(now) or 0.0, dict(msg.values)))

    def take_readings(self, submitted_mono: float) -> list[Reading]:
        """Readings to hand to the pipeline now; they count as submitted at ``submitted_mono``."""
        out, self.ready = self.ready, []
        for r in out:
            st = self.boots.get(r.boot_id)
            if st is not None:
                st.in_flight[r.seq] = submitted_mono
        self.counters["readings"] += len(out)
        return out

    def committed_through(self, mono: float) -> bool:
        """Everything submitted before ``mono`` is in the outbox. True if that changed anything."""
        changed = False
        for st in self.boots.values():
            done = [s for s, t in st.in_flight.items() if t < mono]
            for s in done:
                del st.in_flight[s]
                st.committed.add(s)
            floor = st.floor
            st.advance()
            changed |= bool(done) or st.floor != floor
            if st.committed and st is self.current:
                self._need_sync = True  # a gap below committed readings: ask whether the node gave it up
        return changed

    # -- send ----------------------------------------------------------------------------------
    def outgoing(self, now_mono: float, now_utc_ms: float, *, always_ack: bool = False) -> bytes:
        """Frames to send now: ACKs that are due, a TIME_REQ when a sync is due, DESCRIBE while unknown."""
        out = bytearray()
        for st in self.boots.values():
            again = self._ack_again and st is self.current
            poll = always_ack and st is self.current  # on a shared line the ACK is also the poll
            if (st.floor and (st.floor != st.acked or again)) or poll:
                out += c.encode(c.Ack(st.boot_id, st.floor), self.addr)
                st.acked = st.floor
                self.counters["acks_sent"] += 1
        self._ack_again = False
        if self.description is None and now_mono - self._last_describe >= 1.0:
            self._last_describe = now_mono
            out += self.command_frame(c.Op.DESCRIBE, 0, 0)[1]
        samples = len(self.current.times.samples) if self.current is not None else 0
        if (now_mono - self._last_sync >= self.sync_interval or samples < 3 or self._need_sync) and not self._time_req:
            self._last_sync, self._need_sync = now_mono, False
            token = next(self._tokens) & 0xFFFF_FFFF
            self._time_req = {token: (now_mono, now_utc_ms)}
            out += c.encode(c.TimeReq(token), self.addr)
        return bytes(out)

    def sync_pending(self) -> bool:
        return bool(self._time_req)

    def drop_sync(self, now_mono: float) -> None:
        """Forget TIME_REQs unanswered for SYNC_EXPIRY s (a late answer still counts, with its larger error)."""
        self._time_req = {t: v for t, v in self._time_req.items() if now_mono - v[0] < SYNC_EXPIRY}

    def command_frame(self, op: int, target: int, value: int) -> tuple[int, bytes]:
        cid = next(self._cmd_ids)
        self.results.pop(cid, None)
        return cid, c.encode(c.Command(cid, op, target, value), self.addr)
