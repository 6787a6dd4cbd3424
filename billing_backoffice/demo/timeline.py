"""The demo's billing history as one list of events, played in time order through the services.

Every account's story and the bank's statement days add events (a time and an action); playing
them in time order is what makes the cross-account events right: a statement imported on the 25th
carries what each customer owed on the 25th. An action may add later events (a charge that failed
is retried a day later, as ``charges_retry_failed`` would). Actions run in the seed's transaction;
nothing happens at or after the seed's ``now``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime
from itertools import count


class Timeline:
    def __init__(self, now: datetime):
        self.now = now
        self._events: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._order = count()
        self.current: datetime | None = None

    def add(self, when: datetime, action: Callable[[datetime], None]) -> bool:
        """Schedule ``action(when)``; False (and nothing scheduled) when ``when`` is not in the past."""
        if when >= self.now:
            return False
        if self.current is not None and when < self.current:
            raise ValueError(f"cannot schedule an event at {when} before the current one at {self.current}")
        heapq.heappush(self._events, (when, next(self._order), action))
        return True

    def play(self) -> int:
        played = 0
        while self._events:
            when, _, action = heapq.heappop(self._events)
            self.current = when
            action(when)
            played += 1
        return played
