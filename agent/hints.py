"""'Did you mean ...?' hints for misspelt config keys, sections, types and names.

``known_keys`` walks a pydantic model along an error location to the table a misspelt key sits in,
so ``[mqtt.tls] ca_fille`` is compared with the keys of the TLS table, not of ``[mqtt]``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any


def close_matches(word: object, choices: Iterable[str]) -> list[str]:
    if not isinstance(word, str):
        return []
    choices = list(choices)
    import difflib  # only when a suggestion is built: not loaded by a running agent
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if close:  # keep only the best few: 'ca_fille' suggests ca_file, not cert_file and key_file too
        best = _ratio(word, close[0])
        close = [c for c in close if _ratio(word, c) >= best - 0.1]
    if not close:  # a case slip (Type, SDM630) is not always close enough by ratio
        close = [c for c in choices if c.lower() == word.lower()]
    return close


def _ratio(a: str, b: str) -> float:
    import difflib  # (see close_matches)
    return difflib.SequenceMatcher(None, b, a).ratio()


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` (or ``'x' or 'y'``), or ``""`` when nothing is close."""
    close = close_matches(word, choices)
    return f"did you mean {' or '.join(map(repr, close))}?" if close else ""


def with_hint(message: str, word: object, choices: Iterable[str]) -> str:
    hint = did_you_mean(word, choices)
    return f"{message}; {hint}" if hint else message


def _is_model(candidate: Any) -> bool:
    """A pydantic model class (told without importing pydantic: the running agent does not load it)."""
    return isinstance(candidate, type) and hasattr(candidate, "__pydantic_fields__")


def _models_in(annotation: Any) -> list[Any]:
    """Unwrap Annotated/Optional/Union to the members worth walking into."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out += _models_in(arg)
        return out
    return [annotation]


def _step(annotation: Any, part: str | int) -> Any | None:
    """The annotation one location step below ``annotation``, or None when it cannot be followed."""
    for candidate in _models_in(annotation):
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if _is_model(candidate) and isinstance(part, str):
            field = candidate.model_fields.get(part) or next(
                (f for f in candidate.model_fields.values() if f.alias == part), None)
            if field is not None:
                return field.annotation
        elif origin in (dict, typing.Mapping) and len(args) == 2:
            return args[1]
        elif origin in (tuple, list, Sequence) and args and isinstance(part, int):
            return args[0]
    return None


def known_keys(model: Any, loc: Sequence[str | int]) -> list[str]:
    """The keys of the table at ``loc`` below ``model`` (empty when the path cannot be followed)."""
    annotation: Any = model
    for part in loc:
        nxt = _step(annotation, part)
        if nxt is None:
            # pydantic puts union member tags (e.g. 'tuple[str, ...]') in locations: skip them
            if isinstance(part, str) and not part.isidentifier():
                continue
            return []
        annotation = nxt
    for candidate in _models_in(annotation):
        if _is_model(candidate):
            return [f.alias or name for name, f in candidate.model_fields.items()]
    return []


def no_such_metric(metric: str, names: Sequence[str], device: str | None = None) -> str:
    """'device has no metric X' with the metrics it has, or the closest ones if it has many."""
    who = f"device {device!r}" if device else "device"
    hint = did_you_mean(metric, names)
    hint = f"{hint} " if hint else ""
    if len(names) <= 12:
        return f"{who} has no metric {metric!r} ({hint}has: {', '.join(names) or 'none'})"
    return f"{who} has no metric {metric!r} ({hint}it has {len(names)} metrics: {', '.join(names[:6])}, ...)"
