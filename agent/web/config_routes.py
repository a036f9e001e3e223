"""A config change from the page: ``GET /api/config/file`` (the TOML in force, secrets as ``"***"``) and
``POST /api/config`` (an edited TOML), both behind the login; the POST also behind the CSRF check.

The edited text goes to the agent's config push path (:meth:`agent.remote.ops.RemoteOps.apply_local`):
the one validation pass, the atomic write with the rollback copy, the restart in place, the rollback
when it cannot start or reach the broker, and the audit record, here with ``"source": "web"``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson

from ..remote.push import DEFAULT_TIMEOUT_S, MAX_PUSH_BYTES, PushRefused
from .auth import Sessions
from .config_edit import EditError, mask_text, unmask_text
from .http import HttpError, Request

MAX_CONFIG_BODY = 2 * MAX_PUSH_BYTES  # JSON-escaped TOML text
READ_ONLY_HINT = ("the agent cannot write to {dir} (the shipped systemd unit keeps the config directory read-only): "
                  "allow it with a drop-in, `sudo systemctl edit edge-agent`, adding [Service] "
                  "ReadWritePaths={dir}, then restart the service; see docs/fleet.md, config push")
STATUS = {"applying": 202, "invalid": 400, "malformed": 400, "too_large": 413}


def writable_problem(path: Path) -> str | None:
    """Why a config change cannot be written beside ``path``, or None."""
    if not os.access(path.parent, os.W_OK):
        return READ_ONLY_HINT.format(dir=path.parent)
    return None


class ConfigEditor:
    def __init__(self, remote: Any, sessions: Sessions):
        self.remote = remote  # agent.remote.ops.RemoteOps
        self.sessions = sessions

    @property
    def path(self) -> Path | None:
        files = self.remote.files
        return None if files is None else files.path

    def view(self, req: Request) -> dict[str, Any]:
        """The config file for the edit form; needs a login (it is the file, comments and all)."""
        if self.sessions.current(req) is None:
            raise HttpError(401, "log in first")
        doc: dict[str, Any] = {"path": None, "text": None, "problem": None,
                               "version": self.remote.health_section()["version"]}
        path = self.path
        if path is None:
            doc["problem"] = "this agent was not started from a config file"
            return doc
        doc["path"] = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            doc["problem"] = f"cannot read {path}: {e}"
            return doc
        doc["text"] = mask_text(text)
        if doc["text"] is None:
            doc["problem"] = "a secret in this file cannot be masked in place (a multi-line string?): edit it on the gateway"
        else:
            doc["problem"] = writable_problem(path)
        return doc

    async def apply(self, req: Request) -> tuple[int, dict[str, Any]]:
        """An edited config through the push path. Returns (HTTP status, the answer)."""
        self.sessions.authorise(req)
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as e:
            raise HttpError(400, f"body is not JSON: {e}") from None
        text = body.get("config") if isinstance(body, dict) else None
        timeout_s = body.get("timeout_s", DEFAULT_TIMEOUT_S) if isinstance(body, dict) else None
        if not isinstance(text, str) or isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float):
            raise HttpError(400, 'body must be {"config": "<TOML text>"[, "timeout_s": seconds]}')
        path = self.path

        def keep_secrets(edited: str) -> str:  # under the push lock; a refusal here is audited as any other
            if path is not None and (problem := writable_problem(path)):
                raise PushRefused("cannot_record", problem)
            try:
                return unmask_text(edited, path.read_text(encoding="utf-8") if path else "")
            except EditError as e:
                raise PushRefused("invalid", str(e)) from None
            except (OSError, UnicodeDecodeError) as e:
                raise PushRefused("cannot_record", f"cannot read the config in force: {e}") from None

        origin = {"source": "web", "auth": "login", "peer": req.peer}
        answer = await self.remote.apply_local(text, cid=f"web-{secrets.token_hex(6)}", origin=origin,
                                               timeout_s=float(timeout_s), prepare=keep_secrets)
        status = STATUS.get(answer["status"]) or STATUS.get(answer.get("code", ""), 409)
        return status, answer
