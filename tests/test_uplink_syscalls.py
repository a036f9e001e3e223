"""A committed burst reaches the broker in few system calls, every message still delivered in order and
acknowledged.

paho wakes its network thread with a byte per publish, writes each packet with a send of its own and
reads a PUBACK in three recv calls; a gateway polling every second pays for each. Counted, not timed,
with a real mosquitto and a subscriber: the wake-up bytes, the sends and the recv calls of the uplink's
client per burst of messages.
"""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import Subscriber
from test_uplink import TOPICS, Running, config, telemetry, until

from agent.store import Outbox
from agent.uplink.connection import _Client

BURSTS = 5
ROWS = 10


class _CountingWake:
    """paho's wake-up socket (its write end), counting the bytes sent."""

    def __init__(self, sock) -> None:
        self.sock, self.sent = sock, 0

    def send(self, data: bytes) -> int:
        self.sent += 1
        return self.sock.send(data)

    def close(self) -> None:
        self.sock.close()


async def test_a_burst_is_one_wake_one_send_and_its_pubacks_few_reads(mosquitto, tmp_path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[int] = []
    recvs: list[int] = []
    send, recv = mqtt.Client._sock_send, mqtt.Client._sock_recv

    def counted_send(self, buf):
        n = send(self, buf)
        if isinstance(self, _Client):  # the uplink's client, not the subscriber's
            sends.append(n)
        return n

    def counted_recv(self, bufsize):
        data = recv(self, bufsize)
        if isinstance(self, _Client):
            recvs.append(len(data))
        return data

    monkeypatch.setattr(mqtt.Client, "_sock_send", counted_send)
    monkeypatch.setattr(mqtt.Client, "_sock_recv", counted_recv)
    sub = Subscriber(mosquitto, [TOPICS.telemetry("#")]).start()
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw1")
    wake: list[_CountingWake] = []  # (set once connected: paho makes the socket pair then)
    try:
        async with Running(config(mosquitto), outbox) as up:
            await until(lambda: up.connected and up._subscribed, what="connected and subscribed")
            client = up._client
            wake.append(_CountingWake(client._sockpairW))
            client._sockpairW = wake[0]
            await until(lambda: not client.want_write(), what="start-up packets out")
            base_sends, base_recvs = len(sends), len(recvs)
            for burst in range(BURSTS):
                outbox.append([telemetry(burst * ROWS + k, n=60) for k in range(ROWS)])
                up.wake()
                await until(lambda b=burst: up.stats().acked == (b + 1) * ROWS, what="burst acknowledged")
            burst_sends, burst_recvs, wakes = len(sends) - base_sends, len(recvs) - base_recvs, wake[0].sent
            assert outbox.unsent == 0
        got = sub.wait_for(BURSTS * ROWS)
        assert [m.json()["seq"] for m in got][:BURSTS * ROWS] == list(range(1, BURSTS * ROWS + 1))
    finally:
        sub.stop()
        outbox.close()
    # per burst of ten messages: one wake-up of the network thread (paho: ten), the ten messages in one
    # send (paho: ten; a second or third when the socket takes part of it), the ten PUBACKs in at most one
    # recv call each, one for all when they come together (paho: thirty, 1 + 1 + 2 bytes each)
    assert wakes <= BURSTS, wakes
    assert burst_sends <= 3 * BURSTS, sends[base_sends:]
    assert burst_recvs <= BURSTS * ROWS, recvs[base_recvs:]


def test_packets_read_ahead_are_handled_without_more_data_arriving() -> None:
    """The socket is read ahead of paho's packet parser: packets that came in one segment with the one
    paho asked for (here a command right behind the CONNACK) are handled at once, not left until the next
    packet wakes the thread (the keepalive's PINGRESP, minutes later)."""
    import socket
    import threading

    from agent.config.schema import MqttConfig, MqttProtocol
    from agent.uplink.connection import NetworkThread, make_client
    from agent.uplink.topics import Topics

    srv = socket.create_server(("127.0.0.1", 0))
    topic = TOPICS.command("meter1")
    body = len(topic).to_bytes(2, "big") + topic.encode() + b'{"op": "ping"}'

    def broker() -> None:  # CONNACK and a QoS 0 PUBLISH in one segment, then silence
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00" + bytes([0x30, len(body)]) + body)
            conn.recv(4096)  # until the client goes

    threading.Thread(target=broker, daemon=True).start()
    cfg = MqttConfig(host="127.0.0.1", port=srv.getsockname()[1], keepalive=600, protocol=MqttProtocol.V311)
    got: list[bytes] = []
    arrived = threading.Event()

    def new_client():
        client = make_client(cfg, gateway="gw1", topics=Topics("edge", "gw1"), now_ms=0)
        client.on_connect = lambda *a: setattr(net, "connack_ok", True)
        client.on_message = lambda c, u, msg: (got.append(bytes(msg.payload)), arrived.set())
        return client

    net = NetworkThread(cfg, new_client=new_client, on_failure=lambda reason: None, on_closed=lambda client: None)
    net.start()
    try:
        assert arrived.wait(60), "the command read with the CONNACK was not handled"
        assert got == [b'{"op": "ping"}']
    finally:
        net.stop()
        assert net.join(30)
        srv.close()


async def test_a_long_burst_is_sent_while_it_is_queued(mosquitto, tmp_path) -> None:
    """A pass that publishes many rows (a backlog after an outage) wakes the network thread every 16
    packets as well as at its end, so sending starts while the rest is still being queued; every row is
    delivered in order."""
    rows = 40
    sub = Subscriber(mosquitto, [TOPICS.telemetry("#")]).start()
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw1")
    try:
        async with Running(config(mosquitto), outbox) as up:
            await until(lambda: up.connected and up._subscribed, what="connected and subscribed")
            client = up._client
            wake = _CountingWake(client._sockpairW)
            client._sockpairW = wake
            await until(lambda: not client.want_write(), what="start-up packets out")
            outbox.append([telemetry(k) for k in range(rows)])
            up.wake()
            await until(lambda: up.stats().acked == rows, what="backlog acknowledged")
            wakes = wake.sent
        got = sub.wait_for(rows)
        assert [m.json()["seq"] for m in got][:rows] == list(range(1, rows + 1))
    finally:
        sub.stop()
        outbox.close()
    assert wakes == rows // 16 + 1, wakes  # after the 16th and the 32nd packet, and at the end


def test_bytes_read_ahead_on_a_closed_connection_never_reach_the_next() -> None:
    """Packets read ahead but not yet parsed when a connection drops (a PUBACK behind the packet that
    failed) belong to that connection: read on the next, before its CONNACK, a stale PUBACK would
    acknowledge a message the new session never received."""
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw1")
    old, old_peer = socket.socketpair()
    client._sock = old
    old_peer.sendall(bytes([0x40, 2, 0, 1, 0x40, 2, 0, 2]))  # two PUBACKs in one segment
    assert client._sock_recv(4) == bytes([0x40, 2, 0, 1])  # the second is read ahead, kept
    client._sock_close()  # the connection drops before it is parsed
    new, new_peer = socket.socketpair()
    client._sock = new
    new_peer.sendall(bytes([0x20, 2, 0, 0]))  # the new connection's CONNACK
    try:
        assert client._sock_recv(1) == bytes([0x20])
    finally:
        for s in (new, old_peer, new_peer):
            s.close()



class _EndlessBroker:
    """A socket the broker never stops writing to: QoS 0 PUBLISHes (commands), back to back, whose
    boundaries never meet a read's; ``reads`` counts the recv calls."""

    def __init__(self, packet: bytes, reads_max: int = 1000) -> None:
        self.packet, self.pos, self.reads, self.reads_max = packet, 0, 0, reads_max

    def recv(self, bufsize: int) -> bytes:
        self.reads += 1
        if self.reads > self.reads_max:
            return b""  # the connection ends: how a pass that never stopped would come back
        n = len(self.packet)
        data = (self.packet * (bufsize // n + 2))[self.pos % n:][:bufsize]
        self.pos += len(data)
        return data

    def close(self) -> None:
        pass


def test_a_flood_of_commands_does_not_hold_the_network_thread_in_one_read() -> None:
    """Reading ahead must not turn one pass of the network thread into an endless read: while the broker
    keeps sending (a flood of commands), a pass parses what it read and ends, so the thread goes on to
    write what the gateway publishes, its PUBACKs and its keepalive."""
    topic = TOPICS.command("meter1").encode()
    body = len(topic).to_bytes(2, "big") + topic
    body += b"x" * (125 - len(body))  # 127-byte packets: a read's end meets a boundary only every 127 reads
    sock = _EndlessBroker(bytes([0x30, len(body)]) + body)
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw1")
    client._sock = sock
    assert client.loop_read() == mqtt.MQTT_ERR_SUCCESS
    assert sock.reads == 1, f"one pass read the socket {sock.reads} times"


class _Wire:
    """A socket that takes everything sent at once; ``sends`` the size of each send."""

    def __init__(self) -> None:
        self.sends: list[int] = []
        self.data = bytearray()

    def send(self, data: bytes) -> int:
        self.sends.append(len(data))
        self.data += data
        return len(data)

    def close(self) -> None:
        pass


def test_a_backlog_goes_out_in_sends_of_64_kib_in_order() -> None:
    """A drain's queue (300 QoS 1 PUBLISHes of 400 bytes, 120 kB) goes out in as few sends as 64 KiB
    allow, every byte in order, not one send a packet after the first 64 KiB."""
    client = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw1")
    client.on_socket_register_write = lambda *a: None  # queued for the network thread, as the uplink's are
    wire = _Wire()
    client._sock = wire
    packets = [bytes([0x32, 0x8E, 0x03]) + k.to_bytes(2, "big") * 199 for k in range(300)]
    for mid, p in enumerate(packets, 1):
        client._packet_queue(mqtt.PUBLISH, p, mid, 1)
    assert client.loop_write() == mqtt.MQTT_ERR_SUCCESS
    assert bytes(wire.data) == b"".join(packets)
    assert len(wire.sends) == 2 and max(wire.sends) <= 65536, wire.sends
