"""``edge-agent warmup``: compile the processing kernels into the state directory's cache."""

from __future__ import annotations

import os
from pathlib import Path

import click

CACHE_SUFFIXES = (".nbi", ".nbc")  # numba's cache index and compiled code


def cache_entries(cache: Path) -> int:
    return sum(1 for p in cache.rglob("*") if p.suffix in CACHE_SUFFIXES) if cache.is_dir() else 0


def prepare_cache(state_dir: Path) -> Path:
    """Create the state directory and the cache in it (or the operator's NUMBA_CACHE_DIR) and make
    sure this user can write there; exit 1 naming the directory otherwise."""
    cache = Path(os.environ.get("NUMBA_CACHE_DIR") or state_dir / "numba-cache")
    for d in (state_dir, cache):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            click.echo(f"warmup: cannot create {d}: {e.strerror} (run it as the service user, after "
                       f"`edge-agent setup` created the state directory)", err=True)
            raise SystemExit(1) from None
    if not os.access(cache, os.W_OK | os.X_OK):
        click.echo(f"warmup: the kernel cache {cache} is not writable by this user: nothing would be cached", err=True)
        raise SystemExit(1)
    os.environ["NUMBA_CACHE_DIR"] = str(cache)  # numba reads it at import, which comes next
    return cache


def _precompile(state_dir: Path) -> None:
    """The run-time process's bytecode (python -OO) cached too: a first start then compiles nothing."""
    from ..runtime.start import precompile

    ok, said = precompile(state_dir)
    click.echo(f"bytecode ready: {said}" if ok else f"warmup: {said} (the first start compiles it)", err=not ok)


@click.command("warmup")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help="Config file (its state_dir is used).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="State directory holding the cache.")
def command(config_file: Path | None, state_dir: Path | None) -> None:
    """Compile and cache the numba kernels and the agent's bytecode so the agent starts fast (exit 1 if no
    kernel got cached)."""
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
    cache = prepare_cache(state_dir)
    from ..processing.warmup import warm

    r = warm(state_dir)
    _precompile(state_dir)
    if not r["jit"]:
        click.echo(f"kernels ready: pure Python (numba unavailable or disabled), nothing to cache; "
                   f"import {r['import_s']:.2f} s, first run {r['compile_s']:.2f} s")
        return
    n = cache_entries(cache)
    if n == 0:
        click.echo(f"warmup: kernels compiled but nothing was cached in {cache}: every start would compile again", err=True)
        raise SystemExit(1)
    aot = "ahead-of-time build ready" if r["aot"] else f"no ahead-of-time build ({r['aot_error'] or 'C compiler missing?'})"
    click.echo(f"kernels ready: numba, {aot}; cache: {cache} ({n} files); import {r['import_s']:.2f} s, "
               f"compile/load {r['compile_s']:.2f} s")
