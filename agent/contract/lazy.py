"""Names resolved on first use: how pydantic-free modules re-export models without importing them.

A run-time module (no pydantic) may still offer the config models beside it, for drivers and tests
that import them from there: ``__getattr__ = lazy_exports(__name__, {"ModbusDevice": "agent.contract.modbus_config"})``.
Entry-point objects (``DriverSpec``, ``LineKind``) name their config model as ``"module:attr"`` the
same way, so a run that hands over a plain config never imports the models.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def resolve(ref: Any) -> Any:
    """``"package.module:attr"`` -> that object (anything else as it is)."""
    if not isinstance(ref, str):
        return ref
    module, sep, attr = ref.partition(":")
    if not sep:
        raise ValueError(f"{ref!r} is not a reference of the form 'module:attr'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def lazy_exports(module: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` importing each name of ``where`` (name -> module) when first asked for."""

    def __getattr__(name: str) -> Any:
        source = where.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(source), name)

    return __getattr__


class LazyRef:
    """A read-only attribute that may be given as ``"module:attr"``: resolved (and kept) on first read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}"

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = getattr(obj, self.slot)
        if isinstance(value, str):
            value = resolve(value)
            object.__setattr__(obj, self.slot, value)
        return value


class Record:
    """A small frozen record whose fields are listed in ``FIELDS`` (``LazyRef`` ones stored as ``_name``)."""

    __slots__ = ()
    FIELDS: tuple[str, ...] = ()

    def _store(self, **values: Any) -> None:
        for name, value in values.items():
            slot = f"_{name}" if isinstance(type(self).__dict__.get(name), LazyRef) else name
            object.__setattr__(self, slot, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen (cannot set {name!r})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{f}={getattr(self, f)!r}' for f in self.FIELDS)})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.FIELDS)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self.FIELDS))
