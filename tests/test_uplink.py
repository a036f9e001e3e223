"""Uplink against a real mosquitto: ordered delivery, outages, crashes, in-flight window, status, commands."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.config.schema import MqttConfig, MqttProtocol
from agent.store import Outbox, Pending, Priority
from agent.uplink import mqtt as uplink_mqtt
from agent.uplink.mqtt import Uplink
from agent.uplink.topics import Topics

GW = "gw1"
TOPICS = Topics("edge", GW)


def telemetry(i: int, n: int = 3) -> Pending:
    readings = [{"ts": 1_700_000_000_000 + i, "metric": f"m{k}", "value": float(i), "unit": "W", "q": 0}
                for k in range(n)]
    return Pending(Priority.RAW, TOPICS.telemetry("meter1"), {"v": 1, "device": "meter1", "readings": readings}, n)


def config(broker, **kw) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, reconnect_min=0.05, reconnect_max=0.5, **kw)


async def until(pred: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


class Running:
    """An uplink running as a task; ``async with`` stops it cleanly."""

    def __init__(self, cfg: MqttConfig, outbox: Outbox, **kw):
        self.uplink = Uplink(cfg, GW, outbox, **kw)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> Uplink:
        self.task = asyncio.create_task(self.uplink.run())
        return self.uplink

    async def __aexit__(self, *exc: object) -> None:
        await self.uplink.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


@pytest.fixture
def outbox(tmp_path: Path):
    ob = Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway=GW)
    yield ob
    ob.close()


def seqs_of(msgs) -> list[int]:
    return [m.json()["seq"] for m in msgs if "/telemetry/" in m.topic]


def assert_complete_in_order(msgs, n: int) -> None:
    """Every seq 1..n arrived; first arrivals are in order; duplicates are byte-identical."""
    first: dict[int, bytes] = {}
    order: list[int] = []
    for m in msgs:
        if "/telemetry/" not in m.topic:
            continue
        s = m.json()["seq"]
        if s in first:
            assert first[s] == m.payload, f"duplicate seq {s} with different content"
        else:
            first[s] = m.payload
            order.append(s)
    assert sorted(first) == list(range(1, n + 1)), f"missing: {sorted(set(range(1, n + 1)) - set(first))[:20]}"
    assert order == sorted(order), "first arrivals out of order"


class StepClock:
    """Wall time as usual; monotonic time only moves when the test says so (for rate figures)."""

    def __init__(self) -> None:
        self.mono = 1000.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return self.mono


async def test_every_row_delivered_in_order_with_seq_and_deleted(mosquitto, mqtt_subscriber, outbox) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    clock = StepClock()
    async with Running(config(mosquitto, max_inflight=50), outbox, clock=clock) as up:
        for i in range(0, 600, 60):
            outbox.append([telemetry(i + k) for k in range(60)])
            up.wake()
            await asyncio.sleep(0.005)
        msgs = await asyncio.to_thread(sub.wait_for, 600, 60)
        await until(lambda: outbox.stats().depth == 0, what="outbox drained")
        clock.mono += 2.0
        st = up.stats()
        clock.mono += 0.5
        assert up.stats().msgs_per_s == 300  # a call within the second keeps the last interval's rate
        clock.mono += 1.0
        assert up.stats().msgs_per_s == 0  # nothing acknowledged since
    assert seqs_of(msgs) == list(range(1, 601))  # no broker restart: exactly once, in order
    body = msgs[10].json()
    assert body["gateway"] == GW and body["device"] == "meter1" and len(body["readings"]) == 3
    assert st.acked == 600 and st.published == 600 and st.connected and st.inflight == 0
    assert st.msgs_per_s == 300 and st.readings_per_s == 900  # 600 messages x 3 readings in 2 s


async def test_backlog_from_before_start_is_sent_oldest_first(mosquitto, mqtt_subscriber, outbox) -> None:
    outbox.append([telemetry(i) for i in range(300)])
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    async with Running(config(mosquitto), outbox):
        msgs = await asyncio.to_thread(sub.wait_for, 300, 60)
    assert seqs_of(msgs) == list(range(1, 301))


async def test_broker_restarts_mid_stream_lose_nothing(mosquitto_factory, mqtt_subscriber, outbox) -> None:
    broker = mosquitto_factory(persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", persistent=True)
    total = 0

    async def produce(n: int) -> None:
        nonlocal total
        for _ in range(n):
            outbox.append([telemetry(total + k) for k in range(10)])
            total += 10
            up.wake()
            await asyncio.sleep(0.01)

    async with Running(config(broker, max_inflight=20), outbox) as up:
        for _ in range(3):
            await until(lambda: up.stats().connected, what="connected")
            await produce(15)  # streaming while connected, then the broker goes away mid-stream
            await asyncio.to_thread(broker.stop)
            await produce(10)  # appended while the broker is down
            await asyncio.to_thread(broker.start)
        await produce(10)
        await until(lambda: outbox.stats().depth == 0 and up.stats().connected, 60, "outbox drained")
        # wait until every seq arrived (duplicates make the count larger)
        await until(lambda: len(set(seqs_of(sub.snapshot()))) == total, 60, "all seqs")
        st = up.stats()
    msgs = sub.snapshot()
    assert_complete_in_order(msgs, total)
    assert st.reconnects >= 3


async def test_unacked_rows_are_redelivered_after_restart(mosquitto, mqtt_subscriber, tmp_path) -> None:
    path = tmp_path / "o.db"
    ob = Outbox(path, max_bytes=8 * 1024 * 1024, gateway=GW)
    ob.append([telemetry(i) for i in range(50)])
    mosquitto.stop()  # nothing can be acknowledged
    async with Running(config(mosquitto), ob) as up:
        await until(lambda: up.stats().connect_failures >= 1, what="a failed connect")
        assert not up.stats().connected
    ob.close()  # the "crash": nothing was acked
    mosquitto.start()
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    ob = Outbox(path, max_bytes=8 * 1024 * 1024, gateway=GW)
    try:
        assert ob.stats().depth == 50
        async with Running(config(mosquitto), ob):
            msgs = await asyncio.to_thread(sub.wait_for, 50, 60)
            await until(lambda: ob.stats().depth == 0, what="drained")
        assert seqs_of(msgs) == list(range(1, 51))
    finally:
        ob.close()


AGENT = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from agent.config.schema import MqttConfig
    from agent.store import Outbox, Pending, Priority
    from agent.uplink.mqtt import Uplink

    async def main():
        ob = Outbox(Path(sys.argv[1]), max_bytes=8 * 1024 * 1024, gateway="gw1")
        up = Uplink(MqttConfig(host="127.0.0.1", port=int(sys.argv[2]), max_inflight=20), "gw1", ob)
        task = asyncio.create_task(up.run())
        for i in range(10_000):
            ob.append([Pending(Priority.RAW, "edge/gw1/telemetry/m", {"v": 1, "readings": [{"metric": "x"}]})])
            up.wake()
            print(i + 1, flush=True)
            await asyncio.sleep(0.002)
        await task

    asyncio.run(main())
""")


async def test_kill_9_mid_stream_then_restart_delivers_everything(mosquitto, mqtt_subscriber, tmp_path) -> None:
    path = tmp_path / "o.db"
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    proc = subprocess.Popen([sys.executable, "-c", AGENT, str(path), str(mosquitto.port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        committed = 0
        while committed < 400:
            committed = int(await asyncio.to_thread(proc.stdout.readline))
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    seen_before = len(sub.snapshot())
    ob = Outbox(path, max_bytes=8 * 1024 * 1024, gateway=GW)
    try:
        total = ob.stats().last_seq
        assert total >= committed
        async with Running(config(mosquitto), ob):
            await until(lambda: len(set(seqs_of(sub.snapshot()))) == total, 60, "all seqs after restart")
            await until(lambda: ob.stats().depth == 0, what="drained")
    finally:
        ob.close()
    assert seen_before > 0
    assert_complete_in_order(sub.snapshot(), total)


async def test_inflight_window_is_honoured(mosquitto, mqtt_subscriber, outbox) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    async with Running(config(mosquitto, max_inflight=7, keepalive=60), outbox) as up:
        await until(lambda: up.stats().connected, what="connected")
        os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # the broker stops acknowledging
        try:
            outbox.append([telemetry(i) for i in range(100)])
            up.wake()
            await until(lambda: up.stats().inflight == 7, what="window full")
            await asyncio.sleep(0.3)  # and it stays at the window
            st = up.stats()
            assert (st.inflight, st.published, st.acked) == (7, 7, 0)
            assert outbox.stats().depth == 100
        finally:
            os.kill(mosquitto.proc.pid, signal.SIGCONT)
        msgs = await asyncio.to_thread(sub.wait_for, 100, 60)
        await until(lambda: outbox.stats().depth == 0, what="drained")
        assert up.stats().inflight == 0
    assert seqs_of(msgs) == list(range(1, 101))


async def test_publish_errors_keep_rows_and_order(mosquitto, mqtt_subscriber, outbox) -> None:
    # Window of 1: the QoS 1 birth message and the QoS 1 transient messages take paho's only slot,
    # so outbox publishes get an error rc now and then; those rows must be retried, in order.
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    async with Running(config(mosquitto, max_inflight=1), outbox) as up:
        for i in range(0, 200, 20):
            outbox.append([telemetry(i + k) for k in range(20)])
            up.wake()
            for _ in range(3):
                up.publish_transient(TOPICS.health, {"v": 1, "x": i}, qos=1)
                await asyncio.sleep(0.002)
        msgs = await asyncio.to_thread(sub.wait_for, 200, 60)
        await until(lambda: outbox.stats().depth == 0, what="drained")
        st = up.stats()
    assert st.publish_errors > 0
    assert seqs_of(msgs) == list(range(1, 201))


async def test_status_birth_lwt_and_clean_stop(mosquitto, mqtt_subscriber, outbox) -> None:
    status = mqtt_subscriber(mosquitto, TOPICS.status)
    running = Running(config(mosquitto).model_copy(update={"reconnect_min": 3.0, "reconnect_max": 3.0}), outbox)
    async with running as up:
        m = await asyncio.to_thread(status.wait_for, 1, 60)
        assert m[0].json()["state"] == "online" and m[0].json()["gateway"] == GW
        # kill the socket under the client: the broker publishes the will
        client = up._client
        assert client is not None
        client.socket().shutdown(socket.SHUT_RDWR)
        msgs = await asyncio.to_thread(status.wait_for, 2, 60)
        assert msgs[1].json()["state"] == "offline"
        late = mqtt_subscriber(mosquitto, TOPICS.status)  # a newcomer sees the retained offline
        got = await asyncio.to_thread(late.wait_for, 1, 60)
        assert got[0].retain and got[0].json()["state"] == "offline"
        await until(lambda: up.stats().connected, what="reconnect")  # after ~3 s backoff
        msgs = await asyncio.to_thread(status.wait_for, 3, 60)
        assert msgs[2].json()["state"] == "online"
        assert up.stats().reconnects == 1
    msgs = await asyncio.to_thread(status.wait_for, 4, 60)
    assert msgs[3].json()["state"] == "offline"  # clean stop publishes offline itself
    later = mqtt_subscriber(mosquitto, TOPICS.status)
    got = await asyncio.to_thread(later.wait_for, 1, 60)
    assert got[0].retain and got[0].json()["state"] == "offline"


async def test_commands_reach_on_command(mosquitto, outbox) -> None:
    import paho.mqtt.publish as publish

    received: list[tuple[str, bytes]] = []
    retained: list[tuple[str, bytes]] = []

    async def on_command(device: str, payload: bytes, is_retained: bool) -> None:
        (retained if is_retained else received).append((device, payload))

    # a retained command is stale: it is handed over flagged, for a refusal, and never as a live one
    publish.single(TOPICS.command("old"), b'{"x":1}', qos=1, retain=True, hostname=mosquitto.host,
                   port=mosquitto.port)
    async with Running(config(mosquitto), outbox, on_command=on_command) as up:
        await until(lambda: up.stats().commands_subscribed, what="subscribed")
        for topic, body in [(TOPICS.command("charger1"), b'{"action":"stop"}'),
                            (TOPICS.command_result("charger1"), b'{"not":"a command"}'),
                            (TOPICS.command("meter2"), b'{"action":"x"}')]:
            await asyncio.to_thread(publish.single, topic, body, qos=1, hostname=mosquitto.host,
                                    port=mosquitto.port)
        await until(lambda: len(received) == 2, what="two commands")
        await asyncio.sleep(0.2)
    assert received == [("charger1", b'{"action":"stop"}'), ("meter2", b'{"action":"x"}')]
    assert retained == [("old", b'{"x":1}')]


async def test_transient_publish_is_not_stored(mosquitto, mqtt_subscriber, outbox) -> None:
    sub = mqtt_subscriber(mosquitto, TOPICS.health)
    async with Running(config(mosquitto), outbox) as up:
        assert up.publish_transient(TOPICS.health, {"v": 1}) is False  # not connected yet
        await until(lambda: up.stats().connected, what="connected")
        assert up.publish_transient(TOPICS.health, {"v": 1, "ok": True})
        got = await asyncio.to_thread(sub.wait_for, 1, 60)
    assert got[0].json() == {"v": 1, "ok": True}
    assert outbox.stats().last_seq == 0


async def test_row_is_deleted_only_after_puback_and_resent_after_reconnect(
        mosquitto, mqtt_subscriber, tcp_proxy, outbox) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw1/telemetry/#")
    proxy = tcp_proxy(mosquitto.host, mosquitto.port)
    cfg = MqttConfig(host=proxy.host, port=proxy.port, max_inflight=10, reconnect_min=0.05, reconnect_max=0.2)
    async with Running(cfg, outbox) as up:
        await until(lambda: up.stats().connected, what="connected")
        # 1. PUBACKs are lost: the broker delivers, but nothing may leave the outbox
        proxy.drop_down = True
        outbox.append([telemetry(i) for i in range(30)])
        up.wake()
        await asyncio.to_thread(sub.wait_for, 10, 60)
        await asyncio.sleep(0.3)
        assert up.stats().inflight == 10 and up.stats().acked == 0
        assert outbox.stats().depth == 30
        # 2. the connection drops: everything unacked is sent again from the oldest row
        proxy.drop_down = False
        proxy.cut()
        await until(lambda: outbox.stats().depth == 0, what="drained after reconnect")
        # 3. publishes vanish on the way to the broker, then the connection drops
        proxy.drop_up = True
        outbox.append([telemetry(30 + i) for i in range(20)])
        up.wake()
        await asyncio.sleep(0.3)
        assert outbox.stats().depth == 20
        proxy.drop_up = False
        proxy.cut()
        await until(lambda: outbox.stats().depth == 0, what="drained after second reconnect")
        await until(lambda: len(set(seqs_of(sub.snapshot()))) == 50, what="all 50 seqs")
    msgs = sub.snapshot()
    assert_complete_in_order(msgs, 50)
    assert len(seqs_of(msgs)) > 50  # the first ten were delivered twice, with the same seq


async def test_stop_with_a_hung_broker_still_leaves_offline_retained(mosquitto, mqtt_subscriber, outbox) -> None:
    status = mqtt_subscriber(mosquitto, TOPICS.status)
    running = Running(config(mosquitto, max_inflight=3, keepalive=60), outbox)
    async with running as up:
        await asyncio.to_thread(status.wait_for, 1, 60)  # online
        await until(lambda: up.stats().inflight == 0, what="birth settled")
        os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # no more acks: the window stays full
        outbox.append([telemetry(i) for i in range(20)])
        up.wake()
        await until(lambda: up.stats().inflight == 3, what="window full")
        try:
            await up.stop(timeout=0.5)
        finally:
            os.kill(mosquitto.proc.pid, signal.SIGCONT)
    later = mqtt_subscriber(mosquitto, TOPICS.status)
    await until(lambda: any(m.retain and m.json()["state"] == "offline" for m in later.snapshot()),
                what="retained offline")
    assert outbox.stats().depth == 20  # nothing was acknowledged: every row stays for the next run


ACL_DENY = """topic read edge/#
topic write edge/gw1/status
topic write edge/gw1/telemetry/meter1
topic readwrite edge/gw1/cmd/#
"""


async def test_mqtt5_rejected_publish_keeps_the_row_until_the_broker_accepts_it(
        mosquitto_factory, mqtt_subscriber, outbox, tcp_proxy) -> None:
    broker = mosquitto_factory(acl=ACL_DENY, persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", persistent=True)  # survives the broker restart
    # mosquitto with an acl_file queues nothing for a restored session until its client is back:
    # the uplink's way in is held across the restart until the subscriber has subscribed again
    proxy = tcp_proxy(broker.host, broker.port)
    blocked = Pending(Priority.RAW, TOPICS.telemetry("meter9"), {"v": 1, "device": "meter9", "readings": []})
    outbox.append([telemetry(0), telemetry(1), blocked, telemetry(3)])
    async with Running(config(proxy, protocol=MqttProtocol.V5), outbox) as up:
        await until(lambda: up.stats().nacks >= 2, what="repeated negative PUBACKs")
        assert "Not authorized" in (up.stats().last_error or "")
        await until(lambda: [r.seq for r in outbox.peek(10)] == [3], what="only the refused row left")
        # the operator fixes the broker's ACL: the held row and everything after it goes out, in order
        broker.acl_path.write_text("topic readwrite #\n")
        proxy.hold()
        sub.expect_resubscribe()
        await asyncio.to_thread(broker.restart)
        await asyncio.to_thread(sub.wait_subscribed)
        proxy.release()
        await until(lambda: outbox.stats().depth == 0, what="drained after ACL fix")
        await until(lambda: {1, 2, 3, 4} <= set(seqs_of(sub.snapshot())), what="seqs 1 to 4")
    seqs = seqs_of(sub.snapshot())
    assert sorted(set(seqs)) == [1, 2, 3, 4]
    # rows published behind the refused one (inside the window) may overtake it; never lost
    assert seqs[:2] == [1, 2] and seqs.count(3) == 1



async def test_while_commits_keep_coming_the_fallback_delete_never_wakes_the_loop(mosquitto, outbox, monkeypatch) -> None:
    """A gateway committing again and again: each commit takes the rows acknowledged before it, so the
    fallback delete has nothing left to do and no timer of it may stay armed (each firing would be a
    wake-up of an idle gateway). Counted: the fallback's timers still armed after each commit."""
    monkeypatch.setattr(uplink_mqtt, "_ACK_FLUSH_DELAY", 3600.0)  # armed, never due within the test
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []
    call_at = loop.call_at

    def recording_call_at(when, callback, *args, **kw):
        handle = call_at(when, callback, *args, **kw)
        if getattr(callback, "__qualname__", "") == "Uplink._flush_due":
            timers.append(handle)
        return handle

    monkeypatch.setattr(loop, "call_at", recording_call_at)
    async with Running(config(mosquitto), outbox) as up:
        for i in range(6):
            outbox.append([telemetry(i)])  # the commit (it deletes the rows acknowledged so far)
            up.wake()
            assert [h for h in timers if not h.cancelled()] == [], f"a fallback delete still armed after commit {i}"
            await until(lambda: outbox.acked_waiting[0] == 1, what=f"row {i} acknowledged")
            assert len([h for h in timers if not h.cancelled()]) == 1  # the acknowledgement armed it
        monkeypatch.setattr(uplink_mqtt, "_ACK_FLUSH_DELAY", 0.05)  # a last commit, then none: the fallback
        outbox.append([telemetry(6)])
        up.wake()
        await until(lambda: outbox.stats().depth == 0 and outbox.acked_waiting[0] == 0,
                    what="the fallback delete after the last commit")
        assert outbox.db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


async def test_acked_rows_ride_on_a_steady_trickle_of_commits_and_the_fallback_deletes_when_they_stop(
        mosquitto, outbox, monkeypatch) -> None:
    """A gateway polling every second commits once a second: each commit deletes the rows acknowledged
    before it. The fallback delete, set when the first acknowledgements came, finds that a commit took
    them and waits again for the ones acknowledged since, instead of deleting them in a transaction of
    its own (an fsync more per cycle); once the commits stop, it deletes them."""
    monkeypatch.setattr(uplink_mqtt, "_ACK_FLUSH_DELAY", 3.0)
    own: list[int] = []  # rows deleted outside a commit
    delete = outbox.delete

    def counted_delete(rowids=()) -> int:
        n = delete(rowids)
        if n:
            own.append(n)
        return n

    monkeypatch.setattr(outbox, "delete", counted_delete)
    async with Running(config(mosquitto), outbox) as up:
        for i in range(16):  # a commit every 0.5 s for 8 s: more than two of the fallback's delays
            outbox.append([telemetry(i)])
            up.wake()
            await asyncio.sleep(0.5)
        assert own == [], "acknowledged rows were deleted in a transaction of their own while commits kept coming"
        await until(lambda: outbox.acked_waiting[0] == 0, what="the fallback delete after the last commit")
        assert own == [1] and outbox.stats().depth == 0
        assert outbox.db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_an_idle_connection_does_not_wake_the_network_thread(mosquitto) -> None:
    """Connected, with nothing to publish and nothing arriving, paho's loop sleeps until a packet comes
    or the keepalive needs it (a quarter of it, 5 s at most), not every half second: each pass is a
    wake-up of a thread that takes the GIL. Counted: the sleeps asked of paho's loop once connected."""
    import threading

    from agent.uplink.connection import LOOP_IDLE_S, NetworkThread, make_client

    cfg = config(mosquitto)
    connected, timeouts = threading.Event(), []

    def new_client():
        client = make_client(cfg, gateway=GW, topics=Topics("edge", GW), now_ms=0)
        loop = client.loop
        client.loop = lambda timeout: (timeouts.append(timeout), loop(timeout))[1]
        client.on_connect = lambda *a: (setattr(net, "connack_ok", True), connected.set())
        return client

    net = NetworkThread(cfg, new_client=new_client, on_failure=lambda reason: None, on_closed=lambda client: None)
    net.start()
    try:
        assert connected.wait(60)
        deadline = time.monotonic() + 60
        while len(timeouts) < 3 and time.monotonic() < deadline:  # passes after the CONNACK's
            time.sleep(0.05)
        assert len(timeouts) >= 3 and set(timeouts) == {min(LOOP_IDLE_S, cfg.keepalive / 4)}, timeouts
    finally:
        net.stop()
        assert net.join(30)


def test_the_network_thread_sleeps_no_longer_than_the_keepalive_the_broker_sets() -> None:
    """An MQTT 5 broker may impose a shorter keepalive in its CONNACK (Server Keep Alive; EMQX, HiveMQ)
    and cut a client silent for 1.5 times it: paho's loop then sleeps a quarter of that, not of the
    configured one, so the PINGREQ is never late."""
    from agent.uplink.connection import NetworkThread, make_client

    server_keepalive = 2
    srv = socket.create_server(("127.0.0.1", 0))
    pings: list[float] = []

    def packet(conn: socket.socket) -> int | None:
        head = conn.recv(1)
        if not head:
            return None
        length, mult = 0, 1
        while (b := conn.recv(1)[0]) & 128:
            length, mult = length + (b & 127) * mult, mult * 128
        length += b * mult
        while length:
            length -= len(conn.recv(length))
        return head[0] & 0xF0

    def broker() -> None:  # CONNACK with Server Keep Alive, then PINGRESP to each PINGREQ
        conn, _ = srv.accept()
        with conn:
            packet(conn)
            props = bytes([0x13]) + server_keepalive.to_bytes(2, "big")
            conn.sendall(bytes([0x20, 3 + len(props), 0, 0, len(props)]) + props)
            while (kind := packet(conn)) is not None:
                if kind == 0xC0:
                    pings.append(time.monotonic())
                    conn.sendall(b"\xd0\x00")

    import threading

    threading.Thread(target=broker, daemon=True).start()
    cfg = MqttConfig(host="127.0.0.1", port=srv.getsockname()[1], keepalive=60, protocol=MqttProtocol.V5)
    timeouts: list[float] = []

    def new_client():
        client = make_client(cfg, gateway=GW, topics=Topics("edge", GW), now_ms=0)
        loop = client.loop
        client.loop = lambda timeout: (timeouts.append(timeout), loop(timeout))[1]
        client.on_connect = lambda *a: setattr(net, "connack_ok", True)
        return client

    net = NetworkThread(cfg, new_client=new_client, on_failure=lambda reason: None, on_closed=lambda client: None)
    net.start()
    try:
        deadline = time.monotonic() + 60
        while len(pings) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pings) >= 2, "no keepalive pings"
        assert max(timeouts[-3:]) <= server_keepalive / 4, timeouts[-5:]
    finally:
        net.stop()
        assert net.join(30)
        srv.close()


async def test_pubacks_wait_for_the_next_cycle_unless_the_window_needs_them(mosquitto, mqtt_subscriber, outbox,
                                                                            monkeypatch) -> None:
    """With the agent's pipeline taking them before each cycle, the PUBACKs of a commit do not wake the
    loop (a gateway polling every second woke a third time each second for them): the next cycle takes
    them, so its commit deletes the rows they acknowledge, and the counters take them at once. When the
    in-flight window needs the room they free, they are posted at once as before. Counted: the batches
    of acknowledgements posted to the loop."""
    loop = asyncio.get_running_loop()
    posted: list[str] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def recording(callback, *args, **kw):
        posted.append(getattr(callback, "__qualname__", ""))
        return call_soon_threadsafe(callback, *args, **kw)

    monkeypatch.setattr(loop, "call_soon_threadsafe", recording)
    sub = mqtt_subscriber(mosquitto, TOPICS.telemetry("#"))
    async with Running(config(mosquitto, max_inflight=8), outbox) as up:
        take = up.ride_acks_on_commits()
        await until(lambda: up.connected, what="connected")
        for i in range(4):
            take()  # the cycle: the rows acknowledged since the last one are deleted in its commit
            outbox.append([telemetry(i)])
            assert outbox.stats().depth == 1  # (the row of the previous commit is gone)
            up.wake()
            await until(lambda i=i: len(seqs_of(sub.messages)) == i + 1, what=f"row {i} delivered")
            # its PUBACK arrives and waits for the next cycle
            await until(lambda: len(up._acks_in._items) == 1, what=f"row {i}'s PUBACK queued")
        assert "AckQueue._run" not in posted, "a PUBACK woke the loop though nothing waited for it"
        assert up.stats().acked == 4 and up.stats().inflight == 0  # the counters take them at once
        assert outbox.acked_waiting[0] == 1  # the last row, for the next commit to delete
        # a burst that fills the window (8): its acknowledgements free room it needs, posted at once
        outbox.append([telemetry(4 + k) for k in range(20)])
        up.wake()
        await until(lambda: len(seqs_of(sub.messages)) == 24, what="the burst delivered without a cycle")
        assert "AckQueue._run" in posted
    assert_complete_in_order(sub.messages, 24)
