"""The command path: payload in, a result and an audit record out. Nothing changes unless accepted.

Checks, in order: size and JSON shape, id, authorisation, replay (idempotency by id), action, device,
writable point, value bounds, expiry, rate limit; then the device write. Every outcome is answered
(``result``) and audited (``audit``); the app publishes both.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.driver import Clock
from agent.errors import CommandRefused, DeviceError

from . import auth
from .config import CommandsConfig
from .idstore import IdStore
from .parse import Action, Code, Command, Refusal, command_id, parse_body, parse_command
from .ratelimit import RateLimiter

log = logging.getLogger(__name__)

MAX_BOOST_MINUTES = 24 * 60
DEFAULT_BOUNDS = (6.0, 32.0)


class SiteHook(Protocol):
    """What the site controller offers the command path for the chargers it manages."""

    def manages(self, device: str) -> bool: ...

    async def command(self, device: str, action: str, value: float | None) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    result: dict[str, Any]  # body for edge/{gw}/cmd/{device}/result
    audit: dict[str, Any]  # body for edge/{gw}/audit

    @property
    def status(self) -> str:
        return self.result["status"]


class CommandRouter:
    def __init__(
        self,
        config: CommandsConfig,
        *,
        devices: Mapping[str, Any],  # device name -> its DeviceConfig
        drivers: Mapping[str, Any],  # device name -> driver (with async write(point, value))
        ids: IdStore,
        clock: Clock | None = None,
        site: SiteHook | None = None,
    ):
        self.config = config
        self.devices = dict(devices)
        self.drivers = dict(drivers)
        self.ids = ids
        self.clock = clock or Clock()
        self.site = site
        self.limiter = RateLimiter(limit=config.rate_limit, window=config.rate_window)
        self._inflight: set[str] = set()
        self._secret = config.secret.get_secret_value() if config.secret else None

    async def handle(self, device: str, payload: bytes) -> CommandOutcome:
        now_ms = self.clock.now_ms()
        body: dict[str, Any] | None = None
        cid: str | None = None
        auth_state = "none" if self.config.auth.value == "none" else "unchecked"
        try:
            if not self.config.enabled:
                raise Refusal(Code.DISABLED, "commands are disabled on this gateway")
            body = parse_body(payload, max_bytes=self.config.max_payload_bytes)
            cid = command_id(body)
            if (why := auth.check(self.config.auth, self._secret, device, body)) is not None:
                auth_state = "failed"
                raise Refusal(Code.UNAUTHORISED, why)
            if auth_state != "none":
                auth_state = "ok"
            prev = self.ids.get(cid)
            if prev is not None or cid in self._inflight:
                raise Refusal(Code.DUPLICATE, "command id already used; nothing was changed")
        except Refusal as r:  # not remembered: no trustworthy id
            result = self._result(cid, "refused", r.code.value, r.reason, device, body, now_ms)
            if r.code is Code.DUPLICATE and cid is not None and (prev := self.ids.get(cid)) is not None:
                result["original"] = prev
            return self._outcome(result, body, payload, auth_state)

        self._inflight.add(cid)
        try:
            result = await self._run(device, body, cid, now_ms)
            self.ids.put(cid, now_ms, result)
        finally:
            self._inflight.discard(cid)
        return self._outcome(result, body, payload, auth_state)

    async def _run(self, device: str, body: dict[str, Any], cid: str, now_ms: int) -> dict[str, Any]:
        try:
            cmd = parse_command(body, cid)
            cfg = self.devices.get(device)
            driver = self.drivers.get(device)
            if cfg is None or driver is None:
                raise Refusal(Code.UNKNOWN_DEVICE, f"no device named {device[:64]!r} on this gateway")
            self._check_point(cmd, cfg, device)
            if self.config.max_age is not None and cmd.ts is not None and now_ms - cmd.ts > self.config.max_age * 1000:
                raise Refusal(Code.EXPIRED, f"command is {(now_ms - cmd.ts) / 1000:.0f} s old (max_age {self.config.max_age:g} s)")
            if not self.limiter.allow(device, self.clock.monotonic()):
                raise Refusal(
                    Code.RATE_LIMITED,
                    f"more than {self.config.rate_limit} commands in {self.config.rate_window:g} s for {device!r}",
                )
        except Refusal as r:
            return self._result(cid, "refused", r.code.value, r.reason, device, body, now_ms)
        try:
            detail = await asyncio.wait_for(self._execute(device, cmd, driver), self.config.write_timeout)
        except CommandRefused as e:
            return self._result(cid, "refused", Code.NOT_WRITABLE.value, str(e), device, body, now_ms)
        except TimeoutError:
            return self._result(cid, "failed", Code.DEVICE_ERROR.value, f"device did not answer within {self.config.write_timeout:g} s", device, body, now_ms)
        except (DeviceError, OSError, ValueError) as e:
            return self._result(cid, "failed", Code.DEVICE_ERROR.value, f"{type(e).__name__}: {e}", device, body, now_ms)
        res = self._result(cid, "accepted", None, None, device, body, now_ms)
        res.update(detail or {})
        return res

    def _check_point(self, cmd: Command, cfg: Any, device: str) -> None:
        writable = {str(getattr(p, "value", p)) for p in getattr(cfg, "writable", ())}
        if cmd.action.point not in writable:
            raise Refusal(Code.NOT_WRITABLE, f"{cmd.action.point!r} is not declared writable for {device!r}")
        if cmd.action is Action.SET_CURRENT_LIMIT:
            lo, hi = getattr(cfg, "current_limit_bounds", DEFAULT_BOUNDS)
            assert cmd.value is not None
            if not lo <= cmd.value <= hi:
                raise Refusal(Code.OUT_OF_RANGE, f"current limit {cmd.value:g} A is outside [{lo:g}, {hi:g}] A")
        if cmd.action is Action.BOOST:
            assert cmd.value is not None
            if not 0 <= cmd.value <= MAX_BOOST_MINUTES:
                raise Refusal(Code.OUT_OF_RANGE, f"boost of {cmd.value:g} min is outside [0, {MAX_BOOST_MINUTES}] (0 cancels)")
            if self.site is None or not self.site.manages(device):
                raise Refusal(Code.NOT_WRITABLE, f"boost needs site load management to manage {device!r}")

    async def _execute(self, device: str, cmd: Command, driver: Any) -> dict[str, Any]:
        if self.site is not None and self.site.manages(device):
            return await self.site.command(device, cmd.action.value, cmd.value)
        if not hasattr(driver, "write"):
            raise CommandRefused(f"device {device!r} has no writable points")
        if cmd.action is Action.SET_CURRENT_LIMIT:
            await driver.write("current_limit", cmd.value)
            return {"applied": cmd.value}
        await driver.write(cmd.action.point, True)
        return {}

    @staticmethod
    def _result(cid, status, code, reason, device, body, now_ms) -> dict[str, Any]:
        res: dict[str, Any] = {"id": cid, "status": status, "device": device, "ts": now_ms}
        if body is not None:
            for k in ("action", "value"):
                if k in body and isinstance(body[k], str | int | float | type(None)):
                    res[k] = body[k][:64] if isinstance(body[k], str) else body[k]
        if code is not None:
            res["code"] = code
            res["reason"] = reason
        return res

    def _outcome(self, result: dict[str, Any], body, payload: bytes, auth_state: str) -> CommandOutcome:
        audit = {k: v for k, v in result.items() if k != "original"}
        audit.update(
            kind="command",
            source="mqtt",
            auth=auth_state,
            payload_bytes=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest()[:16],
        )
        if result["status"] != "accepted":
            log.info("command %s for %s %s: %s", result.get("id"), result["device"], result["status"], result.get("reason"))
        return CommandOutcome(result, audit)

    def close(self) -> None:
        self.ids.close()
