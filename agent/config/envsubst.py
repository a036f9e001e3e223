"""``${VAR}`` substitution in config string values.

Forms: ``${VAR}`` (must be set), ``${VAR:-default}``, ``${cred:NAME}`` (a systemd credential read
from ``$CREDENTIALS_DIRECTORY/NAME``), and ``$$`` for a literal dollar sign. Values are never
logged; errors name the variable and the key, not the value.

Every reference is recorded as a :class:`Reference` so ``edge-agent check`` can say where each value
will come from and whether it resolves on this machine. A ``${cred:NAME}`` while
``CREDENTIALS_DIRECTORY`` is unset is *deferred* when the caller allows it: systemd sets that
variable only for the service, so outside it the credential cannot be seen, only promised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_REF = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"^(cred:)?([A-Za-z_][A-Za-z0-9_.-]*)(:-(.*))?$", re.S)


class SubstitutionError(ValueError):
    pass


class DeferredCredential(SubstitutionError):
    """A systemd credential that cannot be seen here because CREDENTIALS_DIRECTORY is not set."""


class MissingSecret(SubstitutionError):
    """An unset environment variable for a secret (password, token, key): the service's environment
    has it, a technician's shell does not, and technician commands never need it."""


_SECRET_WORDS = ("password", "secret", "token", "psk", "key")


def is_secret_path(path: tuple) -> bool:
    """Whether the key at ``path`` holds a secret (by its name: ``password``, ``hmac_key`` ...)."""
    names = [p.lower() for p in path if isinstance(p, str)]
    return bool(names) and any(w in names[-1] for w in _SECRET_WORDS)


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``${...}`` found in the config: where its value comes from and whether it resolved."""

    path: tuple
    kind: str  # "env" or "cred"
    name: str
    resolved: bool
    problem: str | None = None
    deferred: bool = False

    def source(self) -> str:
        if self.kind == "cred":
            return f"systemd credential {self.name!r} ($CREDENTIALS_DIRECTORY/{self.name}, from LoadCredential=)"
        return f"environment variable {self.name}"


def substitute(value: str, env: Mapping[str, str], refs: list[Reference] | None = None, path: tuple = ()) -> str:
    def record(kind: str, name: str, problem: str | None = None, deferred: bool = False) -> None:
        if refs is not None:
            refs.append(Reference(path, kind, name, problem is None, problem, deferred))

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
                msg = f"${{cred:{name}}} used but CREDENTIALS_DIRECTORY is not set"
                record("cred", name, msg, deferred=True)
                raise DeferredCredential(msg)
            try:
                text = (Path(cdir) / name).read_text(encoding="utf-8").rstrip("\n")
            except (OSError, UnicodeDecodeError) as e:
                why = e.strerror if isinstance(e, OSError) else f"not UTF-8 text ({e.reason} at byte {e.start})"
                msg = f"credential {name!r} cannot be read from {Path(cdir) / name}: {why}"
                record("cred", name, msg)
                raise SubstitutionError(msg) from None
            record("cred", name)
            return text
        if name in env:
            record("env", name)
            return env[name]
        if has_default:
            record("env", name, None)
            return default or ""
        msg = f"environment variable {name} is not set"
        record("env", name, msg)
        raise (MissingSecret if is_secret_path(path) else SubstitutionError)(msg)

    if "$" not in value:
        return value
    return _REF.sub(repl, value)


def substitute_tree(node: Any, env: Mapping[str, str], path: tuple = (), errors: list | None = None,
                    refs: list[Reference] | None = None) -> Any:
    """Return a copy of ``node`` with every string substituted; collect (path, message, kind) errors,
    ``kind`` "cred" for a deferred credential, "secret" for an unset secret variable, else None.

    A string whose substitution fails is kept as written (so later passes still see a value).
    """
    errors = [] if errors is None else errors
    if isinstance(node, str):
        try:
            return substitute(node, env, refs, path)
        except SubstitutionError as e:
            kind = "cred" if isinstance(e, DeferredCredential) else "secret" if isinstance(e, MissingSecret) else None
            errors.append((path, str(e), kind))
            return node
    if isinstance(node, dict):
        return {k: substitute_tree(v, env, (*path, k), errors, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_tree(v, env, (*path, i), errors, refs) for i, v in enumerate(node)]
    return node


def default_env() -> Mapping[str, str]:
    return os.environ
