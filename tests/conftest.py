"""Shared fixtures: a real mosquitto broker per test (plain, password, TLS/mTLS) and a subscriber.

``mosquitto`` is a running broker handle (host, port, stop(), start(), kill()); ``mosquitto_factory``
builds variants (``users=``, ``tls=``, ``persistence=``); ``tls_material`` makes a throwaway CA,
server and client certificate; ``mqtt_subscriber`` builds :class:`Subscriber` helpers; ``tcp_proxy``
puts a fault-injecting proxy in front of a broker; ``charger`` runs an ABB Terra AC simulator (Modbus
TCP) with a car plugged in (the rest of the command-path rig is in tests/charger_agent.py);
``warmed_kernel_cache`` copies the kernel cache `edge-agent warmup` filled once per run (``kernel_warmup``). Every broker, proxy and subscriber is torn down at
the end of the test, even on failure. The classes are in tests/mqtt_helpers.py.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from mqtt_helpers import Broker, Subscriber, TcpProxy, TlsMaterial, free_port, make_tls_material

__all__ = ["Broker", "Subscriber", "TcpProxy", "TlsMaterial"]


# The test files that take longest (measured), longest first: tests/run.sh hands whole files to two
# workers in collection order, so these start early and the two finish together instead of one
# waiting on a long file picked up last. Only the order changes; files not listed follow as before.
LONGEST_FIRST = (
    "chaos/test_fleet.py", "test_setup.py", "test_site_solar.py", "drivers/test_bacnet.py",
    "chaos/test_outbox_damaged_page.py", "test_processing_pipeline.py", "firmware_bridge/test_fwb_faults.py",
    "test_site_loop.py", "chaos/test_disk_full.py", "test_config.py", "chaos/test_delivery.py",
    "test_web_browser.py", "drivers/test_dlt645.py", "drivers/test_cjt188.py", "test_config_push.py",
)
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item: pytest.Item) -> int:
        try:
            return rank.get(item.path.relative_to(TESTS).as_posix(), len(rank))
        except ValueError:  # not under tests/
            return len(rank)
    items.sort(key=key)  # stable: each file keeps its own order


@pytest.fixture(autouse=True)
def _endpoints_forgotten() -> Iterator[None]:
    """What a Modbus TCP bus learnt about an endpoint (one request at a time) lives for the process: it
    must not carry over to the next test that happens to get the same free port."""
    yield
    if (reads := sys.modules.get("agent.bus.modbus_tcp_reads")) is not None:
        reads.forget()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """Build and start brokers: ``mosquitto_factory(users={"u": "p"}, tls=material, require_certificate=True)``."""
    brokers: list[Broker] = []

    def make(*, start: bool = True, **kwargs) -> Broker:
        b = Broker(tmp_path / f"broker{len(brokers)}", **kwargs)
        brokers.append(b)
        return b.start() if start else b

    yield make
    for b in brokers:
        b.kill()


@pytest.fixture
def mosquitto(mosquitto_factory: Callable[..., Broker]) -> Broker:
    """A plain running mosquitto (anonymous, no persistence) on a free port."""
    return mosquitto_factory()


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[str, int], TcpProxy]]:
    """Factory: ``proxy = tcp_proxy(broker.host, broker.port)``; connect clients to proxy.host/port."""
    proxies: list[TcpProxy] = []

    def make(host: str, port: int) -> TcpProxy:
        p = TcpProxy(host, port)
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.close()


@pytest.fixture
def mqtt_subscriber() -> Iterator[Callable[..., Subscriber]]:
    """Factory: ``sub = mqtt_subscriber(broker, "edge/#")`` -> a started :class:`Subscriber`."""
    subs: list[Subscriber] = []

    def make(broker: Broker, *topics: str, **kwargs) -> Subscriber:
        s = Subscriber(broker, list(topics) or ["#"], **kwargs)
        subs.append(s)
        return s.start()

    yield make
    for s in subs:
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - teardown must not mask the test's own failure
            pass


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port something listens on and never answers: a busy port for a server, a silent device for a client."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.fixture
async def charger() -> AsyncIterator[tuple[int, object]]:
    """A running ABB Terra AC simulator with a car wanting 50 kWh; yields (Modbus TCP port, simulator)."""
    from drivers.charger_common import Car
    from drivers.modbus_charger.sim import start

    port = free_port()
    handle = await start(profile="abb_terra_ac", tcp=f"127.0.0.1:{port}")
    sim = next(iter(handle.sims.values()))
    sim.plug(Car(need_wh=50_000))
    yield port, sim
    await handle.stop()


@pytest.fixture(scope="session")
def kernel_warmup(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """`edge-agent warmup` run once per test run on a state directory two levels short of existing (it
    must create it), asserted to exit 0 with the ahead-of-time build ready; the state directory.
    Shared by the parallel workers of one run (pytest-xdist): the first to need it runs it under a
    lock, the others wait. Read it, never change it: tests take copies (``warmed_kernel_cache``)."""
    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        root = root.parent  # the run's directory, above each worker's own
    warm = root / "warm"
    state = warm / "var" / "state"
    with open(root / "warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (warm / "ready").exists():
            shutil.rmtree(warm, ignore_errors=True)
            warm.mkdir()
            env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}  # the cache goes under the state dir
            r = subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(state)],
                               env=env, capture_output=True, text=True, timeout=900)
            assert r.returncode == 0 and "ahead-of-time build ready" in r.stdout, r.stdout + r.stderr[-2000:]
            (warm / "ready").touch()
    return state


@pytest.fixture(scope="session")
def warmed_kernel_cache(kernel_warmup: Path) -> Callable[[Path], Path]:
    """For tests that need the kernels built, not the building itself: ``copy(dest)`` puts a copy of
    the cache ``kernel_warmup`` filled (numba's JIT cache and the ahead-of-time build) at ``dest``
    (each test its own) and returns ``dest``."""
    def copy(dest: Path) -> Path:
        shutil.copytree(kernel_warmup / "numba-cache", dest)
        return dest
    return copy
