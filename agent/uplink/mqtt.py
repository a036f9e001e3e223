"""The MQTT uplink: forwards outbox rows in rowid order at QoS 1 and deletes each only after its PUBACK.

paho runs on its own network thread (see :mod:`agent.uplink.connection`); every paho callback is handed
to the asyncio loop with ``call_soon_threadsafe`` (PUBACKs in bursts, :mod:`agent.uplink.acks`), and the
outbox is only touched on the loop thread.

Delivery: at most ``max_inflight`` rows are unacknowledged at once, published in rowid order.
A publish whose ``rc`` is an error keeps its row and backs off. After a disconnect the in-flight set is
forgotten and publishing restarts from the oldest unacknowledged row, so a row may arrive twice, always
with the same ``seq``. The session is clean: the outbox, not the broker, is the memory.

A row the broker refuses (MQTT 5 negative PUBACK) is kept and its topic set aside while every other
topic keeps flowing (see :mod:`agent.uplink.pump`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from agent.config.core import MqttProtocol
from agent.health_parts import UplinkStats
from agent.store.outbox import Outbox
from agent.uplink.acks import AckQueue
from agent.uplink.connection import NetworkThread, make_client, status_body
from agent.uplink.pump import Counts, OutboxPump
from agent.uplink.topics import Topics

if TYPE_CHECKING:
    from agent.config.schema import MqttConfig

log = logging.getLogger("edge_agent.uplink")

CommandHandler = Callable[[str, bytes, bool], Awaitable[None]]  # (device, payload, retained)
RemoteHandler = Callable[[str, bytes, bool], Awaitable[None]]  # ("config" | "ops/{op}", payload, retained)
# Acked rows are marked at once (never sent again) and deleted in the pipeline's next commit, in the
# same transaction; this delete is the fallback when no commit follows within the delay (a gateway with
# nothing to store). One fsync'd transaction fewer per commit interval, none per PUBACK. The delay
# outlasts a 1 s poll cycle; a commit that takes every acked row cancels it (a steady poll's commits
# carry the deletes, and the timer never wakes the loop), and it starts again for the rows acked since
# whenever a commit took the ones it was set for; this many rows waiting are deleted at once.
_ACK_FLUSH_DELAY = 1.5
_ACK_FLUSH_ROWS = 100_000


class _WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class Uplink(OutboxPump):
    def __init__(self, cfg: MqttConfig, gateway: str, outbox: Outbox, *,
                 on_command: CommandHandler | None = None, clock: Any = None,
                 on_remote: RemoteHandler | None = None, on_connected: Callable[[], None] | None = None):
        if cfg.host is None:
            raise ValueError("mqtt.host (or mqtt.hosts) is not set: the uplink needs a broker address")
        self.cfg = cfg
        self.gateway = gateway
        self.outbox = outbox
        self.topics = Topics(cfg.topic_prefix, gateway)
        self.on_command = on_command
        self.on_remote = on_remote  # config push, status/doctor requests (agent.remote)
        self.on_connected = on_connected
        self.clock = clock or _WallClock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._net: NetworkThread | None = None
        self._client: mqtt.Client | None = None  # the connected client, loop thread's view
        self._waiters: dict[int, asyncio.Future] = {}  # mid -> future, for our own QoS 1 messages
        self._init_pump()
        self._acks_in: AckQueue[tuple[mqtt.Client, int, str | None]] = AckQueue(self._post, self._on_pubacks,
                                                                               urgent=self._acks_urgent)
        self._flush_handle: asyncio.TimerHandle | None = None
        self._flush_mark = 0  # the outbox's count of acked-row deletes when the flush was set
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._subscribed = False  # the command subscription is active
        self._stopped = asyncio.Event()
        self._counts = Counts()
        self.last_error: str | None = None
        self._rate_mark = (self.clock.monotonic(), 0, 0)
        self._rates = (0.0, 0.0)
        if hasattr(outbox, "on_replaced"):  # a damaged outbox set aside: rowids start again in the new one
            outbox.on_replaced(self._outbox_replaced)

    # ------------------------------------------------------------------ public API (loop thread)
    async def run(self) -> None:
        """Connect and forward until :meth:`stop` (or cancellation)."""
        self._loop = asyncio.get_running_loop()
        self._net = NetworkThread(self.cfg, new_client=self._new_client, on_failure=self._thread_failure,
                                  on_closed=self._thread_closed, after_pass=self._acks_in.flush)
        self._net.start()
        await self._stopped.wait()

    def wake(self) -> None:
        """New rows were appended to the outbox (a commit: it deleted the rows acknowledged before it)."""
        self._more = True
        if self._flush_handle is not None and not self.outbox.acked_waiting[0]:
            # the commit took the rows the fallback delete was set for: no timer left to wake the loop;
            # the next acknowledgement sets a new one
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._loop is not None and not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def ride_acks_on_commits(self) -> Callable[[], None]:
        """PUBACKs no longer wake the loop unless something waits for them (a full window, a message of
        our own, a refusal, a stop): they wait for the call returned, which the pipeline makes before each
        cycle (every couple of seconds when idle; with readings coming, up to ``commit_interval`` apart),
        so the rows they acknowledge are still deleted in the next commit. Counters (:meth:`stats`) take
        them first."""
        self._acks_in.lazy = True
        return self._acks_in.take

    def publish_transient(self, topic: str, body: dict, *, retain: bool = False, qos: int = 0) -> bool:
        """Publish a message that is not stored (health). False when not connected or refused by paho."""
        if self._client is None:
            return False
        info = self._client.publish(topic, orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), qos=qos,
                                    retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def connects(self) -> int:
        """Successful connections so far: a change means a new session (retained state may be gone)."""
        return self._counts.connects

    def publish_raw(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 0) -> bool:
        """Publish bytes that are not stored (Home Assistant discovery and states). False when not
        connected or refused by paho."""
        if self._client is None:
            return False
        return self._client.publish(topic, payload, qos=qos, retain=retain).rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def stats(self) -> UplinkStats:
        """Counters and rates; rates cover the last interval of at least one second between calls."""
        self._acks_in.take()  # acknowledgements waiting for the next cycle count now
        now = self.clock.monotonic()
        t0, acked0, readings0 = self._rate_mark
        c = self._counts
        if now - t0 >= 1.0:
            self._rates = ((c.acked - acked0) / (now - t0), (c.readings_acked - readings0) / (now - t0))
            self._rate_mark = (now, c.acked, c.readings_acked)
        msgs_rate, readings_rate = self._rates
        return UplinkStats(
            connected=self._client is not None, commands_subscribed=self._subscribed,
            published=c.published, acked=c.acked, inflight=len(self._inflight),
            connects=c.connects, reconnects=max(0, c.connects - 1), connect_failures=c.connect_failures,
            publish_errors=c.publish_errors, nacks=c.nacks, refused_topics=self._refusals.stats(now),
            commands=c.commands, last_error=self.last_error,
            msgs_per_s=round(msgs_rate, 2), readings_per_s=round(readings_rate, 2),
        )

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop publishing, let in-flight rows be acknowledged, publish ``offline`` (retained) and
        disconnect cleanly; then stop the network thread and delete the acknowledged rows.

        Each wait is bounded by ``timeout``. If ``offline`` cannot be sent, the connection is dropped
        without DISCONNECT so the broker publishes the last will (``offline``) instead.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True  # the pump publishes nothing more (and acknowledgements are posted at once)
        self._acks_in.take()
        client = self._client
        if client is not None:
            await self._wait(lambda: not self._inflight or self._client is None, timeout)
            info = client.publish(self.topics.status, status_body(self.gateway, "offline", self.clock.now_ms()),
                                  qos=1, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._loop is not None:
                fut = self._loop.create_future()
                self._waiters[info.mid] = fut
                with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(fut, timeout)
                client.disconnect()
                await self._wait(lambda: self._client is None, timeout)
        if self._net is not None:
            self._net.stop()
            await asyncio.to_thread(self._net.join, timeout)
        self._flush_acks()
        for h in (self._flush_handle, self._retry_handle, self._due_handle):
            if h is not None:
                h.cancel()
        self._client = None
        self._stopped.set()

    @staticmethod
    async def _wait(done: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    # ------------------------------------------------------- paho side (network thread)
    def _new_client(self) -> mqtt.Client:
        client = make_client(self.cfg, gateway=self.gateway, topics=self.topics, now_ms=self.clock.now_ms())
        client.on_connect = self._paho_connect
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        client.on_subscribe = self._paho_subscribe
        return client

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        try:
            if loop is None:
                raise RuntimeError("no loop")
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            if self._net is not None:
                self._net.stop()

    def _paho_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        assert self._net is not None
        if reason.is_failure:
            self._net.refused = True
            self._post(self._on_failure, f"broker refused connection: {reason}")
        else:
            self._net.connack_ok = True
            self._post(self._on_connected, client)

    def _paho_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any = None) -> None:
        refused = reason.is_failure  # (a refusal is handled at once: its topic is set aside)
        self._acks_in.put((client, mid, str(reason) if refused else None), urgent=refused)

    def _acks_urgent(self) -> bool:
        """Network thread: whether the loop must handle the acknowledgements queued now rather than at
        its next cycle: a stop or a message of our own waits for them, or they free room the window needs."""
        return (self._stopping or bool(self._waiters)
                or len(self._inflight) > self.cfg.max_inflight - self._refill_at)

    def _paho_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._post(self._on_message, msg.topic, bytes(msg.payload), bool(msg.retain))

    def _paho_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list, props: Any = None) -> None:
        # the first filter is the command one; config push and ops follow (refusals of those are logged)
        self._post(self._on_suback, client, [str(r) for r in reasons[:1] if r.is_failure])
        if any(r.is_failure for r in reasons[1:]):
            log.warning("broker refused the config push / ops subscriptions: %s",
                        ", ".join(str(r) for r in reasons[1:]))

    def _thread_failure(self, reason: str) -> None:
        self._post(self._on_failure, reason)

    def _thread_closed(self, client: mqtt.Client) -> None:
        self._post(self._on_closed, client)

    # ------------------------------------------------------------- handlers (loop thread)
    def _endpoint(self) -> tuple[str, int]:
        return self._net.endpoint if self._net is not None else (str(self.cfg.host), self.cfg.port)

    def _on_failure(self, reason: str) -> None:
        self._counts.connect_failures += 1
        if reason != self.last_error:
            log.warning("MQTT connection to %s:%d failed: %s", *self._endpoint(), reason)
        self.last_error = reason

    def _on_connected(self, client: mqtt.Client) -> None:
        if self._stopping:
            return
        if self.last_error is not None or self._counts.connects == 0:
            log.info("MQTT connected to %s:%d", *self._endpoint())
        self._counts.connects += 1
        self.last_error = None
        self._flush_acks()
        self._client = client
        self._forget_inflight()  # republish from the oldest unacknowledged row
        birth = client.publish(self.topics.status, status_body(self.gateway, "online", self.clock.now_ms()),
                               qos=1, retain=True)
        if birth.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._counts.publish_errors += 1
            log.warning("could not publish online status: %s", mqtt.error_string(birth.rc))
        rc, _ = self._subscribe_commands(client)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.warning("could not subscribe to %s: %s", self.topics.command_filter, mqtt.error_string(rc))
        if self.on_connected is not None:
            try:
                self.on_connected()
            except Exception:  # noqa: BLE001 - a listener must not break the connection
                log.exception("connection listener failed")
        self._pump()

    def _subscribe_commands(self, client: mqtt.Client) -> tuple[MQTTErrorCode, int | None]:
        """MQTT 5: retain-as-published keeps the RETAIN flag of a command published retained while we
        are subscribed (brokers clear it otherwise), so it can be refused; no-local hides our own
        clearing of a retained command. MQTT 3.1.1 marks only retained messages sent at subscribe time."""
        filters = [self.topics.command_filter]
        if self.on_remote is not None:
            filters += [self.topics.config_set, self.topics.ops_filter]
        if self.cfg.protocol == MqttProtocol.V5:
            opts = SubscribeOptions(qos=1, retainAsPublished=True, noLocal=True)
            return client.subscribe([(f, opts) for f in filters])
        return client.subscribe([(f, 1) for f in filters])

    def _on_closed(self, client: mqtt.Client) -> None:
        self._acks_in.take()  # the connection's acknowledgements first (a lazy queue may hold some)
        if client is not self._client:
            return
        self._client = None
        self._subscribed = False
        self._forget_inflight()
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()
        self._waiters.clear()
        if not self._stopping:
            self.last_error = self.last_error or "connection lost"
            log.warning("MQTT connection to %s:%d lost", *self._endpoint())

    def _on_pubacks(self, batch: list[tuple[mqtt.Client, int, str | None]]) -> None:
        """PUBACKs (client, mid, refusal reason or None), as many as arrived since the last batch:
        rows acknowledged are marked at once, and the window is refilled once for all of them."""
        acked: list[int] = []
        readings = 0
        refused = False
        for client, mid, refusal in batch:
            if client is not self._client:
                continue  # a previous connection's ack: its in-flight set was already forgotten
            fut = self._waiters.pop(mid, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(refusal is None)
                continue
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue
            rowid, n, topic = entry
            self._inflight_rows.discard(rowid)
            if refusal is not None:  # MQTT 5 negative PUBACK: keep the row, set its topic aside, let the others flow
                self._counts.nacks += 1
                self.last_error = f"broker refused a message on {topic}: {refusal}"
                self._refused(topic, rowid, refusal)
                refused = True
                continue
            self._accepted(topic, rowid)
            acked.append(rowid)
            readings += n
        if acked:
            self.outbox.mark_acked(acked)
            self._counts.acked += len(acked)
            self._counts.readings_acked += readings
            if self.outbox.acked_waiting[0] >= _ACK_FLUSH_ROWS and not self.outbox.acked_pending_delete:
                self._flush_acks()  # (while deletes fail, the pipeline retries them)
            elif self._flush_handle is None:
                self._arm_flush()
        if refused or acked:
            self._refill(now=refused)

    def _on_suback(self, client: mqtt.Client, failures: list[str]) -> None:
        if client is not self._client:
            return
        if failures:
            log.warning("broker refused the command subscription %s: %s", self.topics.command_filter,
                        ", ".join(failures))
        self._subscribed = not failures

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if self.on_remote is not None and (kind := self.topics.remote_of(topic)) is not None:
            if payload:  # empty: the deletion of a retained message
                if retain:
                    self._clear_retained(topic)
                self._spawn(self._run_remote(kind, payload, retain))
            return
        device = self.topics.device_of_command(topic)
        if device is None or self.on_command is None:
            return
        if not payload:  # an empty message deletes a retained one: it is not a command
            return
        if retain:  # answered as refused by the handler; delete it so no reconnect delivers it again
            self._clear_retained(topic)
        self._counts.commands += 1
        self._spawn(self._run_command(device, payload, retain))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_remote(self, kind: str, payload: bytes, retained: bool) -> None:
        assert self.on_remote is not None
        try:
            await self.on_remote(kind, payload, retained)
        except Exception:  # noqa: BLE001 - one bad request must not stop the uplink
            log.exception("remote operation %s failed", kind)

    def _clear_retained(self, topic: str) -> None:
        if self._client is not None:  # QoS 0: takes no in-flight slot; denied silently without publish rights
            self._client.publish(topic, b"", qos=0, retain=True)

    async def _run_command(self, device: str, payload: bytes, retained: bool) -> None:
        assert self.on_command is not None
        try:
            await self.on_command(device, payload, retained)
        except Exception:  # noqa: BLE001 - one bad command must not stop the uplink
            log.exception("command handler failed for device %s", device)

    def _outbox_replaced(self) -> None:
        """The outbox file was replaced: rows in flight belonged to the old one (their acks are ignored);
        send the new one from its first row."""
        self._forget_inflight()
        self.wake()

    # ---------------------------------------------------------------------------------- acks
    def _arm_flush(self) -> None:
        if self._loop is not None:
            self._flush_mark = self.outbox.acked_waiting[1]
            self._flush_handle = self._loop.call_later(_ACK_FLUSH_DELAY, self._flush_due)

    def _flush_due(self) -> None:
        """The fallback delete, unless a commit took the rows it was set for since: then the rows
        acknowledged after them wait for the next commit, with a delay of their own."""
        self._flush_handle = None
        waiting, deletes = self.outbox.acked_waiting
        if deletes == self._flush_mark:
            self._flush_acks()
        elif waiting:
            self._arm_flush()

    def _flush_acks(self) -> None:
        if self._flush_handle is not None:  # a delete now stands for the one that was due
            self._flush_handle.cancel()
            self._flush_handle = None
        if self.outbox.acked_waiting[0]:
            self.outbox.delete()  # those marked acknowledged that no commit has deleted yet
