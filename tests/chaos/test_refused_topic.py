"""A topic the broker refuses (MQTT 5 negative PUBACK, here by its ACL) must not stop the others.

The real agent process runs two replay meters against a real mosquitto whose ACL denies one meter's
telemetry topic. The healthy meter, command results and health keep flowing; the refused rows stay in
the outbox, are counted per topic in health, logged once, and retried with a growing backoff (not
re-published in a tight loop). Once the ACL is fixed they are delivered, in order.

Across the broker restart the publisher is kept away until the test's subscriber is back: mosquitto
(2.0.11) with an ``acl_file`` does not queue messages for a persistent session restored from disk
whose client has not reconnected yet, so rows delivered in that moment would be lost to the test's
subscriber (the broker acknowledged them; the gateway did its part).
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from pathlib import Path

import jsonschema
import orjson
import paho.mqtt.client as mqtt
import pytest
from test_uplink import Running, config, until

from agent.store import Outbox, Pending, Priority

from .agent_proc import AgentProcess, agent_config, wait_until, write_replay_csv

pytestmark = pytest.mark.timeout(240)

GW = "gw-chaos"
OK, BAD = "meter-ok", "meter-bad"
BAD_TOPIC = f"edge/{GW}/telemetry/{BAD}"
ACL = f"""topic read edge/#
topic write edge/{GW}/status
topic write edge/{GW}/health
topic write edge/{GW}/event
topic write edge/{GW}/audit
topic write edge/{GW}/agg/#
topic write edge/{GW}/telemetry/{OK}
topic readwrite edge/{GW}/cmd/#
"""
SCHEMA = orjson.loads((Path(__file__).resolve().parents[2] / "docs" / "payload.schema.json").read_bytes())
ROWS = 3000  # per meter; 50 readings per message


def first_arrivals(messages, device: str) -> list[float]:
    """Reading values of one device in order of first arrival (duplicates, same seq, skipped)."""
    seen: set[int] = set()
    values: list[float] = []
    for m in messages:
        if m.topic != f"edge/{GW}/telemetry/{device}":
            continue
        body = orjson.loads(m.payload)
        if body["seq"] not in seen:
            seen.add(body["seq"])
            values += [r["value"] for r in body["readings"]]
    return values


def denied_publishes(broker, topic: str) -> int:
    """PUBLISH packets the broker refused on ``topic``, from its own log."""
    return sum(1 for line in broker.log_tail(n=1 << 30).splitlines()
               if "Denied PUBLISH" in line and f"'{topic}'" in line)


def queued_values(state: Path, topic: str) -> list[float]:
    """Reading values still in the outbox for ``topic`` (read-only: the agent may be running)."""
    con = sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT payload FROM outbox WHERE topic = ? ORDER BY rowid", [topic]).fetchall()
    finally:
        con.close()
    return [r["value"] for (p,) in rows for r in orjson.loads(p)["readings"]]


def latest_health(sub) -> dict | None:
    for m in reversed(sub.snapshot()):
        if m.topic == f"edge/{GW}/health":
            return orjson.loads(m.payload)
    return None


def send_command(broker, device: str) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-commander")
    c.connect(broker.host, broker.port)
    c.loop_start()
    body = {"id": "c-refused-1", "action": "set_current_limit", "value": 16, "ts": int(time.time() * 1000)}
    c.publish(f"edge/{GW}/cmd/{device}", orjson.dumps(body), qos=1).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def test_a_refused_topic_is_set_aside_and_everything_else_flows(tmp_path: Path, mosquitto_factory,
                                                                mqtt_subscriber) -> None:
    broker = mosquitto_factory(acl=ACL, persistence=True)
    sub = mqtt_subscriber(broker, f"edge/{GW}/#", persistent=True)  # survives the broker restart
    csvs = {name: tmp_path / f"{name}.csv" for name in (BAD, OK)}
    expected = {name: write_replay_csv(path, ROWS) for name, path in csvs.items()}
    cfg = agent_config(tmp_path, broker, csvs, rows_per_read=50, poll=0.05)
    # more refused rows than the in-flight window: on their own they could fill it
    cfg.write_text(cfg.read_text().replace("[mqtt]\n", '[mqtt]\nprotocol = "5"\nmax_inflight = 20\n', 1))
    state = tmp_path / "state"
    log = tmp_path / "agent.log"
    agent = AgentProcess(cfg, log).start()
    try:
        # the healthy meter's readings all arrive, in order, although the other meter is refused
        assert wait_until(lambda: first_arrivals(sub.snapshot(), OK) == expected[OK], 60), (
            f"{len(first_arrivals(sub.snapshot(), OK))} of {ROWS} healthy readings arrived\n{agent.log_tail()}")
        # ... each once: the refusals do not make the uplink send healthy rows again
        ok_seqs = [orjson.loads(m.payload)["seq"] for m in sub.snapshot() if m.topic.endswith(f"/{OK}")]
        assert len(ok_seqs) == len(set(ok_seqs))
        # command results (stored behind the refused rows) flow too
        send_command(broker, OK)
        assert wait_until(lambda: any(m.topic == f"edge/{GW}/cmd/{OK}/result" for m in sub.snapshot()), 30), \
            agent.log_tail()

        # the refused rows are set aside: re-published only now and then, not in a loop
        before = denied_publishes(broker, BAD_TOPIC)
        assert before >= 1, broker.log_tail()
        time.sleep(4.0)
        during = denied_publishes(broker, BAD_TOPIC) - before
        assert during <= 4, f"{during} refused publishes of {BAD_TOPIC} in 4 s"

        # ... kept in the outbox, every reading of the refused meter (read by its own poller: the healthy
        # meter's arrivals above do not say it has finished)
        assert wait_until(lambda: queued_values(state, BAD_TOPIC) == expected[BAD], 60), \
            f"{len(queued_values(state, BAD_TOPIC))} of {ROWS} refused readings queued"
        # ... counted per topic in health
        def refusal_reported() -> bool:
            health = latest_health(sub)
            refused = (health or {}).get("uplink", {}).get("refused_topics", {})
            return refused.get(BAD_TOPIC, {}).get("nacks", 0) >= 1
        assert wait_until(refusal_reported, 60), latest_health(sub)
        jsonschema.validate(latest_health(sub), {**SCHEMA, "$ref": "#/$defs/health"})  # as documented
        # ... and logged once, not once per message or per retry
        mentions = [line for line in log.read_text().splitlines() if BAD_TOPIC in line]
        assert len(mentions) == 1, mentions

        # the operator fixes the ACL: the held rows go out, in order, and the outbox drains
        broker.acl_path.write_text("topic readwrite #\n")
        agent.proc.send_signal(signal.SIGSTOP)  # the agent reconnects only once the subscriber is back
        try:
            sub.expect_resubscribe()
            broker.restart()
            sub.wait_subscribed()
        finally:
            agent.proc.send_signal(signal.SIGCONT)
        assert wait_until(lambda: first_arrivals(sub.snapshot(), BAD) == expected[BAD], 60), (
            f"{len(first_arrivals(sub.snapshot(), BAD))} of {ROWS} held readings arrived\n{agent.log_tail()}")
        assert wait_until(lambda: queued_values(state, BAD_TOPIC) == [], 30)
    finally:
        assert agent.terminate() == 0, agent.log_tail()


def test_a_refused_topic_is_probed_with_one_row_and_a_doubling_wait() -> None:
    from agent.uplink.refusals import FIRST_RETRY, MAX_RETRY, Refusals

    r = Refusals()
    assert r.refuse("t", 7, "Not authorized", now=0.0)  # first refusal: log it
    assert not r.refuse("t", 8, "Not authorized", now=0.0)  # a row already in flight: counted only
    assert not r.take_probe("t", 9)  # not due yet: set aside
    waits = []
    now = 0.0
    for _ in range(12):
        due = r.next_due()
        assert due is not None
        waits.append(due - now)
        now = due
        assert r.make_due(now) == [7]  # the probe is looked for from the oldest kept row
        assert r.take_probe("t", 7) and not r.take_probe("t", 9)  # one probe at a time
        r.refuse("t", 7, "Not authorized", now)
    assert waits[:4] == [FIRST_RETRY, 2 * FIRST_RETRY, 4 * FIRST_RETRY, 8 * FIRST_RETRY]
    assert max(waits) == MAX_RETRY
    assert r.stats(now)["t"].nacks == 14
    r.reconnected()  # a new connection: probe at once
    assert r.take_probe("t", 7)
    assert r.accept("t") is not None and "t" not in r and r.stats(now) == {}


async def test_each_refused_topic_keeps_its_order_and_is_released_on_its_own(
        tmp_path: Path, mosquitto_factory, mqtt_subscriber, tcp_proxy) -> None:
    """The Uplink alone, a window of 3, two refused topics (A, B) interleaved with an allowed one (H)."""
    topics = {k: f"edge/gw1/telemetry/{k}" for k in "ABH"}
    acl = "topic read edge/#\ntopic write edge/gw1/status\ntopic write {}\n"
    broker = mosquitto_factory(acl=acl.format(topics["H"]), persistence=True)
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", persistent=True)
    proxy = tcp_proxy(broker.host, broker.port)  # the uplink's way in, held across the broker restart
    outbox = Outbox(tmp_path / "outbox.db", max_bytes=64 * 1024 * 1024, gateway="gw1")
    order = "AABHHBAHHHAB" * 5  # refused rows at the head, more of them than the window
    seqs: dict[str, list[int]] = {k: [] for k in "ABH"}
    for k in order:
        [seq] = outbox.append([Pending(Priority.RAW, topics[k], {"v": 1, "device": k, "readings": []})])
        seqs[k].append(seq)

    def arrived(k: str) -> list[int]:
        return [orjson.loads(m.payload)["seq"] for m in sub.snapshot() if m.topic == topics[k]]

    try:
        async with Running(config(proxy, protocol="5", max_inflight=3), outbox) as up:
            await until(lambda: arrived("H") == seqs["H"], what="every allowed row, once, in order")
            assert set(up.stats().refused_topics) == {topics["A"], topics["B"]}
            published = up.stats().published
            await asyncio.sleep(2.5)  # one probe per topic at most (after 1 s, then 2 s later)
            assert up.stats().published - published <= 2
            assert sorted(r.seq for r in outbox.peek(1000)) == sorted(seqs["A"] + seqs["B"])

            broker.acl_path.write_text(acl.format(topics["H"]) + f"topic write {topics['A']}\n")
            proxy.hold()
            sub.expect_resubscribe()
            await asyncio.to_thread(broker.restart)
            await asyncio.to_thread(sub.wait_subscribed)
            proxy.release()
            # at least once across the restart: a row in flight when the broker went may come twice (same seq)
            await until(lambda: list(dict.fromkeys(arrived("A"))) == seqs["A"], what="A released, in order")
            await until(lambda: sorted(r.seq for r in outbox.peek(1000)) == seqs["B"], what="only B kept")
            assert list(up.stats().refused_topics) == [topics["B"]]
            assert arrived("B") == []
    finally:
        outbox.close()
