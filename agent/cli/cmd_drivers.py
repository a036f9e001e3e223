import json

import click

from ..docgen import choices, default_text
from ..driver import DriverCatalog, discover_simulators


def describe_field(field) -> str:
    """required / default (as written in TOML) / allowed values / description, on one line."""
    default = default_text(field)
    parts = ["required" if default is None else f"default {default}" if default else "optional"]
    allowed = choices(field.annotation)
    if allowed:
        parts.append(f"one of {', '.join(allowed)}")
    if field.description:
        parts.append(field.description)
    return "; ".join(parts)


@click.command("drivers")
@click.option("--schema", "schema_type", metavar="TYPE", help="Print the JSON Schema of one driver's config.")
def command(schema_type: str | None) -> None:
    """List installed drivers (and simulators), or print a driver's config schema."""
    catalog = DriverCatalog.discover()
    if schema_type:
        spec = catalog.get(schema_type)
        if spec is None:
            raise click.UsageError(f"no driver {schema_type!r}; installed: {', '.join(catalog.types())}")
        click.echo(json.dumps(spec.config_model.model_json_schema(), indent=2, default=str))
        return
    for spec in catalog:
        click.echo(f"{spec.type:<18} {'writable ' if spec.writable else ''}{spec.summary}")
        for name, field in spec.config_model.model_fields.items():
            if name in ("type",):
                continue
            click.echo(f"    {name:<20} {describe_field(field)}")
    sims = discover_simulators()
    if sims:
        click.echo("\nsimulators (edge-agent simulate NAME):")
        for name, sim in sims.items():
            click.echo(f"  {name:<18} {sim.summary}")
