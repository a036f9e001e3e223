"""``edge-agent run`` without OpenSSL when its config uses no TLS.

asyncio and paho import the ``ssl`` module when they are imported, and hashlib and hmac import
``_hashlib``: both load OpenSSL's libcrypto (≈ 4.5 MiB RSS with libssl and ssl's tables). When the
config needs no TLS, :func:`prepare` imports them before anything else does (pydantic imports
asyncio at the config's validation) with those modules hidden: asyncio and the standard library's
HTTP modules (paho imports them) take their no-TLS path (``ssl = None``), hashlib and hmac their
built-in hashes (SHA-256 for signed commands and config pushes; no scrypt, so not when the config
has a ``[web]`` table, whose login needs it), and paho gets :class:`SslOnDemand`, because its
plain-text socket code names two ssl exception types in ``except`` clauses. Then nothing is hidden:
whatever imports ``ssl`` later gets it as usual (pymodbus's RTU clients, ``doctor`` over MQTT
probing a TLS port); only asyncio's TLS transports stay unavailable in that process.

The config is read here straight from the TOML, before validation, with the schema's rule and on
the safe side. TLS is needed when:

* ``[mqtt.tls]`` is present, unless it says ``enabled = false`` (the uplink; the only TLS the core has:
  OCPP's central system listens in plain ``ws://``, the web page is plain HTTP);
* a device or line is implemented outside this package (a third-party driver or line kind may open
  TLS connections of its own);
* the file cannot be read or parsed (validation then reports it), or ``EDGE_AGENT_SSL=1`` is set.

A config push that turns TLS on restarts the process (``os.execv``, agent.remote.restart), which
decides again; :func:`confirm` re-executes the process with ``ssl`` if the validated config asks for
TLS the reading here missed.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
import types
from collections.abc import Mapping
from typing import Any

KEEP_SSL_ENV = "EDGE_AGENT_SSL"
# the modules that take their no-TLS path when `import ssl` fails (paho imports urllib.request, http.client);
# hashlib and hmac use their built-in hashes when `import _hashlib` (OpenSSL's) fails
IMPORTED_WITHOUT_SSL = ("asyncio", "hashlib", "hmac", "urllib.request")
IMPORTED_WITH_SSL_ON_DEMAND = ("paho.mqtt.client",)
BUILT_IN = ("agent", "drivers", "firmware_bridge")  # this package's code: no TLS but the [mqtt.tls] uplink
GROUPS = {"devices": "edge_agent.drivers", "lines": "edge_agent.lines"}


def prepare(argv: list[str]) -> bool:
    """For ``run`` (the service), import asyncio and paho without ``ssl`` when the config needs no TLS.
    True when it did."""
    words = [a for a in argv if not a.startswith("-")]
    if words[:1] != ["run"] or "--once" in argv or os.environ.get(KEEP_SSL_ENV) or "ssl" in sys.modules:
        return False
    path = config_path(argv)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError, TypeError):
        return False  # validation reports it
    if needs_tls(data):
        return False
    if any(m in sys.modules for m in (*IMPORTED_WITHOUT_SSL, *IMPORTED_WITH_SSL_ON_DEMAND, "_hashlib")):
        return False  # already imported with OpenSSL: nothing to save
    # the web page's login checks its password with scrypt, which only OpenSSL's hashlib has
    hidden = ("ssl",) if "web" in data else ("ssl", "_hashlib")
    try:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
        for name in IMPORTED_WITHOUT_SSL:
            importlib.import_module(name)
        sys.modules["ssl"] = SslOnDemand("ssl")
        for name in IMPORTED_WITH_SSL_ON_DEMAND:
            importlib.import_module(name)
    finally:
        for name in hidden:
            del sys.modules[name]
    return True


class _NeverRaised(Exception):
    """Raised by nothing: an ``except`` naming it matches no exception."""


class SslOnDemand(types.ModuleType):
    """``ssl`` for a module that names its exception types where no TLS is used (paho 2.2's socket
    reads and writes: ``except ssl.SSLWantReadError``, evaluated on every would-block). Until the
    real module is loaded no TLS object exists, so those names can stand for an exception nothing
    raises; anything else, or anything once the real module is loaded, is the real module's."""

    def __getattr__(self, name: str) -> Any:
        real = sys.modules.get("ssl")
        if real is None or isinstance(real, SslOnDemand):  # not loaded (or still hidden by prepare)
            if name in ("SSLWantReadError", "SSLWantWriteError"):
                return _NeverRaised
            if real is not None or name.startswith("__"):
                raise AttributeError(name)
            real = importlib.import_module("ssl")
        return getattr(real, name)


def config_path(argv: list[str]) -> str:
    for i, a in enumerate(argv):
        if a in ("--config", "-c") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a.startswith("-c") and len(a) > 2:
            return a[2:]
    return os.environ.get("EDGE_AGENT_CONFIG", "")


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
        entries = data.get(section, [])
        items = list(entries.values()) if isinstance(entries, Mapping) else entries
        if not isinstance(items, list):
            return True
        for item in items:
            kind = item.get("type") if isinstance(item, Mapping) else None
            if not isinstance(kind, str):
                return True
            if any(ep.value.split(":")[0].split(".")[0] not in BUILT_IN for ep in group_entry_points(group, name=kind)):
                return True
    return False


def confirm(tls_configured: bool) -> None:
    """After validation: a process that hid ``ssl`` from asyncio while its config asks for TLS starts
    again with ``ssl`` (the reading in :func:`prepare` is meant never to miss one)."""
    sslproto = sys.modules.get("asyncio.sslproto")
    if tls_configured and sslproto is not None and sslproto.ssl is None and not os.environ.get(KEEP_SSL_ENV):
        from ..remote.restart import exec_self

        os.environ[KEEP_SSL_ENV] = "1"
        exec_self()
