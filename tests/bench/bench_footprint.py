"""Footprint and CPU per reading of the real agent process, each figure beside its goal, in one run.

    python tests/bench/bench_footprint.py [--settle 15] [--window 20] [--only demo,idle,modbus,replay]
                                          [--jit auto|on|off] [--py-spy DIR]

The kernel cache is warmed first, as an install would (`edge-agent warmup`: numba's cache and the
ahead-of-time build). ``--jit`` sets ``[processing] jit`` for every run; ``--py-spy DIR`` records
each rate run's measured window (collapsed stacks of the thread holding the GIL) into DIR.

* demo: the demo's device set (its simulators, `edge-agent run` on its config, mosquitto): start to
  first publish (warm kernel cache), then steady RSS / PSS / anonymous memory (/proc/PID/smaps_rollup)
  and CPU % of one core.
* idle: one Modbus TCP meter at 100 points/s (60 float32 values per read): CPU % of one core.
* modbus: Modbus TCP meters polled as fast as they answer, 60 float32 values per read, QoS 1 to
  mosquitto: agent CPU seconds per million readings delivered.
* replay: replay devices at full speed: agent CPU seconds per million readings delivered.

CPU is the agent process's user + system time (psutil); readings are counted at a subscriber.
Memory: RSS is the goal's figure; PSS shares pages mapped by other processes (on a shared machine
LLVM's pages may be counted there); anonymous memory is what no file backs. The machine may be
shared: repeat, and compare ratios rather than single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from chaos.agent_proc import AgentProcess, write_replay_csv  # noqa: E402
from mqtt_helpers import Broker, free_port  # noqa: E402

GOALS = {"rss_mb": 100.0, "idle_cpu_pct": 1.0, "first_publish_s": 1.5, "modbus_cpu_s_per_M": 10.0,
         "replay_cpu_s_per_M": 10.0}


class SimLoop:
    """Simulators on an event loop in a background thread (the agent runs as a subprocess)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sims", daemon=True)
        self.thread.start()
        self.handles: list = []

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        for h in reversed(self.handles):
            try:
                self.call(h.stop(), 30)
            except Exception:  # noqa: BLE001 - best effort at the end of a benchmark
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and anonymous memory in MiB from /proc/PID/smaps_rollup, and LLVM's resident share."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Anonymous"):
            out[key.lower()] = int(rest.split()[0]) / 1024
    llvm, name = 0, ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if "-" in f[0] and len(f) >= 5:
            name = f[5] if len(f) > 5 else ""
        elif f[0] == "Rss:" and "libllvmlite" in name:
            llvm += int(f[1])
    out["llvm"] = llvm / 1024
    return out


def cpu_s(ps: psutil.Process) -> float:
    t = ps.cpu_times()
    return t.user + t.system


class ReadingCounter:
    """Counts readings in telemetry messages as they arrive (payloads are not kept)."""

    def __init__(self, broker: Broker, gateway: str):
        import paho.mqtt.client as mqtt

        self.count = 0
        self.first_at: float | None = None
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(f"edge/{gateway}/telemetry/#", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        n = msg.payload.count(b'"ts"')  # one "ts" key per reading: no JSON parse in the hot loop
        with self.lock:
            self.count += n
            if self.first_at is None:
                self.first_at = time.monotonic()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


JIT: str | None = None  # --jit: [processing] jit for every agent (default: the config's default)


def start_agent(tmp: Path, text: str, name: str, env: dict[str, str] | None = None) -> AgentProcess:
    cfg = tmp / f"{name}.toml"
    if JIT is not None:
        if "[processing]" in text:
            text = text.replace("[processing]\n", f'[processing]\njit = "{JIT}"\n')
        else:
            text += f'\n[processing]\njit = "{JIT}"\n'
    cfg.write_text(text)
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        return AgentProcess(cfg, tmp / f"{name}.log").start()
    finally:
        os.environ.clear()
        os.environ.update(old)


def wait(pred: Callable[[], bool], timeout: float, what: str, agent: AgentProcess) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if agent.proc.poll() is not None:
            raise RuntimeError(f"agent exited while waiting for {what}:\n{agent.log_tail()}")
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}:\n{agent.log_tail()}")


def header(gateway: str, tmp: Path, broker: Broker, *, commit: float | None = None) -> str:
    store = f"[store]\ncommit_interval = {commit}\n" if commit else ""
    return (f'[gateway]\nid = "{gateway}"\nstate_dir = "{tmp / gateway}"\nlog_level = "WARNING"\n\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nreadings_per_message = 100\n'
            f'max_inflight = 1000\n\n{store}')


# --------------------------------------------------------------------------------------------- parts
def bench_demo(tmp: Path, broker: Broker, cache: Path, settle: float, window: float) -> dict:
    from agent.demo.run import demo_config
    from agent.demo.sims import STARTERS, DemoSims

    sims = SimLoop()
    demo = DemoSims()
    try:
        for starter in STARTERS:
            sims.call(starter(demo))
        sims.handles.extend(demo.handles)
        extra = "".join(demo.toml) + demo.site_toml
        text = demo_config(tmp / "demo-state", broker.port, extra)
        env = {"NUMBA_CACHE_DIR": str(cache)}
        # a first run warms the kernel cache; the measured run starts warm
        for attempt in ("warm", "measured"):
            counter = ReadingCounter(broker, "demo-gw")
            t0 = time.monotonic()
            agent = start_agent(tmp, text, f"demo-{attempt}", env)
            ps = psutil.Process(agent.proc.pid)
            try:
                wait(lambda c=counter: c.first_at is not None, 300, "the first publish", agent)
                first = counter.first_at - t0
                if attempt == "warm":
                    continue
                time.sleep(settle)
                c0, r0, w0 = cpu_s(ps), counter.count, time.monotonic()
                time.sleep(window)
                c1, r1, w1 = cpu_s(ps), counter.count, time.monotonic()
                mem = smaps(agent.proc.pid)
            finally:
                agent.terminate()
                counter.stop()
        return {"first_publish_s": first, "rss_mb": mem["rss"], "pss_mb": mem["pss"], "anon_mb": mem["anonymous"],
                "llvm_mb": mem["llvm"],
                "demo_cpu_pct": (c1 - c0) / (w1 - w0) * 100, "demo_rate": (r1 - r0) / (w1 - w0)}
    finally:
        sims.close()


def _meter_devices(n: int, port: int, poll: float) -> str:
    from drivers.modbus_meter.codec import load_profile

    names = [r.name for r in load_profile("sdm630").registers][:60]
    out = [f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n']
    for uid in range(1, n + 1):
        out.append(f'[[devices]]\nname = "meter{uid}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {uid}\n'
                   f'line = "meters"\npoll_interval = {poll}\nmetrics = {orjson.dumps(names).decode()}\n')
    return "\n".join(out)


def _meter_sim(sims: SimLoop, units: int) -> int:
    from drivers.modbus_meter.sim import start

    port = free_port()
    sims.handles.append(sims.call(start(units={u: "sdm630" for u in range(1, units + 1)},
                                        tcp=f"127.0.0.1:{port}", update_interval=1.0)))
    return port


PROFILE_DIR: Path | None = None  # --py-spy DIR: record collapsed stacks of each measured window there


def bench_rate(tmp: Path, broker: Broker, cache: Path, name: str, text: str, settle: float, window: float) -> dict:
    counter = ReadingCounter(broker, name)
    agent = start_agent(tmp, text, name, {"NUMBA_CACHE_DIR": str(cache)})
    ps = psutil.Process(agent.proc.pid)
    try:
        wait(lambda: counter.count > 0, 300, "the first publish", agent)
        time.sleep(settle)
        c0, r0, w0 = cpu_s(ps), counter.count, time.monotonic()
        if PROFILE_DIR is not None:
            import subprocess

            PROFILE_DIR.mkdir(parents=True, exist_ok=True)
            subprocess.Popen(["py-spy", "record", "-p", str(agent.proc.pid), "-d", str(int(window)), "-f", "raw",
                              "--nonblocking", "--gil", "-r", "100", "-o", str(PROFILE_DIR / f"{name}.txt")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(window)
        c1, r1, w1 = cpu_s(ps), counter.count, time.monotonic()
        mem = smaps(agent.proc.pid)
    finally:
        agent.terminate()
        counter.stop()
    done = max(1, r1 - r0)
    return {"cpu_pct": (c1 - c0) / (w1 - w0) * 100, "rate": done / (w1 - w0), "cpu_s_per_M": (c1 - c0) / done * 1e6,
            "rss_mb": mem["rss"], "anon_mb": mem["anonymous"], "llvm_mb": mem["llvm"]}


def bench_idle(tmp: Path, broker: Broker, cache: Path, settle: float, window: float) -> dict:
    sims = SimLoop()
    try:
        port = _meter_sim(sims, 1)
        text = header("idle", tmp, broker) + _meter_devices(1, port, 0.6)  # 60 values / 0.6 s = 100 points/s
        return bench_rate(tmp, broker, cache, "idle", text, settle, window)
    finally:
        sims.close()


def bench_modbus(tmp: Path, broker: Broker, cache: Path, settle: float, window: float, units: int = 4) -> dict:
    sims = SimLoop()
    try:
        port = _meter_sim(sims, units)
        text = header("modbus", tmp, broker) + _meter_devices(units, port, 0.005)
        return bench_rate(tmp, broker, cache, "modbus", text, settle, window)
    finally:
        sims.close()


def bench_replay(tmp: Path, broker: Broker, cache: Path, settle: float, window: float, devices: int = 4) -> dict:
    body = [header("replay", tmp, broker, commit=0.1), '[processing]\nwindows = ["1m"]\n']
    for i in range(devices):
        csv = tmp / f"replay{i}.csv"
        write_replay_csv(csv, 200_000, step_s=1)
        body.append(f'[[devices]]\nname = "dev{i}"\ntype = "replay"\nfile = "{csv}"\nspeed = 0\nloop = true\n'
                    f'max_rows_per_read = 2000\npoll_interval = 0.05\nanomaly = true\n')
    return bench_rate(tmp, broker, cache, "replay", "\n".join(body), settle, window)


def verdict(value: float, goal: float) -> str:
    return f"{'ok' if value <= goal else 'OVER'} (goal <= {goal:g})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--settle", type=float, default=15.0, help="seconds after the first publish before measuring")
    ap.add_argument("--window", type=float, default=20.0, help="seconds measured")
    ap.add_argument("--only", default="demo,idle,modbus,replay")
    ap.add_argument("--jit", choices=["auto", "on", "off"], help="[processing] jit for every agent run")
    ap.add_argument("--py-spy", type=Path, help="record a py-spy profile (collapsed stacks) of each rate run here")
    args = ap.parse_args()
    ap_jit = args.jit
    global PROFILE_DIR, JIT
    PROFILE_DIR, JIT = args.py_spy, ap_jit
    parts = set(args.only.split(","))
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        cache = tmp / "numba-cache"  # shared by every run, warmed first as an install would
        import subprocess

        subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(tmp / "warm")],
                       env={**os.environ, "NUMBA_CACHE_DIR": str(cache)}, check=True, capture_output=True)
        broker = Broker(tmp / "broker").start()
        try:
            if "demo" in parts:
                r = bench_demo(tmp, broker, cache, args.settle, args.window)
                print(f"demo devices   start to first publish {r['first_publish_s']:6.2f} s      "
                      f"{verdict(r['first_publish_s'], GOALS['first_publish_s'])}")
                print(f"demo devices   steady RSS            {r['rss_mb']:6.1f} MiB    {verdict(r['rss_mb'], GOALS['rss_mb'])}"
                      f"   PSS {r['pss_mb']:.1f} MiB, anonymous {r['anon_mb']:.1f} MiB, LLVM {r['llvm_mb']:.1f} MiB")
                print(f"demo devices   CPU                   {r['demo_cpu_pct']:6.2f} % of a core at {r['demo_rate']:.0f} readings/s")
            if "idle" in parts:
                r = bench_idle(tmp, broker, cache, args.settle, args.window)
                print(f"idle           CPU at {r['rate']:4.0f} points/s   {r['cpu_pct']:6.2f} % of a core "
                      f"{verdict(r['cpu_pct'], GOALS['idle_cpu_pct'])}   RSS {r['rss_mb']:.1f} MiB")
            if "modbus" in parts:
                r = bench_modbus(tmp, broker, cache, max(args.settle, 10), args.window)
                print(f"modbus tcp     CPU per reading       {r['cpu_s_per_M']:6.1f} CPU-s/M "
                      f"{verdict(r['cpu_s_per_M'], GOALS['modbus_cpu_s_per_M'])}   at {r['rate']:.0f} readings/s, "
                      f"RSS {r['rss_mb']:.1f} MiB (anonymous {r['anon_mb']:.1f}, LLVM {r['llvm_mb']:.1f})")
            if "replay" in parts:
                r = bench_replay(tmp, broker, cache, max(args.settle, 10), args.window)
                print(f"replay         CPU per reading       {r['cpu_s_per_M']:6.1f} CPU-s/M "
                      f"{verdict(r['cpu_s_per_M'], GOALS['replay_cpu_s_per_M'])}   at {r['rate']:.0f} readings/s, "
                      f"RSS {r['rss_mb']:.1f} MiB (anonymous {r['anon_mb']:.1f}, LLVM {r['llvm_mb']:.1f})")
        finally:
            broker.kill()


if __name__ == "__main__":
    main()
