"""What the web page costs the agent, and which HTTP server to serve it with, measured in one run.

    python tests/bench/bench_web.py [--settle 20] [--poll 60] [--meters 2]

Each variant is a fresh agent process (two SDM630 simulators polled each second, a real mosquitto):

* off: the shipped default, ``[web]`` absent.
* own: ``[web] enabled = true``: the agent's own asyncio HTTP server (agent.web.http).
* aiohttp: the same page, routes and state served by aiohttp instead (the same WebServer.handle
  behind an aiohttp catch-all route), for comparison.

For each: RSS (and anonymous memory) after ``--settle`` seconds idle, and again after ``--poll``
seconds of one browser's polling (GET / once, then /api/state and one /api/history every refresh
interval, as the page's script does). Printed: each figure, its delta against off, the goal
(<= +10 MB), and the ratio of aiohttp's cost to ours. The machine may be shared: repeat and compare
ratios rather than single figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench_footprint import SimLoop, smaps  # noqa: E402
from mqtt_helpers import Broker, free_port  # noqa: E402

GOAL_MB = 10.0
VARIANTS = ("off", "own", "aiohttp")


def config_text(tmp: Path, broker: Broker, meters: list[int], web_port: int, web: bool) -> str:
    body = [f'[gateway]\nid = "gw-bench-web"\nstate_dir = "{tmp / "state"}"\nlog_level = "WARNING"\n',
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n', "[health]\ninterval = 2\n"]
    if web:
        body.append(f'[web]\nenabled = true\nlisten = "127.0.0.1:{web_port}"\n')
    for i, port in enumerate(meters):
        body.append(f'[lines.m{i}]\ntype = "modbus_tcp"\nhost = "127.0.0.1"\nport = {port}\n'
                    f'[[devices]]\nname = "meter{i}"\ntype = "modbus_meter"\nprofile = "sdm630"\nline = "m{i}"\n'
                    f'poll_interval = 1\n')
    return "\n".join(body)


# -- the agent process (child) ---------------------------------------------------------------------
async def child(variant: str, config: Path, port: int) -> None:
    from agent.app import Agent
    from agent.config import load_config

    agent = Agent(load_config(config))
    if variant == "aiohttp":
        from aiohttp import web

        from agent.web.config import WebConfig
        from agent.web.http import HttpError, Request
        from agent.web.server import WebServer
        from agent.web.view import EventLog

        events = EventLog(agent.topics.event)
        agent.pipeline.taps.append(events.tap)
        server = WebServer(WebConfig(enabled=True, listen=f"127.0.0.1:{port}"), agent, event_log=events,
                           state_dir=agent.state_dir)

        async def handle(request: web.Request) -> web.Response:
            req = Request(request.method, request.path, dict(request.query),
                          {k.lower(): v for k, v in request.headers.items()}, await request.read(), request.remote or "")
            try:
                resp = await server.handle(req)
            except HttpError as e:
                return web.Response(status=e.status, text=str(e))
            return web.Response(status=resp.status, body=resp.body,
                                headers={"Content-Type": resp.content_type, **dict(resp.headers)})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        sampler = asyncio.create_task(server._sample_loop())  # noqa: F841 - kept alive with the agent
    await agent.run()


# -- the benchmark (parent) ------------------------------------------------------------------------
def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def wait_status(state: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited ({proc.returncode})")
        try:
            doc = json.loads((state / "status.json").read_text())
            if doc["devices"] and all(d["up"] for d in doc["devices"].values()):
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise RuntimeError("devices did not come up")


def browse(port: int, seconds: float, refresh: float = 2.0) -> int:
    """One browser's traffic: the page, then state and one chart each refresh; returns requests made."""
    base = f"http://127.0.0.1:{port}"
    get(base + "/")
    n, end = 1, time.monotonic() + seconds
    while time.monotonic() < end:
        state = json.loads(get(base + "/api/state"))
        first = next(iter(state["values"].values()))[0]["id"]
        get(f"{base}/api/history?id={first}")
        n += 2
        time.sleep(refresh)
    return n


def run_variant(variant: str, tmp: Path, broker: Broker, meters: list[int], settle: float, poll: float) -> dict:
    port = free_port()
    vdir = tmp / variant
    vdir.mkdir()
    cfg = vdir / "agent.toml"
    cfg.write_text(config_text(vdir, broker, meters, port, web=variant == "own"))
    log = open(vdir / "agent.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, __file__, "--child", variant, str(cfg), str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_status(vdir / "state", proc)
        except RuntimeError as e:
            log.flush()
            raise RuntimeError(f"{variant}: {e}\n{(vdir / 'agent.log').read_text()[-3000:]}") from None
        time.sleep(settle)
        idle = smaps(proc.pid)
        requests = browse(port, poll) if variant != "off" else 0
        if variant == "off":
            time.sleep(poll)
        polled = smaps(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"idle_rss": idle["rss"], "idle_anon": idle["anonymous"], "polled_rss": polled["rss"],
            "polled_anon": polled["anonymous"], "requests": requests}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--poll", type=float, default=60.0)
    ap.add_argument("--meters", type=int, default=2)
    ap.add_argument("--child", nargs=3, metavar=("VARIANT", "CONFIG", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        asyncio.run(child(args.child[0], Path(args.child[1]), int(args.child[2])))
        return
    from agent.driver import discover_simulators

    with tempfile.TemporaryDirectory(prefix="bench-web-") as d:
        tmp = Path(d)
        broker = Broker(tmp / "broker").start()
        sims = SimLoop()
        try:
            meters = []
            for _ in range(args.meters):
                port = free_port()
                sims.handles.append(sims.call(discover_simulators()["sdm630"].start(tcp=f"127.0.0.1:{port}")))
                meters.append(port)
            results = {v: run_variant(v, tmp, broker, meters, args.settle, args.poll) for v in VARIANTS}
        finally:
            sims.close()
            broker.stop()
    off = results["off"]
    print(f"agent RSS (MiB), {args.meters} meters polled each second; settle {args.settle:g} s, "
          f"one browser polling {args.poll:g} s")
    print(f"{'variant':<9} {'idle RSS':>9} {'delta':>7} {'polled RSS':>11} {'delta':>7} {'anon delta':>11} {'requests':>9}")
    deltas = {}
    for v, r in results.items():
        di, dp = r["idle_rss"] - off["idle_rss"], r["polled_rss"] - off["polled_rss"]
        deltas[v] = dp
        print(f"{v:<9} {r['idle_rss']:9.1f} {di:+7.1f} {r['polled_rss']:11.1f} {dp:+7.1f} "
              f"{r['polled_anon'] - off['polled_anon']:+11.1f} {r['requests']:9d}")
    own, aio = deltas["own"], deltas["aiohttp"]
    print(f"goal: page on and polled <= +{GOAL_MB:g} MiB over off: own {own:+.1f} MiB "
          f"({'met' if own <= GOAL_MB else 'MISSED'}), aiohttp {aio:+.1f} MiB "
          f"({'met' if aio <= GOAL_MB else 'MISSED'})")
    if own > 0.05:
        print(f"ratio: aiohttp costs {aio / own:.1f}x what the own server costs")


if __name__ == "__main__":
    main()
