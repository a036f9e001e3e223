"""Gateway side of one node link: description, time sync, dedupe by (boot id, seq), ack after commit.

Pure state, no I/O: the driver feeds received frames in, takes readings out, tells the link when
the pipeline has committed, and sends whatever :meth:`NodeLink.outgoing` returns.

Each boot keeps the description it announced, so a reading is scaled as the firmware that took it
said. A reading is handed out once a time sync after it has confirmed the node clock (see
:mod:`.timemap`); DATA of a boot the node never announced is dropped (the node retransmits what is
real) and makes the link ask the node for its status at once.
"""

from __future__ import annotations

import itertools
import logging
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field

from . import codec as c
from .framing import FrameError, split
from .timemap import TimeMap, wrap_delta

log = logging.getLogger("edge_agent.firmware_bridge")
KEEP_BOOTS = 4
SYNC_EXPIRY = 5.0  # seconds an unanswered TIME_REQ is kept
RESEND = 0.5  # seconds before another TIME_REQ may follow an unanswered one
MAX_UNKNOWN = 64  # DATA frames of boots not (yet) announced, kept until a HELLO or TIME_RESP names the boot
MAX_HELD = 2048  # readings of a boot waiting for a time sync after them
NODE_LOG = logging.getLogger("edge_agent.firmware_bridge.node")  # text written by a node, escaped


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
    metrics: tuple[c.Metric, ...] = ()  # the description of the boot that took it
    certain: bool = True  # False: the node clock jumped around it; ts is a best guess


def escape_node_text(text: str) -> str:
    """Node-supplied text made safe for one log line: control and separator characters escaped."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif unicodedata.category(ch)[0] in "CZ" and ch != " ":
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


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
    description: Description | None = None  # what this boot announced
    top_seq: int = 0  # the highest seq seen and its node time: a later reading must not be earlier
    top_node_ms: int = 0
    suspect: float | None = None  # when a frame contradicted the clock: readings wait for a sync sent since
    pending: dict[int, tuple[c.Data, float]] = field(default_factory=dict)  # seq -> (frame, received mono)

    def seen(self, seq: int) -> bool:
        return seq <= self.floor or seq in self.in_flight or seq in self.committed or seq in self.pending

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
        boot_id = boot_id or (description.hello.boot_id if description else None)  # the boot it came from
        if boot_id:
            self.current = self._boot(boot_id)
            self.current.floor = self.current.acked = floor
            self.current.committed = {s for s in committed if s > floor}
            self.current.description = description  # saved together with this boot
        self._tokens = itertools.count(1)
        self._time_req: dict[int, tuple[float, float]] = {}  # token -> (sent mono, sent utc ms)
        self._last_sync = float("-inf")
        self._last_describe = float("-inf")
        self._ack_again = False
        self._need_sync = False
        self._describe_due = description is None
        self._unknown: list[c.Data] = []
        self._cmd_ids = itertools.cycle(range(1, 0x10000))
        self.results: dict[int, c.Result] = {}
        self.ready: list[Reading] = []
        self.last_heard: float | None = None
        self.logs: list[c.Log] = []
        self.interval_ms: int | None = description.hello.interval_ms if description else None
        self.counters = dict.fromkeys(("frames", "bad_frames", "foreign_frames", "readings", "duplicates",
                                       "held_no_time", "held_no_description", "acks_sent", "time_syncs",
                                       "unknown_boot_frames", "clock_jumps", "clock_suspect_frames",
                                       "time_uncertain"), 0)

    # -- state ---------------------------------------------------------------------------------
    def _boot(self, boot_id: int) -> BootState:
        st = self.boots.get(boot_id)
        if st is None:
            st = self.boots[boot_id] = BootState(boot_id)
            for old in [b for b in self.boots if self.boots[b] is not self.current and b != boot_id]:
                if len(self.boots) <= KEEP_BOOTS:
                    break
                del self.boots[old]  # the oldest boots go; the current one never does
        return st

    def _set_current(self, boot_id: int, now: float) -> None:
        if self._unknown:  # frames of the boot just named go in; those of other boots were not the node's
            mine = [m for m in self._unknown if m.boot_id == boot_id]
            self._unknown.clear()
            self._boot(boot_id)
            for m in mine:
                self._on_data(m, now)
        if self.current is None or self.current.boot_id != boot_id:
            old = self.current
            self.current = self._boot(boot_id)
            if old is not None:
                log.info("node %s rebooted (boot id %08x -> %08x)", self.node_label, old.boot_id, boot_id)
                # no sync of the old boot will come: place what it left by extrapolating its clock
                for msg, _ in sorted(old.pending.values(), key=lambda p: p[0].seq):
                    placed = old.times.extrapolate(msg.node_ms)
                    if placed is not None:
                        self._ready(old, msg, placed)
                old.pending.clear()

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
        self._describe_due = self.description is None or (self.current is not None and self.current.description is None)

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
            self._set_current(msg.boot_id, now)
            self.interval_ms = msg.interval_ms
        elif isinstance(msg, c.Metric):
            if self._hello is not None:
                self._on_metric(msg)
        elif isinstance(msg, c.Result):
            self.results[msg.id] = msg
        elif isinstance(msg, c.Log):
            self.logs.append(msg)
            NODE_LOG.log({0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING}.get(msg.level, logging.ERROR),
                         'node %s says: "%s"', self.node_label, escape_node_text(msg.text))

    def _on_metric(self, msg: c.Metric) -> None:
        hello = self._hello
        assert hello is not None
        if msg.index >= hello.n_metrics:
            log.warning("node %08x: METRIC index %d outside the %d metrics its HELLO announced; ignored",
                        hello.node_id, msg.index, hello.n_metrics)
            return
        self._metrics[msg.index] = msg
        if len(self._metrics) < hello.n_metrics:
            return
        metrics = tuple(self._metrics[i] for i in range(hello.n_metrics))
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            log.warning("node %08x: metric name(s) %s announced twice; description refused", hello.node_id, dup)
            return
        odd = [f"{m.name} ({m.unit})" for m in metrics if m.unit not in c.STANDARD_UNITS]
        if odd and self.description != Description(hello, metrics):
            log.warning("node %08x: unit(s) outside the standard list: %s; published as given",
                        hello.node_id, ", ".join(escape_node_text(o) for o in odd))
        desc = Description(hello, metrics)
        old = self.description
        if old is not None and old.metrics != metrics:
            before, after = {m.name: m for m in old.metrics}, {m.name: m for m in metrics}
            changes = [f"+{n}" for n in after if n not in before] + [f"-{n}" for n in before if n not in after] + [
                f"~{n}" for n in after if n in before and after[n] != before[n]]
            log.warning("node %08x boot %08x has a new description (%s); readings of earlier boots keep theirs",
                        hello.node_id, hello.boot_id, " ".join(changes))
        self.description = desc
        st = self._boot(hello.boot_id)
        st.description = desc
        self._place_pending(st, float("-inf"))

    def _on_time(self, msg: c.TimeResp, now: float) -> None:
        self._set_current(msg.boot_id, now)
        st = self.current
        assert st is not None
        st.oldest = max(st.oldest, msg.oldest_seq)
        st.dropped = msg.dropped
        sent = self._time_req.pop(msg.token, None)
        if sent is not None:
            if not st.times.add(sent_mono=sent[0], sent_utc_ms=sent[1], recv_mono=now, node_ms=msg.node_ms):
                self.counters["clock_jumps"] += 1
                log.warning("node %s: its clock jumped or changed rate (now %+.0f ppm against the gateway); "
                            "readings around the change are flagged estimated", self.node_label, st.times.rate_ppm)
            self.counters["time_syncs"] += 1
            if st.suspect is not None and sent[0] >= st.suspect:
                st.suspect = None
            self._place_pending(st, sent[0])
        st.advance()

    def _place_pending(self, st: BootState, sync_sent: float) -> None:
        if st.description is None:
            return
        for seq, (msg, recv) in sorted(st.pending.items()):
            placed = st.times.place(msg.node_ms, recv)
            if placed is None and recv <= sync_sent:  # taken before this sync, yet beyond it: clock went back
                placed = st.times.force(msg.node_ms, recv)
            if placed is not None:
                del st.pending[seq]
                self._ready(st, msg, placed)

    def _ready(self, st: BootState, msg: c.Data, placed) -> None:
        if not placed.certain:
            self.counters["time_uncertain"] += 1
        st.in_flight[msg.seq] = float("inf")  # handed out by take_readings()
        metrics = st.description.metrics if st.description else ()
        self.ready.append(Reading(msg.boot_id, msg.seq, msg.node_ms, placed.ts_ms, placed.error_ms, dict(msg.values),
                                  metrics, placed.certain))

    def _on_data(self, msg: c.Data, now: float) -> None:
        st = self.boots.get(msg.boot_id)
        if st is None:  # a boot the node has not announced: kept aside until it does, ask it now
            self.counters["unknown_boot_frames"] += 1
            self._need_sync = True
            if len(self._unknown) < MAX_UNKNOWN:
                self._unknown.append(msg)
            return
        if st.seen(msg.seq):
            self.counters["duplicates"] += 1
            self._ack_again = True  # our ACK may have been lost
            return
        if st.description is None:  # kept until this boot has described itself (DESCRIBE sent)
            self.counters["held_no_description"] += 1
            self._describe_due = True
            if len(st.pending) < MAX_HELD:
                st.pending[msg.seq] = (msg, now)
            return
        backwards = st.top_seq and msg.seq > st.top_seq and wrap_delta(msg.node_ms, st.top_node_ms) < 0
        if msg.seq > st.top_seq:
            st.top_seq, st.top_node_ms = msg.seq, msg.node_ms
        if not st.times.samples:
            self.counters["held_no_time"] += 1
        elif backwards or not st.times.plausible_now(msg.node_ms, now):
            self.counters["clock_suspect_frames"] += 1  # earlier than its predecessor, or from the future
            st.suspect = now if st.suspect is None else st.suspect
        placed = None if st.suspect is not None else st.times.place(msg.node_ms, now)  # the clock looks wrong: sync first
        if placed is not None:
            self._ready(st, msg, placed)
            return
        self._need_sync = True  # wait for a sync after this reading; ask for it at once
        if len(st.pending) < MAX_HELD:
            st.pending[msg.seq] = (msg, now)

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
        return bytes(out + self.urgent(now_mono, now_utc_ms))

    def urgent(self, now_mono: float, now_utc_ms: float) -> bytes:
        """What the link needs from the node right now: its description, a time sync."""
        out = b""
        if self._describe_due and now_mono - self._last_describe >= 1.0:
            self._last_describe = now_mono
            out = self.command_frame(c.Op.DESCRIBE, 0, 0)[1]
        return out + self.sync_request(now_mono, now_utc_ms)

    def wants_sync(self) -> bool:
        """Readings wait for a sync after them, a boot is unknown or a sync is due."""
        return self._need_sync or any(st.pending for st in self.boots.values())

    def sync_request(self, now_mono: float, now_utc_ms: float) -> bytes:
        """A TIME_REQ when one is wanted or due and none is outstanding (one waits at most RESEND s)."""
        samples = len(self.current.times.samples) if self.current is not None else 0
        due = now_mono - self._last_sync >= self.sync_interval or samples < 3 or self.wants_sync()
        if not due or any(now_mono - t[0] < RESEND for t in self._time_req.values()):
            return b""
        self._last_sync, self._need_sync = now_mono, False
        token = next(self._tokens) & 0xFFFF_FFFF
        self._time_req[token] = (now_mono, now_utc_ms)
        return c.encode(c.TimeReq(token), self.addr)

    def probe(self) -> None:
        """Ask the node for its status at the next chance (it has been quiet for a while)."""
        self._need_sync = True

    def sync_pending(self) -> bool:
        return bool(self._time_req)

    def drop_sync(self, now_mono: float) -> None:
        """Forget TIME_REQs unanswered for SYNC_EXPIRY s (a late answer still counts, with its larger error)."""
        self._time_req = {t: v for t, v in self._time_req.items() if now_mono - v[0] < SYNC_EXPIRY}

    def command_frame(self, op: int, target: int, value: int) -> tuple[int, bytes]:
        cid = next(self._cmd_ids)
        self.results.pop(cid, None)
        return cid, c.encode(c.Command(cid, op, target, value), self.addr)
