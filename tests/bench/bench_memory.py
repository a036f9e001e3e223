"""Where a running agent's memory goes, measured in one run. A plain script (no test dependencies; needs
the ``mosquitto`` binary), so it runs on the gateway itself.

    python tests/bench/bench_memory.py [--load demo|NxV@MS] [--settle 30]

* Import ledger: a fresh interpreter loads the run path one layer at a time, in the order a start
  does, and prints the RSS each layer adds (anonymous: Python objects and the libraries' heaps;
  file: the shared libraries' resident pages) and the modules it brings. A layer a previous one
  already loaded costs nothing here: the ledger charges each module to the first layer needing it.
  The last layers validate the config (the models built, its drivers imported) and import the
  agent's run-time parts.
* Running agent: ``edge-agent run`` on the same config (``demo``: the demo's device set with its
  simulators; ``40x60@100``: 40 SDM630 meters, 60 values each, polled every 100 ms on one Modbus TCP
  simulator), its steady RSS after ``--settle`` seconds split by mapping (the Python heap and
  anonymous memory, each shared library), and the share the running adds over the ledger's total:
  what the devices, their series state, the store and the uplink hold. The per-series state that
  grows with the number of series is printed beside it: the detector's (a row per series it watches)
  and the counters' (a row per counter).
* ``--plain``: the running agent is a process handed the config's plain twin, pickled (validated
  here, ``agent.contract.plain.to_plain``), with its drivers' and line kinds' references; it imports
  the run-time parts only (no CLI, no entry-point scan, no pydantic for a config whose drivers run on
  a plain config). The ledger is the same.

RSS, not PSS: the goal's figure (shared library pages count in full).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT)]
import footprint_kit as kit  # noqa: E402

# (label, Python statement run in the fresh interpreter); CONFIG is the config file's path
LAYERS = [
    # as `run` loads them: without OpenSSL (ssl, _hashlib) unless the config uses TLS (agent.cli.without_ssl)
    ("asyncio, paho (OpenSSL only for TLS)", "from agent.cli.without_ssl import prepare; prepare(['run', '-c', CONFIG]);"
     " import asyncio, paho.mqtt.client"),
    ("numpy", "import numpy"),
    # its model machinery loads with the first model (importlib.metadata, email, zoneinfo, json_schema ...)
    ("pydantic (and a first model)", "import pydantic; pydantic.create_model('M', x=(int, 0))"),
    ("click", "import click"),
    ("sqlite3, orjson", "import sqlite3, orjson"),
    ("the driver contract (its models)", "import agent.contract, agent.contract.config"),
    ("the config layer (the core models)", "import agent.config.schema"),
    ("the CLI and the run command", "import agent.cli.main, agent.cli.cmd_run"),
    ("config validated (models, drivers)", "from agent.config.loader import read_config; read_config(CONFIG)"),
    ("the agent's run-time parts", "import agent.app, agent.uplink.mqtt"),
]

_LEDGER = """
import gc, sys
CONFIG = sys.argv[1]
def mem():
    f = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
    return [int(f[k].split()[0]) / 1024 for k in ("VmRSS", "RssAnon", "RssFile")] + [len(sys.modules)]
print(*mem(), flush=True)
for stmt in sys.argv[2:]:
    exec(stmt)
    gc.collect()
    print(*mem(), flush=True)
"""


def ledger(config: Path) -> list[tuple[str, list[float]]]:
    out = subprocess.run([sys.executable, "-c", _LEDGER, str(config), *(s for _, s in LAYERS)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, check=True).stdout.split("\n")
    rows = [[float(x) for x in line.split()] for line in out if line.strip()]
    return list(zip(["interpreter and site", *(label for label, _ in LAYERS)], rows, strict=True))


def smaps(pid: int) -> Counter:
    """Resident KiB by mapping: [heap], [anon] (anonymous mmaps: Python's arenas, big arrays), each file."""
    by, name = Counter(), ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        f = line.split()
        if "-" in f[0] and not f[0].endswith(":"):
            name = f[5] if len(f) > 5 and not f[5].startswith("[stack") else "[anon]"
        elif f[0] == "Rss:":
            by[name] += int(f[1])
    return by


def demo_config(tmp: Path, broker: kit.Mosquitto) -> tuple[str, object]:
    from agent.demo.run import demo_config

    devices, stop = kit.start_demo_sims()
    return demo_config(tmp / "demo-state", broker.port, devices), stop


def meters_config(tmp: Path, broker: kit.Mosquitto, load: str) -> tuple[str, object]:
    from drivers.modbus_meter.codec import load_profile

    units, rest = load.split("x")
    values, ms = (int(x) for x in rest.split("@"))
    sim = kit.MeterSim(int(units))
    names = [r.name for r in load_profile("sdm630").registers][:values]
    out = [f'[gateway]\nid = "mem"\nstate_dir = "{tmp / "mem-state"}"\nlog_level = "WARNING"\n',
           f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n',
           f'[lines.meters]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {sim.port}\n']
    out += [f'[[devices]]\nname = "meter{u}"\ntype = "modbus_meter"\nprofile = "sdm630"\nunit = {u}\nline = "meters"\n'
            f'poll_interval = {ms / 1000}\nmetrics = {names!r}\n'.replace("'", '"') for u in range(1, int(units) + 1)]
    return "\n".join(out), sim.stop


# the run time on a plain config: OpenSSL left out as `run` does, the pickled twin and the references
# of its drivers and line kinds (no entry-point scan), the agent
_PLAIN_RUN = """
import os, pickle, sys
os.environ["EDGE_AGENT_EXEC"] = "0"  # this process runs the agent: it imports paho without ssl itself
from agent.cli.without_ssl import prepare
prepare(["run", "--config", sys.argv[1]])
import asyncio
from agent.app import run_agent
from agent.bus.kinds import line_kinds_from_references
from agent.driver import DriverCatalog
handed = pickle.loads(open(sys.argv[2], "rb").read())
asyncio.run(run_agent(handed["config"], catalog=DriverCatalog.from_references(handed["drivers"]),
                      line_kinds=line_kinds_from_references(handed["lines"])))
"""


def run_agent(tmp: Path, config: Path, settle: float, plain: bool = False) -> tuple[dict, Counter]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = open(tmp / "agent.log", "wb")  # noqa: SIM115 - handed to the child
    cmd = [sys.executable, "-m", "agent.cli.main", "run", "--config", str(config)]
    if plain:
        import pickle

        from agent.bus.kinds import line_kind_references
        from agent.config.loader import read_config
        from agent.contract.plain import to_plain
        from agent.driver import DriverCatalog

        cfg = read_config(config).config
        handed = {"config": to_plain(cfg), "drivers": DriverCatalog.discover().references(d.type for d in cfg.devices),
                  "lines": line_kind_references(line.type for line in cfg.lines.values())}
        (tmp / "plain.pickle").write_bytes(pickle.dumps(handed))
        cmd = [sys.executable, "-c", _PLAIN_RUN, str(config), str(tmp / "plain.pickle")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        time.sleep(settle / 2)
        cpu0, t0 = kit.cpu_s(proc.pid), time.monotonic()  # its CPU over the second half, beside the memory
        time.sleep(settle / 2)
        if proc.poll() is not None:
            raise SystemExit(f"the agent exited ({proc.returncode}):\n{(tmp / 'agent.log').read_text()[-3000:]}")
        mem = kit.memory(proc.pid)
        mem["cpu_pct"] = 100 * (kit.cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0)
        return mem, smaps(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--load", default="demo", help="demo, or N meters x V values @ poll ms (40x60@100)")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds the agent runs before its memory is read")
    ap.add_argument("--plain", action="store_true", help="run the agent on the config's plain twin (no pydantic)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as d:
        tmp = Path(d)
        broker = kit.Mosquitto(tmp / "mqtt")
        try:
            text, stop = demo_config(tmp, broker) if args.load == "demo" else meters_config(tmp, broker, args.load)
            config = tmp / "agent.toml"
            config.write_text(text)
            # the kernel cache and the run-time process's bytecode filled as an install does (`edge-agent
            # warmup` on the service's state directory); the runs use them
            os.environ["NUMBA_CACHE_DIR"] = str(tmp / "numba-cache")
            state = tmp / ("demo-state" if args.load == "demo" else "mem-state")
            subprocess.run([sys.executable, "-m", "agent.cli.main", "warmup", "--state-dir", str(state)],
                           cwd=ROOT, check=True, capture_output=True)
            try:
                mem, by = run_agent(tmp, config, args.settle, args.plain)
            finally:
                stop()
            rows = ledger(config)
        finally:
            broker.stop()
    load = os.getloadavg()
    print(f"load {args.load}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs\n")
    print(f"{'import ledger (a fresh interpreter)':38} {'+RSS':>6} {'anon':>6} {'file':>6} {'total':>6} {'modules':>8}")
    prev = None
    for label, (rss, anon, file, mods) in rows:
        if prev is None:
            print(f"{label:38} {rss:6.1f} {anon:6.1f} {file:6.1f} {rss:6.1f} {int(mods):8d}")
        else:
            print(f"{label:38} {rss - prev[0]:+6.1f} {anon - prev[1]:+6.1f} {file - prev[2]:+6.1f} {rss:6.1f} "
                  f"{int(mods - prev[3]):+8d}")
        prev = (rss, anon, file, mods)
    from agent.processing.kernels import counters, detect

    ci, cf = counters.new_state(1)
    print(f"\nrunning agent{' (plain config)' if args.plain else ''} after {args.settle:g} s: RSS {mem['rss']:.1f} MiB (goal <= 50), anonymous {mem['anonymous']:.1f},"
          f" CPU {mem['cpu_pct']:.1f} % of a core over the last {args.settle / 2:g} s;"
          f" the running adds {mem['rss'] - prev[0]:+.1f} MiB over the ledger's {prev[0]:.1f} (detector state: "
          f"{detect.new_state(1).nbytes / 1024:.2f} KiB per watched series, counter state: {ci.nbytes + cf.nbytes} B per"
          " counter)")
    for name, kib in by.most_common(14):
        print(f"  {kib / 1024:6.1f} MiB  {name.replace(sys.base_prefix, '<python>')}")
    rest = sum(by.values()) - sum(k for _, k in by.most_common(14))
    print(f"  {rest / 1024:6.1f} MiB  {len(by) - 14} other mappings")


if __name__ == "__main__":
    main()
