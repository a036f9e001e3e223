"""Config sections register themselves; the root config type is assembled from them.

The config package defines the core sections (``gateway``, ``mqtt``, ``store``, ``health``,
``lines``, ``devices``: see :class:`~agent.config.schema.CoreConfig`) and this mechanism. A feature
(processing, site, commands, ...) declares its ``[section]`` as a :class:`Section`: its name, model
and description, and optional whole-file checks. The built-in feature sections are listed by the
composition root :mod:`agent.sections`; another installed package adds its own through the
``edge_agent.sections`` entry-point group (an entry point names a ``Section`` or a sequence of
them). The config package imports no feature: it loads the registrations by name, once, on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint
from typing import Any

from pydantic import BaseModel, Field, create_model

from ..contract.config import DeviceConfig
from ..model import MetricSpec
from ..plugins import group_entry_points

SECTIONS_GROUP = "edge_agent.sections"
BUILTIN_SECTIONS = EntryPoint(name="builtin", value="agent.sections:BUILTIN", group=SECTIONS_GROUP)

Problem = tuple[tuple, str]  # (key path in the file, message)


@dataclass(frozen=True)
class DeviceFacts:
    """What the devices' drivers deliver, for checks of keys that name a device's metrics."""

    devices: tuple[DeviceConfig, ...]
    metrics: dict[int, list[MetricSpec]] = field(default_factory=dict)  # device index -> metrics (drivers set up)
    writable: dict[str, bool] = field(default_factory=dict)  # device name -> its driver accepts writes

    def enabled_metrics(self) -> dict[str, list[str]]:
        """Metric names of every enabled device whose driver could be set up, by device name."""
        return {self.devices[i].name: [m.name for m in specs] for i, specs in self.metrics.items()
                if self.devices[i].enabled}


@dataclass(frozen=True)
class Section:
    """A ``[name]`` table of the config file, validated by ``model``.

    ``optional``: the value is None unless the table is present (else the model's defaults apply).
    ``cross_check(value, devices)`` and ``references(value, facts)`` report problems that only the
    whole file can show, as (key path, message); they are not called for an absent optional section.
    """

    name: str
    model: type[BaseModel]
    description: str
    optional: bool = False
    cross_check: Callable[[Any, tuple[DeviceConfig, ...]], list[Problem]] | None = None
    references: Callable[[Any, DeviceFacts], list[Problem]] | None = None


def _load(ep: EntryPoint) -> list[Section]:
    value = ep.load()
    found = [value] if isinstance(value, Section) else list(value)
    for s in found:
        if not isinstance(s, Section):
            raise TypeError(f"section entry point {ep.name!r} ({ep.value}) names {s!r}, not a Section")
    return found


@cache
def registered_sections() -> tuple[Section, ...]:
    """The feature sections: the built-in ones, then those of installed packages."""
    out: dict[str, Section] = {}
    for ep in (BUILTIN_SECTIONS, *group_entry_points(SECTIONS_GROUP)):
        for s in _load(ep):
            if s.name in out:
                raise TypeError(f"config section [{s.name}] is registered twice ({ep.value})")
            out[s.name] = s
    return tuple(out.values())


def assemble(core: type[BaseModel], sections: Iterable[Section], name: str = "AgentConfig") -> type[BaseModel]:
    """The root config type: ``core`` plus one field per section."""
    fields: dict[str, Any] = {}
    for s in sections:
        if s.name in core.model_fields:
            raise TypeError(f"config section [{s.name}] clashes with a core section")
        if s.optional:
            fields[s.name] = (s.model | None, Field(None, description=s.description))
        else:
            fields[s.name] = (s.model, Field(default_factory=s.model, description=s.description))
    model = create_model(name, __base__=core, __module__=core.__module__, **fields)
    model.__doc__ = core.__doc__
    return model


def section_problems(config: Any, sections: Sequence[Section], facts: DeviceFacts | None = None) -> list[Problem]:
    """The sections' whole-file checks (``cross_check``), or with ``facts`` their reference checks."""
    problems: list[Problem] = []
    for s in sections:
        value = getattr(config, s.name)  # noqa: B009 - fields assembled at run time
        if value is None:
            continue
        if facts is None and s.cross_check is not None:
            problems += s.cross_check(value, config.devices)
        elif facts is not None and s.references is not None:
            problems += s.references(value, facts)
    return problems
