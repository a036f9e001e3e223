"""The SQLite outbox (store-and-forward queue)."""

from agent.store.outbox import Outbox, OutboxError, OutboxRow, OutboxStats, Pending, Priority, Synchronous

__all__ = ["Outbox", "OutboxError", "OutboxRow", "OutboxStats", "Pending", "Priority", "Synchronous"]
