"""Map TOML key paths to line numbers, so every config error can say where it is.

tomllib gives no positions, so this scans the text: table headers, arrays of tables and
``key = value`` lines. Good enough for error messages; never used to read values.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*=")
Path = tuple[str | int, ...]


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", dotted)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def locate_keys(text: str) -> dict[Path, int]:
    """Return {key path: 1-based line}. Array-of-table entries get their index in the path."""
    lines: dict[Path, int] = {}
    array_counts: dict[Path, int] = {}
    table: Path = ()
    in_multiline: str | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if in_multiline in raw:
                in_multiline = None
            continue
        m = _HEADER.match(raw)
        if m and not _KEY.match(raw):
            keys = tuple(_split_key(m.group(2)))
            if m.group(1) == "[[":
                # resolve parent arrays to their current index, e.g. [[devices.points]]
                base = (*_resolve(keys[:-1], array_counts), keys[-1])
                idx = array_counts.get(base, 0)
                array_counts[base] = idx + 1
                table = (*base, idx)
            else:
                table = _resolve(keys, array_counts)
            lines.setdefault(table, lineno)
            continue
        k = _KEY.match(raw)
        if k:
            path = (*table, *_split_key(k.group(1)))
            lines.setdefault(path, lineno)
            rest = raw[k.end():]
            for q in ('"""', "'''"):
                if rest.count(q) == 1:
                    in_multiline = q
    return lines


def _resolve(keys: tuple[str, ...], array_counts: dict[Path, int]) -> Path:
    out: list[str | int] = []
    for key in keys:
        out.append(key)
        n = array_counts.get(tuple(out))
        if n:
            out.append(n - 1)
    return tuple(out)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """Line of the longest known prefix of ``path``."""
    for end in range(len(path), 0, -1):
        hit = lines.get(tuple(path[:end]))
        if hit is not None:
            return hit
    return None


def format_path(path: Path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out
