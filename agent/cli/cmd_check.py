import click

from .common import config_option, load_or_exit


@click.command("check")
@config_option
def command(config_path: str) -> None:
    """Validate a config file without touching any device (exit 0 valid, 2 invalid)."""
    cfg = load_or_exit(config_path)
    click.echo(f"config OK: gateway {cfg.gateway.id}, {len(cfg.devices)} device(s), {len(cfg.lines)} line(s)")
    for d in cfg.devices:
        line = f" on {', '.join(d.lines_used())}" if d.lines_used() else ""
        click.echo(f"  {d.name:<20} {d.type:<16} every {d.poll_interval:g} s{line}{'' if d.enabled else ' (disabled)'}")
