"""Uplink TLS (CA verification, mutual TLS), username/password and MQTT 5, against a real mosquitto."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from test_uplink import GW, Running, seqs_of, telemetry, until

from agent.config.schema import MqttConfig, MqttProtocol, TlsConfig
from agent.store import Outbox


@pytest.fixture
def outbox(tmp_path: Path):
    ob = Outbox(tmp_path / "outbox.db", max_bytes=8 * 1024 * 1024, gateway=GW)
    yield ob
    ob.close()


def cfg(broker, **kw) -> MqttConfig:
    return MqttConfig(host=broker.host, port=broker.port, reconnect_min=0.05, reconnect_max=0.3, **kw)


async def deliver(broker, sub, outbox, config: MqttConfig, n: int = 20) -> dict:
    start = outbox.stats().last_seq
    outbox.append([telemetry(i) for i in range(n)])
    async with Running(config, outbox) as up:
        # telemetry only: a subscriber to edge/gw1/# counts the status message too
        await asyncio.to_thread(sub.wait_for, start + n, 60, predicate=lambda m: "/telemetry/" in m.topic)
        await until(lambda: outbox.stats().depth == 0, what="drained")
        return up.stats()


async def refused(config: MqttConfig, outbox: Outbox) -> dict:
    """Run against a broker that must refuse us; nothing may leave the outbox."""
    depth = outbox.stats().depth
    async with Running(config, outbox) as up:
        await until(lambda: up.stats().connect_failures >= 2, what="failed connects")
        st = up.stats()
    assert not st.connected and st.acked == 0
    assert outbox.stats().depth == depth
    return st


async def test_tls_with_ca_verification(mosquitto_factory, mqtt_subscriber, outbox, tls_material) -> None:
    broker = mosquitto_factory(tls=tls_material)
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", tls=tls_material)
    outbox.append([telemetry(i) for i in range(5)])
    bad = cfg(broker, tls=TlsConfig(ca_file=tls_material.other_ca_file))
    st = await refused(bad, outbox)
    assert "CERTIFICATE_VERIFY_FAILED" in st.last_error
    # system CAs (no ca_file) do not know our private CA either
    st = await refused(cfg(broker, tls=TlsConfig()), outbox)
    assert "certificate" in st.last_error.lower()
    # plain MQTT against a TLS listener never gets a CONNACK
    await refused(cfg(broker), outbox)
    st = await deliver(broker, sub, outbox, cfg(broker, tls=TlsConfig(ca_file=tls_material.ca_file)))
    assert st.connected
    assert seqs_of(sub.snapshot()) == list(range(1, 26))  # the 5 held back while refused were not lost


async def test_tls_hostname_is_checked(mosquitto_factory, outbox, tls_material) -> None:
    broker = mosquitto_factory(tls=tls_material)
    # the server certificate names 127.0.0.1 and localhost; reach it by another loopback address
    wrong = MqttConfig(host="127.0.0.2", port=broker.port, tls=TlsConfig(ca_file=tls_material.ca_file),
                       reconnect_min=0.05, reconnect_max=0.3)
    broker.stop()
    broker.conf_path.write_text(broker.conf_path.read_text().replace(f"listener {broker.port} 127.0.0.1",
                                                                     f"listener {broker.port}"))
    broker.start()
    st = await refused(wrong, outbox)
    assert "match" in st.last_error.lower() or "hostname" in st.last_error.lower()


async def test_mutual_tls(mosquitto_factory, mqtt_subscriber, outbox, tls_material) -> None:
    broker = mosquitto_factory(tls=tls_material, require_certificate=True)
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", tls=tls_material)
    outbox.append([telemetry(i) for i in range(5)])
    await refused(cfg(broker, tls=TlsConfig(ca_file=tls_material.ca_file)), outbox)  # no client cert
    good = cfg(broker, tls=TlsConfig(ca_file=tls_material.ca_file, cert_file=tls_material.client_cert,
                                     key_file=tls_material.client_key))
    await deliver(broker, sub, outbox, good)
    assert seqs_of(sub.snapshot()) == list(range(1, 26))


async def test_username_password(mosquitto_factory, mqtt_subscriber, outbox, caplog) -> None:
    broker = mosquitto_factory(users={"gw1": "s3cret-pass", "reader": "r"})
    sub = mqtt_subscriber(broker, "edge/gw1/telemetry/#", username="reader", password="r")
    outbox.append([telemetry(i) for i in range(5)])
    caplog.set_level(logging.DEBUG)
    st = await refused(cfg(broker, username="gw1", password="wrong-pass"), outbox)
    assert "refused" in st.last_error
    await refused(cfg(broker), outbox)  # anonymous
    await deliver(broker, sub, outbox, cfg(broker, username="gw1", password="s3cret-pass"))
    assert seqs_of(sub.snapshot()) == list(range(1, 26))
    assert "s3cret-pass" not in caplog.text and "wrong-pass" not in caplog.text


async def test_mqtt5(mosquitto, mqtt_subscriber, outbox) -> None:
    sub = mqtt_subscriber(mosquitto, "edge/gw1/#")
    st = await deliver(mosquitto, sub, outbox, cfg(mosquitto, protocol=MqttProtocol.V5), n=100)
    assert st.acked == 100
    assert seqs_of(sub.snapshot()) == list(range(1, 101))

    def states() -> list[str]:
        return [m.json()["state"] for m in sub.snapshot() if m.topic.endswith("/status")]
    # the offline status is published at stop, apart from the telemetry waited for: it may come later
    await until(lambda: len(states()) >= 2, what="offline status")
    assert states() == ["online", "offline"]
