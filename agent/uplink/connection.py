"""The MQTT connection: a paho client factory and the network thread that owns the socket.

A fresh paho client is built for every connection attempt, so nothing paho queued on a dead
connection is ever resent behind the uplink's back: the outbox is the only source of truth.
Only the network thread does socket I/O. ``publish()`` from the asyncio thread just queues the packet
and wakes that thread (paho's external-loop hooks are set to no-ops so it never writes itself).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agent.config.core import MqttProtocol
from agent.uplink.topics import Topics

if TYPE_CHECKING:
    from agent.config.schema import MqttConfig

log = logging.getLogger("edge_agent.uplink")
# The longest the network thread sleeps in paho's loop with nothing to read or write (publishes and
# arriving packets wake it at once): paho checks the keepalive after each pass, so the PINGREQ goes at
# most this late (a quarter of the keepalive at most, well inside the broker's 1.5 keepalives).
LOOP_IDLE_S = 5.0
_READ_SIZE = 65536  # bytes read from the broker's socket at once
_WRITE_MAX = 65536  # bytes of queued packets joined into one send
_WAKE_EVERY = 16  # packets queued in one burst per wake-up of the network thread


def loop_timeout(client: mqtt.Client) -> float:
    """How long one pass of paho's loop may sleep: a quarter of the keepalive in force, which an MQTT 5
    broker may set shorter than the configured one in its CONNACK (Server Keep Alive)."""
    return min(LOOP_IDLE_S, client.keepalive / 4) if client.keepalive > 0 else LOOP_IDLE_S


def status_body(gateway: str, state: str, ts_ms: int) -> bytes:
    return orjson.dumps({"v": 1, "gateway": gateway, "state": state, "ts": ts_ms})


_PUBACK_OK = ReasonCode(PacketTypes.PUBACK)  # "Success", as paho reports a PUBACK of two bytes
# the MQTT 5 PUBACK reason codes of an accepted message, as paho reports them ("No matching
# subscribers": an MQTT 5 broker's answer when nobody subscribes to the topic)
_PUBACK_ACCEPTED = {0x00: _PUBACK_OK, 0x10: ReasonCode(PacketTypes.PUBACK, identifier=0x10)}
_NO_PROPERTIES = Properties(PacketTypes.PUBACK)


class _Client(mqtt.Client):
    """paho's client, but a PUBACK that accepts the message without properties (the message id alone:
    MQTT 3.1.1, and MQTT 5's success; or MQTT 5's id and an accepting reason code, with or without an
    empty property length) reaches ``on_publish`` without paho building a new ReasonCode and Properties
    object for it (~17 of the ~20 us paho spends per PUBACK): shared ones equal to those it would have
    built are passed instead. Anything else (an MQTT 5 refusal or properties, PUBCOMP, a malformed
    packet) takes paho's own path. This leans on paho 2.x internals: tests/test_uplink_puback.py
    compares what ``on_publish`` gets with paho's own client on a real broker."""

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        n = len(packet)
        # the message id alone, or (MQTT 5) the id and a reason code, with or without an empty property length
        plain = n == 2 or (self._protocol == mqtt.MQTTv5 and (n == 3 or (n == 4 and packet[3] == 0)))
        if cmd != "PUBACK" or not plain:
            return super()._handle_pubackcomp(cmd)
        reason = _PUBACK_ACCEPTED.get(packet[2] if n > 2 else 0)
        if reason is None:  # a refusal: paho's own path
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:  # (once per message, as paho does)
                return self._do_on_publish(mid, reason, _NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- a burst in few system calls. paho wakes its network thread with a byte per publish, writes each
    # packet with a send of its own and reads a packet in three recv calls (a PUBACK: 1 + 1 + 2 bytes).
    # Here publishes queued under one_wake() wake it once per _WAKE_EVERY packets and at the end (a long
    # burst, a backlog drain, is sent while the rest is queued), the packets queued go out in one send (up
    # to _WRITE_MAX bytes) and the socket is read _READ_SIZE bytes at a time.
    _held_by: int | None = None  # the thread queuing under one_wake(), whose publishes do not wake
    _wake_owed = 0  # packets queued under one_wake() since the network thread was last woken
    _rbuf = b""  # read from the socket, not yet taken by paho
    _rpos = 0
    _buffered_only = False  # parsing what was read ahead: no more reads of the socket

    @contextlib.contextmanager
    def one_wake(self) -> Iterator[None]:
        """Publishes inside wake the network thread at the end, and once per _WAKE_EVERY, not once each
        (loop thread)."""
        self._held_by = threading.get_ident()
        try:
            yield
        finally:
            self._held_by = None
            if self._wake_owed:
                self._wake()

    def _wake(self) -> None:
        self._wake_owed = 0
        if (wake := self._sockpairW) is not None:
            with contextlib.suppress(OSError):
                wake.send(b"0")

    def _packet_queue(self, command: int, packet: bytes, mid: int, qos: int, info: Any = None) -> MQTTErrorCode:
        if self._held_by is None or self._held_by != threading.get_ident():
            return super()._packet_queue(command, packet, mid, qos, info)
        # as paho queues it (its external-loop hooks are no-ops here), the wake-up left to one_wake()
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                                 "packet": packet, "info": info})
        self._wake_owed += 1
        if self._wake_owed >= _WAKE_EVERY:
            self._wake()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        out = self._out_packet
        if len(out) > 1:  # (network thread: the only one taking packets; others append on the right)
            joined: list[list[bytes]] = [[]]
            size = 0
            while out:
                head = out[0]
                kind = head["command"] & 0xF0
                if (kind == mqtt.PUBLISH and head["qos"] == 0) or kind == mqtt.DISCONNECT:
                    break  # paho acts once these are written: each goes alone
                data = head["packet"][head["pos"]:] if head["pos"] else head["packet"]
                if joined[-1] and size + len(data) > _WRITE_MAX:
                    joined.append([])
                    size = 0
                joined[-1].append(data)
                size += len(data)
                out.popleft()
            for parts in reversed(joined):  # each a packet of the ones taken, nothing to do once written
                if parts:
                    packet = parts[0] if len(parts) == 1 else b"".join(parts)
                    out.appendleft({"command": mqtt.PUBLISH, "mid": 0, "qos": 1, "pos": 0,
                                    "to_process": len(packet), "packet": packet, "info": None})
        return super()._packet_write()

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            if self._buffered_only:  # the rest waits in the socket, where select() sees it
                raise BlockingIOError
            buf = super()._sock_recv(_READ_SIZE)  # BlockingIOError when there is nothing; b"" at the end
            if not buf:
                return buf
            self._rbuf, pos = buf, 0
        self._rpos = pos + bufsize
        return buf[pos:pos + bufsize]

    def _sock_close(self) -> None:
        # what was read ahead belongs to the connection closing: a new one starts from its own bytes
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho reads at most a packet per message in flight; what is left read is parsed now, since select()
        # cannot see it, and only that (a broker that keeps sending must not hold the pass for good)
        rc = super().loop_read(max_packets)
        self._buffered_only = True
        try:
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock is not None:
                rc = super().loop_read(max_packets)
        finally:
            self._buffered_only = False
        return rc


def one_wake(client: mqtt.Client | None) -> contextlib.AbstractContextManager:
    """:meth:`_Client.one_wake` for the uplink's clients; nothing for another (a test's paho client)."""
    return client.one_wake() if isinstance(client, _Client) else contextlib.nullcontext()


def make_client(cfg: MqttConfig, *, gateway: str, topics: Topics, now_ms: int) -> mqtt.Client:
    """A configured, unconnected paho client: protocol, TLS, credentials, LWT, in-flight limits."""
    v5 = cfg.protocol == MqttProtocol.V5
    client = _Client(
        CallbackAPIVersion.VERSION2,
        client_id=cfg.client_id or f"edge-agent-{gateway}",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else True,
        reconnect_on_failure=False,
    )
    if cfg.tls is not None and cfg.tls.enabled:
        import ssl  # only with TLS: a plain-text agent never loads OpenSSL (agent.cli.without_ssl)

        # Verification is always on: CERT_REQUIRED and hostname checking (system CAs when no ca_file).
        client.tls_set(
            ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
            certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
            keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(False)
    if cfg.username is not None:
        password = cfg.password.get_secret_value() if cfg.password is not None else None
        client.username_pw_set(cfg.username, password)
    # LWT: "ts" is when the connection that died was opened (the broker cannot stamp the death).
    client.will_set(topics.status, status_body(gateway, "offline", now_ms), qos=1, retain=True)
    # Our window is cfg.max_inflight; paho's queue limit matches it, so a QoS 1 status message taking a
    # slot makes publish() return an error instead of queueing silently (the uplink keeps the row).
    # paho's own in-flight limit is off (0): with one set, every PUBACK scans all messages in flight
    # for one to release (O(window) per PUBACK), and with the queue limit equal to it none ever waits.
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(cfg.max_inflight)
    client.connect_timeout = 10.0
    # External-loop hooks: publish() from the asyncio thread must not write to the socket itself.
    client.on_socket_register_write = _noop
    client.on_socket_unregister_write = _noop
    return client


def _noop(*_: Any) -> None:
    return None


def quick_acks(sock: Any) -> Callable[[], None]:
    """A call that makes the kernel acknowledge what was read from ``sock`` at once (Linux TCP_QUICKACK;
    elsewhere a no-op). Brokers leave Nagle on (mosquitto's ``set_tcp_nodelay`` is off by default): a
    PUBACK waits until our ACK of the previous one arrives, and once we have nothing more to publish that
    ACK is delayed by 40 ms or more, so the last PUBACKs of every burst (the end of a backlog drain) came
    40 ms late. The flag is not sticky, so it is set again after each read."""
    opt = getattr(socket, "TCP_QUICKACK", None)
    if opt is None or sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return _noop

    def ack_now() -> None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, opt, 1)

    return ack_now


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class NetworkThread:
    """Connects, runs paho's loop until the connection ends, waits a jittered backoff, repeats.

    With several broker nodes (``mqtt.hosts``) a failed or lost connection moves to the next node; the
    backoff applies once every node of a round has failed.

    ``new_client()`` builds a client with its callbacks wired; ``on_failure(reason)`` is called (in this
    thread) when a connection attempt fails before CONNACK; ``on_closed(client)`` when a connection ends;
    ``after_pass()`` after each pass of paho's loop (what its callbacks queued goes to the asyncio loop).
    """

    def __init__(self, cfg: MqttConfig, *, new_client: Callable[[], mqtt.Client],
                 on_failure: Callable[[str], None], on_closed: Callable[[mqtt.Client], None],
                 after_pass: Callable[[], None] = lambda: None):
        self.cfg = cfg
        self._new_client = new_client
        self._after_pass = after_pass
        self._on_failure = on_failure
        self._on_closed = on_closed
        self.halt = threading.Event()
        self.connack_ok = False  # set by the uplink's on_connect (in this thread) on success
        self.refused = False  # set by the uplink's on_connect when the CONNACK is a refusal
        self._node = 0  # index into cfg.endpoints
        self._client: mqtt.Client | None = None  # the client of the connection under way
        self._thread = threading.Thread(target=self._run, name="mqtt-net", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (from any thread): it leaves paho's loop at once, not at its timeout."""
        self.halt.set()
        wake = getattr(self._client, "_sockpairW", None)  # (paho's own way out of select: publish() uses it)
        if wake is not None:
            with contextlib.suppress(OSError):
                wake.send(b"\0")

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        cfg = self.cfg
        nodes = cfg.endpoints
        failed_in_round = 0  # nodes that failed one after the other: the backoff grows once all have
        delay, longest = cfg.reconnect_min, max(cfg.reconnect_min, cfg.reconnect_max)
        while not self.halt.is_set():
            self.connack_ok = self.refused = False
            host, port = self.endpoint
            try:
                client = self._client = self._new_client()
                client.connect(host, port, keepalive=cfg.keepalive)
            except Exception as e:  # noqa: BLE001 - DNS, refused, TLS verification, bad key file ...
                self._on_failure(describe(e))
            else:
                rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                ack_now = quick_acks(client.socket())
                while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and not self.halt.is_set():
                    rc = client.loop(timeout=loop_timeout(client))
                    self._after_pass()
                    ack_now()
                if self.halt.is_set() and (sock := client.socket()) is not None:
                    # no DISCONNECT here: unless the uplink said goodbye, the broker sends the will
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
                if not (self.connack_ok or self.refused or self.halt.is_set()):
                    self._on_failure(f"connection closed before CONNACK ({mqtt.error_string(rc)})")
                self._on_closed(client)
            if self.connack_ok:
                delay, failed_in_round = cfg.reconnect_min, 0
            else:
                failed_in_round += 1
            if self.halt.is_set():
                break
            if len(nodes) > 1:  # a cluster: the next node, at once while some node of this round is untried
                self._node = (self._node + 1) % len(nodes)
                if 0 < failed_in_round < len(nodes):
                    self.halt.wait(min(cfg.reconnect_min, 0.1))
                    continue
                failed_in_round = 0
            wait = max(cfg.reconnect_min, delay * random.uniform(0.5, 1.0))
            delay = min(longest, delay * 2)
            self.halt.wait(wait)

    @property
    def endpoint(self) -> tuple[str, int]:
        """The broker node connected (or tried) now."""
        return self.cfg.endpoints[self._node % len(self.cfg.endpoints)]
