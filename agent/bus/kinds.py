"""The line kinds this agent knows, by their config ``type``."""

from __future__ import annotations

from .base import LineKind

LINE_KINDS: dict[str, LineKind] = {}
