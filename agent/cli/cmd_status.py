import json
import time

import click

from ..health import read_status
from .common import config_option, load_or_exit


def _age(ms: int) -> str:
    if not ms:
        return "never"
    s = time.time() - ms / 1000
    return f"{s:.0f} s ago" if s < 120 else f"{s / 60:.0f} min ago"


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw health document.")
def command(config_path: str, as_json: bool) -> None:
    """Show the running agent's health: buffer, uplink, devices (from its status file)."""
    cfg = load_or_exit(config_path)
    st = read_status(cfg.gateway.state_dir)
    if st is None:
        click.echo(f"no status file in {cfg.gateway.state_dir}: is the agent running?", err=True)
        raise SystemExit(1)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    b, u = st["buffer"], st.get("uplink", {})
    click.echo(f"gateway {st['gateway']}   updated {_age(st['ts'])}   uptime {st['uptime_s']:.0f} s")
    click.echo(f"buffer  {b['depth']} messages, {b['bytes'] / 1e6:.2f} MB, oldest unsent {b['oldest_unsent_age_s']:.0f} s, "
               f"last seq {b['last_seq']}, drops {b['drops'] or 'none'}")
    if u:
        click.echo(f"uplink  {'connected' if u.get('connected') else 'DISCONNECTED'}, "
                   f"{u.get('acked', 0)} acked, {u.get('inflight', 0)} in flight, "
                   f"{u.get('rate_msgs', 0):.1f} msg/s, {u.get('rate_readings', 0):.0f} readings/s, reconnects {u.get('reconnects', 0)}")
    click.echo("devices:")
    for name, d in st.get("devices", {}).items():
        state = "STALE" if d["stale"] else ("up" if d["up"] else "DOWN")
        line = f"  {name:<18} {state:<6} ok {d['polls_ok']:<7} failed {d['polls_failed']:<5} latency {d['latency_avg_ms']:.1f} ms  last good {_age(d['last_ok_ms'])}"
        if not d["up"] and d["last_error"]:
            line += f"  ({d['last_error']})"
        click.echo(line)
        diag = d.get("diagnostics") or {}
        if diag:
            click.echo("    " + ", ".join(f"{k} {v}" for k, v in diag.items()))
    proc = st.get("processing")
    if proc:
        click.echo("processing:")
        click.echo("  " + json.dumps(proc, ensure_ascii=False)[:2000])
