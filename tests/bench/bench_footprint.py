"""CPU per datapoint, memory, idle CPU and start-up of the real agent process, beside the peer (the
ThingsBoard IoT Gateway 3.8.5) and the physical limits, all measured in the same run. A plain script:
it needs the agent's own dependencies and the ``mosquitto`` binary, so it runs on the gateway itself.

    python tests/bench/bench_footprint.py [--settle 10] [--window 20] [--only limits,loads,idle,demo]
        [--loads 10x60@200,10x60@100,40x60@100,100x60@100] [--peer-python PATH | --no-peer]
        [--peer-stores memory,sqlite] [--no-sequential] [--jit auto|on|off] [--py-spy DIR [--py-spy-rate 100]]

* limits: the Modbus round trip of the simulator (a bare pymodbus client, the requests one read of 60
  values needs: the most datapoints/s one Modbus TCP connection can carry), mosquitto's QoS 1 rate
  (bare paho, 100 readings per message, the shipped window) and SQLite's fsync'd commit rate (WAL,
  synchronous=FULL, as the outbox).
* loads: N SDM630 meters (one simulator process, one Modbus TCP port), 60 float32 values each, polled
  every P ms, QoS 1 to mosquitto. Agent: CPU-s per million datapoints delivered, datapoints/s, RSS,
  and the loss check (sims stopped, delivery settled: seqs 1..n with no gap or duplicate, every read's
  60 values delivered). Peer: the same with its memory store and its SQLite store, when its venv is
  found (peer_tbgw.py: ``--peer-python`` or ``TBGW_PYTHON``); else its columns say why not.
  The agent runs with the shipped defaults: ``pipeline = "auto"`` on the line sends a device's block
  reads of a poll in one write (the simulator queues them, as a device with a request queue does), and
  the polls of the meters that wait for the line (all meters share one connection) in one write together.
  Its ``pipeline = false`` column runs it again with the reads one at a time, for the comparison.
* idle: 10 meters polled every second: CPU % of one core, agent (also with ``pipeline = false``) and
  peer.
* demo: the demo's device set: start to first publish over `--starts` warm starts (median, max; warm
  kernel and bytecode caches), steady RSS, CPU.

Memory over a long run (an hour) at one load: tests/bench/bench_soak.py.

CPU is the process's user + system time (/proc/PID/stat); datapoints are counted at a subscriber. RSS
is the goal's figure (PSS shares pages other processes map too). The machine may be shared: compare
the ratios printed, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import footprint_kit as kit  # noqa: E402
import peer_tbgw as peer  # noqa: E402
from chaos.agent_proc import AgentProcess  # noqa: E402

GOALS = {"rss_mb": 50.0, "idle_cpu_pct": 0.5, "first_publish_s": 1.0}
VALUES = 60
ARGS: argparse.Namespace


def _registers() -> list[tuple[str, int]]:
    from drivers.modbus_meter.codec import load_profile

    return [(r.name, r.address) for r in load_profile("sdm630").registers][:VALUES]


def _blocks() -> list[tuple[int, int]]:
    from drivers.modbus_meter.codec import load_profile

    prof = load_profile("sdm630").profile
    return kit.block_plan([a for _, a in _registers()], max_registers=prof.max_registers, max_gap=prof.max_gap)


def agent_config(tmp: Path, name: str, broker: kit.Mosquitto, meters: int, port: int, poll_s: float,
                 sequential: bool = False) -> str:
    import orjson

    names = orjson.dumps([n for n, _ in _registers()]).decode()
    out = [f'[gateway]\nid = "{name}"\nstate_dir = "{tmp / name}"\nlog_level = "WARNING"\n',
           f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n',
           f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
           + ("pipeline = false\n" if sequential else "")]
    if ARGS.jit:
        out.append(f'[processing]\njit = "{ARGS.jit}"\n')
    for uid in range(1, meters + 1):
        out.append(f'[[devices]]\nname = "meter{uid}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {uid}\n'
                   f'line = "meters"\npoll_interval = {poll_s}\nmetrics = {names}\n')
    return "\n".join(out)


def start_agent(tmp: Path, name: str, text: str) -> AgentProcess:
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text)
    return AgentProcess(cfg, tmp / f"{name}.log").start()


def wait(pred: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}):\n{log()}")
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}:\n{log()}")


def measure(pid: int, sub: kit.Subscriber, name: str) -> dict:
    """Settle, then CPU and datapoints over the window, then memory."""
    time.sleep(ARGS.settle)
    c0, r0, w0 = kit.cpu_s(pid), sub.count, time.monotonic()
    if ARGS.py_spy is not None:
        ARGS.py_spy.mkdir(parents=True, exist_ok=True)
        subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(int(ARGS.window)), "-f", "raw", "--nonblocking",
                          "--gil", "-r", str(ARGS.py_spy_rate), "-o", str(ARGS.py_spy / f"{name}.txt")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(ARGS.window)
    c1, r1, w1 = kit.cpu_s(pid), sub.count, time.monotonic()
    mem = kit.memory(pid)
    done = max(1, r1 - r0)
    return {"cpu_pct": (c1 - c0) / (w1 - w0) * 100, "rate": (r1 - r0) / (w1 - w0), "cpu_s_per_M": (c1 - c0) / done * 1e6,
            "rss": mem["rss"], "anon": mem["anonymous"], "llvm": mem["llvm"]}


def settle_count(sub: kit.Subscriber, quiet: float = 3.0, timeout: float = 120) -> None:
    last, since, deadline = sub.count, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.2)
        if sub.count != last:
            last, since = sub.count, time.monotonic()


def run_agent(tmp: Path, broker: kit.Mosquitto, name: str, meters: int, poll_s: float, sequential: bool = False) -> dict:
    """``sequential``: the line's ``pipeline = false`` (a device's block reads one at a time)."""
    sim = kit.MeterSim(meters)
    sub = kit.Subscriber(broker.host, broker.port, [f"edge/{name}/telemetry/#", f"edge/{name}/health",
                                                         f"edge/{name}/event", f"edge/{name}/agg/#"])
    agent = start_agent(tmp, name, agent_config(tmp, name, broker, meters, sim.port, poll_s, sequential))
    try:
        wait(lambda: sub.count > 0, 300, "the agent's first publish", agent.proc, agent.log_tail)
        r = measure(agent.proc.pid, sub, name)
        sim.stop()  # no more reads: what was read must all arrive
        settle_count(sub)
        r["loss"] = sub.loss(VALUES)
        return r
    finally:
        sim.stop()
        agent.terminate()
        sub.stop()


def run_peer(tmp: Path, broker: kit.Mosquitto, exe: str, name: str, meters: int, poll_s: float, store: str) -> dict:
    sim = kit.MeterSim(meters)
    sub = kit.Subscriber(broker.host, broker.port, [peer.TOPIC, "v1/devices/me/rpc/request/+"], agent=False,
                         answer=peer.answer_session_limits, count=peer.datapoints)
    d = peer.write_config(exe, tmp / name, host=broker.host, port=broker.port, modbus_port=sim.port, meters=meters,
                          registers=_registers(), poll_s=poll_s, storage=store)
    proc = peer.start(exe, d)
    log = lambda: (d / "stdout.log").read_text(errors="replace")[-3000:]  # noqa: E731
    started = time.monotonic()
    try:
        try:
            wait(lambda: sub.count > 0, ARGS.peer_timeout, "the peer's first publish", proc, log)
        except RuntimeError as e:
            if "timed out" not in str(e):
                raise
            # it runs but publishes nothing (it falls behind its own polls): what that costs
            return {"cpu_pct": kit.cpu_s(proc.pid) / (time.monotonic() - started) * 100, "rate": 0.0}
        return measure(proc.pid, sub, name)
    finally:
        sim.stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        sub.stop()


# ------------------------------------------------------------------------------------------ parts
def limits(tmp: Path) -> dict:
    from bench_drain import READINGS, bare_paho

    sim = kit.MeterSim(1)
    try:
        rtt = kit.modbus_round_trip(sim.port, _blocks())
    finally:
        sim.stop()
    broker = kit.Mosquitto(tmp / "limit-broker")
    try:
        mqtt_rate = bare_paho(broker.port, 2000)
    finally:
        broker.stop()
    return {"rtt_s": rtt, "requests": len(_blocks()), "modbus_dp_s": VALUES / (rtt * len(_blocks())),
            "mqtt_dp_s": mqtt_rate, "readings_per_msg": READINGS, "fsync_commits_s": kit.sqlite_fsync_commits(tmp)}


def parse_load(text: str) -> tuple[int, int, int]:
    meters, rest = text.split("x")
    values, ms = rest.split("@")
    if int(values) != VALUES:
        raise SystemExit(f"--loads: {text}: the meters have {VALUES} values")
    return int(meters), int(values), int(ms)


def fmt_peer(r: dict | str, agent: dict) -> str:
    if isinstance(r, str):
        return f"{r:>30}"
    if not r["rate"]:
        text = f"nothing in {ARGS.peer_timeout:.0f} s, {r['cpu_pct']:.0f} % CPU"
        return f"{text:>30}"
    return f"{r['cpu_s_per_M']:7.1f} {r['rate']:7.0f} {r['rss']:5.0f} {r['cpu_s_per_M'] / agent['cpu_s_per_M']:6.1f}x"


def loads(tmp: Path, broker: kit.Mosquitto, exe: str | None, why: str, lim: dict | None) -> None:
    stores = [s for s in ARGS.peer_stores.split(",") if s] if exe is not None else []
    print(f"\nloads: CPU-s per million datapoints delivered (QoS 1), datapoints/s, RSS MiB; peer: {why}")
    head = f"{'load':>12} {'offered':>8} | {'agent':>7} {'dp/s':>7} {'RSS':>5} {'loss':>6}"
    if ARGS.sequential:
        head += f" | {'pipeline = false':>16} {'RSS':>5} {'loss':>6}"
    for s in stores:
        head += f" | {'peer ' + s:>7} {'dp/s':>7} {'RSS':>5} {'/agent':>7}"
    print(head + (f" | {'Modbus limit dp/s':>17}" if lim else ""))
    for text in ARGS.loads.split(","):
        meters, _, ms = parse_load(text)
        offered = meters * VALUES * 1000 / ms
        a = run_agent(tmp, broker, f"agent-{meters}-{ms}", meters, ms / 1000)
        line = f"{text:>12} {offered:8.0f} | {a['cpu_s_per_M']:7.1f} {a['rate']:7.0f} {a['rss']:5.0f} {a['loss']:>6}"
        if ARGS.sequential:
            sq = run_agent(tmp, broker, f"agent-sequential-{meters}-{ms}", meters, ms / 1000, sequential=True)
            line += f" | {sq['cpu_s_per_M']:16.1f} {sq['rss']:5.0f} {sq['loss']:>6}"
        for s in stores:
            try:
                p: dict | str = run_peer(tmp, broker, exe, f"peer-{s}-{meters}-{ms}", meters, ms / 1000, s)
            except RuntimeError as e:
                p = f"failed: {str(e).splitlines()[0][:22]}"
            line += " | " + fmt_peer(p, a)
        if lim:
            line += f" | {lim['modbus_dp_s']:17.0f}"
        print(line, flush=True)


def idle(tmp: Path, broker: kit.Mosquitto, exe: str | None, why: str) -> None:
    a = run_agent(tmp, broker, "agent-idle", 10, 1.0)
    print(f"\nidle, 10 meters x 60 values polled every second: agent {a['cpu_pct']:.2f} % of a core "
          f"({'ok' if a['cpu_pct'] <= GOALS['idle_cpu_pct'] else 'OVER'}, goal <= {GOALS['idle_cpu_pct']}), "
          f"RSS {a['rss']:.1f} MiB, loss {a['loss']}", flush=True)
    if ARGS.sequential:
        sq = run_agent(tmp, broker, "agent-idle-sequential", 10, 1.0, sequential=True)
        print(f"  with pipeline = false on the line: {sq['cpu_pct']:.2f} % of a core, RSS {sq['rss']:.1f} MiB, "
              f"loss {sq['loss']}", flush=True)
    if exe is not None:
        p = run_peer(tmp, broker, exe, "peer-idle", 10, 1.0, "memory")
        print(f"  peer (memory store) {p['cpu_pct']:.2f} % of a core, RSS {p['rss']:.1f} MiB: "
              f"agent/peer CPU {a['cpu_pct'] / p['cpu_pct']:.2f}", flush=True)
    else:
        print(f"  peer: {why}")


def demo(tmp: Path, broker: kit.Mosquitto) -> None:
    from agent.demo.run import demo_config

    devices, stop = kit.start_demo_sims()
    try:
        text = demo_config(tmp / "demo-state", broker.port, devices)
        if ARGS.jit:
            text = text.replace("[processing]\n", f'[processing]\njit = "{ARGS.jit}"\n') if "[processing]" in text \
                else text + f'\n[processing]\njit = "{ARGS.jit}"\n'
        firsts: list[float] = []
        load = os.getloadavg()
        # the first run warms the kernel and bytecode caches; the last one is measured for RSS and CPU too
        for attempt in ["warm", *[f"start-{i}" for i in range(ARGS.starts - 1)], "measured"]:
            sub = kit.Subscriber(broker.host, broker.port, ["edge/demo-gw/telemetry/#"])
            t0 = time.monotonic()
            agent = start_agent(tmp, f"demo-{attempt}", text)
            try:
                wait(lambda s=sub: s.first_at is not None, 300, "the first publish", agent.proc, agent.log_tail)
                if attempt != "warm":
                    firsts.append(sub.first_at - t0)
                if attempt == "measured":
                    r = measure(agent.proc.pid, sub, "demo")
            finally:
                agent.terminate()
                sub.stop()
        first = statistics.median(firsts)
        print(f"\ndemo devices: start to first publish, {len(firsts)} warm starts (load average "
              f"{load[0]:.2f}): median {first:.2f} s, max {max(firsts):.2f} s "
              f"({', '.join(f'{f:.2f}' for f in firsts)})")
        print(f"demo devices: start to first publish {first:.2f} s (median; warm caches; "
              f"{'ok' if first <= GOALS['first_publish_s'] else 'OVER'}, goal <= {GOALS['first_publish_s']}), "
              f"steady RSS {r['rss']:.1f} MiB ({'ok' if r['rss'] <= GOALS['rss_mb'] else 'OVER'}, goal <= "
              f"{GOALS['rss_mb']:g}; anonymous {r['anon']:.1f}, LLVM {r['llvm']:.1f}), CPU {r['cpu_pct']:.2f} % "
              f"of a core at {r['rate']:.0f} readings/s", flush=True)
    finally:
        stop()


def warm_cache(tmp: Path, cache: Path | None) -> None:
    """Fill the kernel cache the agent runs will use, as an install does (``edge-agent warmup``)."""
    os.environ["NUMBA_CACHE_DIR"] = str(cache or tmp / "numba-cache")
    subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(tmp / "warm")],
                   check=True, capture_output=True)


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after the first publish before measuring")
    ap.add_argument("--window", type=float, default=20.0, help="seconds measured")
    ap.add_argument("--only", default="limits,loads,idle,demo")
    ap.add_argument("--starts", type=int, default=5, help="warm starts of the demo timed to their first publish")
    ap.add_argument("--loads", default="10x60@200,10x60@100,40x60@100,100x60@100", help="METERSxVALUES@POLL_MS,...")
    ap.add_argument("--peer-python", help="the ThingsBoard IoT Gateway venv's python (default: $TBGW_PYTHON, "
                    f"else {peer.DEFAULT_PYTHON})")
    ap.add_argument("--no-peer", action="store_true", help="agent and limits only")
    ap.add_argument("--peer-timeout", type=float, default=120.0, help="seconds to wait for the peer's first publish")
    ap.add_argument("--peer-stores", default="memory,sqlite", help="the peer's storage types to run")
    ap.add_argument("--no-sequential", dest="sequential", action="store_false",
                    help="skip the agent's runs with pipeline = false on the Modbus TCP line")
    ap.add_argument("--jit", choices=["auto", "on", "off"], help="[processing] jit for every agent run")
    ap.add_argument("--cache", type=Path, help="kernel cache directory to warm and use (default: a new one)")
    ap.add_argument("--py-spy", type=Path, help="record a py-spy profile (raw collapsed stacks) of each window here")
    ap.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples per second")
    ARGS = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the sims, brokers and peers it started
    parts = set(ARGS.only.split(","))
    exe, why = (None, "not run (--no-peer)") if ARGS.no_peer else peer.find_python(ARGS.peer_python)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}, "
          f"{os.cpu_count()} CPUs; peer: {why}", flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        warm_cache(tmp, ARGS.cache)
        lim = None
        if "limits" in parts:
            lim = limits(tmp)
            print(f"limits: Modbus round trip {lim['rtt_s'] * 1000:.2f} ms x {lim['requests']} requests per read = "
                  f"{lim['modbus_dp_s']:.0f} datapoints/s per connection; mosquitto QoS 1 {lim['mqtt_dp_s']:.0f} "
                  f"readings/s ({lim['readings_per_msg']} per message); SQLite fsync'd commits "
                  f"{lim['fsync_commits_s']:.0f}/s", flush=True)
        broker = kit.Mosquitto(tmp / "broker", acl=peer.ACL)
        try:
            if "loads" in parts:
                loads(tmp, broker, exe, why, lim)
            if "idle" in parts:
                idle(tmp, broker, exe, why)
            if "demo" in parts:
                demo(tmp, broker)
        finally:
            broker.stop()
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
