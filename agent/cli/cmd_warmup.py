"""``edge-agent warmup``: compile the processing kernels into the state directory's cache."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("warmup")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file (its state_dir is used).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="State directory holding the cache.")
def command(config_file: Path | None, state_dir: Path | None) -> None:
    """Compile and cache the numba kernels so the agent starts fast."""
    from ..errors import ConfigError

    if state_dir is None and config_file is not None:
        from ..config.loader import load_config

        try:
            state_dir = load_config(config_file).gateway.state_dir
        except ConfigError as e:
            for line in e.problems:
                click.echo(line, err=True)
            raise SystemExit(2) from None
    if state_dir is None:
        state_dir = Path("/var/lib/edge-agent")
    from ..processing.warmup import warm

    r = warm(state_dir)
    where = r["cache_dir"] or "no writable cache (kernels compile at each start)"
    mode = "numba" if r["jit"] else "pure Python (numba unavailable or disabled)"
    if r["jit"]:
        mode += ", ahead-of-time build ready" if r["aot"] else ", no ahead-of-time build (C compiler missing?)"
    click.echo(f"kernels ready: {mode}; cache: {where}; import {r['import_s']:.2f} s, compile/load {r['compile_s']:.2f} s")
