"""Generate docs/config-reference.md from the config models, and the health part of
docs/payload.schema.json and docs/payloads.md from the health models (agent.health_model), so neither can drift.

Run ``python -m agent.docgen`` after changing a config or health model; a test fails when a file is stale.
"""

from __future__ import annotations

import enum
import json
import math
import re
import sys
import types
import typing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, to_jsonable_python

from .bus.kinds import LINE_KINDS
from .config.schema import CORE_SECTIONS, AgentConfig
from .config.sections import registered_sections
from .contract import DRIVERS_GROUP, DeviceConfig
from .docgen_health import PAYLOADS_MD, SCHEMA_JSON, render_payloads_md, render_schema
from .driver import DriverCatalog

DOC = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"


def _type_name(t) -> str:
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(t))
    if origin is typing.Literal:
        return " | ".join(choices(t))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(t)[0])
    if origin in (list, tuple, dict, frozenset, set):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(t) if a is not Ellipsis)}]"
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return " | ".join(choices(t))
    if isinstance(t, type) and issubclass(t, BaseModel):
        return "table"
    return getattr(t, "__name__", str(t)).replace("NoneType", "none")


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_literal(value: Any) -> str:
    """A plain (JSON-able) value as it is written in the TOML config."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = (f"{k if _BARE_KEY.match(str(k)) else json.dumps(str(k))} = {toml_literal(v)}" for k, v in value.items())
        return "{ " + ", ".join(items) + " }"
    return json.dumps(str(value))


def default_text(field: FieldInfo) -> str | None:
    """The default as a TOML literal: None when the key is required, "" when it has no value."""
    if field.is_required():
        return None
    d = field.get_default(call_default_factory=True)
    if d is PydanticUndefined or d is None:
        return ""
    if isinstance(d, BaseModel):
        return "(table)"
    return toml_literal(to_jsonable_python(d))


def choices(t) -> list[str]:
    """The allowed values of an enum or Literal type (as TOML literals), or []."""
    origin = typing.get_origin(t)
    if origin is typing.Annotated:
        return choices(typing.get_args(t)[0])
    if origin is typing.Literal:
        return [toml_literal(to_jsonable_python(a)) for a in typing.get_args(t)]
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return [toml_literal(m.value) for m in t]
    return []


def _default(field: FieldInfo) -> str:
    text = default_text(field)
    if text is None:
        return "**required**"
    if text in ("", "(table)"):
        return "—" if text == "" and field.default_factory is None else text or "(empty)"
    return f"`{text}`"


def model_table(model: type[BaseModel], *, skip: tuple[str, ...] = ()) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        desc = (field.description or "").replace("|", "\\|")
        tname = _type_name(field.annotation).replace("|", "\\|")
        rows.append(f"| `{name}` | {tname} | {_default(field)} | {desc} |")
    return rows


def _nested(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    out = []
    for name, field in model.model_fields.items():
        for t in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(t, type) and issubclass(t, BaseModel):
                out.append((name, t))
    return out


def render() -> str:
    out = ["# Configuration reference", "",
           "Generated from the code by `python -m agent.docgen`; do not edit by hand.", "",
           "Values may use `${VAR}`, `${VAR:-default}` and `${cred:NAME}` (systemd credentials).", "",
           f"Sections: {', '.join(f'[{n}]' for n in CORE_SECTIONS if n not in ('lines', 'devices'))}, [lines] and "
           f"[[devices]] are the core; {', '.join(f'[{s.name}]' for s in registered_sections())} are registered "
           "by their features (and installed packages may register more).", ""]
    for name, field in AgentConfig.model_fields.items():
        if name in ("devices", "lines"):
            continue
        model = field.annotation
        models = [t for t in (model, *typing.get_args(model)) if isinstance(t, type) and issubclass(t, BaseModel)]
        if not models:
            continue
        about = [field.description, ""] if field.description else []
        out += [f"## [{name}]", "", *about, *model_table(models[0]), ""]
        for sub, sub_model in _nested(models[0]):
            out += [f"### [{name}.{sub}]", "", *model_table(sub_model), ""]
    out += ["## [lines.NAME]", "", "Shared transports. `type` selects the kind.", ""]
    for kind, spec in sorted(LINE_KINDS.items()):
        out += [f"### type = \"{kind}\"", "", spec.summary, "", *model_table(spec.config_model, skip=("type",)), ""]
    out += ["## [[devices]]", "", "Keys every device has:", "", *model_table(DeviceConfig, skip=("type",)), ""]
    common = set(DeviceConfig.model_fields)
    shipped = {ep.name for ep in entry_points(group=DRIVERS_GROUP) if ep.dist is not None and ep.dist.name == "edge-agent"}
    for spec in DriverCatalog.discover():
        if spec.type not in shipped:
            continue  # a third-party package documents its own driver
        out += [f"### type = \"{spec.type}\"", "", spec.summary, ""]
        own = tuple(n for n in spec.config_model.model_fields if n in common)
        out += model_table(spec.config_model, skip=own) + [""]
        for sub, sub_model in _nested(spec.config_model):
            if sub not in common:
                out += [f"#### {spec.type}: `{sub}` entries", "", *model_table(sub_model), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    docs = {DOC: render(), SCHEMA_JSON: render_schema(), PAYLOADS_MD: render_payloads_md()}
    if "--check" in sys.argv:
        sys.exit(0 if all(p.exists() and p.read_text() == text for p, text in docs.items()) else 1)
    for path, text in docs.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
