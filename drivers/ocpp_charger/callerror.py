"""CALLERRORs with the error codes of OCPP-J 1.6 (Table 7, with the 1.6 errata's spellings).

The ``ocpp`` package (2.1.0) answers with OCPP 2.0 habits: ``NotSupported`` for an action it does not
know (1.6: ``NotImplemented``, "Requested Action is not known by receiver") and ``NotImplemented``
for a known action without a handler (1.6: ``NotSupported``, "recognized but not supported");
``FormatViolation`` where 1.6 says ``FormationViolation``; and a frame it cannot unpack (a CALL with
missing elements) escapes as a Python exception that drops the connection. Here the message is routed
the same way, and every error is answered with its 1.6 code, whatever the package raised.
"""

from __future__ import annotations

import json
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, MessageType, unpack
from ocpp.v16.enums import Action

# codes the package may raise -> OCPP-J 1.6 (errata v1.0 section 5 spells these two)
RENAME = {"FormatViolation": "FormationViolation", "OccurenceConstraintViolation": "OccurrenceConstraintViolation"}
CODES_16 = frozenset({"NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
                      "FormationViolation", "PropertyConstraintViolation", "OccurrenceConstraintViolation",
                      "TypeConstraintViolation", "GenericError"})
KNOWN_16 = frozenset(a.value for a in Action)


def code_16(code: str) -> str:
    code = RENAME.get(code, code)
    return code if code in CODES_16 else "GenericError"


def call_error(unique_id: str, code: str, description: str, details: Any = None) -> str:
    return CallError(unique_id, code_16(code), description, details if isinstance(details, dict) else {}).to_json()


def _call_id(raw: str) -> str | None:
    """The unique id of a frame that looks like a CALL ([2, "<id>", ...]), else None."""
    try:
        msg = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(msg, list) and len(msg) >= 2 and msg[0] == MessageType.Call and isinstance(msg[1], str):
        return msg[1]
    return None


async def route_message(cp: Any, raw_msg: str) -> None:
    """Route one frame received by ``cp`` (an ``ocpp`` ChargePoint); answer CALLs that fail with a 1.6 code."""
    try:
        msg = unpack(raw_msg)
        if msg.message_type_id == MessageType.Call and not (isinstance(msg, Call) and isinstance(msg.action, str)
                                                            and isinstance(msg.payload, dict)):
            raise ValueError("a CALL is [2, uniqueId, action, {payload}]")
    except (OCPPError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        uid = _call_id(raw_msg)
        cp.logger.warning("%s: malformed frame %.200r: %s", cp.id, raw_msg, e)
        if uid is not None:  # without a unique id there is nothing to answer to
            await cp._send(call_error(uid, "FormationViolation", "frame is not a valid OCPP-J 1.6 CALL"))
        return
    if msg.message_type_id in (MessageType.CallResult, MessageType.CallError):
        cp._response_queue.put_nowait(msg)
        return
    if msg.message_type_id != MessageType.Call:
        return
    if "_on_action" not in cp.route_map.get(msg.action, {}):
        known = msg.action in KNOWN_16
        await cp._send(call_error(msg.unique_id, "NotSupported" if known else "NotImplemented",
                                  f"{msg.action} is {'not supported by this central system' if known else 'not an OCPP 1.6 action'}"))
        return
    try:
        await cp._handle_call(msg)
    except OCPPError as error:
        cp.logger.warning("%s: %s refused: %s %s", cp.id, msg.action, error.code, error.description)
        await cp._send(call_error(msg.unique_id, error.code, error.description or "", error.details))
