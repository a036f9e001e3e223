"""A local web page on the gateway: live status for a technician's phone, writes behind a login.

Off by default (``[web] enabled``); the agent imports this package only when it is on. The server is
the agent's own small asyncio HTTP server (:mod:`.http`), chosen by measured footprint
(tests/bench/bench_web.py). Writes go through the command path, its write gate and its audit.
"""

from typing import TYPE_CHECKING

from ..contract.lazy import lazy_exports

# the section's model (pydantic) on first use: the running agent reads its plain twin
__getattr__ = lazy_exports(__name__, {"WebConfig": "agent.web.config"})

if TYPE_CHECKING:
    from .config import WebConfig

__all__ = ["WebConfig"]
