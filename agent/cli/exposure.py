"""Who can command this gateway: with ``[commands] auth = "none"`` and points declared writable, anyone
allowed to publish on the broker's command topic can start and stop chargers and change limits.
``check``, ``run`` and ``doctor`` say so plainly.

Signed commands stay opt-in: turning them on needs a secret shared with the sender (the platform
upstream), which a config file alone cannot provide, and a broker ACL on the command topic is a
legitimate alternative; so the product warns loudly instead of refusing to start.
"""

from __future__ import annotations

from ..commands.config import AuthMode
from ..config.schema import AgentConfig
from ..contract.points import DeclaresPoints

HOW_TO_SIGN = ('[commands] auth = "hmac" with secret = "${cred:command-secret}" (docs/commands.md, '
               '"Authorisation"), or an ACL on the broker that lets only your platform publish there')


def writable_points(cfg: AgentConfig) -> dict[str, list[str]]:
    """Enabled device -> the points its config declares writable (in the order it declares them)."""
    out: dict[str, list[str]] = {}
    for dev in cfg.devices:
        if dev.enabled and isinstance(dev, DeclaresPoints):
            if points := [p.name for p in dev.points() if p.writable]:
                out[dev.name] = points
    return out


def unsigned_commands(cfg: AgentConfig) -> str | None:
    """The warning, or None when commands are off, signed, or nothing is writable."""
    if not cfg.commands.enabled or cfg.commands.auth is not AuthMode.NONE:
        return None
    points = writable_points(cfg)
    if not points:
        return None
    listed = "; ".join(f"{dev}: {', '.join(p)}" for dev, p in points.items())
    topic = f"{cfg.mqtt.topic_prefix}/{cfg.gateway.id}/cmd/#"
    return (f'commands are not signed ([commands] auth = "none") and {sum(map(len, points.values()))} point(s) are '
            f"writable ({listed}): anyone who can publish to {topic} on the broker can start and stop chargers and "
            f"change limits. Turn on signed commands: {HOW_TO_SIGN}")
