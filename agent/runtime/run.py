"""The running of a validated config, in the run-time process (or in ``run``'s own process when it cannot
hand over): one writer per state directory, the agent until it stops, a pushed config's trial, the exit."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from ..errors import ConfigError
from ..store.outbox import OutboxError, OutboxLocked
from ..store.statelock import StateDirLocked, StateLock

EXIT_CONFIG = 2  # a config problem (as `check`): systemd's RestartPreventExitStatus=2 keeps it from looping


def run(cfg: Any, *, config_path: str, trial: dict | None, references: dict[str, dict[str, str]] | None = None) -> None:
    """Run the agent on ``cfg`` until it stops; re-execute ``run`` for a pushed config (agent.remote.restart).
    ``references``: the drivers' and line kinds' ``"module:attr"`` (agent.runtime.start.references), so no
    entry point is read; without them, the installed ones."""
    from ..app import prepare_state_dir, run_agent
    from ..remote import ConfigFiles
    from ..remote.restart import fail_trial, finish_restart

    files = ConfigFiles(config_path)
    try:
        # one writer per state directory: held until this process ends, however it ends
        with StateLock(prepare_state_dir(cfg)):
            remote = asyncio.run(run_agent(cfg, config_files=files, trial=trial,
                                           doctor_checks=lambda: _remote_checks(cfg), **_by_reference(references)))
    except Exception as e:
        if trial is not None:
            fail_trial(files, f"{type(e).__name__}: {e}")
        exit_for(e)
        raise
    if remote.restart is not None:
        finish_restart(remote, files)


def _by_reference(references: dict[str, dict[str, str]] | None) -> dict[str, Any]:
    if references is None:
        return {}
    from ..bus.kinds import line_kinds_from_references
    from ..driver import DriverCatalog

    return {"catalog": DriverCatalog.from_references(references["drivers"]),
            "line_kinds": line_kinds_from_references(references["lines"])}


def _remote_checks(cfg: Any) -> list[dict[str, str]]:
    from ..doctor import remote_checks  # `doctor` over MQTT; imported only when asked

    return remote_checks(cfg)


def exit_for(e: Exception) -> None:
    """The exit a start failure gets (2 for a config problem); returns for anything else."""
    if isinstance(e, ConfigError):
        for p in e.problems:
            print(p, file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if isinstance(e, StateDirLocked | OutboxLocked):
        print(f"refused: {e}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if isinstance(e, OutboxError):
        print(f"edge-agent: {e}", file=sys.stderr)
        raise SystemExit(1) from None
