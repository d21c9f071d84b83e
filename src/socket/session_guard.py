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
- a refresh re-reads only the sessions that need it: those with an event in the last
  `IDLE_REFRESH_SECONDS` (so their events find a fresh verdict), those known revoked, and the
  others once their verdict is `IDLE_REFRESH_SECONDS` old. Re-reading every session of 2,000
  mostly idle sockets each 1.5 s cost ~7 % of an API process's CPU (bench/messaging.py); idle
  sockets of a revoked session are still ended within a sweep or two (≈ 15 s at worst).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from src.common.queries.auth import ActiveSessions
from src.infra.queries import QueryBus

RECHECK_SECONDS = 2.0
REFRESH_SECONDS = 1.5  # < RECHECK_SECONDS: sessions are refreshed before events need them
IDLE_REFRESH_SECONDS = 4.5  # sessions without events are re-read this often (a few refreshes)
REVOKED_MEMORY_SECONDS = 3600.0  # past that the session's access tokens have long expired
SWEEP_BATCH = 1000


class SessionGuard:
    """Local verdicts on sessions, refreshed from PostgreSQL."""

    def __init__(self, queries: QueryBus, recheck: float = RECHECK_SECONDS) -> None:
        self._queries, self._recheck = queries, recheck
        self._checked: dict[uuid.UUID, float] = {}
        self._revoked: dict[uuid.UUID, float] = {}
        self._last_event: dict[uuid.UUID, float] = {}
        self._waiting: dict[uuid.UUID, asyncio.Future[bool]] = {}  # per-event lookups of this tick
        self._batch: asyncio.Task[None] | None = None

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
        now = self._last_event[session_id] = time.monotonic()
        if now - self._checked.get(session_id, 0.0) < self._recheck:
            return True
        return await self._lookup(session_id)

    async def _lookup(self, session_id: uuid.UUID) -> bool:
        """Ask PostgreSQL about the session, together with the other sessions asked in this
        event-loop tick (one statement for all: when refreshes run late, every event of a busy
        process needs a lookup, and one statement each cost ~15 % of its CPU, bench/messaging.py)."""
        waiting = self._waiting.get(session_id)
        if waiting is None:
            waiting = self._waiting[session_id] = asyncio.get_running_loop().create_future()
            if self._batch is None:
                self._batch = asyncio.create_task(self._look_up_waiting())
        return await asyncio.shield(waiting)

    async def _look_up_waiting(self) -> None:
        await asyncio.sleep(0)  # let the events of this tick join
        waiting, self._waiting, self._batch = self._waiting, {}, None
        ids = list(waiting)
        try:
            active: set[uuid.UUID] = set()
            for start in range(0, len(ids), SWEEP_BATCH):
                found = await self._queries.ask(ActiveSessions(session_ids=ids[start:start + SWEEP_BATCH]))
                active.update(found)
        except Exception as exc:
            for future in waiting.values():
                future.set_exception(exc)
            return
        for session_id, future in waiting.items():
            if session_id in active:
                self.verified(session_id)
            else:
                self.revoke(session_id)
            future.set_result(session_id in active)

    async def stale(self, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these sessions (those due, see the module doc) are no longer active (one statement per
        thousand), remembered."""
        now = time.monotonic()
        for session_id in [s for s, until in self._revoked.items() if until < now]:
            del self._revoked[session_id]
        here = set(session_ids)
        self._checked = {s: at for s, at in self._checked.items() if s in here}  # drop sessions gone
        self._last_event = {s: at for s, at in self._last_event.items() if s in here}
        ids = [s for s in here if s in self._revoked or now - self._checked.get(s, 0.0) >= IDLE_REFRESH_SECONDS
               or now - self._last_event.get(s, -IDLE_REFRESH_SECONDS) < IDLE_REFRESH_SECONDS]
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
