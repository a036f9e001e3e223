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

from ..health import STATUS_FILE, Drops, StatusFile, parse_status
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


def read_document(path: Path) -> dict:
    """The status document as written, or a ClickException naming why it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise click.ClickException(f"no status file {path}: is the agent running? (it has not reported "
                                   "with this config)") from None
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise click.ClickException(f"{path} is not a complete JSON document (truncated or corrupt)") from None
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path} does not hold a status report")
    return doc


def liveness(st: StatusFile, interval: float, now_ms: int) -> str | None:
    """Why the report is not live (None when it is)."""
    alive = _pid_alive(st.pid)
    if alive is False:
        return f"the agent is not running (pid {st.pid}, which wrote this report, has exited)"
    if not st.ts:
        return "the report carries no time"
    age = (now_ms - st.ts) / 1000
    if age > STALE_INTERVALS * interval:
        return f"the report is stale: written {age:.0f} s ago, health interval {interval:g} s"
    return None


def _drops(d: Drops) -> str:
    counted = {k: v for k, v in d.model_dump().items() if v}
    return ", ".join(f"{k} {v}" for k, v in counted.items()) or "none"


def render(st: StatusFile, *, live: bool = True) -> list[str]:
    """Human-readable lines; a part the report does not have is left out. A report that is not live
    speaks in the past tense: nothing is connected or up now."""
    was = "" if live else "was "
    has = st.model_fields_set
    out = [f"gateway {st.gateway or '?'}   updated {_age(st.ts)}   uptime {st.uptime_s:.0f} s"]
    if "buffer" in has:
        b = st.buffer
        out.append(f"buffer  {b.depth} messages, {b.bytes / 1e6:.2f} MB, oldest unsent {b.oldest_unsent_age_s:.0f} s, "
                   f"last seq {b.last_seq}, drops {_drops(b.drops)}")
    if (u := st.uplink) is not None:
        out.append(f"uplink  {was}{'connected' if u.connected else 'DISCONNECTED'}, "
                   f"{u.acked} acked, {u.inflight} in flight, "
                   f"{u.msgs_per_s:.1f} msg/s, {u.readings_per_s:.0f} readings/s, reconnects {u.reconnects}")
        for topic, r in u.refused_topics.items():
            out.append(f"        refused by the broker: {topic} ({r.reason}, {r.nacks} times, "
                       f"retry in {r.retry_in_s:.0f} s)")
    if (c := st.config) is not None:
        version = "never pushed" if c.version is None else f"version {c.version}"
        out.append(f"config  {version}, sha256 {c.sha256}{' (on trial: not yet confirmed)' if c.trial else ''}")
    if (clock := st.clock) is not None:
        synced = {True: "synchronised", False: "NOT synchronised", None: "sync unknown"}[clock.synchronized]
        out.append(f"clock   {synced} (decided by {clock.source}: {clock.detail})")
    if "pipeline" in has and ((p := st.pipeline).clock_waiting or p.clock_steps or p.clock_estimated):
        out.append(f"        {p.clock_waiting} messages wait for the clock sync, {p.clock_repaired} repaired, "
                   f"{p.clock_estimated} published as estimated, {p.clock_steps} steps")
    if "pipeline" in has and (p := st.pipeline).held:
        out.append(f"pipeline  {p.held} messages ({p.held_bytes / 1e6:.2f} MB) held in memory: the outbox "
                   f"cannot store them")
    out.append("devices:")
    for name, d in st.devices.items():
        never_polled = not d.up and d.polls_ok == 0 and d.polls_failed == 0
        state = was + ("STALE" if d.stale else ("up" if d.up else "starting" if never_polled else "DOWN"))
        line = (f"  {name:<18} {state:<{6 + len(was)}} ok {d.polls_ok:<7} failed {d.polls_failed:<5} "
                f"latency {d.latency_avg_ms:.1f} ms  " + ("not polled yet" if never_polled else f"last good {_age(d.last_ok_ms)}"))
        if not d.up and d.last_error:
            line += f"  ({d.last_error})"
        out.append(line)
        if d.diagnostics:
            out.append("    " + ", ".join(f"{k} {v}" for k, v in d.diagnostics.items()))
    if st.processing:
        out.append("processing:")
        out.append("  " + json.dumps(st.processing, ensure_ascii=False)[:2000])
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
    doc = read_document(Path(cfg.gateway.state_dir) / STATUS_FILE)
    st = parse_status(doc)
    problem = liveness(st, cfg.health.interval, time.time_ns() // 1_000_000)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    else:
        if problem:
            click.echo(f"NOT RUNNING: {problem}; what follows is its last report, not the present state")
        for line in render(st, live=problem is None):
            click.echo(line)
    if problem:
        click.echo(f"edge-agent status: {problem}", err=True)
        raise SystemExit(EXIT_NOT_RUNNING)
