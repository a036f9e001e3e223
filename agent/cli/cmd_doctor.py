"""``edge-agent doctor``: an online check of everything the config names (broker, TLS, login, lines,
devices, files, clock, disk). One line per check: ✓ fine, ! worth a look, ✗ broken (with what to do).
Exit 0 when nothing is ✗, 1 otherwise, 2 when the config itself is invalid."""

from __future__ import annotations

import logging

import click

from ..config.validate import validate
from ..errors import ConfigError
from .common import EXIT_CONFIG, config_option
from .exposure import unsigned_commands


@click.command("doctor")
@config_option
def command(config_path: str) -> None:
    """Test everything the config names: broker (TLS, login), lines, devices, files, clock, disk.

    Talks to the broker and polls every device once; changes nothing (no outbox, no state file).
    """
    from ..doctor import Check, Mark, run_checks

    logging.basicConfig(level=logging.CRITICAL)  # the checks say what failed; library logs would repeat it
    try:
        validation = validate(config_path, at_run=False)
    except ConfigError as e:
        click.echo(f"✗ config {config_path}: {len(e.problems)} problem(s) → fix them; `edge-agent check` lists "
                   "the same")
        for p in e.problems:
            click.echo(f"  {p}")
        raise SystemExit(EXIT_CONFIG) from None
    cfg = validation.config
    click.echo(f"✓ config {config_path}: valid (gateway {cfg.gateway.id}, {len(cfg.devices)} device(s), "
               f"{len(cfg.lines)} line(s))")
    failed = warned = 0
    if (exposed := unsigned_commands(cfg)) is not None:
        head, _, how = exposed.partition(" Turn on signed commands: ")
        click.echo(Check(Mark.WARN, "commands", head, f"turn on signed commands: {how}").line())
        warned += 1
    for check in run_checks(validation):
        click.echo(check.line())
        failed += check.mark is Mark.FAIL
        warned += check.mark is Mark.WARN
    click.echo(f"{failed} problem(s), {warned} warning(s)" if failed or warned else "all checks passed")
    raise SystemExit(1 if failed else 0)
