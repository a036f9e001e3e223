import click

from ..driver import discover_simulators


class _Simulators(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(discover_simulators())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        spec = discover_simulators().get(name)
        return None if spec is None else spec.command


@click.group("simulate", cls=_Simulators)
def command() -> None:
    """Start a device simulator (for bench tests and training without hardware)."""
