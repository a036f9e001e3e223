"""edge-agent: store-and-forward edge agent for Raspberry-Pi-class gateways."""

__version__ = "0.1.0"
