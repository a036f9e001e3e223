"""Root logging for the service (``run``, its run-time process) and the other long-running commands."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    """Root logging for ``run``. Chatty libraries (pymodbus) are quiet unless the level is DEBUG."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.CRITICAL)
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if sys.stderr.isatty() else "%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
