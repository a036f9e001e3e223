"""The one validation ``edge-agent check`` and ``edge-agent run`` share.

On top of the file's own validation (``loader``: schemas, cross-checks, metric references) this
pass resolves what ``run`` needs from the machine, by the same code for both commands:

* errors, in ``check`` and ``run`` alike (exit 2, same message): no ``[mqtt] host`` (the agent
  needs a broker; the embedded one is for ``edge-agent demo`` only), and every referenced file that
  is missing or unreadable (TLS CA, client certificate and key; files named by devices, such as a
  replay CSV). A CA file that is not a PEM certificate is an error too.
* a ``${cred:NAME}`` while ``CREDENTIALS_DIRECTORY`` is unset: systemd provides credentials to the
  service only, so ``check`` warns (and exits 0) and ``run`` fails with the same text.
* warnings in both: a serial port or other ``/dev`` node a line names is not present (a USB
  adapter can be plugged in later; the line retries until it appears).

``check`` also lists where each ``${...}`` value comes from and what the clock sync detection found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..driver import DriverCatalog
from ..errors import ConfigError
from .loader import Loaded, read_config
from .schema import BROKER_REQUIRED, CoreConfig, broker_problem  # noqa: F401 - BROKER_REQUIRED: its old home


@dataclass
class Validation:
    config: CoreConfig
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validate(path: str | Path, *, at_run: bool, env: Mapping[str, str] | None = None,
             catalog: DriverCatalog | None = None) -> Validation:
    """Validate ``path`` for ``run`` (``at_run``) or for ``check``. Raises ConfigError."""
    loaded = read_config(path, env=env, catalog=catalog, defer_credentials=not at_run)
    errors = machine_problems(loaded)
    if errors:
        raise ConfigError(errors)
    warnings = [f"{d} (systemd provides it to the service only; `run` fails without it)" for d in loaded.deferred]
    warnings += device_node_warnings(loaded)
    return Validation(loaded.config, warnings, secret_notes(loaded))


def machine_problems(loaded: Loaded) -> list[str]:
    cfg, at = loaded.config, loaded.at
    out: list[str] = []
    if (msg := broker_problem(cfg)) is not None:
        out.append(at(("mqtt", "host"), msg, "mqtt.host"))
    tls = cfg.mqtt.tls
    if tls is not None and tls.enabled:
        for key, file in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            problem = file_problem(file) if file is not None else None
            if problem is None and key == "ca_file" and file is not None:
                problem = ca_problem(file)
            if problem:
                out.append(at(("mqtt", "tls", key), problem))
    for i, dev in enumerate(cfg.devices):
        for key in type(dev).model_fields:
            value = getattr(dev, key)
            if isinstance(value, Path) and (problem := file_problem(value)):
                out.append(at(("devices", i, key), problem))
    return out


def file_problem(path: Path) -> str | None:
    shown = path if path.is_absolute() else f"{path} (resolved to {path.absolute()})"
    if not path.exists():
        return f"file {shown} not found"
    if not path.is_file():
        return f"{shown} is not a file"
    if not os.access(path, os.R_OK):
        return f"file {shown} is not readable by this user"
    return None


def ca_problem(path: Path) -> str | None:
    import ssl  # only when a CA file is configured (a plain-text agent never loads OpenSSL)

    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as e:
        return f"file {path} holds no usable CA certificate ({getattr(e, 'reason', None) or e})"
    return None


def device_node_warnings(loaded: Loaded) -> list[str]:
    out = []
    for name, line in loaded.config.lines.items():
        for key in type(line).model_fields:
            value = getattr(line, key)
            if isinstance(value, str) and value.startswith("/dev/") and not os.path.exists(value):
                out.append(loaded.at(("lines", name, key), f"{value} is not present on this machine "
                                     "(the line keeps retrying until it appears)"))
    return out


def secret_notes(loaded: Loaded) -> list[str]:
    notes = []
    for ref in loaded.references:
        key = ".".join(map(str, ref.path))
        if ref.resolved:
            state = "resolves here"
        elif ref.deferred:
            state = "not available here (CREDENTIALS_DIRECTORY is not set: only under systemd)"
        else:
            state = f"does not resolve here: {ref.problem}"
        notes.append(f"{key}: from {ref.source()}: {state}")
    return notes
