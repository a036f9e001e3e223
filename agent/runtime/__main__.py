"""``python -OO -m agent.runtime --handoff FD [--without ssl,_hashlib] [--pymodbus-clients]``: the
run-time process ``edge-agent run`` executes after validating (agent.runtime.start); not a command for
people. Imports as little as it can before it has done what the validating process did without ssl."""

from __future__ import annotations

import os
import sys

USAGE = ("usage: python -m agent.runtime --handoff FD [--without MODULES] [--pymodbus-clients] [--validator PID] "
         "[--preload MODULES] (started by `edge-agent run`)")
DEBUG_ENV = "EDGE_AGENT_DEBUG"
EXIT_RUNTIME = 1


def parse(argv: list[str]) -> dict:
    args: dict = {"fd": None, "hidden": (), "pymodbus": False, "validator": None, "preload": []}
    it = iter(argv)
    for a in it:
        if a == "--handoff":
            args["fd"] = next(it, "")
        elif a == "--without":
            args["hidden"] = tuple(filter(None, next(it, "").split(",")))
        elif a == "--pymodbus-clients":
            args["pymodbus"] = True
        elif a == "--validator":  # the child validating beside this process (agent.runtime.beside)
            pid = next(it, "")
            if not pid.isdigit():
                raise SystemExit(f"agent.runtime: --validator needs a PID, not {pid!r}\n{USAGE}")
            args["validator"] = int(pid)
        elif a == "--preload":
            args["preload"] = list(filter(None, next(it, "").split(",")))
        else:
            raise SystemExit(f"agent.runtime: unknown argument {a!r}\n{USAGE}")
    if args["fd"] is None or not args["fd"].isdigit():
        raise SystemExit(f"agent.runtime: --handoff FD is required\n{USAGE}")
    args["fd"] = int(args["fd"])
    return args


def main(argv: list[str]) -> None:
    args = parse(argv)
    fd, hidden, validator = args["fd"], args["hidden"], args["validator"]
    if validator is not None:  # the run time's imports beside validation, without cyclic garbage collection
        import gc  # (on again once they are done: agent.runtime.beside.wait_validator)

        gc.disable()
    if sys.pycache_prefix:  # the state directory's cache (agent.runtime.start): written, whatever
        sys.dont_write_bytecode = False  # PYTHONDONTWRITEBYTECODE says for the sources' own __pycache__
        from .bytecode import backfill

        backfill()
    elif validator is not None:  # no cache yet (a first start): written there once the config says where
        sys.dont_write_bytecode = True  # (agent.runtime.beside.started), not beside the sources
    from .handoff import HandoffError, load

    without_ssl_failed = False
    if hidden:  # as the validating process decided (agent.cli.without_ssl), before anything imports asyncio
        from .nossl import import_without

        try:
            import_without(hidden, pymodbus=args["pymodbus"])
        except Exception:  # noqa: BLE001 - a module that cannot do without ssl: `run` starts again with it
            without_ssl_failed = True
    if validator is not None:  # validating beside this process (agent.runtime.beside)
        from . import beside

        if not without_ssl_failed:
            beside.preload(args["preload"])
        if code := beside.wait_validator(validator):
            raise SystemExit(code)  # the validating process said why
        if os.fstat(fd).st_size == 0:
            raise SystemExit(0)  # it handed nothing over and ended well: it printed what was asked (help)
    try:
        handed = load(fd)
    except HandoffError as e:
        raise SystemExit(f"edge-agent run: {e}") from None
    meta = handed.meta
    if "again" in meta:  # the validating process asks for `run` to start again (agent.runtime.beside)
        from .beside import start_again

        handed.close()
        start_again(meta)
    if without_ssl_failed:
        from .nossl import start_again_with_ssl

        handed.close()  # its descriptor holds the config's secrets: not for the next process
        start_again_with_ssl(meta["argv"], counted=True)
    from ..remote import restart

    restart.ARGV = meta["argv"]  # a pushed config or a rollback starts `run` again: validated again
    try:
        cfg = handed.config()
    except HandoffError as e:
        raise SystemExit(f"edge-agent run: {e}") from None
    from ..logsetup import setup_logging

    setup_logging("DEBUG" if os.environ.get(DEBUG_ENV) else cfg.gateway.log_level)
    if validator is not None:
        from .beside import started

        started(cfg)
    import logging

    logging.getLogger("edge_agent").debug("run-time process %d: python -OO, bytecode cache %s", os.getpid(),
                                          sys.pycache_prefix or "beside the sources")
    from .run import run

    run(cfg, config_path=meta["config_path"], trial=meta["trial"],
        references={k: meta[k] for k in ("drivers", "lines")})


def entry(argv: list[str]) -> None:
    """:func:`main` with its errors said in one line (the traceback with EDGE_AGENT_DEBUG=1)."""
    try:
        main(argv)
    except KeyboardInterrupt:  # Ctrl-C before the agent's own handlers are set (its imports)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last line of defence, as the command line's
        if os.environ.get(DEBUG_ENV):
            raise
        from ..errors import describe_error

        print(f"error: {describe_error(e)}", file=sys.stderr)
        print("(rerun as 'edge-agent --debug ...' for the full traceback)", file=sys.stderr)
        sys.exit(EXIT_RUNTIME)


if __name__ == "__main__":
    entry(sys.argv[1:])
