"""Topics the broker refuses (MQTT 5 negative PUBACK, e.g. "not authorized" by its ACL), per topic.

A refused topic's rows stay in the outbox and are set aside: the uplink publishes none of them until
the topic's retry is due, and then only one, its oldest row, as a probe. A refused probe doubles the
wait (``FIRST_RETRY`` up to ``MAX_RETRY``); an accepted one clears the topic and its kept rows are
delivered in order. After a reconnect every refused topic is probed at once (the broker may have been
reconfigured). Only the asyncio loop thread uses this class.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.health_parts import RefusedTopic

FIRST_RETRY = 1.0  # seconds from a topic's first refusal to its first probe
MAX_RETRY = 300.0  # the longest wait between two probes of one topic


@dataclass(slots=True)
class Refusal:
    reason: str
    oldest: int  # lowest refused rowid: every row of the topic still kept is at or above it
    due: float  # monotonic time of the next probe
    nacks: int = 1
    delay: float = FIRST_RETRY
    probe: int | None = None  # rowid of the probe in flight


class Refusals:
    def __init__(self) -> None:
        self._topics: dict[str, Refusal] = {}
        self.wanted: set[str] = set()  # due for a probe; the next row of the topic found is the probe

    def __contains__(self, topic: str) -> bool:
        return topic in self._topics

    def __bool__(self) -> bool:
        return bool(self._topics)

    def refuse(self, topic: str, rowid: int, reason: str, now: float) -> bool:
        """Record a negative PUBACK; True when the topic was not refused before (log it once)."""
        r = self._topics.get(topic)
        if r is None:
            self._topics[topic] = Refusal(reason=reason, oldest=rowid, due=now + FIRST_RETRY)
            return True
        r.nacks += 1
        r.reason = reason
        r.oldest = min(r.oldest, rowid)
        if r.probe == rowid:
            r.probe = None
            r.delay = min(MAX_RETRY, r.delay * 2)
            r.due = now + r.delay
        return False

    def accept(self, topic: str) -> Refusal | None:
        """The broker acknowledged a row of ``topic``: forget its refusal (returned, if there was one)."""
        self.wanted.discard(topic)
        return self._topics.pop(topic, None)

    def take_probe(self, topic: str, rowid: int) -> bool:
        """May this row of a refused topic be published? Only as the one probe of a due topic."""
        r = self._topics[topic]
        if topic not in self.wanted:
            return False
        self.wanted.discard(topic)
        r.probe = rowid
        return True

    def release_probe(self, topic: str, rowid: int) -> None:
        """The probe could not be handed to the client (or its connection ended): probe again."""
        r = self._topics.get(topic)
        if r is not None and r.probe == rowid:
            r.probe = None
            self.wanted.add(topic)

    def make_due(self, now: float) -> list[int]:
        """Mark the topics whose retry is due as wanted; returns the oldest rowid of each."""
        oldest = []
        for topic, r in self._topics.items():
            if r.probe is None and topic not in self.wanted and r.due <= now:
                self.wanted.add(topic)
                oldest.append(r.oldest)
        return oldest

    def next_due(self) -> float | None:
        dues = [r.due for t, r in self._topics.items() if r.probe is None and t not in self.wanted]
        return min(dues) if dues else None

    def reconnected(self) -> None:
        """A new connection: nothing is in flight; probe every refused topic now."""
        for r in self._topics.values():
            r.probe = None
        self.wanted = set(self._topics)

    def stats(self, now: float) -> dict[str, RefusedTopic]:
        return {topic: RefusedTopic(nacks=r.nacks, reason=r.reason,
                                    retry_in_s=0.0 if r.probe is not None or topic in self.wanted
                                    else round(max(0.0, r.due - now), 1))
                for topic, r in self._topics.items()}
