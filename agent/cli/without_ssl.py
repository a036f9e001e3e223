"""``edge-agent run`` without OpenSSL when its config uses no TLS.

asyncio and paho import the ``ssl`` module when they are imported, and hashlib and hmac import
``_hashlib``: both load OpenSSL's libcrypto (≈ 4.5 MiB RSS with libssl and ssl's tables). When the
config needs no TLS, :func:`prepare` imports them before anything else does (pydantic imports
asyncio at the config's validation) with ``ssl`` and ``_hashlib`` absent (``sys.modules[name] =
None``): asyncio, the standard library's HTTP modules (paho imports them), paho and its optional
packages (dnspython) take their no-TLS path; hashlib and hmac their built-in hashes (SHA-256 for
signed commands and config pushes). Then paho gets :class:`SslOnDemand` as its ``ssl``, because its
plain-text socket code names two ssl exception types in ``except`` clauses, and nothing is hidden any
more: whatever imports ``ssl`` later gets it as usual (``doctor`` over MQTT probing a TLS port). What
was imported without it stays so for the life of the process: asyncio's TLS transports,
``http.client.HTTPSConnection``, urllib's ``https://`` and ``hashlib.scrypt`` are unavailable.
Should any of these imports fail, the process starts again at once with ``ssl``. The run-time process
``run`` hands over to (agent.runtime) imports them the same way, with what this process hid
(:data:`hidden`, :data:`pymodbus_clients`), before it reads its config; the mechanism is
agent.runtime.nossl.

The config is read here straight from the TOML, before validation, with the schema's rule and on
the safe side. OpenSSL is kept when:

* ``[mqtt.tls]`` is present, unless it says ``enabled = false`` (the uplink; the only TLS the core has:
  OCPP's central system listens in plain ``ws://``, the web page is plain HTTP);
* a device or line is implemented by another distribution than this one (a third-party driver or
  line kind may open TLS connections of its own);
* the file cannot be read or parsed (validation then reports it), or ``EDGE_AGENT_SSL=1`` is set
  (only ``1`` counts).

A Modbus RTU line (or RTU over TCP) runs on pymodbus's clients, which import ``ssl`` when they are
imported (its transport names ``ssl.SSLContext``, its TCP client ``ssl.SSLWantReadError``) and build an
``SSLContext`` for the default arguments of its Modbus-over-TLS clients. For such a config
``pymodbus.client`` is imported here too, after asyncio, with :class:`SslOnDemand` as ``ssl`` and a
stand-in for ``pymodbus.client.tls`` (:data:`PYMODBUS_TLS_STANDIN`) whose clients refuse to be built:
the agent builds none (a Modbus line is TCP, RTU or RTU over TCP, never TLS).

``_hashlib`` alone is kept for a ``[web]`` table (its login needs scrypt) and on a Python without a
built-in SHA-256. A config push that turns TLS on restarts the process (``os.execv``,
agent.remote.restart), which decides again; :func:`confirm` re-executes the process with ``ssl`` if
the validated config asks for TLS the reading here missed, marked so that the restarted process does
not count a second start of a pushed config on trial, and only once (the marker is not inherited by
later restarts).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tomllib
from collections.abc import Mapping
from typing import Any, NamedTuple

from ..runtime import EXEC_ENV
from ..runtime.nossl import (  # noqa: F401 - the names this module has always offered
    IMPORTED_WITHOUT_SSL,
    KEEP_SSL_ENV,
    PYMODBUS_TLS_STANDIN,
    RESTART_ENV,
    SslOnDemand,
    import_pymodbus_clients,
    import_without,
    start_again_with_ssl,
)

DISTRIBUTION = "edge-agent"  # this project's: its drivers and lines use no TLS but the [mqtt.tls] uplink
GROUPS = {"devices": "edge_agent.drivers", "lines": "edge_agent.lines"}
# lines whose client is pymodbus's: pymodbus.client, imported here for them, with ssl on demand
PYMODBUS_CLIENT_LINES = ("modbus_rtu", "modbus_rtu_over_tcp")

restarted_by_confirm = False  # this process was re-executed by confirm(): its trial start is counted
# RESTART_ENV's marker of a start again in one process, its trial start counted: the config could not be
# handed over (agent.runtime.beside.hand_over); this start only, a later one tries again
ONE_PROCESS = "one-process"
in_one_process = False  # this start was asked to stay in one process (ONE_PROCESS)
# what prepare() hid while importing, for the run-time process to do the same (agent.runtime): the hidden
# modules and whether pymodbus's clients were imported with ssl on demand
hidden: tuple[str, ...] = ()
pymodbus_clients = False
_rest = False  # prepare() left paho and pymodbus to the run-time process: finish() imports them if none follows
# what a process that hands over imports without ssl: validation imports them anyway (pydantic asyncio)
VALIDATION_IMPORTS = ("asyncio", "hashlib", "hmac")


class Plan(NamedTuple):
    """What ``run`` decides from its config file before validating it (:func:`plan`). (A named tuple: the
    process imports no dataclasses, with inspect, before it forks: agent.runtime.beside.)"""

    service: bool = False  # `run` as the service (not --once): it hands over to a run-time process
    beside: bool = False  # and validates beside it (agent.runtime.beside), unless started again in one process
    hide: tuple[str, ...] = ()  # the modules imported without (empty: OpenSSL loads as usual)
    pymodbus: bool = False  # pymodbus's clients are imported with ssl on demand
    data: Mapping[str, Any] | None = None  # the config file as parsed (None: unreadable; validation says why)


def plan(argv: list[str]) -> Plan:
    """Read ``run``'s config file straight from the TOML (the rules above): what to import without ``ssl``."""
    global restarted_by_confirm, in_one_process
    restart = os.environ.pop(RESTART_ENV, "")  # one-shot: not for later restarts (agent.remote.restart)
    # "confirm" (below) and a retry asked by the run-time process (agent.runtime) come after the
    # validating process counted the trial's start: not counted again
    restarted_by_confirm = restart in ("confirm", "retry-counted", ONE_PROCESS)
    in_one_process = restart == ONE_PROCESS
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] != ["run"] or "--once" in argv or any(a in ("-h", "--help", "--version") for a in argv):
        return Plan()
    beside = restart != ONE_PROCESS
    try:
        with open(config_path(argv), "rb") as fh:
            data = tomllib.loads(fh.read().decode("utf-8").removeprefix("\ufeff"))  # as the loader reads it
    except (OSError, ValueError, TypeError):
        return Plan(service=True, beside=beside)  # validation reports it
    if (restart or os.environ.get(KEEP_SSL_ENV) == "1" or "ssl" in sys.modules or needs_tls(data)
            or any(m in sys.modules for m in (*IMPORTED_WITHOUT_SSL, "_hashlib"))):  # (then nothing to save)
        return Plan(service=True, beside=beside, data=data)
    # the web page's login checks its password with scrypt, which only OpenSSL's hashlib has; without
    # a built-in SHA-256 (a Python built without it), OpenSSL's is the only one
    hide = ("ssl", "_hashlib") if "web" not in data and builtin_sha256() else ("ssl",)
    return Plan(service=True, beside=beside, hide=hide, pymodbus=uses_pymodbus_clients(data), data=data)


def prepare(argv: list[str] | Plan) -> bool:
    """For ``run`` (the service), import asyncio and paho without ``ssl`` when the config needs no TLS.
    True when it did. Never fails: if the imports without ``ssl`` do, the process starts again with it."""
    global hidden, pymodbus_clients, _rest
    p = argv if isinstance(argv, Plan) else plan(argv)
    if not p.hide:
        return False
    # the process hands over to a run-time process (or validates beside it, agent.runtime.beside), which
    # imports paho and pymodbus itself: here only what validation imports anyway (pydantic imports asyncio)
    lean = os.environ.get(EXEC_ENV) != "0"
    try:
        import_without(p.hide, pymodbus=p.pymodbus and not lean,
                       modules=VALIDATION_IMPORTS if lean else IMPORTED_WITHOUT_SSL)
    except Exception:  # noqa: BLE001 - a module that cannot do without ssl: start again with it
        from ..runtime import beside

        if beside.validating():  # the run-time process beside this one is the PID: it starts again
            beside.hand_back({RESTART_ENV: "retry"})
        start_again_with_ssl()
        return False
    hidden, pymodbus_clients, _rest = p.hide, p.pymodbus, lean
    return True


def finish() -> None:
    """Before ``run`` runs the agent in this process (the hand-off was not made): import what
    :func:`prepare` left to the run-time process, without ``ssl`` as it would have, unless something
    has loaded it since. Never fails: a module that cannot do without ``ssl`` is imported with it."""
    global _rest
    if not _rest:
        return
    _rest = False
    if "ssl" in sys.modules or "_hashlib" in sys.modules and "_hashlib" in hidden:
        return  # loaded since: hiding it now would not keep it out
    try:
        import_without(hidden, pymodbus=pymodbus_clients)
    except Exception:  # noqa: BLE001 - imported with ssl where it is imported next
        pass


SCHEMA_STATE_DIR = "/var/lib/edge-agent"  # [gateway] state_dir's default (agent.config.schema; a test checks)


def preload_modules(data: Mapping[str, Any] | None) -> list[str]:
    """The drivers and line kinds a config file names, as their entry points' ``"module:attr"``
    (unvalidated): the run-time process imports them, with their factories, while the config is
    validated beside it (agent.runtime.beside)."""
    from ..plugins import group_entry_points

    found: dict[str, None] = {}
    for section, group in GROUPS.items():
        for item in (_items(data, section) or []) if isinstance(data, Mapping) else []:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if isinstance(kind, str):
                found.update(dict.fromkeys(f"{ep.module}:{ep.attr}" for ep in group_entry_points(group, name=kind)))
    return list(found)


def state_dir_guess(data: Mapping[str, Any] | None) -> str | None:
    """The config file's state directory as written, for the run-time process's bytecode cache before
    validation (None when it is not plain text: validation resolves it, and the cache follows)."""
    gateway = data.get("gateway", {}) if isinstance(data, Mapping) else None
    if not isinstance(gateway, Mapping):
        return None
    value = gateway.get("state_dir", SCHEMA_STATE_DIR)
    return value if isinstance(value, str) and value and "${" not in value else None


def builtin_sha256() -> bool:
    """Whether hashlib has a SHA-256 of its own (without OpenSSL's ``_hashlib``)."""
    return any(importlib.util.find_spec(m) is not None for m in ("_sha2", "_sha256"))


def config_path(argv: list[str]) -> str:
    """The ``-c/--config`` that click takes: the last one given (before ``--``)."""
    found, i = None, 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            break
        if a in ("--config", "-c") and i + 1 < len(argv):
            found, i = argv[i + 1], i + 1
        elif a.startswith("--config="):
            found = a.split("=", 1)[1]
        elif a.startswith("-c") and not a.startswith("--") and len(a) > 2:
            found = a[2:]
        i += 1
    return found if found is not None else os.environ.get("EDGE_AGENT_CONFIG", "")


def _items(data: Mapping[str, Any], section: str) -> list[Any] | None:
    entries = data.get(section, [])
    items = list(entries.values()) if isinstance(entries, Mapping) else entries
    return items if isinstance(items, list) else None


def needs_tls(data: Mapping[str, Any]) -> bool:
    """Whether a config (the TOML as parsed) may use TLS; True when in doubt."""
    mqtt = data.get("mqtt", {})
    if not isinstance(mqtt, Mapping):
        return True
    tls = mqtt.get("tls")
    if tls is not None and not (isinstance(tls, Mapping) and tls.get("enabled", True) is False):
        return True
    from ..plugins import group_entry_points

    for section, group in GROUPS.items():
        items = _items(data, section)
        if items is None:
            return True
        for item in items:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if not isinstance(kind, str):
                return True
            if any(_distribution(ep) != DISTRIBUTION for ep in group_entry_points(group, name=kind)):
                return True
    return False


def _distribution(ep: Any) -> str:
    """The normalised name of the distribution that registers ``ep``: from its ``.dist-info`` directory's
    name (as pip writes it there) where importlib.metadata offers that, else from its metadata (which it
    parses, with email.parser, at every read)."""
    dist = ep.dist
    if dist is None:
        return ""
    name = getattr(dist, "_normalized_name", None) or dist.name
    return name.lower().replace("_", "-")


def uses_pymodbus_clients(data: Mapping[str, Any]) -> bool:
    """Whether a line's client is pymodbus's (which loads ssl anyway: hiding it would only slow hashing)."""
    return any(isinstance(item, Mapping) and item.get("type") in PYMODBUS_CLIENT_LINES
               for item in _items(data, "lines") or [])


def confirm(tls_configured: bool) -> None:
    """After validation: a process that hid ``ssl`` from asyncio (or would have its run-time process hide
    it) while its config asks for TLS starts again with ``ssl`` (the reading in :func:`plan` is meant never
    to miss one). The start of a pushed config on trial, already counted, is not counted again
    (:data:`restarted_by_confirm`)."""
    sslproto = sys.modules.get("asyncio.sslproto")
    without = sslproto is not None and sslproto.ssl is None  # imported so here
    if tls_configured and (without or hidden) and not restarted_by_confirm:  # or so in the run-time process
        from ..remote.restart import exec_self

        os.environ[RESTART_ENV] = "confirm"
        exec_self()
