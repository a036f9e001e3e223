"""Load a TOML config into frozen, validated objects, reporting every problem with key path and line.

Pass 1 validates each section and each device against its own schema (a device's schema comes from
its driver). Pass 2 cross-checks the whole (duplicate names, missing lines, clashing ports and units).
Pass 3 checks keys that name metrics against what each device's driver delivers. Nothing here
touches a device. A UTF-8 byte order mark at the start of the file is accepted (some Windows
editors write one) and ignored.

``read_config`` / ``parse_config`` also return every ``${...}`` reference and, with
``defer_credentials``, the systemd credentials that cannot be seen outside the service (what
``edge-agent check`` reports as warnings); ``load_config`` / ``load_config_text`` return the config only.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..bus.kinds import LINE_KINDS
from ..driver import DriverCatalog
from ..errors import ConfigError
from ..hints import known_keys, with_hint
from .crosscheck import cross_check
from .envsubst import Reference, default_env, substitute_tree
from .locate import format_path, line_of, locate_keys
from .references import reference_problems
from .schema import CoreConfig, agent_config_model

BOM = "\ufeff"


class _Problems:
    def __init__(self, source: str, lines: dict):
        self.source = source
        self.lines = lines
        self.items: list[str] = []

    def format(self, path: tuple, message: str, label: str | None = None) -> str:
        line = line_of(self.lines, path)
        where = f"{self.source}:{line}" if line else self.source
        key = label or format_path(path) or "(top level)"
        return f"{where}: {key}: {message}"

    def add(self, path: tuple, message: str, label: str | None = None) -> None:
        self.items.append(self.format(path, message, label))

    def add_validation(self, prefix: tuple, err: ValidationError, label_prefix: str | None = None,
                       model: Any = None) -> None:
        for e in err.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            path = (*prefix, *loc)
            label = None
            if label_prefix:
                label = label_prefix + (("." + format_path(loc)) if loc else "")
            msg = e["msg"]
            if e["type"] == "extra_forbidden":
                msg = with_hint("unknown key (not part of this section's schema)", loc[-1] if loc else None,
                                known_keys(model, loc[:-1]) if model is not None else ())
            elif e["type"] == "missing":
                msg = "required key is missing"
            self.add(path, msg, label)


@dataclass
class Loaded:
    """A valid config and what ``check`` reports about it besides errors."""

    config: CoreConfig  # of the assembled type, agent_config_model()
    at: Callable[..., str]  # at(path, message) -> "file:line: key: message", for later passes
    references: list[Reference] = field(default_factory=list)  # every ${...}, resolved or not
    deferred: list[str] = field(default_factory=list)  # credentials only systemd can provide (formatted)


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    catalog: DriverCatalog | None = None,
) -> CoreConfig:
    """Read and validate ``path``. Raises ConfigError listing every problem found."""
    return read_config(path, env=env, catalog=catalog).config


def load_config_text(
    text: str,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    catalog: DriverCatalog | None = None,
) -> CoreConfig:
    return parse_config(text, source=source, env=env, catalog=catalog).config


def read_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    catalog: DriverCatalog | None = None,
    defer_credentials: bool = False,
    defer_secrets: bool = False,
) -> Loaded:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"{path}: cannot read config file: {e.strerror}"]) from None
    except UnicodeDecodeError as e:
        raise ConfigError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"]) from None
    return parse_config(text, source=str(path), env=env, catalog=catalog, defer_credentials=defer_credentials,
                        defer_secrets=defer_secrets)


def _shared_strings(value: Any) -> Any:
    """The tree with its short strings interned: the config objects keep them for the whole run, and a
    fleet of identical devices repeats the same names (100 meters x 60 metric names: 6000 copies of 60
    strings, ≈ 0.4 MB held for nothing)."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= 64 else value
    if isinstance(value, dict):
        return {k: _shared_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared_strings(v) for v in value]
    return value


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
    catalog: DriverCatalog | None = None,
    defer_credentials: bool = False,
    defer_secrets: bool = False,
) -> Loaded:
    text = text.removeprefix(BOM)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{source}: TOML syntax error: {e}"]) from None
    problems = _Problems(source, locate_keys(text))
    sub_errors: list = []
    refs: list[Reference] = []
    raw = _shared_strings(substitute_tree(raw, default_env() if env is None else env, errors=sub_errors, refs=refs))
    deferred: list[str] = []
    for p, msg, kind in sub_errors:
        if (kind == "cred" and defer_credentials) or (kind == "secret" and defer_secrets):
            deferred.append(problems.format(p, msg))
        else:
            problems.add(p, msg)
    catalog = catalog or DriverCatalog.discover()

    root = agent_config_model()
    section_keys = set(root.model_fields) - {"devices", "lines"}
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("devices", "lines"):
            continue
        if key not in section_keys:
            known = sorted(section_keys | {"devices", "lines"})
            problems.add((key,), with_hint(f"unknown section (expected one of: {', '.join(known)})", key, known))
            continue
        sections[key] = value
        try:
            TypeAdapter(root.model_fields[key].annotation).validate_python(value)
        except ValidationError as e:
            problems.add_validation((key,), e, model=root.model_fields[key].annotation)
    if "gateway" not in raw:
        problems.add(("gateway",), "required section [gateway] is missing")

    lines = _validate_lines(raw.get("lines", {}), problems)
    devices = _validate_devices(raw.get("devices", []), catalog, problems)

    config: CoreConfig | None = None
    if not problems.items:
        try:
            config = root.model_validate({**sections, "lines": lines, "devices": tuple(devices)})
        except ValidationError as e:
            problems.add_validation((), e, model=root)
    if config is not None:
        for p, msg in cross_check(config):
            problems.add(p, msg, _device_label(config, p))
    if config is not None and not problems.items:
        for p, msg in reference_problems(config, catalog):
            problems.add(p, msg, _device_label(config, p))
    if problems.items:
        raise ConfigError(problems.items)
    assert config is not None

    def at(path: tuple, message: str, label: str | None = None) -> str:
        return problems.format(path, message, label or _device_label(config, path))

    return Loaded(config, at, refs, deferred)


def _device_label(config: CoreConfig, p: tuple) -> str | None:
    if len(p) >= 2 and p[0] == "devices" and isinstance(p[1], int):
        rest = format_path(p[2:])
        return f"devices[{p[1]}] ({config.devices[p[1]].name})" + (f".{rest}" if rest else "")
    return None


def _validate_lines(raw: Any, problems: _Problems) -> dict[str, BaseModel]:
    if not isinstance(raw, dict):
        problems.add(("lines",), "must be a table of named lines, e.g. [lines.rs485-1]")
        return {}
    out = {}
    for name, body in raw.items():
        path = ("lines", name)
        if not isinstance(body, dict):
            problems.add(path, "must be a table")
            continue
        kind = LINE_KINDS.get(body.get("type"))  # type: ignore[arg-type]
        if kind is None:
            problems.add((*path, "type"), with_hint(f"unknown line type {body.get('type')!r} "
                                                    f"(known: {', '.join(sorted(LINE_KINDS)) or 'none'})",
                                                    body.get("type"), LINE_KINDS))
            continue
        try:
            out[name] = kind.config_model.model_validate(body)
        except ValidationError as e:
            problems.add_validation(path, e, model=kind.config_model)
    return out


def _validate_devices(raw: Any, catalog: DriverCatalog, problems: _Problems) -> list[BaseModel]:
    if not isinstance(raw, list):
        problems.add(("devices",), "must be an array of tables: write each device as [[devices]]")
        return []
    out = []
    for i, body in enumerate(raw):
        path = ("devices", i)
        if not isinstance(body, dict):
            problems.add(path, "must be a table")
            continue
        label = f"devices[{i}]" + (f" ({body['name']})" if isinstance(body.get("name"), str) else "")
        type_ = body.get("type")
        if type_ is None:
            problems.add((*path, "type"), "required key is missing", label + ".type")
            continue
        spec = catalog.get(type_) if isinstance(type_, str) else None
        if spec is None:
            problems.add((*path, "type"), with_hint(f"unknown device type {type_!r} (installed drivers: "
                                                    f"{', '.join(catalog.types())})", type_, catalog.types()),
                         label + ".type")
            continue
        try:
            out.append(spec.config_model.model_validate(body))
        except ValidationError as e:
            problems.add_validation(path, e, label, model=spec.config_model)
    return out
