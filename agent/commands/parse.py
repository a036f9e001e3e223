"""Parse a command payload into a typed :class:`Command`, or refuse it with a code and a reason."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from agent.contract.charger import ChargerPoint
from agent.errors import CommandRefused

ID_PATTERN = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces


class Action(enum.StrEnum):
    """Actions the core itself knows. Every other action is an alias a device config declares for one
    of its points (:func:`agent.contract.points.aliases_of`); the charger ones below are also what the
    site controller's command hook is told."""

    WRITE = "write"  # {"point": NAME, "value": V}: any point the device declares writable
    SET_SESSION = "set_session"  # informs the site planner; writes nothing to the device
    START = "start"
    STOP = "stop"
    SET_CURRENT_LIMIT = "set_current_limit"
    BOOST = "boost"

    @property
    def point(self) -> str:
        """The charger point (``writable = [...]`` in config) this action writes."""
        return ChargerPoint.CURRENT_LIMIT.value if self is Action.SET_CURRENT_LIMIT else self.value


SITE_ACTIONS = {Action(a).point: Action(a) for a in ("start", "stop", "set_current_limit", "boost")}
MAX_INDEX = 65_535
SESSION_KEYS = {"departure", "energy_kwh", "max_current_a", "mode"}  # set_session only (agent.commands.session)
POINT_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


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
    action: str  # "write", "set_session", or an alias a device declares
    value: float | None
    ts: int | None
    body: dict[str, Any]
    output: int | None = None  # fills ``{output}`` in an alias's point name
    point: str | None = None  # for "write": as sent; after :meth:`resolve`: the point written


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
    """The command's shape; which point it writes and what value that point takes is the device's
    declaration's business (the router resolves it)."""
    allowed = {"id", "action", "value", "output", "point", "ts", "token"}
    if body.get("action") == Action.SET_SESSION.value:
        allowed |= SESSION_KEYS
    unknown = set(body) - allowed
    if unknown:
        raise Refusal(Code.MALFORMED, f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise Refusal(Code.MALFORMED, "\"action\" must be a string")
    value = body.get("value")
    if value is not None:
        if action == Action.SET_SESSION:
            raise Refusal(Code.MALFORMED, f"action {action!r} takes no \"value\"")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Refusal(Code.MALFORMED, f"action {action[:40]!r}: \"value\" must be a finite number")
        value = float(value)
    output = body.get("output")
    if output is not None and (isinstance(output, bool) or not isinstance(output, int) or not 0 <= output <= MAX_INDEX):
        raise Refusal(Code.MALFORMED, f"\"output\" must be a whole number 0-{MAX_INDEX}")
    point = body.get("point")
    if action == Action.WRITE:
        if not isinstance(point, str) or not POINT_NAME.match(point):
            raise Refusal(Code.MALFORMED, "action 'write' needs the point's name in \"point\"")
    elif point is not None:
        raise Refusal(Code.MALFORMED, f"action {action[:40]!r} takes no \"point\" (use action 'write')")
    ts = body.get("ts")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
        raise Refusal(Code.MALFORMED, "\"ts\" must be epoch milliseconds (a non-negative integer)")
    return Command(cid, action, value, ts, body, output, point)


def resolve(cmd: Command, aliases: Mapping[str, str], takes_value: Callable[[str], bool | None]) -> Command:
    """The point ``cmd`` writes, from the device's declared ``aliases``; ``takes_value(point)`` says
    whether a declared point takes a value (None: not declared). Raises :class:`Refusal`."""
    if cmd.action == Action.WRITE:
        if cmd.output is not None:
            raise Refusal(Code.MALFORMED, "action 'write' takes no \"output\": name the point")
        name = cmd.point
    else:
        template = aliases.get(cmd.action)
        if template is None:
            known = ", ".join(["write", *sorted(aliases)])
            raise Refusal(Code.UNKNOWN_ACTION, f"unknown action {cmd.action[:40]!r} (known for this device: {known})")
        if "{output}" in template:
            if cmd.output is None:
                raise Refusal(Code.MALFORMED, f"action {cmd.action!r} needs the output number in \"output\"")
            name = template.replace("{output}", str(cmd.output))
        elif cmd.output is not None:
            raise Refusal(Code.MALFORMED, f"action {cmd.action!r} takes no \"output\"")
        else:
            name = template
    assert name is not None
    wants = takes_value(name)
    if wants is True and cmd.value is None:
        raise Refusal(Code.MALFORMED, f"action {cmd.action!r} needs a finite number in \"value\"")
    if wants is False and cmd.value is not None:
        raise Refusal(Code.MALFORMED, f"action {cmd.action!r} takes no \"value\"")
    return replace(cmd, point=name)
