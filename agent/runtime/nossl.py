"""Importing asyncio, hashlib and paho (and pymodbus's clients) without OpenSSL: the mechanism, shared by
``run``'s validating process (agent.cli.without_ssl decides from the config) and the run-time process it
hands over to (agent.runtime, which does what the validating process did). See agent.cli.without_ssl."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from typing import Any

KEEP_SSL_ENV = "EDGE_AGENT_SSL"  # "1": load OpenSSL whatever the config
# one-shot, set for the process this one re-executes: "confirm" (after validation: the start of a
# pushed config on trial is already counted) or "retry" (the imports without ssl failed)
RESTART_ENV = "EDGE_AGENT_SSL_RESTART"
# the modules that take their no-TLS path when `import ssl` fails (paho imports urllib.request, http.client);
# hashlib and hmac use their built-in hashes when `import _hashlib` (OpenSSL's) fails
PAHO = "paho.mqtt.client"
IMPORTED_WITHOUT_SSL = ("asyncio", "hashlib", "hmac", PAHO)
# paho imports urllib.request (with http.client and email: ≈ 1.5 MiB) for its proxy lookup alone, which
# it makes only where PySocks is installed (``socks``, not a dependency): a stand-in (ProxyLookupStandIn)
PAHO_UNUSED = "urllib.request"
PYMODBUS_TLS_STANDIN = "pymodbus.client.tls"  # the module of pymodbus's TLS clients, left out


def import_without(hidden: tuple[str, ...], *, pymodbus: bool,
                   modules: tuple[str, ...] = IMPORTED_WITHOUT_SSL) -> None:
    """Import ``modules`` (and pymodbus's clients if ``pymodbus``) with the ``hidden`` modules absent,
    then give paho :class:`SslOnDemand` as its ``ssl`` if it was imported. Raises what an import raised."""
    try:
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # importing it raises ImportError
        for name in modules:
            if name == PAHO and PAHO_UNUSED not in sys.modules and not (_proxy_variables() and _pysocks()):
                import_with_stand_in(name, PAHO_UNUSED, ProxyLookupStandIn)
            else:
                importlib.import_module(name)
        if pymodbus:
            import_pymodbus_clients()
    finally:
        for name in hidden:
            sys.modules.pop(name, None)
    if (paho := sys.modules.get(PAHO)) is not None:
        # paho's plain-text socket code names two ssl exception types in `except` clauses
        paho.ssl = SslOnDemand("ssl")  # type: ignore[attr-defined]


def import_with_stand_in(name: str, unused: str, stand_in_type: type[OnFirstUse] | None = None) -> None:
    """Import ``name`` with :class:`OnFirstUse` (or ``stand_in_type``) as its submodule ``unused``, which
    it imports but does not use here; whatever imports ``unused`` later gets the real module."""
    parent, _, child = unused.rpartition(".")
    package = importlib.import_module(parent)
    stand_in = (stand_in_type or OnFirstUse)(unused)
    sys.modules[unused] = stand_in
    setattr(package, child, stand_in)  # what `import a.b` binds reads `a.b` from the package
    try:
        importlib.import_module(name)
    finally:
        if sys.modules.get(unused) is stand_in:
            del sys.modules[unused]


class OnFirstUse(types.ModuleType):
    """A module imported when something first reads from it (:func:`import_with_stand_in`)."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)  # the import binds the real one


class ProxyLookupStandIn(OnFirstUse):
    """urllib.request for paho's proxy lookup (with PySocks installed, at each connect). On Linux its
    ``getproxies()`` and ``proxy_bypass()`` read the environment's ``*_proxy`` variables alone: while
    there is none they are answered as urllib.request would (no proxy, no bypass) without importing
    it; with one, or anything else read, the real module is imported. (Where the environment names a
    proxy at the start and PySocks is installed, paho imports the real module at once, with ssl hidden.)"""

    def __getattr__(self, attr: str) -> Any:
        if attr in _NO_PROXY and sys.platform.startswith("linux"):
            return _NO_PROXY[attr]
        return super().__getattr__(attr)


def _pysocks() -> bool:
    return importlib.util.find_spec("socks") is not None


def _proxy_variables() -> bool:
    return any(key.lower().endswith("_proxy") for key in os.environ)


def _getproxies() -> dict[str, str]:
    return importlib.import_module(PAHO_UNUSED).getproxies() if _proxy_variables() else {}


def _proxy_bypass(host: str) -> bool:
    return bool(importlib.import_module(PAHO_UNUSED).proxy_bypass(host)) if _proxy_variables() else False


_NO_PROXY = {"getproxies": _getproxies, "proxy_bypass": _proxy_bypass}


def start_again_with_ssl(argv: list[str] | None = None, *, counted: bool = False) -> None:
    """The imports without ssl failed: start ``run`` again at once (``argv``: the validating command's,
    default this process's), marked so that it loads ssl. ``counted``: this start of a pushed config on
    trial was counted already (the run-time process's retry). Returns when it cannot (ssl then loads
    where it is imported from now on)."""
    os.environ[RESTART_ENV] = "retry-counted" if counted else "retry"
    try:
        os.execv(sys.executable, [sys.executable, *(argv or sys.orig_argv)[1:]])
    except OSError:
        del os.environ[RESTART_ENV]


def import_pymodbus_clients() -> None:
    """Import pymodbus's clients with :class:`SslOnDemand` as ``ssl`` and its TLS clients left out."""
    tls = types.ModuleType(PYMODBUS_TLS_STANDIN, "pymodbus's Modbus-over-TLS clients, not loaded: this "
                           "process started without OpenSSL (the agent builds no Modbus TLS client)")
    tls.AsyncModbusTlsClient = tls.ModbusTlsClient = _NoTlsClient  # type: ignore[attr-defined]
    sys.modules["ssl"] = SslOnDemand("ssl")
    sys.modules[PYMODBUS_TLS_STANDIN] = tls
    try:
        importlib.import_module("pymodbus.client")
    except BaseException:
        del sys.modules[PYMODBUS_TLS_STANDIN]
        raise


class _NoTlsClient:
    """pymodbus's TLS clients in a process started without OpenSSL."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pymodbus's Modbus-over-TLS clients are not loaded: this process started without "
                           f"OpenSSL (set {KEEP_SSL_ENV}=1 to load it)")


class _NeverRaised(Exception):
    """Raised by nothing: an ``except`` naming it matches no exception."""


class SslOnDemand(types.ModuleType):
    """``ssl`` for a module that names its exception types where no TLS is used (paho 2.2's socket
    reads and writes: ``except ssl.SSLWantReadError``, evaluated on every would-block). Until the
    real module is loaded no TLS object exists, so those names can stand for an exception nothing
    raises; anything else loads the real module, and once it is loaded everything is the real one's."""

    def __getattr__(self, name: str) -> Any:
        real = sys.modules.get("ssl")
        if real is None or isinstance(real, SslOnDemand):  # not loaded (or hidden, or standing in, in prepare)
            if name in ("SSLWantReadError", "SSLWantWriteError"):
                return _NeverRaised
            if name.startswith("__"):
                raise AttributeError(name)
            if real is not None:  # importing pymodbus's clients in prepare: a name it needs, so start with ssl
                raise ImportError(f"ssl.{name} read while ssl stands in for pymodbus's clients")
            real = importlib.import_module("ssl")
        return getattr(real, name)


