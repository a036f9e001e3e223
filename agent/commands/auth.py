"""Command authorisation: none, a shared secret, or an HMAC-SHA256 signature over the command."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from .config import AuthMode
from .parse import Code, Refusal


def canonical(device: str, cmd_id: str, action: str, value: Any, ts: Any, output: Any = None) -> bytes:
    """The bytes an HMAC token signs: device, id, action, value (3 decimals or empty) and ts, one per line;
    then the output number, only for a command that has one (set_output)."""
    v = "" if value is None else f"{float(value):.3f}"
    t = "" if ts is None else str(int(ts))
    parts = [device, cmd_id, action, v, t]
    if output is not None:
        parts.append(str(int(output)))
    return "\n".join(parts).encode()


def sign(secret: str, device: str, cmd_id: str, action: str, value: Any = None, ts: Any = None,
         output: Any = None) -> str:
    """The token a sender puts in ``"token"`` for auth = hmac."""
    return hmac.new(secret.encode(), canonical(device, cmd_id, action, value, ts, output), hashlib.sha256).hexdigest()


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
                            body.get("output"))
        except (TypeError, ValueError, KeyError, OverflowError):
            raise Refusal(Code.UNAUTHORISED, "cannot compute signature over this command") from None
        ok = hmac.compare_digest(token.lower().encode(), expected.encode())
    if not ok:
        raise Refusal(Code.UNAUTHORISED, "bad token")
