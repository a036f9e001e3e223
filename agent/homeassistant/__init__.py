"""Home Assistant MQTT discovery: device-based discovery messages, per-device availability and
per-device state topics for the sensors the agent polls (``[homeassistant]`` in the config).

Only :mod:`.config` is imported to register the section (:mod:`agent.sections`); the runtime parts load when the section is on.
"""
