"""Is the session behind a socket still active? Asked on every client event, answered cheaply.

A socket authenticates once, at connect; its session may be revoked later. Revocations reach
this process through the Redis revocation channel (immediately), but a revocation made while
Redis is away only exists in PostgreSQL, and the outbox may give up redelivering it. So:
- sessions announced revoked (channel, or found by a check) are refused from a local set at once;
- otherwise a session's activity is re-read from PostgreSQL (one primary-key lookup) when its
  last check is older than `recheck` seconds;
- a periodic refresh (`stale`, every `REFRESH_SECONDS`, shorter than `recheck`) re-reads every
  local session in one statement per thousand, so events normally find their session checked
  already and the per-event lookup only runs when a refresh is late (a lookup per busy session
  every 2 s instead cost the event loop ~100 PostgreSQL transactions a second on the events' path
  with 200 calling sockets: bench/calls.py); the server ends the sockets of sessions found stale
  every few refreshes, so sockets that send nothing (and only receive) are ended too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from src.common.queries.auth import ActiveSessions
from src.infra.queries import QueryBus

RECHECK_SECONDS = 2.0
REFRESH_SECONDS = 1.5  # < RECHECK_SECONDS: sessions are refreshed before events need them
REVOKED_MEMORY_SECONDS = 3600.0  # past that the session's access tokens have long expired
SWEEP_BATCH = 1000


class SessionGuard:
    """Local verdicts on sessions, refreshed from PostgreSQL."""

    def __init__(self, queries: QueryBus, recheck: float = RECHECK_SECONDS) -> None:
        self._queries, self._recheck = queries, recheck
        self._checked: dict[uuid.UUID, float] = {}
        self._revoked: dict[uuid.UUID, float] = {}

    def verified(self, session_id: uuid.UUID) -> None:
        """The session was just found active (e.g. at connect)."""
        self._checked[session_id] = time.monotonic()

    def revoke(self, session_id: uuid.UUID) -> None:
        """Remember that the session is revoked."""
        self._revoked[session_id] = time.monotonic() + REVOKED_MEMORY_SECONDS
        self._checked.pop(session_id, None)

    def is_revoked(self, session_id: uuid.UUID) -> bool:
        """Known revoked (no I/O)."""
        return session_id in self._revoked

    async def allows(self, session_id: uuid.UUID) -> bool:
        """Whether a client event of this session may run (raises when PostgreSQL cannot answer)."""
        if session_id in self._revoked:
            return False
        if time.monotonic() - self._checked.get(session_id, 0.0) < self._recheck:
            return True
        if session_id in await self._queries.ask(ActiveSessions(session_ids=[session_id])):
            self.verified(session_id)
            return True
        self.revoke(session_id)
        return False

    async def stale(self, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these sessions are no longer active (one statement per thousand), remembered."""
        now = time.monotonic()
        for session_id in [s for s, until in self._revoked.items() if until < now]:
            del self._revoked[session_id]
        ids = list(set(session_ids))
        here = set(ids)
        self._checked = {s: at for s, at in self._checked.items() if s in here}  # drop sessions gone
        stale: set[uuid.UUID] = set()
        for start in range(0, len(ids), SWEEP_BATCH):
            batch = ids[start:start + SWEEP_BATCH]
            active = await self._queries.ask(ActiveSessions(session_ids=batch))
            for session_id in batch:
                if session_id in active:
                    self.verified(session_id)
                else:
                    stale.add(session_id)
                    self.revoke(session_id)
        return stale
