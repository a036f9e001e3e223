"""PUBACKs handed from paho's network thread to the asyncio loop in bursts.

During a backlog drain hundreds of PUBACKs arrive per read of the socket. Posting each to the loop on
its own costs a wake-up of the loop (a write to its self-pipe) and a separate refill of the in-flight
window per acknowledgement; here the network thread queues them and, once paho's pass over the socket
is done (``flush``), posts one callback for all that arrived since the last one ran, so the loop handles
them as one batch and wakes once per pass, not once per race it wins against the network thread.

A queue made ``lazy`` posts nothing unless something waits for the acknowledgements (``urgent``, or an
item put as urgent): the loop takes them itself at its next turn that needs them (``take``: the agent's
pipeline does so before each cycle, at least every couple of seconds, so the rows acknowledged are
deleted in the commit that follows, as before). A gateway polling every second then wakes its loop for
the polls and their commit only, not a third time for the PUBACKs of that commit.

Order is kept where it matters: every acknowledgement of a connection is handled before the network
thread posts that the connection closed (it flushes after every pass, and posts the close after the
last; a lazy queue is taken by the close's handler before it forgets the connection).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class AckQueue(Generic[T]):
    """``flush`` from the network thread, ``put`` from any thread (paho reports a QoS 0 message it wrote
    at once from the thread that published it: such an item waits for the network thread's next pass);
    ``handle(batch)`` runs in the loop with every item put before a ``flush`` since the last batch, oldest
    first. ``post(fn)`` schedules ``fn`` on the loop (thread-safe). When ``lazy``, ``flush`` posts only if
    ``urgent()`` or an item was put as urgent; ``take`` (loop thread) handles what waits at once."""

    def __init__(self, post: Callable[[Callable[[], None]], None], handle: Callable[[list[T]], None],
                 urgent: Callable[[], bool] = lambda: True):
        self._post = post
        self._handle = handle
        self._urgent = urgent
        self.lazy = False
        self._items: deque[T] = deque()
        self._posted = False  # a batch is scheduled and has not started yet
        self._urgent_item = False  # an item put since the last post must be handled at once

    def put(self, item: T, *, urgent: bool = False) -> None:
        """Network thread: queue ``item`` (handled after the next :meth:`flush`)."""
        self._items.append(item)
        if urgent:
            self._urgent_item = True

    def flush(self) -> None:
        """Network thread: schedule a batch for the items queued, unless one is pending (or, when lazy,
        nothing waits for them)."""
        if self._items and not self._posted and (not self.lazy or self._urgent_item or self._urgent()):
            self._posted = True
            self._urgent_item = False
            self._post(self._run)

    def take(self) -> None:
        """Loop thread: handle the items queued now, without waiting for a post (a pending one finds
        fewer or none)."""
        self._urgent_item = False  # (cleared first: an urgent item put from here on sets it again)
        items = self._items
        if items:
            self._handle([items.popleft() for _ in range(len(items))])

    def _run(self) -> None:
        # Cleared before taking the items: an item put after this point either is taken below or
        # schedules a batch of its own, so none is left waiting.
        self._posted = False
        self.take()
