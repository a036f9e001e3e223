"""Configuration of the command path (``[commands]`` in the config file)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from ..contract import Frozen
from .modes import AuthMode


class CommandsConfig(Frozen):
    enabled: bool = Field(True, description="Accept commands at all.")
    auth: AuthMode = AuthMode.NONE
    secret: SecretStr | None = Field(None, description="Shared secret for auth = shared_secret or hmac.")
    max_age: float | None = Field(
        None, gt=0,
        description="Refuse commands whose ts is older than this many seconds, or that carry no ts (needs a synced clock).",
    )
    max_clock_skew: float = Field(
        30.0, gt=0, le=3600,
        description="With max_age: refuse commands whose ts is more than this many seconds ahead of the gateway clock.",
    )
    rate_limit: int = Field(6, ge=1, le=10_000, description="Commands executed per device per rate_window.")
    rate_window: float = Field(60.0, gt=0, le=86_400, description="Seconds of the rate-limit window.")
    remember_ids: int = Field(10_000, ge=16, le=1_000_000, description="Command ids remembered for idempotency.")
    max_payload_bytes: int = Field(4096, ge=64, le=1_048_576)
    write_timeout: float = Field(10.0, gt=0, le=120, description="Seconds a device write may take before it counts as failed.")

    @model_validator(mode="after")
    def _secret(self) -> CommandsConfig:
        if self.auth is not AuthMode.NONE and (self.secret is None or not self.secret.get_secret_value()):
            raise ValueError(f"auth = {self.auth.value!r} needs a non-empty secret")
        return self
