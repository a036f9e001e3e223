"""``${VAR}`` substitution in config string values.

Forms: ``${VAR}`` (must be set), ``${VAR:-default}``, ``${cred:NAME}`` (a systemd credential read
from ``$CREDENTIALS_DIRECTORY/NAME``), and ``$$`` for a literal dollar sign. Values are never
logged; errors name the variable and the key, not the value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"^(cred:)?([A-Za-z_][A-Za-z0-9_.-]*)(:-(.*))?$", re.S)


class SubstitutionError(ValueError):
    pass


def substitute(value: str, env: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        inner = m.group(1)
        ref = _NAME.match(inner)
        if not ref:
            raise SubstitutionError(f"malformed reference ${{{inner}}}")
        cred, name, has_default, default = ref.group(1), ref.group(2), ref.group(3), ref.group(4)
        if cred:
            cdir = env.get("CREDENTIALS_DIRECTORY")
            if not cdir:
                raise SubstitutionError(f"${{cred:{name}}} used but CREDENTIALS_DIRECTORY is not set")
            try:
                return (Path(cdir) / name).read_text().rstrip("\n")
            except OSError as e:
                raise SubstitutionError(f"credential {name!r} cannot be read: {e.strerror}") from None
        if name in env:
            return env[name]
        if has_default:
            return default or ""
        raise SubstitutionError(f"environment variable {name} is not set")

    if "$" not in value:
        return value
    return _REF.sub(repl, value)


def substitute_tree(node: Any, env: Mapping[str, str], path: tuple = (), errors: list | None = None) -> Any:
    """Return a copy of ``node`` with every string substituted; collect (path, message) errors."""
    errors = [] if errors is None else errors
    if isinstance(node, str):
        try:
            return substitute(node, env)
        except SubstitutionError as e:
            errors.append((path, str(e)))
            return node
    if isinstance(node, dict):
        return {k: substitute_tree(v, env, (*path, k), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_tree(v, env, (*path, i), errors) for i, v in enumerate(node)]
    return node


def default_env() -> Mapping[str, str]:
    return os.environ
