"""Ready-to-paste TOML config blocks for what ``scan`` found, what a simulator serves and what
``init`` writes. A ``Draft`` collects ``[lines.X]`` tables and ``[[devices]]`` entries, gives every
line and device a unique name, and renders them as TOML that the loader accepts as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """One TOML value: strings are basic strings (JSON escaping is valid TOML), tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Sequence):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def table(header: str, fields: Mapping[str, Any], *, array: bool = False, comment: str = "") -> str:
    head = f"[[{header}]]" if array else f"[{header}]"
    out = [f"{head}{'  # ' + comment if comment else ''}"]
    out += [f"{toml_key(k)} = {toml_value(v)}" for k, v in fields.items() if v is not None]
    return "\n".join(out) + "\n"


def as_name(text: str) -> str:
    """A config name (letters, digits, ``_.-``; starts with a letter or digit) made from ``text``."""
    name = _NAME_CHARS.sub("-", text).strip("-_.")[:64]
    return name or "x"


@dataclass
class Draft:
    """Lines and devices to write as config blocks; names are made unique as they are added."""

    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)  # printed after the blocks, as TOML comments

    def add_line(self, base: str, fields: Mapping[str, Any]) -> str:
        """Add a line (or reuse an identical one) and return its name."""
        for name, existing in self.lines.items():
            if existing == dict(fields):
                return name
        name = self._unique(as_name(base), set(self.lines))
        self.lines[name] = dict(fields)
        return name

    def add_device(self, base: str, fields: Mapping[str, Any]) -> str:
        name = self._unique(as_name(base), {d["name"] for d in self.devices})
        self.devices.append({"name": name, **fields})
        return name

    @staticmethod
    def _unique(base: str, taken: set[str]) -> str:
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def render(self) -> str:
        blocks = [table(f"lines.{toml_key(n)}", f) for n, f in self.lines.items()]
        blocks += [table("devices", d, array=True) for d in self.devices]
        text = "\n".join(blocks)
        if self.comments:
            text += ("\n" if text else "") + "".join(f"# {c}\n" for c in self.comments)
        return text


# -- blocks for the kinds of line the scanners and simulators know -----------------------------------
def modbus_line(*, port: str | None = None, tcp: tuple[str, int] | None = None, baudrate: int = 9600,
                parity: str = "N") -> tuple[str, dict[str, Any]]:
    """(suggested name, fields) of a Modbus RTU line on ``port`` or a Modbus TCP line to ``tcp``."""
    if tcp is not None:
        host, p = tcp
        return "modbus-tcp", {"type": "modbus_tcp", "host": host, "port": p}
    return "rs485", {"type": "modbus_rtu", "port": port, "baudrate": baudrate, "parity": parity}


def serial_line(port: str, baudrate: int = 9600) -> tuple[str, dict[str, Any]]:
    return "serial", {"type": "serial", "port": port, "baudrate": baudrate}


def snippet_for_device(line_name: str, line: Mapping[str, Any], device_name: str,
                       device: Mapping[str, Any]) -> str:
    """One line and one device on it, rendered; for simulators that serve one device."""
    draft = Draft()
    name = draft.add_line(line_name, line)
    draft.add_device(device_name, {**device, "line": name})
    return draft.render()


def banner(text: str, title: str = "ready-to-paste config") -> str:
    """The blocks with a first comment line saying what they are, for printing by a command."""
    return f"# --- {title} ---\n{text}# --- end of config ---"
