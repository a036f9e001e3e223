"""Command authorisation: none, a shared secret, or an HMAC-SHA256 signature over the command."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from .modes import AuthMode
from .parse import Code, Refusal


def _num(x: Any) -> str:
    return "" if x is None else f"{float(x):.3f}"


def canonical(device: str, cmd_id: str, action: str, value: Any, ts: Any, output: Any = None,
              session: Mapping[str, Any] | None = None, point: Any = None) -> bytes:
    """The bytes an HMAC token signs: device, id, action, value (3 decimals or empty) and ts, one per line;
    then the output number, only for a command that has one (set_output); then the point, only for a
    command that names one (write); for ``set_session`` also departure (as sent), energy_kwh and
    max_current_a (3 decimals or empty), then mode when given."""
    lines = [device, cmd_id, action, _num(value), "" if ts is None else str(int(ts))]
    if output is not None:
        lines.append(str(int(output)))
    if point is not None:
        lines.append(str(point))
    if action == "set_session":
        s = session or {}
        dep = s.get("departure")
        lines += ["" if dep is None else str(dep), _num(s.get("energy_kwh")), _num(s.get("max_current_a"))]
        if s.get("mode") is not None:  # signed too; absent, the message is as before modes existed
            lines.append(str(s["mode"]))
    return "\n".join(lines).encode()


def sign(secret: str, device: str, cmd_id: str, action: str, value: Any = None, ts: Any = None,
         output: Any = None, session: Mapping[str, Any] | None = None, point: Any = None) -> str:
    """The token a sender puts in ``"token"`` for auth = hmac (``session``: the set_session fields)."""
    msg = canonical(device, cmd_id, action, value, ts, output, session, point)
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def check(mode: AuthMode, secret: str | None, device: str, body: dict[str, Any]) -> None:
    """Returns when authorised; raises Refusal(UNAUTHORISED) with the reason otherwise."""
    if mode is AuthMode.NONE:
        return
    assert secret is not None
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise Refusal(Code.UNAUTHORISED, "missing token")
    if mode is AuthMode.SHARED_SECRET:
        ok = hmac.compare_digest(token.encode(), secret.encode())
    else:
        try:
            expected = sign(secret, device, body["id"], body["action"], body.get("value"), body.get("ts"),
                            body.get("output"), body, body.get("point"))
        except (TypeError, ValueError, KeyError, OverflowError):
            raise Refusal(Code.UNAUTHORISED, "cannot compute signature over this command") from None
        ok = hmac.compare_digest(token.lower().encode(), expected.encode())
    if not ok:
        raise Refusal(Code.UNAUTHORISED, "bad token")
