"""Applying and rolling back a pushed config: the agent re-executes itself.

Why re-execute rather than exit and let systemd restart it: it keeps the PID (systemd's main PID,
``Type=notify`` and the watchdog carry on), it does not depend on ``Restart=`` or on systemd at all,
and a restart costs no ``RestartSec``. Everything is committed and closed before the exec; descriptors
are close-on-exec, so the state-directory lock is released with them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from .files import ConfigFiles
from .ops import RemoteOps

log = logging.getLogger("edge_agent.remote")
# the command re-executed: ``run``'s own (its validating process's argv, set by the run-time process
# agent.runtime, so a pushed config is validated again); None: this process's
ARGV: list[str] | None = None
# in ``run``'s validating process beside its run-time process (agent.runtime.beside): that process, the PID
# systemd watches, starts `run` again; this one ends
START_AGAIN: Callable[[], None] | None = None


def start_trial(files: ConfigFiles, *, count: bool = True) -> dict | None:
    """Before the config is read: count a start of a pushed config on trial; roll back at once when the
    previous start of that trial never confirmed it. Returns the trial now running, if any. ``count=False``
    for a start re-executed before it got anywhere (agent.cli.without_ssl.confirm), already counted."""
    try:
        trial, reason = files.begin_start(count=count)
        if reason is not None:
            log.error("config version %s: %s; rolling back", trial and trial.get("version"), reason)
            files.rollback(reason)
            return None
    except OSError as e:  # a read-only config directory: no push was possible, nothing to do
        log.warning("cannot read or update the config push state %s: %s", files.state_path, e)
        return None
    return trial


def fail_trial(files: ConfigFiles, reason: str) -> None:
    """The config on trial cannot run: put the previous one back and start again with it."""
    log.error("the pushed config cannot start (%s): rolling back", reason)
    files.rollback(reason)
    exec_self()


def finish_restart(remote: RemoteOps, files: ConfigFiles) -> None:
    """After a clean stop asked for by a push: roll back if asked, then re-execute."""
    if remote.restart == "rollback":
        files.rollback(remote.rollback_reason or "rolled back")
    exec_self()


def exec_self() -> None:
    if START_AGAIN is not None:
        START_AGAIN()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, [sys.executable, *(ARGV or sys.orig_argv)[1:]])
