"""Prometheus text exposition format 0.0.4: metric families with HELP and TYPE lines.

Label values escape backslash, double quote and line feed; HELP text escapes backslash and line
feed. A family is written once, its samples together, as the format requires.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = ("counter", "gauge", "untyped")


@dataclass
class Family:
    """One metric family. A counter's name ends in ``_total``."""

    name: str
    type: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not METRIC_NAME.match(self.name) or self.type not in TYPES:
            raise ValueError(f"bad metric family {self.name!r} ({self.type})")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")

    def add(self, value: float | int | bool | None, **labels: str) -> None:
        if value is None:
            return
        for k in labels:
            if not LABEL_NAME.match(k) or k.startswith("__"):
                raise ValueError(f"bad label name {k!r}")
        self.samples.append((labels, float(value)))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def render(families: list[Family]) -> str:
    out: list[str] = []
    for fam in families:
        if not fam.samples:  # a figure the health document does not have (yet): left out
            continue
        out.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        out.append(f"# TYPE {fam.name} {fam.type}")
        for labels, value in fam.samples:
            text = ",".join(f'{k}="{escape_label(str(v))}"' for k, v in labels.items())
            out.append(f"{fam.name}{{{text}}} {format_value(value)}" if text else f"{fam.name} {format_value(value)}")
    return "\n".join(out) + "\n"
