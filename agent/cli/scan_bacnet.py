"""``edge-agent scan --protocol bacnet``: Who-Is / I-Am, then each device's points as config."""

from __future__ import annotations

import asyncio

import click

from ..simkit.snippets import Draft


def scan_bacnet(local: str, target: str | None, instance: int | None, timeout: float) -> Draft:
    from drivers.bacnet.discover import discover

    devices = asyncio.run(discover(local, target, low=instance, high=instance, timeout=timeout))
    draft = Draft()
    for d in devices:
        click.echo(f"device {d.instance} \"{d.name}\" at {d.address} (vendor {d.vendor}): {len(d.points)} point(s)")
        for p in d.points:
            unit = f" {p.unit}" if p.unit else ""
            click.echo(f"  {p.object:<24} {p.name:<20} = {p.value}{unit}  {p.description}")
        draft.add_device(d.name or f"bacnet-{d.instance}", {
            "type": "bacnet", "address": d.address, "device_instance": d.instance, "local_address": local,
            "objects": {p.name: {"object": p.object, **({"unit": p.unit} if p.unit else {})} for p in d.points}})
    if not devices:
        click.echo(f"no I-Am within {timeout:g} s" + (f" from {target}" if target else ""))
    return draft
