import json

import click

from ..driver import DriverCatalog, discover_simulators


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
            default = "required" if field.is_required() else f"default {field.default!r}"
            desc = f"  {field.description}" if field.description else ""
            click.echo(f"    {name:<20} {default}{desc}")
    sims = discover_simulators()
    if sims:
        click.echo("\nsimulators (edge-agent simulate NAME):")
        for name, sim in sims.items():
            click.echo(f"  {name:<18} {sim.summary}")
