"""Moving-window counts of client events per socket, in this process (a socket lives on one).

Not `limits`' asyncio `MemoryStorage`: after every hit it schedules a sweep of all its keys that
awaits `asyncio.to_thread` once per key, so with a few hundred sockets sending it kept the default
thread pool (which Dramatiq enqueues share) and the event loop busy with thread hops: a third of
an API process's loop time in bench/calls.py. Here each key holds at most `amount` timestamps,
trimmed when hit, and is dropped when its socket leaves.
"""

from __future__ import annotations

import time
from collections import deque

from limits import parse


class EventWindow:
    """At most `rule` ("20/second", the `limits` notation) hits per key over a moving window."""

    def __init__(self, rule: str) -> None:
        item = parse(rule)
        self.amount, self.seconds = item.amount, float(item.get_expiry())
        self._hits: dict[str, deque[float]] = {}

    def _window(self, key: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        return hits

    def hit(self, key: str) -> bool:
        """Count one hit if the window has room; False (nothing counted) when it is full."""
        now = time.monotonic()
        hits = self._window(key, now)
        if len(hits) >= self.amount:
            return False
        hits.append(now)
        return True

    def retry_after(self, key: str) -> float:
        """Seconds until the window of `key` has room again (0 when it has now)."""
        now = time.monotonic()
        hits = self._window(key, now)
        return 0.0 if len(hits) < self.amount else hits[0] + self.seconds - now

    def forget(self, key: str) -> None:
        """Drop the counts of `key` (its socket left)."""
        self._hits.pop(key, None)
