"""The command path: payload in, a result and an audit record out. Nothing changes unless accepted.

Checks, in order: size and JSON shape, id, retained delivery, authorisation, device level, replay
(idempotency by id), action, device, writable point, value bounds, freshness (age and clock skew);
then the id is durably recorded as in progress, the rate limit applied and the device written; the
outcome replaces the in-progress record. A command whose id cannot be recorded is refused, never
executed, so a command runs at most once, across restarts too. Every outcome is answered (``result``)
and audited (``audit``); the app publishes both.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent.contract import Clock
from agent.errors import DeviceError

from . import auth
from .gate import WriteGate, Writer
from .idstore import IN_PROGRESS, IdStore, IdStoreUnavailable
from .parse import (
    SITE_ACTIONS,
    Action,
    Code,
    Command,
    Refusal,
    command_id,
    parse_body,
    parse_command,
    resolve,
)
from .ratelimit import RateLimiter
from .session import SessionRequest, parse_session

if TYPE_CHECKING:
    from .config import CommandsConfig

log = logging.getLogger(__name__)


class SiteHook(Protocol):
    """What the site controller offers the command path for the chargers it manages."""

    def manages(self, device: str) -> bool: ...

    async def command(self, device: str, action: Action, value: float | None, by: Writer) -> dict[str, Any]:
        """Carry out ``action``; raises :class:`Refusal` or a device error like :meth:`WriteGate.write`."""
        ...

    def plan_session(self, device: str, request: SessionRequest) -> dict[str, Any]:
        """Tell the planner about the session on ``device`` (``set_session``); writes nothing."""
        ...


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
        devices: Mapping[str, object],  # device name -> its DeviceConfig
        drivers: Mapping[str, object],  # device name -> driver
        ids: IdStore,
        clock: Clock | None = None,
        site: SiteHook | None = None,
        gate: WriteGate | None = None,
    ):
        self.config = config
        self.devices = dict(devices)
        self.drivers = dict(drivers)
        self.ids = ids
        self.clock = clock or Clock()
        self.site = site
        self.gate = gate or WriteGate(devices, drivers, self.clock, timeout=config.write_timeout)
        self.limiter = RateLimiter(limit=config.rate_limit, window=config.rate_window)
        self._inflight: set[str] = set()
        self._secret = config.secret.get_secret_value() if config.secret else None

    async def handle(self, device: str, payload: bytes, *, retained: bool = False,
                     source: str = "mqtt") -> CommandOutcome:
        """Answer one command received on the topic of ``device``; ``retained``: delivered as retained.
        ``source`` other than "mqtt" (the web page) means its sender was authorised by a login: no token."""
        now_ms = self.clock.now_ms()
        body: dict[str, Any] | None = None
        cid: str | None = None
        auth_state = "none" if self.config.auth.value == "none" else "unchecked"
        if source != "mqtt":
            auth_state = "login"
        prev: dict[str, Any] | None = None
        try:
            if not self.config.enabled:
                raise Refusal(Code.DISABLED, "commands are disabled on this gateway")
            body = parse_body(payload, max_bytes=self.config.max_payload_bytes)
            cid = command_id(body)
            if retained:
                raise Refusal(Code.RETAINED, "a retained command is never executed (it may be old): "
                                             "publish commands with retain = false")
            try:
                if source == "mqtt":
                    auth.check(self.config.auth, self._secret, device, body)
            except Refusal:
                auth_state = "failed"
                raise
            if auth_state == "unchecked":
                auth_state = "ok"
            if not device:
                raise Refusal(Code.UNKNOWN_DEVICE, "the command topic names no device: publish to .../cmd/{device}")
            prev = self._lookup(cid)
            if prev is not None or cid in self._inflight:
                raise Refusal(Code.DUPLICATE, self._duplicate_reason(cid, prev))
        except Refusal as r:  # not remembered: no trustworthy id, or nothing new to remember
            result = self._result(cid, "refused", r.code.value, r.reason, device, body, now_ms)
            if prev is not None:
                result["original"] = prev
            return self._outcome(result, body, payload, auth_state, source)

        self._inflight.add(cid)
        try:
            result = await self._run(device, body, cid, now_ms)
        finally:
            self._inflight.discard(cid)
        return self._outcome(result, body, payload, auth_state, source)

    def _lookup(self, cid: str) -> dict[str, Any] | None:
        try:
            return self.ids.get(cid)
        except IdStoreUnavailable as e:
            raise Refusal(Code.CANNOT_RECORD, f"{e}; nothing was changed") from None

    def _duplicate_reason(self, cid: str, prev: dict[str, Any] | None) -> str:
        if cid in self._inflight:
            return "command id already used; it is being executed now"
        if prev is not None and prev.get("status") == IN_PROGRESS:
            return ("command id already used; it was executed but its outcome could not be recorded "
                    "(agent stopped or store failed); nothing was changed now")
        return "command id already used; nothing was changed"

    async def _run(self, device: str, body: dict[str, Any], cid: str, now_ms: int) -> dict[str, Any]:
        try:
            cmd = parse_command(body, cid)
            if device not in self.devices or device not in self.drivers:
                raise Refusal(Code.UNKNOWN_DEVICE, f"no device named {device[:64]!r} on this gateway")
            cmd = self._check_point(cmd, device)
            session = parse_session(body, now_ms) if cmd.action == Action.SET_SESSION else None
            self._check_fresh(cmd, now_ms)
        except Refusal as r:
            result = self._result(cid, "refused", r.code.value, r.reason, device, body, now_ms)
            self._remember(cid, now_ms, result)
            return result
        try:  # decide before acting: an id that cannot be recorded is never executed
            if (prev := self.ids.begin(cid, now_ms, self._result(cid, IN_PROGRESS, None, None, device, body, now_ms))):
                result = self._result(cid, "refused", Code.DUPLICATE.value, self._duplicate_reason(cid, prev),
                                      device, body, now_ms)
                result["original"] = prev
                return result
        except IdStoreUnavailable as e:
            return self._result(cid, "refused", Code.CANNOT_RECORD.value, f"{e}; nothing was changed",
                                device, body, now_ms)
        result = await self._execute_limited(device, cmd, body, now_ms, session)
        try:
            self.ids.finish(cid, result)
        except IdStoreUnavailable as e:  # executed: the in-progress record still prevents a second run
            log.warning("command %s: outcome %s not recorded: %s", cid, result["status"], e)
        return result

    def _check_fresh(self, cmd: Command, now_ms: int) -> None:
        max_age = self.config.max_age
        if max_age is None:
            return
        if cmd.ts is None:
            raise Refusal(Code.EXPIRED, f"\"ts\" is required: this gateway refuses commands older than {max_age:g} s")
        if now_ms - cmd.ts > max_age * 1000:
            raise Refusal(Code.EXPIRED, f"command is {(now_ms - cmd.ts) / 1000:.0f} s old (max_age {max_age:g} s)")
        skew = self.config.max_clock_skew
        if cmd.ts - now_ms > skew * 1000:
            raise Refusal(Code.CLOCK_SKEW, f"command ts is {(cmd.ts - now_ms) / 1000:.0f} s ahead of the gateway "
                                           f"clock (max_clock_skew {skew:g} s): check the sender's and the gateway's clocks")

    def _remember(self, cid: str, now_ms: int, result: dict[str, Any]) -> None:
        """Record a refusal so a re-sent id is answered as a duplicate; best effort (nothing was executed)."""
        try:
            self.ids.put(cid, now_ms, result)
        except IdStoreUnavailable as e:
            log.warning("command %s: refusal not recorded: %s", cid, e)

    async def _execute_limited(self, device: str, cmd: Command, body: dict[str, Any], now_ms: int,
                               session: SessionRequest | None = None) -> dict[str, Any]:
        cid = cmd.id
        if not self.limiter.allow(device, self.clock.monotonic()):
            return self._result(cid, "refused", Code.RATE_LIMITED.value,
                                f"more than {self.config.rate_limit} commands in {self.config.rate_window:g} s for {device!r}",
                                device, body, now_ms)
        try:
            detail = await self._execute(device, cmd, session)
        except Refusal as r:
            return self._result(cid, "refused", r.code.value, r.reason, device, body, now_ms)
        except (DeviceError, OSError, ValueError) as e:
            return self._result(cid, "failed", Code.DEVICE_ERROR.value, f"{type(e).__name__}: {e}", device, body, now_ms)
        res = self._result(cid, "accepted", None, None, device, body, now_ms)
        res.update(detail or {})
        return res

    def _check_point(self, cmd: Command, device: str) -> Command:
        """Refuse before anything is recorded: unknown action, point not writable, value out of bounds.
        Returns the command with the point it writes."""
        if cmd.action == Action.SET_SESSION:  # informs the planner, not a device write: no gate
            if self.site is None or not self.site.manages(device):
                raise Refusal(Code.NOT_WRITABLE, f"set_session needs site load management ([site] chargers) "
                                                 f"to manage {device!r}")
            return cmd
        points = self.gate.points(device)
        cmd = resolve(cmd, self.gate.aliases(device),
                      lambda name: points[name].takes_value if name in points else None)
        assert cmd.point is not None
        self.gate.check(device, cmd.point, cmd.value, Writer.command(cmd.id))
        if self._site_action(cmd, device) is None and cmd.point == Action.BOOST.point:
            raise Refusal(Code.NOT_WRITABLE, f"boost needs site load management to manage {device!r}")
        return cmd

    def _site_action(self, cmd: Command, device: str) -> Action | None:
        """The site hook's action when the site controller manages ``device`` and ``cmd`` writes one of
        the charger points it arbitrates (the site decides what reaches the charger)."""
        if self.site is None or not self.site.manages(device) or cmd.point is None:
            return None
        return SITE_ACTIONS.get(cmd.point)

    async def _execute(self, device: str, cmd: Command, session: SessionRequest | None = None) -> dict[str, Any]:
        by = Writer.command(cmd.id)
        if session is not None and self.site is not None:
            return self.site.plan_session(device, session)
        if (action := self._site_action(cmd, device)) is not None:
            assert self.site is not None
            return await self.site.command(device, action, cmd.value, by)
        assert cmd.point is not None
        applied = await self.gate.write(device, cmd.point, cmd.value, by=by)
        return {"applied": applied} if cmd.value is not None else {}

    @staticmethod
    def _result(cid, status, code, reason, device, body, now_ms) -> dict[str, Any]:
        res: dict[str, Any] = {"id": cid, "status": status, "device": device, "ts": now_ms}
        if body is not None:
            for k in ("action", "point", "value", "output"):
                if k in body and isinstance(body[k], str | int | float | type(None)):
                    res[k] = body[k][:64] if isinstance(body[k], str) else body[k]
        if code is not None:
            res["code"] = code
            res["reason"] = reason
        return res

    def _outcome(self, result: dict[str, Any], body, payload: bytes, auth_state: str,
                 source: str = "mqtt") -> CommandOutcome:
        audit = {k: v for k, v in result.items() if k != "original"}
        audit.update(
            kind="command",
            source=source,
            auth=auth_state,
            payload_bytes=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest()[:16],
        )
        if result["status"] != "accepted":
            log.info("command %s for %s %s: %s", result.get("id"), result["device"], result["status"], result.get("reason"))
        return CommandOutcome(result, audit)

    def close(self) -> None:
        self.ids.close()
