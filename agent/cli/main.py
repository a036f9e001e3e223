"""The ``edge-agent`` command line. Each command lives in its own module under agent/cli/, imported
only when that command runs (or help lists it): ``run`` does not load every other command's libraries.

No traceback reaches a user: an error nobody anticipated becomes one line naming it, plus a hint to
rerun with ``--debug`` (or ``EDGE_AGENT_DEBUG=1``) to see the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ..runtime import EXEC_ENV

DEBUG_ENV = "EDGE_AGENT_DEBUG"
EXIT_RUNTIME = 1


def announce_service_start(argv: list[str]) -> None:
    """``run`` started by systemd (Type=notify): extend the start timeout before anything heavy is
    imported or the config is read, so a slow start-up is covered from its first second on."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] == ["run"] and "--once" not in argv:
        from ..sdnotify import START_UP_S, Notifier

        Notifier().extend_start(START_UP_S, "starting: loading the program and the config")


# numpy's OpenBLAS starts a thread per core that spins at load (≈ 50 ms of CPU at every start of a
# 2-core gateway) and holds buffers; the agent does no linear algebra. A value set by the user wins.
BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}


def main() -> None:
    argv = sys.argv[1:]
    for name, value in BLAS_THREADS.items():
        os.environ.setdefault(name, value)  # before numpy loads; the run-time process inherits it
    announce_service_start(argv)
    from .without_ssl import plan, prepare

    start = plan(argv)  # `run`: what its config file says before it is validated
    # `run` as the service: its run-time process starts at once, beside this one's validation
    if start.beside and os.environ.get(EXEC_ENV) != "0":
        if "--debug" in argv[:argv.index("run")]:  # the group's option, which click reads in the child only
            os.environ[DEBUG_ENV] = "1"
        start_beside(start)
    prepare(start)  # `run` with no TLS configured: asyncio (and paho) without OpenSSL
    import click

    from .group import cli

    try:
        cli(prog_name="edge-agent")
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line instead of a traceback
        if os.environ.get(DEBUG_ENV):
            raise
        from ..errors import describe_error

        click.echo(f"error: {describe_error(e)}", err=True)
        click.echo("(rerun as 'edge-agent --debug ...' for the full traceback)", err=True)
        sys.exit(EXIT_RUNTIME)


def start_beside(start: Any) -> None:
    """Fork: the parent becomes the run-time process (agent.runtime.beside); returns in the validating
    child, or when it cannot."""
    from ..runtime import beside
    from .without_ssl import preload_modules, state_dir_guess

    beside.fork(hide=start.hide, pymodbus=start.pymodbus,
                preload=preload_modules(start.data) + beside.after_handoff(start.data),
                state_dir=state_dir_guess(start.data))


def __getattr__(name: str) -> Any:
    if name == "cli":  # the click group, for tests and docs: imported with click
        from .group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
