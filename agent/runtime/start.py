"""From ``run``'s validating process to the run-time process: ``os.execv`` into ``python -OO -m
agent.runtime`` (same PID: systemd's main PID, ``NOTIFY_SOCKET`` and ``WATCHDOG_PID`` stay valid).

``-OO`` drops docstrings and asserts (no code path needs them at run time). Its bytecode (``.opt-2.pyc``)
is cached under the state directory (``<state_dir>/pycache``, ``sys.pycache_prefix``), written by the
first start or by ``edge-agent warmup``: a start that found no cache would compile every module it
imports. The cache is code the agent runs, so it is used only when it is this user's and writable by
no one else (created 0700); otherwise the run-time process compiles from the sources.

Its environment adds :data:`RUNTIME_ENV` where the operator set none of them: glibc's malloc keeps one
arena for all the process's threads instead of one per thread (the MQTT network thread's and the
executor's arenas held ≈ 2 MiB of free memory between them), and OpenBLAS starts no worker threads
(the agent does no matrix work numpy would spread over cores).
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import handoff

ENTRY = "agent.runtime"
PYCACHE = "pycache"  # under the state directory


def _log() -> Any:
    """The agent's logger. (logging is imported where a warning is given: ``run``'s process uses this
    module after it forks, on its way to execute the run-time process, which imports logging anyway.)"""
    import logging

    return logging.getLogger("edge_agent")


# the run-time process's environment, each unless set already (docs/processing.md)
RUNTIME_ENV = {"MALLOC_ARENA_MAX": "1", "OPENBLAS_NUM_THREADS": "1"}


def pycache_dir(state_dir: Path, *, create_state_dir: bool = True) -> Path | None:
    """``<state_dir>/pycache``, created 0700 if missing; None when it is not safe or cannot be made.
    ``create_state_dir=False`` (a config not validated yet, agent.runtime.beside): only in a state
    directory that exists, and None without a word (the run-time process checks again, and says)."""
    d = Path(state_dir) / PYCACHE
    quiet = not create_state_dir
    try:
        if quiet and not Path(state_dir).is_dir():
            return None
        d.mkdir(mode=0o700, parents=create_state_dir, exist_ok=True)
        st = d.stat()
    except OSError as e:
        if not quiet:
            _log().warning("bytecode cache %s unusable (%s): the run-time process compiles its modules at every "
                        "start", d, e.strerror)
        return None
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        if not quiet:
            _log().warning("bytecode cache %s not used: it must belong to this user and be writable by no one "
                        "else (chmod 700)", d)
        return None
    return d


def command(fd: int, pycache: Path | None, hidden: tuple[str, ...], pymodbus_clients: bool) -> list[str]:
    """The run-time process's argv."""
    argv = [sys.executable, "-OO", "-P"]
    if pycache is not None:
        argv += ["-X", f"pycache_prefix={pycache}"]
    argv += ["-m", ENTRY, "--handoff", str(fd)]
    if hidden:
        argv += ["--without", ",".join(hidden)]
    if pymodbus_clients:
        argv.append("--pymodbus-clients")
    return argv


def runtime_environ(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with :data:`RUNTIME_ENV`'s settings it does not have: the operator's own win."""
    return {**RUNTIME_ENV, **base}


def exec_runtime(cfg: Any, *, config_path: str, trial: dict | None, hidden: tuple[str, ...] = (),
                 pymodbus_clients: bool = False) -> None:
    """Hand ``cfg`` over and become the run-time process. Returns only when it cannot (the caller then
    runs the agent itself)."""
    try:
        fd = handoff.dump(cfg, handoff_meta(cfg, config_path=config_path, trial=trial))
    except handoff.HandoffError as e:
        _log().warning("%s; running in this process", e)
        return
    argv = command(fd, pycache_dir(cfg.gateway.state_dir), hidden, pymodbus_clients)
    import_root_on_path()
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(argv[0], argv, runtime_environ(os.environ))
    except OSError as e:
        os.close(fd)
        _log().warning("cannot start the run-time process %s (%s); running in this process", argv[0], e.strerror)


def handoff_meta(cfg: Any, *, config_path: str, trial: dict | None) -> dict[str, Any]:
    """What the run-time process needs beside the config: where it came from, a pushed config's trial,
    the command to start again with, the drivers' and line kinds' references."""
    return {"config_path": config_path, "trial": trial, "argv": list(sys.orig_argv), **references(cfg)}


def references(cfg: Any) -> dict[str, dict[str, str]]:
    """``"module:attr"`` of the config's drivers and line kinds: the run-time process loads them by name
    and reads no entry points (``importlib.metadata`` stays out of it)."""
    from ..bus.kinds import line_kind_references
    from ..driver import DriverCatalog

    return {"drivers": DriverCatalog.discover().references(d.type for d in cfg.devices),
            "lines": line_kind_references(line.type for line in cfg.lines.values())}


def import_root_on_path() -> None:
    """``-P`` leaves the current or script directory off ``sys.path``; when this process found the agent
    there (a source checkout run as ``python -m agent.cli.main``), the run-time process gets it through
    ``PYTHONPATH``."""
    root = str(Path(__file__).resolve().parents[2])
    first = os.path.realpath(sys.path[0] or os.getcwd()) if sys.path else ""
    path = os.environ.get("PYTHONPATH", "")
    if first == root and root not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [root, path]))


def precompile(state_dir: Path, timeout: float = 600) -> tuple[bool, str]:
    """Write the run-time process's bytecode into ``<state_dir>/pycache`` (``edge-agent warmup``).
    (ok, what happened)."""
    import subprocess

    cache = pycache_dir(state_dir)
    if cache is None:
        return False, f"bytecode cache {Path(state_dir) / PYCACHE} unusable (it must be this user's, mode 0700)"
    import_root_on_path()
    argv = [sys.executable, "-OO", "-P", "-X", f"pycache_prefix={cache}", "-m", "agent.runtime.precompile"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"precompiling into {cache} failed: {e}"
    if p.returncode != 0:
        return False, f"precompiling into {cache} failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-500:]}"
    return True, p.stdout.strip()
