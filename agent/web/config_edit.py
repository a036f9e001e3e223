"""The config file as the page edits it: its TOML text with every secret replaced by ``"***"``, and back.

Masking works on the text (comments and layout stay): a string value under a key that names a secret
(:data:`~.view.SECRET_KEY`) becomes ``"***"``; a ``${ENV}`` or ``${cred:NAME}`` reference is no secret
and stays. If a secret would still show (a multi-line string, say), the text is not offered at all.

Unmasking: each ``"***"`` value left in the edited text is put back to the value at the same place
(key path) in the file in force, found by parsing the edited text with a unique marker in its place.
A ``"***"`` where the file in force has no string is an error naming the line and key, as the
validation's errors do (``config:LINE: key.path: ...``).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from typing import Any

from .view import SECRET_KEY

PLACEHOLDER = "***"
_KEY = r'(?P<key>[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\')'
_STRING = r'(?P<val>"(?:[^"\\\n]|\\.)*"(?!")|\'[^\'\n]*\'(?!\'))'
_ASSIGN = re.compile(r"(?P<pre>(?:^|[{,.])[ \t]*)" + _KEY + r"(?P<eq>[ \t]*=[ \t]*)" + _STRING, re.M)
_REFERENCE = re.compile(r"^\$\{[^}]*\}$")
_MASKED = re.compile(r"(?P<eq>=[ \t]*)(?P<val>\"\*\*\*\"|'\*\*\*')(?![\"'])")


class EditError(ValueError):
    """An edited config that cannot be put back together; the message names the line and key."""


def _strings(doc: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _strings(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _strings(v, (*path, i))
    elif isinstance(doc, str):
        yield path, doc


def _secret_values(doc: dict[str, Any]) -> set[str]:
    """The values the page masks (:func:`~.view.masked`: by the nearest key, a list's items by the list's)."""
    out = set()
    for path, v in _strings(doc):
        key = next((k for k in reversed(path) if isinstance(k, str)), "")
        if v and not _REFERENCE.match(v) and SECRET_KEY.search(key):
            out.add(v)
    return out


def mask_text(text: str) -> str | None:
    """``text`` with its secrets as ``"***"``; None when that cannot be done safely (not TOML, or a
    secret that would still show)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None

    def hide(m: re.Match[str]) -> str:
        key = m["key"].strip("\"'")
        try:
            value = tomllib.loads(f"v = {m['val']}")["v"]
        except tomllib.TOMLDecodeError:
            return m[0]
        if not SECRET_KEY.search(key) or not value or _REFERENCE.match(value):
            return m[0]
        return f'{m["pre"]}{m["key"]}{m["eq"]}"{PLACEHOLDER}"'

    out = _ASSIGN.sub(hide, text)
    try:
        left = _secret_values(tomllib.loads(out)) - {PLACEHOLDER}
    except tomllib.TOMLDecodeError:
        return None
    return None if left else out


def _find(doc: Any, marker: str, path: tuple = ()) -> tuple | None:
    for p, v in _strings(doc, path):
        if v == marker:
            return p
    return None


def _at(doc: Any, path: tuple) -> Any:
    for step in path:
        try:
            doc = doc[step]
        except (KeyError, IndexError, TypeError):
            return None
    return doc


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def unmask_text(edited: str, in_force: str) -> str:
    """``edited`` with every ``"***"`` value put back to what the file in force holds at that key.
    Text that is no TOML is returned as it is (the validation names the error). Raises EditError."""
    spots = list(_MASKED.finditer(edited))
    if not spots:
        return edited
    markers = [f"\x1fmask-{i}\x1f" for i in range(len(spots))]
    marked, last = [], 0
    for spot, marker in zip(spots, markers, strict=True):
        marked += [edited[last:spot.start("val")], _toml_string(marker)]
        last = spot.end("val")
    marked.append(edited[last:])
    try:
        doc = tomllib.loads("".join(marked))
    except tomllib.TOMLDecodeError:
        return edited
    current = tomllib.loads(in_force)
    out, last = [], 0
    for spot, marker in zip(spots, markers, strict=True):
        path = _find(doc, marker)
        line = edited.count("\n", 0, spot.start()) + 1
        value = _at(current, path) if path is not None else None
        if not isinstance(value, str):
            key = ".".join(map(str, path or ("?",)))
            raise EditError(f"config:{line}: {key}: \"{PLACEHOLDER}\" keeps the current value, but the config in "
                            "force has no text value there: type the value")
        out += [edited[last:spot.start("val")], _toml_string(value)]
        last = spot.end("val")
    out.append(edited[last:])
    return "".join(out)
