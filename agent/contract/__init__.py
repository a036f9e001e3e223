"""The public contract between the agent and its drivers."""
