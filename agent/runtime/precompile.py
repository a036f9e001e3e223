"""``python -OO -X pycache_prefix=<state_dir>/pycache -m agent.runtime.precompile``: write the ``-OO``
bytecode the run-time process imports into the state directory's cache, ahead of the first start
(``edge-agent warmup`` runs it; agent.runtime.start). Imports the run path and every driver and line
kind this distribution ships (one a config does not use is only compiled here, never loaded at run
time); prints how many modules it cached. Third-party drivers are compiled by their first start."""

from __future__ import annotations

import importlib
import sys

# the run-time process's own modules, and what they load whatever the config
RUN_PATH = ("agent.runtime.__main__", "agent.runtime.run", "agent.runtime.nossl", "agent.app", "agent.uplink.mqtt",
            "agent.remote.restart", "agent.logsetup", "agent.processing.processor", "agent.processing.warmup",
            "pymodbus.client", "logging.handlers")
DISTRIBUTION = "edge-agent"
GROUPS = ("edge_agent.drivers", "edge_agent.lines")


def modules() -> list[str]:
    from importlib.metadata import entry_points

    found = list(RUN_PATH)
    for group in GROUPS:
        for ep in entry_points(group=group):
            if ep.dist is not None and ep.dist.name.lower().replace("_", "-") == DISTRIBUTION:
                found.append(f"{ep.module}:{ep.attr}")  # with its factory (agent.runtime.beside.preload)
    return found


def main() -> int:
    sys.dont_write_bytecode = False  # the cache under the state directory is what this is for
    if not sys.pycache_prefix or sys.flags.optimize != 2:
        print("precompile: run as python -OO -X pycache_prefix=DIR -m agent.runtime.precompile", file=sys.stderr)
        return 2
    from ..contract.lazy import resolve

    failed = []
    for name in modules():
        try:
            if ":" in name:  # a driver's or line kind's spec, and the factory it names as "module:attr"
                getattr(resolve(name), "factory", None)
            else:
                importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - an optional library missing: its first start compiles it
            failed.append(f"{name} ({type(e).__name__}: {e})")
    from .bytecode import backfill

    backfill()
    print(f"{len(sys.modules)} modules compiled into {sys.pycache_prefix}"
          + (f"; not importable here: {', '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
