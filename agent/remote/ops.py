"""Remote operations over MQTT: config push (``{base}/config/set``) and ``status`` / ``doctor`` on request
(``{base}/ops/{op}``). Every request is answered on its result topic and audited (``kind": "config"`` or
``"ops"``); the app hands the bodies to the outbox (:data:`Emit`).

Applying a pushed config means restarting the agent: :attr:`RemoteOps.restart` is set and the app stops;
``edge-agent run`` then re-executes itself (same PID, so systemd's main PID and watchdog stay; it works
without systemd too). The new config's first start is a trial: confirmed when it reaches the broker,
rolled back when it cannot start or cannot reach the broker within the push's ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..commands import AuthMode
from .files import ConfigFiles
from .push import (
    DEFAULT_TIMEOUT_S,
    MAX_PUSH_BYTES,
    TIMEOUT_BOUNDS,
    Push,
    PushRefused,
    check_push,
    parse_push,
    stage_push,
)

if TYPE_CHECKING:
    from ..commands import CommandsConfig
    from ..config.schema import AgentConfig

log = logging.getLogger("edge_agent.remote")
Emit = Callable[[str, dict[str, Any], bool], None]  # (result topic suffix, body, is_audit)
OPS = ("status", "doctor")
_OPS_MAX_BYTES = 4096


def ops_token(secret: str, gateway: str, op: str, cid: str, ts: Any) -> str:
    """``token`` of a status/doctor request with ``[commands] auth = "hmac"``."""
    msg = "\n".join(["ops", gateway, op, cid, "" if ts is None else str(int(ts))]).encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


class RemoteOps:
    def __init__(self, config: AgentConfig, files: ConfigFiles | None, *, now_ms: Callable[[], int],
                 health: Callable[[], dict[str, Any]], devices: Callable[[], dict[str, Any]], emit: Emit,
                 trial: dict[str, Any] | None = None,
                 doctor_checks: Callable[[], list[dict[str, str]]] | None = None):
        self.config = config
        self.files = files  # None: the agent runs without a config file of its own (pushes refused)
        self.now_ms = now_ms
        self.health = health
        self.devices = devices
        self.emit = emit
        self.doctor_checks = doctor_checks or (lambda: [])  # [{"mark", "subject", "detail", "hint"}]
        self.trial = trial  # the pushed config this process tries, until confirmed
        self.restart: str | None = None  # set: stop and re-execute ("apply" or "rollback")
        self.rollback_reason: str | None = None
        self.stop: Callable[[], None] = lambda: None  # the app's "stop now"
        self._doctor_running = False
        self._push_lock = asyncio.Lock()  # one push at a time: they share the candidate file and the state
        state = files.load() if files is not None else None
        self.version = state.version if state is not None else None
        self.sha256 = files.active_sha256() if files is not None else None

    @property
    def commands(self) -> CommandsConfig:
        return self.config.commands

    def health_section(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": (self.sha256 or "")[:16], "trial": self.trial is not None}

    # ------------------------------------------------------------------------------ config push
    async def on_config(self, payload: bytes, retained: bool) -> None:
        cid, body = parse_push(payload, retained=retained)
        version = body.get("version") if body else None
        base = {"id": cid, "version": version if isinstance(version, int) else None}
        try:
            push = check_push(payload, body, retained=retained, gateway=self.config.gateway.id,
                              commands=self.commands, now_ms=self.now_ms())
            trial = await self._stage(lambda: push)
        except PushRefused as r:
            self._config_step({**base, "status": "refused", "code": r.code, "reason": r.reason}, payload)
            return
        self._applying(push, trial, payload)

    async def apply_local(self, config: str, *, cid: str, origin: dict[str, Any],
                          timeout_s: float = DEFAULT_TIMEOUT_S,
                          prepare: Callable[[str], str] | None = None) -> dict[str, Any]:
        """A config change made on the gateway itself (the web page, behind its login): the path of a push
        without its signature, under the next version (above the highest staged). ``prepare`` turns the
        text into the file (under the push lock; it may raise PushRefused); ``origin`` goes into the answer
        and the audit record. Returns the answer (``applying`` or ``refused``)."""
        data = config.encode()
        base: dict[str, Any] = {"id": cid, "version": None, **origin}

        def make() -> Push:
            assert self.files is not None
            nonlocal config
            if prepare is not None:
                config = prepare(config)
            if len(data) > MAX_PUSH_BYTES:
                raise PushRefused("too_large", f"the config is {len(data)} bytes; at most {MAX_PUSH_BYTES}")
            if not config.strip():
                raise PushRefused("malformed", "the config is empty")
            if not TIMEOUT_BOUNDS[0] <= timeout_s <= TIMEOUT_BOUNDS[1]:
                raise PushRefused("malformed", f"timeout_s must be in [{TIMEOUT_BOUNDS[0]:g}, {TIMEOUT_BOUNDS[1]:g}]")
            return Push(cid, self.files.load().highest + 1, self.now_ms(), config, float(timeout_s))

        try:
            trial = await self._stage(make)
        except PushRefused as r:
            result = {**base, "status": "refused", "code": r.code, "reason": r.reason}
            self._config_step(result, data)
            return {**result, "ts": self.now_ms()}
        return self._applying(Push(cid, trial["version"], 0, config, float(timeout_s)), trial, data, origin)

    async def _stage(self, make: Callable[[], Push]) -> dict[str, Any]:
        """One staging at a time (they share the candidate file and the state). Raises PushRefused."""
        if self.files is None:
            raise PushRefused("disabled", "this agent was not started from a config file")
        if self.restart is not None:
            raise PushRefused("busy", "the agent is restarting")
        async with self._push_lock:
            if self.restart is not None:
                raise PushRefused("busy", "the agent is restarting")
            push = make()
            trial = await asyncio.to_thread(stage_push, push, self.files, gateway=self.config.gateway.id)
            self.restart = "apply"
            return trial

    def _applying(self, push: Push, trial: dict[str, Any], payload: bytes,
                  origin: dict[str, Any] | None = None) -> dict[str, Any]:
        result = {"id": push.id, "version": push.version, **(origin or {}), "status": "applying",
                  "previous_version": trial["previous_version"], "sha256": trial["sha256"],
                  "timeout_s": trial["timeout_s"]}
        self._config_step(result, payload)
        log.warning("config version %d staged (%s %s): restarting with it", push.version,
                    (origin or {}).get("source", "push"), push.id)
        self.stop()
        return {**result, "ts": self.now_ms()}

    def _config_step(self, result: dict[str, Any], payload: bytes | None = None) -> None:
        result = {**result, "ts": self.now_ms()}
        audit = {**result, "kind": "config", "step": result["status"]}
        if payload is not None:
            audit.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest()[:16])
        if result["status"] == "refused":
            log.info("config push %s refused: %s", result.get("id"), result.get("reason"))
        self.emit("config/result", result, False)
        self.emit("audit", audit, True)

    def on_connected(self) -> None:
        """The broker is reached: a trial is confirmed; an outcome not yet reported is reported."""
        if self.files is None:
            return
        try:
            if self.trial is not None and self.restart is None:
                self.files.confirm()
                self.version, self.sha256, self.trial = self.trial["version"], self.trial["sha256"], None
                log.info("config version %s confirmed: the broker is reached", self.version)
            report = self.files.take_report()
        except OSError as e:
            log.error("cannot record the config push state in %s: %s", self.files.state_path, e)
            return
        if report is not None:
            self._config_step(report)

    async def watch_trial(self, connected: Callable[[], bool]) -> None:
        """Roll back when the trial has not reached the broker within its timeout."""
        if self.trial is None:
            return
        timeout = float(self.trial.get("timeout_s", 60))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.trial is None:
                return
            await asyncio.sleep(0.1)
        if self.trial is not None and not connected():
            self.rollback_reason = f"the new config did not reach the broker within {timeout:g} s"
            log.error("config version %s: %s; rolling back", self.trial.get("version"), self.rollback_reason)
            self.restart = "rollback"
            self.stop()

    # ------------------------------------------------------------------------------ status, doctor
    async def on_ops(self, op: str, payload: bytes, retained: bool) -> None:
        cid: Any = None
        try:
            if retained:
                raise PushRefused("retained", "a retained request is never answered: publish with retain = false")
            if len(payload) > _OPS_MAX_BYTES:
                raise PushRefused("malformed", f"payload over {_OPS_MAX_BYTES} bytes")
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise PushRefused("malformed", "payload is not JSON") from None
            if not isinstance(body, dict):
                raise PushRefused("malformed", "payload is not a JSON object")
            cid = body.get("id")
            if not isinstance(cid, str) or not 1 <= len(cid) <= 64:
                cid = None
                raise PushRefused("malformed", "\"id\" must be a string of 1-64 characters")
            self._authorise(op, cid, body)
            if op not in OPS:
                raise PushRefused("unknown_action", f"unknown operation {op[:32]!r}: one of {', '.join(OPS)}")
            if op == "status":
                answer = {"health": self.health(), "config": self.health_section()}
            else:
                if self._doctor_running:
                    raise PushRefused("busy", "a doctor run is under way")
                self._doctor_running = True
                try:
                    answer = await asyncio.to_thread(self._doctor)
                finally:
                    self._doctor_running = False
            result = {"id": cid, "op": op, "status": "accepted", **answer}
        except PushRefused as r:
            result = {"id": cid, "op": op[:32], "status": "refused", "code": r.code, "reason": r.reason}
        result["ts"] = self.now_ms()
        audit = {k: v for k, v in result.items() if k not in ("health", "checks", "config")}
        self.emit(f"ops/{op}/result", result, False)
        self.emit("audit", {**audit, "kind": "ops"}, True)

    def _authorise(self, op: str, cid: str, body: dict[str, Any]) -> None:
        c = self.commands
        if not c.enabled:
            raise PushRefused("disabled", "commands are disabled on this gateway")
        if c.auth is AuthMode.NONE:
            return
        assert c.secret is not None
        secret, token = c.secret.get_secret_value(), body.get("token")
        if not isinstance(token, str) or not token:
            raise PushRefused("unauthorised", "missing token")
        if c.auth is AuthMode.SHARED_SECRET:
            ok = hmac.compare_digest(token.encode(), secret.encode())
        else:
            try:
                expected = ops_token(secret, self.config.gateway.id, op, cid, body.get("ts"))
            except (TypeError, ValueError, OverflowError):
                raise PushRefused("unauthorised", "cannot compute the token over this request") from None
            ok = hmac.compare_digest(token.lower().encode(), expected.encode())
        if not ok:
            raise PushRefused("unauthorised", "bad token")

    def _doctor(self) -> dict[str, Any]:
        """The doctor checks that leave the running agent alone (``doctor_checks``, handed in by ``run``:
        files, broker, clock, storage), plus each device as its poller sees it (a second poll could
        collide with the agent's own on a line)."""
        out = [dict(c) for c in self.doctor_checks()]
        for name, dev in self.devices().items():
            if dev.get("up"):
                out.append({"mark": "ok", "subject": f"device {name}", "detail": "polling", "hint": ""})
            elif not dev.get("polls_failed"):
                out.append({"mark": "warn", "subject": f"device {name}", "detail": "not polled yet", "hint": ""})
            else:
                out.append({"mark": "fail", "subject": f"device {name}",
                            "detail": f"not answering: {dev.get('last_error') or 'no good poll yet'}",
                            "hint": "run `edge-agent doctor` on the gateway for the line check"})
        failed = sum(c["mark"] == "fail" for c in out)
        warned = sum(c["mark"] == "warn" for c in out)
        return {"checks": out, "failed": failed, "warned": warned}
