"""The demo: simulated devices, an embedded broker, the agent and a live view, with an outage."""
