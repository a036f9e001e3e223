"""Test helpers for the fleet path: a throwaway PostgreSQL 15 server and a RabbitMQ cluster on one
host (each node its own name, directories and ports), both real Debian packages.

PostgreSQL refuses to run as root: when the tests run as root the server runs as the ``postgres``
user (created by the Debian package) in a directory it owns.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
from pathlib import Path

from tests.mqtt_helpers import _accepts, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # the /usr/sbin wrappers switch to the rabbitmq user
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"

_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for thing in list(_LIVE):
        thing.kill()


def wait_for(cond, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def pg_available() -> bool:
    return (PG_BIN / "postgres").exists()


def rabbitmq_available() -> bool:
    return Path(RABBITMQ_SERVER).exists()


class Postgres:
    """A PostgreSQL server on 127.0.0.1 with trust authentication and a database ``fleet``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._as = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "--no-sync", "-E", "UTF8"])
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.dir}'\n"
                    "fsync = on\nmax_connections = 100\nshared_buffers = 64MB\nlog_min_messages = warning\n"
                    "deadlock_timeout = 200ms\n")
        _LIVE.add(self)

    def _run(self, cmd: list[str]) -> None:
        subprocess.run([*(self._as or []), *cmd], check=True, capture_output=True, timeout=120)

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=fleet connect_timeout=5"

    def start(self) -> Postgres:
        self.proc = subprocess.Popen([*(self._as or []), str(PG_BIN / "postgres"), "-D", str(self.data)],
                                     stdout=subprocess.DEVNULL, stderr=(self.dir / "log").open("ab"))
        wait_for(lambda: _accepts("127.0.0.1", self.port), 60, "PostgreSQL to accept connections")
        import psycopg

        def created() -> bool:
            try:
                with psycopg.connect(self.dsn.replace("dbname=fleet", "dbname=postgres"), autocommit=True) as c:
                    if not c.execute("SELECT 1 FROM pg_database WHERE datname = 'fleet'").fetchone():
                        c.execute("CREATE DATABASE fleet")
                return True
            except psycopg.OperationalError:
                return False
        wait_for(created, 60, "PostgreSQL to create the database")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # smart shutdown waits for clients: use fast
            subprocess.run([*(self._as or []), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "fast"],
                           capture_output=True, timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def close(self) -> None:
        """Stop at once (immediate shutdown: the data directory is thrown away) and remove everything."""
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run([*(self._as or []), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate"],
                           capture_output=True, timeout=60)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)


def mqtt_connack(port: int, timeout: float = 60) -> int:
    """The return code a broker's CONNACK gives a bare MQTT 3.1.1 CONNECT (0: accepted)."""
    cid = f"probe-{port}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(bytes([0x10, len(body)]) + body)
        reply = b""
        while len(reply) < 4:
            chunk = s.recv(4 - len(reply))
            if not chunk:
                raise RuntimeError(f"the broker on port {port} closed the connection without a CONNACK")
            reply += chunk
    return reply[3]


class RabbitCluster:
    """``n`` RabbitMQ nodes with the MQTT plugin on 127.0.0.1, joined into one cluster.

    The cluster forms from configuration (classic_config peer discovery): the first node boots
    standalone, each next one joins it while booting, so no ``rabbitmqctl`` join steps (each an Erlang
    VM of its own) and no node restarts. Closing kills the nodes: their directories are thrown away.
    Node names carry a random tag so that two clusters on one host (two test runs) never meet in epmd.
    ``amqp_urls`` and ``mqtt_ports`` list the nodes in order; ``stop_node(i)``/``start_node(i)`` stop and
    start one node's RabbitMQ application (``rabbitmqctl stop_app``/``start_app``).
    """

    def __init__(self, n: int = 3) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="edge-rmq-"))
        self.tag = uuid.uuid4().hex[:6]
        self.nodes = [f"rabbit{i + 1}x{self.tag}@localhost" for i in range(n)]
        self.amqp_ports = [free_port() for _ in range(n)]
        self.mqtt_ports = [free_port() for _ in range(n)]
        self.dist_ports = [free_port() for _ in range(n)]
        self.procs: list[subprocess.Popen | None] = [None] * n
        (self.dir / ".erlang.cookie").write_text(uuid.uuid4().hex.upper())
        os.chmod(self.dir / ".erlang.cookie", 0o400)
        _LIVE.add(self)

    @property
    def amqp_urls(self) -> list[str]:
        return [f"amqp://guest:guest@127.0.0.1:{p}/" for p in self.amqp_ports]

    def _env(self, i: int) -> dict[str, str]:
        d = self.dir / f"node{i + 1}"
        d.mkdir(exist_ok=True)
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.amqp_ports[i]}\n"
            f"mqtt.listeners.tcp.1 = 127.0.0.1:{self.mqtt_ports[i]}\n"
            "mqtt.allow_anonymous = true\nloopback_users = none\n"
            "management_agent.disable_metrics_collector = true\n"
            "vm_memory_high_watermark.absolute = 512MiB\ndisk_free_limit.absolute = 50MB\n"
            "cluster_partition_handling = pause_minority\n"
            + self._formation(i))
        (d / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        return {**os.environ, "HOME": str(self.dir), "RABBITMQ_NODENAME": self.nodes[i],
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_DIST_PORT": str(self.dist_ports[i]), "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_PID_FILE": str(d / "pid"), "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
                "RABBITMQ_SERVER_ERL_ARGS": "+S 1:1 +A 4",
                "RABBITMQ_LOGS": str(d / "log" / "rabbit.log")}

    def _formation(self, i: int) -> str:
        """Peer discovery: the first node lists no peer and boots standalone (it must not wait for the
        discovery lock a joining node holds); each other node lists the first and joins it once its
        database runs, retried every 0.5 s for up to 10 min."""
        if i == 0:
            return ""
        return ("cluster_formation.peer_discovery_backend = classic_config\n"
                f"cluster_formation.classic_config.nodes.1 = {self.nodes[0]}\n"
                f"cluster_formation.classic_config.nodes.2 = {self.nodes[i]}\n"
                "cluster_formation.discovery_retry_limit = 1200\ncluster_formation.discovery_retry_interval = 500\n")

    def ctl(self, i: int, *args: str, timeout: float = 120) -> str:
        r = subprocess.run([RABBITMQCTL, "-n", self.nodes[i], *args], env=self._env(i), capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {self.nodes[i]} {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
        return r.stdout

    def _launch(self, i: int) -> None:
        env = self._env(i)
        log = (self.dir / f"node{i + 1}.out").open("ab")
        self.procs[i] = subprocess.Popen([RABBITMQ_SERVER], env=env, stdout=log, stderr=log, start_new_session=True)

    def start(self, timeout: float = 300) -> RabbitCluster:
        # one node after the other: a booting node's MQTT plugin joins the client id tracking (Raft) of
        # the nodes already running, and two joining at once can leave one out, refusing every client
        for i in range(len(self.nodes)):
            self._launch(i)
            wait_for(lambda i=i: self._alive(i) and _accepts("127.0.0.1", self.mqtt_ports[i]), timeout,
                     f"MQTT on {self.nodes[i]}", interval=0.5)  # the listener opens last, once clustered
        running = self.running_nodes()
        if sorted(running) != sorted(self.nodes):
            raise RuntimeError(f"the cluster formed with {running}, not {self.nodes}: see {self.dir}")
        for i, port in enumerate(self.mqtt_ports):
            code = mqtt_connack(port)
            if code != 0:
                raise RuntimeError(f"{self.nodes[i]} refuses MQTT clients (CONNACK {code}): see {self.dir}")
        return self

    def _alive(self, i: int) -> bool:
        p = self.procs[i]
        if p is not None and p.poll() is not None:
            raise RuntimeError(f"{self.nodes[i]} exited: see {self.dir}/node{i + 1}.out")
        return True

    def running_nodes(self, i: int = 0) -> list[str]:
        """The cluster's running nodes as node ``i`` sees them."""
        import json

        return json.loads(self.ctl(i, "cluster_status", "--formatter", "json"))["running_nodes"]

    def stop_node(self, i: int) -> None:
        self.ctl(i, "stop_app")

    def start_node(self, i: int) -> None:
        self.ctl(i, "start_app")
        wait_for(lambda: _accepts("127.0.0.1", self.mqtt_ports[i]), 120, f"MQTT on {self.nodes[i]}")

    def memory_mb(self) -> list[float]:
        """Resident memory of each node's Erlang VM (from ps), MB."""
        out = []
        for p in self.procs:
            try:
                rss = subprocess.run(["ps", "-o", "rss=", "--ppid", str(p.pid)], capture_output=True, text=True)
                kb = sum(int(x) for x in rss.stdout.split() if x.isdigit())
                out.append(kb / 1024)
            except (AttributeError, ValueError):
                out.append(float("nan"))
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p is not None and p.poll() is None:
                try:
                    os.killpg(p.pid, 9)
                except ProcessLookupError:
                    pass
        self.procs = [None] * len(self.nodes)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        _LIVE.discard(self)
