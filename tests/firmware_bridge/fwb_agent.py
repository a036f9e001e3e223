"""Run the real agent (as `edge-agent run` does) with the mcu_node driver in its catalog, whether or
not the package's entry points have been reinstalled since the driver was added."""

from __future__ import annotations

import asyncio
import sys

from agent.app import Agent
from agent.cli.common import setup_logging
from agent.config.loader import load_config
from agent.driver import DriverCatalog
from firmware_bridge import SPEC


async def main(path: str) -> None:
    import contextlib
    import signal

    specs = {s.type: s for s in DriverCatalog.discover()}
    specs.setdefault(SPEC.type, SPEC)
    catalog = DriverCatalog(specs)
    config = load_config(path, catalog=catalog)
    setup_logging(config.gateway.log_level)
    agent = Agent(config, catalog=catalog)
    task = asyncio.create_task(agent.run())
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
