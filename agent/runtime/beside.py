"""``run`` validates beside its run-time process's start, on a second core.

At once, before anything heavy is imported, ``run``'s process forks. The parent executes the run-time
process in place (same PID, agent.runtime.start), which imports the agent, the config's drivers and
line kinds while the child validates the config exactly as before (the same errors, exit codes and
counting of a pushed config's trial). The child writes the hand-off into an anonymous file both share
(agent.runtime.handoff) and exits; the run-time process waits for it, exits with the child's code when
validation failed (the child printed why), and otherwise reads the config and runs. Where the child
would start ``run`` again (a pushed config rolled back, TLS the reading of the file missed), it asks
the run-time process to, as the PID systemd watches. The child never talks to systemd
(``NOTIFY_SOCKET`` is removed in it: only the main PID may).
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from . import handoff

_fd: int | None = None  # in the validating child: the anonymous file the hand-off goes into

# what the start imports after the hand-off, for every config (the plain config's mixins, logging, the
# uplink, processing's set-up and kernels, the executor's threads, the codec of a host name connected to)
# and by table of the config file: the run-time process imports them while the child validates (preload)
AFTER_HANDOFF = ("agent.contract.plain", "agent.contract.bases", "agent.logsetup", "agent.uplink.mqtt",
                 "agent.processing.setup", "agent.processing.kernels", "agent.processing.warmup",
                 "agent.processing.energy", "agent.processing.events",
                 "agent.remote.restart", "agent.metrics.listen", "agent.web.listen", "concurrent.futures.thread",
                 "encodings.idna")
AFTER_HANDOFF_BY_TABLE = {"site": ("agent.site.controller",), "homeassistant": ("agent.homeassistant.bridge",)}


def after_handoff(data: Any) -> list[str]:
    """The modules the start of a config (the TOML as parsed, unvalidated) imports after the hand-off."""
    tables = [t for t in AFTER_HANDOFF_BY_TABLE if isinstance(data, dict) and t in data]
    return [*AFTER_HANDOFF, *(m for t in tables for m in AFTER_HANDOFF_BY_TABLE[t])]


def validating() -> bool:
    """Whether this is the child validating beside the run-time process."""
    return _fd is not None


def fork(*, hide: tuple[str, ...], pymodbus: bool, preload: list[str], state_dir: str | None) -> None:
    """Fork: the parent becomes the run-time process and returns only if it cannot (nothing is then
    left running beside it); the child returns to validate."""
    global _fd
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN would reap the child unseen
    try:
        fd = handoff.shared_file()
    except handoff.HandoffError:
        return  # `run` validates and hands over one step after the other
    try:
        pid = os.fork()
    except OSError:
        os.close(fd)
        return
    if pid == 0:
        _fd = fd
        os.environ.pop("NOTIFY_SOCKET", None)  # systemd accepts the main PID's notifications only
        # this process validates and ends: no cyclic garbage collection (≈ 80 of them while the models
        # are built, ≈ 15 ms of its CPU on the demo's config), what it leaves goes with it
        gc.disable()
        return
    from .start import command, import_root_on_path, pycache_dir, runtime_environ

    pycache = pycache_dir(Path(state_dir), create_state_dir=False) if state_dir else None
    argv = command(fd, pycache, hide, pymodbus) + ["--validator", str(pid)]
    if pycache is None:  # none yet (a first start): nothing beside the sources, `started` sets it up
        argv.insert(1, "-B")
    if preload:
        argv += ["--preload", ",".join(preload)]
    import_root_on_path()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(argv[0], argv, runtime_environ(os.environ))
    except OSError as e:  # the child validates (and may have counted a pushed config's start): its hand-off
        # is taken here, and the agent runs in this process
        print(f"edge-agent run: cannot start the run-time process {argv[0]} ({e.strerror}); running in this "
              "process", file=sys.stderr)
        from .__main__ import entry

        entry(argv[argv.index("--handoff"):])
        raise SystemExit(0) from None


def hand_over(cfg: Any, meta: dict[str, Any]) -> None:
    """In the child: the validated config to the run-time process; this process ends."""
    try:
        handoff.dump(cfg, meta, into=_fd)
    except handoff.HandoffError as e:  # e.g. a third-party config pickle cannot write: `run` in one process
        import logging

        from .nossl import RESTART_ENV

        logging.getLogger("edge_agent").warning("%s; starting again in one process", e)
        hand_back({RESTART_ENV: "one-process"})  # agent.cli.without_ssl.ONE_PROCESS: this start only
    _exit(0)


def hand_back(env: dict[str, str] | None = None) -> None:
    """In the child: ask the run-time process to start ``run`` again with ``env`` set (default: the
    one-shot marker of why, agent.runtime.nossl.RESTART_ENV, if set); this process ends."""
    from .nossl import RESTART_ENV

    if env is None:
        env = {RESTART_ENV: os.environ[RESTART_ENV]} if RESTART_ENV in os.environ else {}
    handoff.dump(None, {"again": env, "argv": list(sys.orig_argv)}, into=_fd)
    _exit(0)


def _exit(code: int) -> None:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


# -- in the run-time process ----------------------------------------------------------------------

def preload(modules: list[str]) -> None:
    """Import the run time and the config's drivers and line kinds while the child validates: modules, or
    entry points' ``"module:attr"`` whose factory (a driver's, a line kind's bus), named there as
    ``"module:attr"`` too, is imported with them (validation lists a driver's metrics without it). A
    module that fails is left to the start proper, after validation, to report."""
    from ..contract.lazy import resolve

    for name in ("agent.runtime.run", "agent.app", *modules):
        try:
            if ":" in name:
                getattr(resolve(name), "factory", None)  # (a LazyRef: imported when read)
            else:
                importlib.import_module(name)
        except (Exception, SystemExit):  # noqa: BLE001 - validation or the start reports it
            pass


def wait_validator(pid: int) -> int:
    """The validating child's exit code (a signal that ended it: 1, said so). The garbage collector,
    off while the run time was imported (agent.runtime.__main__), is settled first (:func:`settle_garbage`)."""
    settle_garbage()
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        print(f"edge-agent run: the validating process {pid} is not this process's child", file=sys.stderr)
        return 1
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        print(f"edge-agent run: validating the config was stopped by signal {-code}", file=sys.stderr)
        return 1
    return code


def settle_garbage() -> None:
    """After the run time's imports, made with the cyclic garbage collector off (≈ 80 collections walking
    a growing heap, ≈ 20 ms of CPU on the demo's config): freeze what is there (modules, classes, the
    drivers' tables: kept for the life of the process), so that later collections do not walk it again,
    and turn the collector back on. The imports' cyclic garbage (≈ 600 objects on the demo's config, 0.14
    MB) is frozen with the rest: collecting it first would cost what the collector was spared."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def started(cfg: Any) -> None:
    """The config read: what the validating process would have done next, which only this one can do
    (the bytecode cache of a state directory made by this start, systemd's status)."""
    if not sys.pycache_prefix:
        from .start import pycache_dir

        if (d := pycache_dir(cfg.gateway.state_dir)) is not None:
            sys.pycache_prefix = str(d)
            sys.dont_write_bytecode = False
            from .bytecode import backfill

            backfill()
    from ..sdnotify import START_UP_S, Notifier

    Notifier().extend_start(START_UP_S, f"starting: config valid, {len(cfg.devices)} device(s); opening the state")


def start_again(meta: dict[str, Any]) -> None:
    """What the child asked for with :func:`hand_back`: ``run`` again, as the PID systemd watches."""
    os.environ.update(meta["again"])
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.execv(sys.executable, [sys.executable, *meta["argv"][1:]])
