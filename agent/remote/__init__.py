"""Remote operations for a fleet: signed config push with automatic rollback, status and doctor on
request over MQTT (see docs/fleet.md, "Remote operations")."""

from .files import ConfigFiles
from .ops import RemoteOps, ops_token
from .push import MAX_PUSH_BYTES, sign_config

__all__ = ["MAX_PUSH_BYTES", "ConfigFiles", "RemoteOps", "ops_token", "sign_config"]
