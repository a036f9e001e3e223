import asyncio
import json
import math
import time

import click

from ..app import prepare_state_dir
from ..bus import BusPool
from ..driver import Clock, DriverCatalog, DriverContext
from ..errors import DeviceError
from ..model import Batch, Quality
from .common import config_option, load_or_exit


def quality_names(q: int) -> str:
    """Quality bits as the names docs/payloads.md uses: 65 -> "out_of_range,clock_unsynced"."""
    return ",".join(m.name.lower() for m in Quality if m and m & q)


async def _read_once(cfg, name: str) -> dict:
    dev = cfg.device(name)
    spec = DriverCatalog.discover().get(dev.type)
    buses = BusPool(cfg.lines)
    ctx = DriverContext(gateway=cfg.gateway.id, state_dir=prepare_state_dir(cfg), buses=buses, clock=Clock())
    driver = spec.factory(dev, ctx)
    metrics = list(driver.metrics())
    out: dict = {"device": name, "type": dev.type}
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(dev.timeout):
            await driver.open()
            t1 = time.perf_counter()
            result = await driver.read()
        t2 = time.perf_counter()
        out["open_ms"] = round((t1 - t0) * 1000, 2)
        out["read_ms"] = round((t2 - t1) * 1000, 2)
        now = Clock().now_ms()
        if isinstance(result, Batch):
            rows = zip(result.series.tolist(), result.value.tolist(), result.quality.tolist(), result.ts.tolist(), strict=True)
            samples = [(metrics[s].name, v, q, t) for s, v, q, t in rows]
        else:
            samples = [(s.metric, s.value, s.quality, s.ts_ms or now) for s in result]
        units = {m.name: m.unit for m in metrics}
        out["readings"] = [{"metric": m, "value": v if math.isfinite(v) else None, "unit": units.get(m, ""),
                            "q": q, "flags": quality_names(q), "ts": t} for m, v, q, t in samples]
        diag = getattr(driver, "diagnostics", None)
        if callable(diag):
            out["diagnostics"] = diag()
    except TimeoutError:
        out["error"] = f"DeviceTimeout: no answer within {dev.timeout:g} s"
    except DeviceError as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        try:
            await driver.close()
        finally:
            await buses.close()
    return out


@click.command("read")
@config_option
@click.argument("device", required=False)
@click.option("--all", "read_all", is_flag=True, help="Read every enabled device once, one after the other.")
@click.option("--json", "as_json", is_flag=True)
def command(config_path: str, device: str | None, read_all: bool, as_json: bool) -> None:
    """Poll one device (or, with --all, every enabled device) once and print the decoded values with timing."""
    cfg = load_or_exit(config_path)
    names = [d.name for d in cfg.devices]
    if read_all == (device is not None):
        raise click.UsageError("name one DEVICE or give --all" if not read_all else "give DEVICE or --all, not both")
    if device is not None and device not in names:
        raise click.UsageError(f"no device {device!r} in {config_path}; devices: {', '.join(names) or 'none'}")
    chosen = [device] if device is not None else [d.name for d in cfg.devices if d.enabled]
    outs = [asyncio.run(_read_once(cfg, name)) for name in chosen]
    if as_json:
        click.echo(json.dumps(outs if read_all else outs[0], indent=2))
    else:
        for out in outs:
            _print_reading(out)
        if read_all:
            failed = [o["device"] for o in outs if "error" in o]
            click.echo(f"{len(outs)} device(s) read: {len(outs) - len(failed)} answered"
                       + (f", failed: {', '.join(failed)}" if failed else ""), err=True)
    raise SystemExit(1 if any("error" in o for o in outs) else 0)


def _print_reading(out: dict) -> None:
    device = out["device"]
    if "error" in out:
        click.echo(f"{device}: {out['error']}", err=True)
        return
    click.echo(f"{device} ({out['type']}): open {out['open_ms']} ms, read {out['read_ms']} ms")
    for r in out["readings"]:
        v = "null" if r["value"] is None else f"{r['value']:.6g}"
        click.echo(f"  {r['metric']:<24} {v:>14} {r['unit']:<6} {r['flags']}")
    for k, v in (out.get("diagnostics") or {}).items():
        click.echo(f"  [{k}] {v}")
