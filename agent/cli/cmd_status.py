"""``edge-agent status``: the agent's last health report, read from ``{state_dir}/status.json``.

Reads only: it never creates a state file. It says when the report cannot be trusted: the process
that wrote it is gone, or the report is older than ``STALE_INTERVALS`` health intervals.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from ..health import STATUS_FILE
from .common import config_option, load_or_exit

EXIT_NOT_RUNNING = 3  # as LSB init scripts and `systemctl status` report a stopped service
STALE_INTERVALS = 3


def _age(ms: int | None) -> str:
    if not ms:
        return "never"
    s = time.time() - ms / 1000
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


def _pid_alive(pid: object) -> bool | None:
    """True/False when the writer's pid is known, None when the report does not name one."""
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_report(path: Path) -> dict:
    """The status document, or a ClickException naming why it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise click.ClickException(f"no status file {path}: is the agent running? (it has not reported "
                                   "with this config)") from None
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None
    try:
        st = json.loads(text)
    except ValueError:
        raise click.ClickException(f"{path} is not a complete JSON document (truncated or corrupt)") from None
    if not isinstance(st, dict):
        raise click.ClickException(f"{path} does not hold a status report")
    return st


def liveness(st: dict, interval: float, now_ms: int) -> str | None:
    """Why the report is not live (None when it is)."""
    alive = _pid_alive(st.get("pid"))
    if alive is False:
        return f"the agent is not running (pid {st['pid']}, which wrote this report, has exited)"
    ts = st.get("ts")
    if not isinstance(ts, int | float):
        return "the report carries no time"
    age = (now_ms - ts) / 1000
    if age > STALE_INTERVALS * interval:
        return f"the report is stale: written {age:.0f} s ago, health interval {interval:g} s"
    return None


def _num(d: dict, key: str) -> float:
    v = d.get(key)
    return float(v) if isinstance(v, int | float) else 0.0


def render(st: dict, *, live: bool = True) -> list[str]:
    """Human-readable lines; tolerant of a report with missing parts. A report that is not live
    speaks in the past tense: nothing is connected or up now."""
    was = "" if live else "was "
    b, u = st.get("buffer") or {}, st.get("uplink") or {}
    out = [f"gateway {st.get('gateway', '?')}   updated {_age(st.get('ts'))}   uptime {_num(st, 'uptime_s'):.0f} s"]
    if b:
        out.append(f"buffer  {b.get('depth', '?')} messages, {_num(b, 'bytes') / 1e6:.2f} MB, "
                   f"oldest unsent {_num(b, 'oldest_unsent_age_s'):.0f} s, last seq {b.get('last_seq', '?')}, "
                   f"drops {b.get('drops') or 'none'}")
    if u:
        out.append(f"uplink  {was}{'connected' if u.get('connected') else 'DISCONNECTED'}, "
                   f"{u.get('acked', 0)} acked, {u.get('inflight', 0)} in flight, "
                   f"{_num(u, 'msgs_per_s'):.1f} msg/s, {_num(u, 'readings_per_s'):.0f} readings/s, "
                   f"reconnects {u.get('reconnects', 0)}")
    clock = st.get("clock") or {}
    if clock:
        synced = {True: "synchronised", False: "NOT synchronised", None: "sync unknown"}[clock.get("synchronized")]
        out.append(f"clock   {synced} (decided by {clock.get('source', '?')}: {clock.get('detail', '')})")
    out.append("devices:")
    for name, d in (st.get("devices") or {}).items():
        state = was + ("STALE" if d.get("stale") else ("up" if d.get("up") else "DOWN"))
        line = (f"  {name:<18} {state:<{6 + len(was)}} ok {d.get('polls_ok', 0):<7} failed {d.get('polls_failed', 0):<5} "
                f"latency {_num(d, 'latency_avg_ms'):.1f} ms  last good {_age(d.get('last_ok_ms'))}")
        if not d.get("up") and d.get("last_error"):
            line += f"  ({d['last_error']})"
        out.append(line)
        diag = d.get("diagnostics") or {}
        if diag:
            out.append("    " + ", ".join(f"{k} {v}" for k, v in diag.items()))
    proc = st.get("processing")
    if proc:
        out.append("processing:")
        out.append("  " + json.dumps(proc, ensure_ascii=False)[:2000])
    return out


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw health document.")
def command(config_path: str, as_json: bool) -> None:
    """Show the running agent's health: buffer, uplink, devices (from its status file).

    Exit 0 when the agent is running and reporting, 3 when it is not running or its report is stale,
    1 when there is no readable report.
    """
    cfg = load_or_exit(config_path)
    st = read_report(Path(cfg.gateway.state_dir) / STATUS_FILE)
    problem = liveness(st, cfg.health.interval, time.time_ns() // 1_000_000)
    if as_json:
        click.echo(json.dumps(st, indent=2))
    else:
        if problem:
            click.echo(f"NOT RUNNING: {problem}; what follows is its last report, not the present state")
        for line in render(st, live=problem is None):
            click.echo(line)
    if problem:
        click.echo(f"edge-agent status: {problem}", err=True)
        raise SystemExit(EXIT_NOT_RUNNING)
