"""How commands are authorised (``commands.auth``): the enum a plain config carries, without pydantic."""

from __future__ import annotations

import enum


class AuthMode(enum.StrEnum):
    NONE = "none"  # anyone who may publish on the command topic may command (broker ACLs guard it)
    SHARED_SECRET = "shared_secret"  # "token" must equal the secret
    HMAC = "hmac"  # "token" is hex HMAC-SHA256(secret, canonical command), see docs/commands.md
