"""The typed health document as pydantic models, built from the run-time parts in :mod:`agent.health_parts`.

The running agent builds the document with those dataclasses (no pydantic); these models, one per
part with the same fields, descriptions and constraints, are what ``edge-agent status`` reads the
status file back into, and what the health schema in docs/payload.schema.json and the field table
in docs/payloads.md are generated from (``python -m agent.docgen``). Every field has a default so
that a report with missing parts still parses; unknown keys (from a newer agent) are ignored.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, create_model

from . import health_parts
from .health_parts import STATUS_FILE

# "x-ref": a definition shared with the other payloads in docs/payload.schema.json (docgen links it)
Count = Annotated[int, Field(ge=0)]
EpochMs = Annotated[int, Field(ge=0), WithJsonSchema({"x-ref": "epoch_ms"})]
Gateway = Annotated[str, WithJsonSchema({"x-ref": "gateway"})]


class Part(BaseModel):
    """A part of the health document. Unknown keys (from a newer agent) are ignored when reading."""

    # serialization schema: every field with a default is still always written, hence required
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)

    def to_wire(self) -> dict[str, Any]:
        """The document as plain JSON types (what is published and written)."""
        return self.model_dump(mode="json")


def _model(part: type) -> type[Part]:
    """The model of one run-time part: its fields in order, annotations read in this module's names."""
    ns = {**globals(), "Any": Any, "Literal": Literal}
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(part):
        meta = f.metadata
        kw: dict[str, Any] = {"description": meta["description"]}
        if meta.get("ge") is not None:
            kw["ge"] = meta["ge"]
        if meta.get("exclude_if") is not None:
            kw["exclude_if"] = meta["exclude_if"]
        if f.default_factory is not dataclasses.MISSING:
            factory = f.default_factory
            kw["default_factory"] = ns.get(getattr(factory, "__name__", ""), factory) if factory is not dict else dict
        else:
            kw["default"] = f.default
        fields[f.name] = (eval(f.type, ns), Field(**kw))  # noqa: S307 - our own annotations
    doc = part.__doc__ if part.__doc__ and not part.__doc__.startswith(f"{part.__name__}(") else None
    extra = getattr(part, "SCHEMA_EXTRA", None)
    base: type[Part] = Part
    if extra is not None:
        base = type(f"{part.__name__}Base", (Part,), {"__module__": __name__, "model_config": ConfigDict(
            extra="ignore", json_schema_serialization_defaults_required=True, json_schema_extra=dict(extra))})
    model = create_model(part.__name__, __base__=base, __module__=__name__, __doc__=doc, **fields)
    globals()[part.__name__] = model
    return model


for _part in health_parts.PARTS:
    _model(_part)

if TYPE_CHECKING:  # what the loop above defines, for readers and type checkers
    Drops = BufferHealth = RefusedTopic = UplinkStats = PipelineHealth = DeviceReport = ClockStatus = Part
    ConfigVersion = HealthReport = Part


class StatusFile(HealthReport):  # type: ignore[misc, valid-type]
    """The status file: the health document plus the pid of the agent that wrote it."""

    pid: int | None = None


def parse_status(doc: dict) -> StatusFile:
    """A status document read back, tolerant of missing parts (their defaults) and of damaged ones
    (left out: ``model_fields_set`` tells which parts the document had)."""
    try:
        return StatusFile.model_validate(doc)
    except ValidationError as e:
        bad = {err["loc"][0] for err in e.errors() if err["loc"]}
        return StatusFile.model_validate({k: v for k, v in doc.items() if k not in bad})


__all__ = ["STATUS_FILE", "BufferHealth", "ClockStatus", "ConfigVersion", "Count", "DeviceReport", "Drops",
           "EpochMs", "Gateway", "HealthReport", "Part", "PipelineHealth", "RefusedTopic", "StatusFile", "UplinkStats",
           "parse_status"]
