"""Broker checks: the name resolves, the port accepts, TLS verifies (with a classified reason when it
does not) and the broker accepts this gateway's MQTT login, with the client the service builds."""

from __future__ import annotations

import socket
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ..config.schema import AgentConfig
from ..uplink.connection import make_client
from ..uplink.topics import Topics
from . import tls_probe
from .report import Check, fail, ok, warn

CONNECT_TIMEOUT_S = 5.0
CONNACK_TIMEOUT_S = 10.0


def check_broker(cfg: AgentConfig, *, credentials_hidden: bool = False) -> list[Check]:
    mq = cfg.mqtt
    host, port = mq.host, mq.port
    assert host is not None  # validation requires it
    where = f"broker {host}:{port}"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return [fail(where, f"the name {host} does not resolve ({e.strerror})",
                     "check [mqtt] host and this gateway's DNS (/etc/resolv.conf)")]
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except TimeoutError:
        return [fail(where, f"no answer within {CONNECT_TIMEOUT_S:g} s",
                     "check the address, the network route and any firewall between here and the broker")]
    except OSError as e:
        return [fail(where, f"cannot connect: {e.strerror or e}",
                     "check the broker is running and [mqtt] port is its listener (1883 plain, 8883 TLS usual)")]
    out = [ok(where, "accepts TCP connections")]
    client_id = f"{mq.client_id or f'edge-agent-{cfg.gateway.id}'}-doctor"
    tls = mq.tls if mq.tls is not None and mq.tls.enabled else None
    if tls is not None:
        verdict = tls_probe.probe(host, port, tls, client_id=client_id)
        out.append(ok("broker TLS", verdict.detail) if verdict.ok else fail("broker TLS", verdict.detail, verdict.hint))
        if not verdict.ok:
            return out
    if credentials_hidden:
        out.append(warn("broker login", "not tested: the password is a systemd credential only the service sees",
                        "run doctor with CREDENTIALS_DIRECTORY pointing at the credentials, or as the service"))
        return out
    out.append(_login(cfg, client_id, tls_configured=tls is not None))
    return out


def _login(cfg: AgentConfig, client_id: str, *, tls_configured: bool) -> Check:
    """CONNECT with the service's client settings (protocol, TLS, credentials), then disconnect cleanly.
    The client id gets a ``-doctor`` suffix so a running agent's session is not taken over."""
    mq = cfg.mqtt
    as_user = f" as {mq.username!r}" if mq.username else " anonymously"
    subject = "broker login"
    client = make_client(mq.model_copy(update={"client_id": client_id}), gateway=cfg.gateway.id,
                         topics=Topics(mq.topic_prefix, cfg.gateway.id), now_ms=time.time_ns() // 1_000_000)
    client.will_clear()
    answer: dict = {}
    client.on_connect = lambda _c, _u, _f, reason, _p: answer.setdefault("reason", reason)
    try:
        client.connect(mq.host, mq.port, keepalive=mq.keepalive)
    except Exception as e:  # noqa: BLE001 - TLS, DNS, refused: named in one line
        return fail(subject, f"cannot connect: {type(e).__name__}: {e}", "see the broker lines above")
    deadline = time.monotonic() + CONNACK_TIMEOUT_S
    rc = MQTTErrorCode.MQTT_ERR_SUCCESS
    while "reason" not in answer and rc == MQTTErrorCode.MQTT_ERR_SUCCESS and time.monotonic() < deadline:
        rc = client.loop(timeout=0.2)
    reason = answer.get("reason")
    if reason is None:
        if (sock := client.socket()) is not None:
            sock.close()
        if not tls_configured and tls_probe.speaks_tls(mq.host, mq.port):
            return fail(subject, f"port {mq.port} speaks TLS but the config connects in plain text (the broker "
                        "closed the connection before CONNACK)",
                        "add an [mqtt.tls] table (ca_file = the broker's CA), or use the plain-text port (1883 usual)")
        why = "no CONNACK in time" if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else mqtt.error_string(rc)
        return fail(subject, f"connection closed before CONNACK ({why})", "check the broker's log for this client")
    client.disconnect()
    client.loop(timeout=0.2)
    if reason.is_failure:
        return fail(subject, f"refused{as_user}: {reason}", _refusal_hint(str(reason), mq.username, client_id))
    proto = "MQTT 5" if mq.protocol.value == "5" else "MQTT 3.1.1"
    return ok(subject, f"accepted{as_user} ({proto})")


def _refusal_hint(reason: str, username: str | None, client_id: str) -> str:
    service_id = client_id.removesuffix("-doctor")
    if reason == "Bad user name or password":
        return "check [mqtt] username and password (and the broker's password file)"
    if reason == "Not authorized":  # mosquitto answers a wrong password with this too
        if username is None:
            return "the broker does not accept anonymous clients: set [mqtt] username and password"
        return (f"check [mqtt] username and password; if they are right, allow this user and client id "
                f"{service_id!r} in the broker's auth settings")
    return "check the broker's log for this client"


def credentials_hidden(warnings: list[str]) -> bool:
    """A broker credential deferred to systemd (not visible to this shell); from the validation warnings."""
    return any(" mqtt." in w and "CREDENTIALS_DIRECTORY is not set" in w for w in warnings)
