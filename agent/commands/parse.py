"""Parse a command payload into a typed :class:`Command`, or refuse it with a code and a reason."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from agent.contract.charger import ChargerPoint
from agent.errors import CommandRefused

ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces


class Action(enum.StrEnum):
    START = "start"
    STOP = "stop"
    SET_CURRENT_LIMIT = "set_current_limit"
    BOOST = "boost"
    SET_INTERVAL = "set_interval"  # a point the device config declares (agent.contract.DeclaresPoints)
    SET_OUTPUT = "set_output"
    SET_SESSION = "set_session"  # informs the site planner; writes nothing to the device

    @property
    def point(self) -> ChargerPoint:
        """The writable point (``writable = [...]`` in config) this action needs."""
        return ChargerPoint.CURRENT_LIMIT if self is Action.SET_CURRENT_LIMIT else ChargerPoint(self.value)


POINT_ACTIONS = {Action.SET_INTERVAL, Action.SET_OUTPUT}  # written through WriteGate.write_point
NEEDS_VALUE = {Action.SET_CURRENT_LIMIT, Action.BOOST, *POINT_ACTIONS}
MAX_OUTPUT = 999
SESSION_KEYS = {"departure", "energy_kwh", "max_current_a"}  # set_session only (agent.commands.session)


class Code(enum.StrEnum):
    MALFORMED = "malformed"
    UNAUTHORISED = "unauthorised"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_ACTION = "unknown_action"
    NOT_WRITABLE = "not_writable"
    OUT_OF_RANGE = "out_of_range"
    RATE_LIMITED = "rate_limited"
    DISABLED = "disabled"
    RETAINED = "retained"  # delivered as a retained message: stale by definition
    CLOCK_SKEW = "clock_skew"  # ts further ahead of the gateway clock than max_clock_skew
    CANNOT_RECORD = "cannot_record"  # the id store cannot be written: executing could not be made at-most-once
    DEVICE_ERROR = "device_error"


class Refusal(CommandRefused):
    """The one way the command path and the write gate say no: a code for machines and a reason for
    people. Raised by every check; the router turns it into a ``refused`` result."""

    def __init__(self, code: Code, reason: str):
        self.code = code
        self.reason = reason
        super().__init__(f"{code.value}: {reason}")


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    action: Action
    value: float | None
    ts: int | None
    body: dict[str, Any]
    output: int | None = None  # set_output: which output

    @property
    def point(self) -> str:
        """The declared point a set_interval / set_output command writes."""
        return "interval_ms" if self.action is Action.SET_INTERVAL else f"output{self.output}"


def parse_body(payload: bytes, *, max_bytes: int) -> dict[str, Any]:
    """Decode JSON; the result is an object. Raises Refusal(MALFORMED)."""
    if len(payload) > max_bytes:
        raise Refusal(Code.MALFORMED, f"payload is {len(payload)} bytes, limit {max_bytes}")
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise Refusal(Code.MALFORMED, f"not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise Refusal(Code.MALFORMED, f"payload must be a JSON object, got {type(body).__name__}")
    return body


def command_id(body: dict[str, Any]) -> str:
    cid = body.get("id")
    if not isinstance(cid, str) or not ID_PATTERN.match(cid):
        raise Refusal(Code.MALFORMED, "\"id\" must be a string of 1-128 printable characters without spaces")
    return cid


def parse_command(body: dict[str, Any], cid: str) -> Command:
    allowed = {"id", "action", "value", "output", "ts", "token"}
    if body.get("action") == Action.SET_SESSION.value:
        allowed |= SESSION_KEYS
    unknown = set(body) - allowed
    if unknown:
        raise Refusal(Code.MALFORMED, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    raw_action = body.get("action")
    if not isinstance(raw_action, str):
        raise Refusal(Code.MALFORMED, "\"action\" must be a string")
    try:
        action = Action(raw_action)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise Refusal(Code.UNKNOWN_ACTION, f"unknown action {raw_action[:40]!r} (known: {known})") from None
    value = body.get("value")
    if action in NEEDS_VALUE:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Refusal(Code.MALFORMED, f"action {action.value!r} needs a finite number in \"value\"")
        value = float(value)
    elif value is not None:
        raise Refusal(Code.MALFORMED, f"action {action.value!r} takes no \"value\"")
    output = body.get("output")
    if action is Action.SET_OUTPUT:
        if isinstance(output, bool) or not isinstance(output, int) or not 0 <= output <= MAX_OUTPUT:
            raise Refusal(Code.MALFORMED, f"action 'set_output' needs the output number (0-{MAX_OUTPUT}) in \"output\"")
    elif output is not None:
        raise Refusal(Code.MALFORMED, f"action {action.value!r} takes no \"output\"")
    ts = body.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
        raise Refusal(Code.MALFORMED, "\"ts\" must be epoch milliseconds (a non-negative integer)")
    return Command(cid, action, value, ts, body, output)
