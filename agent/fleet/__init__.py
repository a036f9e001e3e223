"""``edge-agent fleet``: many simulated gateways in a few processes, each with the real outbox and the
real uplink (at-least-once, resend after reconnect, real payloads), for the fleet test and benchmark."""
