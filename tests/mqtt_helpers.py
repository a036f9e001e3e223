"""Test helpers for real MQTT: a mosquitto process, throwaway TLS material, a fault-injecting TCP
proxy and a collecting subscriber. The pytest fixtures wrapping them live in conftest.py.

``mosquitto`` is a running broker handle (host, port, stop(), start(), kill()); ``mosquitto_factory``
builds variants (``users=``, ``tls=``, ``persistence=``); ``tls_material`` makes a throwaway CA,
server and client certificate; ``mqtt_subscriber`` builds :class:`Subscriber` helpers. Every broker
and subscriber is torn down at the end of the test, even on failure.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import queue
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


_LIVE: weakref.WeakSet[Broker] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # a test run interrupted between fixture setup and teardown
    for b in list(_LIVE):
        b.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- TLS
@dataclass(frozen=True)
class TlsMaterial:
    ca_file: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_file: Path  # a CA that signed nothing here: clients trusting it must refuse the broker


def make_tls_material(directory: Path) -> TlsMaterial:
    """Throwaway CA, a server cert for 127.0.0.1/localhost and a client cert (EC keys: fast)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path: Path) -> Path:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return path

    def write_cert(cert, path: Path) -> Path:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ca(cn: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, key_cert_sign=True, crl_sign=True,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return key, cert

    def leaf(cn: str, ca_key, ca_cert, *, server: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                            critical=False)
             .add_extension(x509.ExtendedKeyUsage(
                 [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                 critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return key, b.sign(ca_key, hashes.SHA256())

    ca_key, ca_cert = ca("edge-agent test CA")
    _, other_cert = ca("edge-agent unrelated CA")
    s_key, s_cert = leaf("127.0.0.1", ca_key, ca_cert, server=True)
    c_key, c_cert = leaf("gw-client", ca_key, ca_cert, server=False)
    return TlsMaterial(
        ca_file=write_cert(ca_cert, directory / "ca.pem"),
        server_cert=write_cert(s_cert, directory / "server.pem"),
        server_key=write_key(s_key, directory / "server.key"),
        client_cert=write_cert(c_cert, directory / "client.pem"),
        client_key=write_key(c_key, directory / "client.key"),
        other_ca_file=write_cert(other_cert, directory / "other-ca.pem"),
    )


# ------------------------------------------------------------------------------------------ broker
class Broker:
    """A real mosquitto on 127.0.0.1 with its own config; ``start``/``stop`` keep the same port."""

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None, tls: TlsMaterial | None = None,
                 require_certificate: bool = False, persistence: bool = False, port: int | None = None,
                 acl: str | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.users = users
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.log_path = self.dir / "mosquitto.log"
        self.conf_path = self.dir / "mosquitto.conf"
        lines = [f"listener {self.port} {self.host}", "user root", "log_dest stderr", "log_type all",
                 "max_queued_messages 100000", "max_inflight_messages 0"]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.dir}/", "autosave_interval 1"]
        else:
            lines += ["persistence false"]
        if users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd not installed")
            pw = self.dir / "passwd"
            pw.write_text("")
            for user, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines += ["allow_anonymous true"]
        self.acl_path = self.dir / "acl"
        if acl is not None:  # mosquitto acl_file text; rewrite self.acl_path and restart to change it
            self.acl_path.write_text(acl)
            lines += [f"acl_file {self.acl_path}"]
        if tls:
            lines += [f"cafile {tls.ca_file}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}",
                      f"require_certificate {'true' if require_certificate else 'false'}"]
        self.conf_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> Broker:
        if self.running:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        _LIVE.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log_tail()}")
            if _accepts(self.host, self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not accept on port {self.port}: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM: persistent sessions are saved when persistence is on)."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._wait_port_closed()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._wait_port_closed()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_port_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _accepts(self.host, self.port):
            time.sleep(0.02)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ------------------------------------------------------------------------------------- tcp proxy
class TcpProxy:
    """A TCP proxy for network faults between a client and a broker (threads; usable from any test).

    ``drop_up`` / ``drop_down`` silently discard client->server / server->client bytes (a black hole:
    the connection stays open); ``cut()`` closes every proxied connection at once (network loss);
    ``hold()`` keeps new connections waiting (accepted, not yet passed on) until ``release()``.
    """

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port = self._listener.getsockname()[1]
        self.drop_up = False
        self.drop_down = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._open = threading.Event()
        self._open.set()
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._open.wait()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if (self.drop_up if up else self.drop_down):
                    continue
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()


# -------------------------------------------------------------------------------------- subscriber
@dataclass
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> dict:
        return orjson.loads(self.payload)


@dataclass
class Subscriber:
    """A paho client that collects messages; reconnects by itself across broker restarts.

    With ``persistent=True`` it keeps a broker-side session (clean_session False), so with a broker
    started with ``persistence=True`` nothing published while it was away is missed.
    """

    broker: Broker
    topics: list[str]
    persistent: bool = False
    tls: TlsMaterial | None = None
    username: str | None = None
    password: str | None = None
    messages: list[Message] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: queue.Queue[Message] = queue.Queue()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}",
                                  clean_session=not self.persistent)
        self.client.max_queued_messages_set(0)
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        if self.tls:
            self.client.tls_set(ca_certs=str(self.tls.ca_file), certfile=str(self.tls.client_cert),
                                keyfile=str(self.tls.client_key), cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    def _on_connect(self, client, userdata, flags, rc, props=None) -> None:
        if not rc.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        m = Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos)
        with self._cond:
            self.messages.append(m)
            self._cond.notify_all()
        self._queue.put(m)

    def start(self, timeout: float = 60.0) -> Subscriber:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=10)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"subscriber did not subscribe to {self.topics} within {timeout}s")
        return self

    def wait_for(self, n: int, timeout: float = 60.0, *,
                 predicate: Callable[[Message], bool] | None = None) -> list[Message]:
        """Wait until at least ``n`` (matching) messages arrived; returns them. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [m for m in self.messages if predicate is None or predicate(m)]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"got {len(got)} of {n} messages on {self.topics} within {timeout}s")
                self._cond.wait(min(left, 0.2))

    def expect_resubscribe(self) -> None:
        """Call before the broker restarts; :meth:`wait_subscribed` then waits for the new subscription."""
        self._subscribed.clear()

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"subscriber did not subscribe again to {self.topics} within {timeout}s")

    def get(self, timeout: float = 60.0) -> Message:
        return self._queue.get(timeout=timeout)

    def snapshot(self) -> list[Message]:
        with self._cond:
            return list(self.messages)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
