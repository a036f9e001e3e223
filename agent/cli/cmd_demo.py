import asyncio

import click
from rich.console import Console


@click.command("demo")
@click.option("--duration", default=75.0, show_default=True, help="Seconds to run.")
@click.option("--outage-at", default=25.0, show_default=True, help="Seconds after start to stop the broker.")
@click.option("--outage-len", default=15.0, show_default=True, help="Seconds the broker stays down.")
@click.option("--no-outage", is_flag=True, help="Keep the broker up.")
def command(duration: float, outage_at: float, outage_len: float, no_outage: bool) -> None:
    """Simulated devices, an embedded broker, the agent and a live view (with a broker outage)."""
    from ..demo.run import run_demo

    console = Console()
    result = asyncio.run(run_demo(duration=duration, outage_at=None if no_outage else outage_at,
                                  outage_len=outage_len, console=console))
    lost = result["seq_gaps"] + result["left_in_buffer"]
    console.print(f"\n[bold]demo finished[/]: {result['readings_upstream']} readings arrived upstream, "
                  f"{result['seq_gaps']} seq gaps, {result['duplicates']} duplicates dropped by seq, "
                  f"{result['left_in_buffer']} messages still buffered.")
    raise SystemExit(0 if lost == 0 else 1)
