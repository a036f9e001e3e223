"""A pushed config: checked, validated by the one validation ``check`` and ``run`` share, then staged.

Checks, in order (the first failure refuses, and nothing changes): size, retained delivery, JSON shape,
id, config push enabled (``[commands] auth = "hmac"``), signature, freshness (``max_age``), version
higher than any staged before (replay), no trial in progress, the config itself (``validate``), same
``gateway.id``. Then the current config becomes the rollback copy and the pushed one replaces it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

import orjson

from ..commands import AuthMode, CommandsConfig
from ..errors import ConfigError
from .files import ConfigFiles, sha256_hex, write_atomic

MAX_PUSH_BYTES = 256 * 1024  # a config of hundreds of devices is a few tens of kB
DEFAULT_TIMEOUT_S = 60.0
TIMEOUT_BOUNDS = (5.0, 600.0)
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_KEYS = {"id", "version", "ts", "config", "timeout_s", "signature"}


class PushRefused(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def canonical(gateway: str, cid: str, version: int, ts: int, timeout_s: float, config: str) -> bytes:
    """The bytes a push signature signs; the config enters by its SHA-256, the gateway by its id."""
    digest = hashlib.sha256(config.encode()).hexdigest()
    return "\n".join(["config", gateway, cid, str(int(version)), str(int(ts)), f"{float(timeout_s):.3f}",
                      digest]).encode()


def sign_config(secret: str, gateway: str, cid: str, version: int, ts: int, config: str,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The ``signature`` of a config push: hex HMAC-SHA256 with the ``[commands]`` secret."""
    return hmac.new(secret.encode(), canonical(gateway, cid, version, ts, timeout_s, config), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Push:
    id: str
    version: int
    ts: int
    config: str
    timeout_s: float


def parse_push(payload: bytes, *, retained: bool) -> tuple[str | None, dict[str, Any] | None]:
    """(id, body) as far as they can be read, for answers to refused pushes."""
    if len(payload) > MAX_PUSH_BYTES or retained:
        return None, None
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(payload)
        if isinstance(body, dict):
            cid = body.get("id")
            return (cid if isinstance(cid, str) and _ID.match(cid) else None), body
    return None, None


def check_push(payload: bytes, body: dict[str, Any] | None, *, retained: bool, gateway: str,
               commands: CommandsConfig, now_ms: int) -> Push:
    """Everything that needs no file: raises PushRefused(code, reason)."""
    if len(payload) > MAX_PUSH_BYTES:
        raise PushRefused("too_large", f"payload is {len(payload)} bytes; a config push takes at most {MAX_PUSH_BYTES}")
    if retained:
        raise PushRefused("retained", "a retained config push is never applied (it may be old): publish with "
                                      "retain = false")
    if body is None:
        raise PushRefused("malformed", "payload is not a JSON object")
    if unknown := sorted(set(body) - _KEYS):
        raise PushRefused("malformed", f"unknown key(s): {', '.join(map(str, unknown))[:120]}")
    cid, version, ts, config = body.get("id"), body.get("version"), body.get("ts"), body.get("config")
    timeout_s = body.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not isinstance(cid, str) or not _ID.match(cid):
        raise PushRefused("malformed", "\"id\" must be 1-64 characters of A-Z a-z 0-9 . _ : -")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PushRefused("malformed", "\"version\" must be an integer >= 1")
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise PushRefused("malformed", "\"ts\" (epoch ms, integer) is required")
    if not isinstance(config, str) or not config.strip():
        raise PushRefused("malformed", "\"config\" must be the config file's TOML text")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) \
            or not TIMEOUT_BOUNDS[0] <= timeout_s <= TIMEOUT_BOUNDS[1]:
        raise PushRefused("malformed", f"\"timeout_s\" must be a number in [{TIMEOUT_BOUNDS[0]:g}, {TIMEOUT_BOUNDS[1]:g}]")
    if not commands.enabled or commands.auth is not AuthMode.HMAC or commands.secret is None:
        raise PushRefused("disabled", "config push needs [commands] enabled with auth = \"hmac\" (a signed push)")
    sig = body.get("signature")
    expected = sign_config(commands.secret.get_secret_value(), gateway, cid, version, ts, config, timeout_s)
    if not isinstance(sig, str) or not hmac.compare_digest(sig.lower().encode(), expected.encode()):
        raise PushRefused("unauthorised", "bad or missing signature")
    if commands.max_age is not None:
        if now_ms - ts > commands.max_age * 1000:
            raise PushRefused("expired", f"push is {(now_ms - ts) / 1000:.0f} s old (max_age {commands.max_age:g} s)")
        if ts - now_ms > commands.max_clock_skew * 1000:
            raise PushRefused("clock_skew", f"push ts is {(ts - now_ms) / 1000:.0f} s ahead of the gateway clock")
    return Push(cid, version, ts, config, float(timeout_s))


def stage_push(push: Push, files: ConfigFiles, *, gateway: str) -> dict[str, Any]:
    """Replay guard, validation and the atomic switch. Raises PushRefused; returns the trial record."""
    state = files.load()
    if push.version <= state.highest:
        raise PushRefused("stale_version", f"version {push.version} is not above {state.highest}, the highest this "
                                           "gateway has taken: send a higher version")
    if state.trial is not None:
        raise PushRefused("busy", f"version {state.trial.get('version')} is still on trial")
    data = push.config.encode()
    try:
        write_atomic(files.candidate, data, files.mode())
    except OSError as e:
        raise PushRefused("cannot_record", f"cannot write {files.candidate}: {e.strerror}; nothing was changed") from None
    try:
        try:
            from ..config.validate import validate  # the loader: only when a push comes

            cfg = validate(files.candidate, at_run=True).config
        except ConfigError as e:
            shown = "; ".join(e.problems[:5]).replace(str(files.candidate), "config")
            raise PushRefused("invalid", f"{len(e.problems)} problem(s): {shown}"[:1000]) from None
        if cfg.gateway.id != gateway:
            raise PushRefused("invalid", f"gateway.id {cfg.gateway.id!r} is not this gateway's ({gateway!r})")
        try:
            return files.stage(data, cid=push.id, version=push.version, timeout_s=push.timeout_s)
        except OSError as e:
            raise PushRefused("cannot_record", f"cannot stage the config: {e}; nothing was changed") from None
    finally:
        with contextlib.suppress(OSError):
            files.candidate.unlink()


__all__ = ["MAX_PUSH_BYTES", "Push", "PushRefused", "check_push", "parse_push", "sha256_hex", "sign_config",
           "stage_push"]
