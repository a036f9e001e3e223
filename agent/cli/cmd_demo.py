import asyncio
import importlib.util

import click

MIN_DURATION_S = 10.0  # devices need a few seconds to start delivering
DEMO_PACKAGES = {"rich": "rich", "amqtt": "amqtt"}  # module -> distribution (the ``demo`` extra)


def _duration(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value < MIN_DURATION_S:
        raise click.BadParameter(f"{value:g} s is too short: at least {MIN_DURATION_S:g} s, so every device has "
                                 "time to deliver readings (start-up and the final drain come on top).")
    return value


@click.command("demo")
@click.option("--duration", type=float, default=75.0, show_default=True, callback=_duration,
              help=f"Seconds the devices run (at least {MIN_DURATION_S:g}; start-up and the final drain come on top).")
@click.option("--outage-at", default=25.0, show_default=True, help="Seconds after start to cut the link to the broker.")
@click.option("--outage-len", default=15.0, show_default=True, help="Seconds the link stays cut.")
@click.option("--no-outage", is_flag=True, help="Keep the link up.")
def command(duration: float, outage_at: float, outage_len: float, no_outage: bool) -> None:
    """Simulated devices, an embedded broker, the agent and a live view (with a network outage).

    Exits 0 when readings arrived from every device and every seq the broker acknowledged reached
    the upstream subscriber; 1 otherwise.
    """
    missing = [dist for mod, dist in DEMO_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise click.ClickException(f"the demo needs {', '.join(missing)}: python3 -m pip install -e '.[demo]'")
    from rich.console import Console
    from rich.live import Live

    from ..demo.run import Demo
    from ..demo.view import plain_line, render

    console = Console()
    tty = console.is_terminal

    if tty:
        live = Live(console=console, refresh_per_second=4, auto_refresh=False, transient=False)

        def show(snap) -> None:
            live.update(render(snap, console.size.width, console.size.height - 1), refresh=True)

        def say(line: str) -> None:
            console.print(line, markup=False, highlight=False)
    else:
        last = [-1e9]

        def show(snap) -> None:  # one plain line every 5 s and on the last snapshot
            if snap.elapsed - last[0] >= 5 or snap.phase == "finished":
                last[0] = snap.elapsed
                click.echo(plain_line(snap))

        def say(line: str) -> None:
            click.echo(line)

    demo = Demo(duration=duration, outage_at=None if no_outage else outage_at, outage_len=outage_len,
                show=show, say=say, echo_logs=not tty)

    async def main():
        if not tty:
            return await demo.run()
        with live:
            return await demo.run()

    try:
        result = asyncio.run(main())
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except (OSError, RuntimeError) as e:  # a simulator or the broker could not start here
        raise click.ClickException(f"the demo could not run: {e}") from None
    click.echo()
    for line in result.summary():
        click.echo(line)
    raise SystemExit(0 if result.ok else 1)
