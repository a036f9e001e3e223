"""Generate docs/config-reference.md from the config models, so the reference cannot drift.

Run ``python -m agent.docgen`` after changing a config model; a test fails when the file is stale.
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .bus.kinds import LINE_KINDS
from .config.schema import AgentConfig, DeviceConfig
from .driver import DriverCatalog

DOC = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"


def _type_name(t) -> str:
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(t))
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(t))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(t)[0])
    if origin in (list, tuple, dict, frozenset, set):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(t) if a is not Ellipsis)}]"
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return " | ".join(repr(m.value) for m in t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return "table"
    return getattr(t, "__name__", str(t)).replace("NoneType", "none")


def _default(field) -> str:
    if field.is_required():
        return "**required**"
    d = field.default
    if d is PydanticUndefined or d is None:
        return "—" if field.default_factory is None else "(empty)"
    if isinstance(d, enum.Enum):
        d = d.value
    if isinstance(d, BaseModel):
        return "(table)"
    if isinstance(d, Path):
        d = str(d)
    return f"`{d!r}`" if not isinstance(d, str) else f'`"{d}"`'


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
           "Values may use `${VAR}`, `${VAR:-default}` and `${cred:NAME}` (systemd credentials).", ""]
    for name, field in AgentConfig.model_fields.items():
        if name in ("devices", "lines"):
            continue
        model = field.annotation
        models = [t for t in (model, *typing.get_args(model)) if isinstance(t, type) and issubclass(t, BaseModel)]
        if not models:
            continue
        out += [f"## [{name}]", "", *model_table(models[0]), ""]
        for sub, sub_model in _nested(models[0]):
            out += [f"### [{name}.{sub}]", "", *model_table(sub_model), ""]
    out += ["## [lines.NAME]", "", "Shared transports. `type` selects the kind.", ""]
    for kind, spec in sorted(LINE_KINDS.items()):
        out += [f"### type = \"{kind}\"", "", spec.summary, "", *model_table(spec.config_model, skip=("type",)), ""]
    out += ["## [[devices]]", "", "Keys every device has:", "", *model_table(DeviceConfig, skip=("type",)), ""]
    common = set(DeviceConfig.model_fields)
    for spec in DriverCatalog.discover():
        out += [f"### type = \"{spec.type}\"", "", spec.summary, ""]
        own = tuple(n for n in spec.config_model.model_fields if n in common)
        out += model_table(spec.config_model, skip=own) + [""]
        for sub, sub_model in _nested(spec.config_model):
            if sub not in common:
                out += [f"#### {spec.type}: `{sub}` entries", "", *model_table(sub_model), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if DOC.exists() and DOC.read_text() == text else 1)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
