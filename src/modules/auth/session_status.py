"""Is a session still active? Answered from a short in-process memory, Redis, then PostgreSQL.

Keys `auth:session:{id}` hold the owner's user id (active) or "0" (revoked). A revocation writes "0"
(overwriting) and announces the session ids on `CHANNEL`; a cache fill only writes when the key is
absent, so a fill that raced with a revocation can never resurrect the session. Flushed keys are
simply re-read from PostgreSQL.

Each API process also remembers verdicts for `SESSION_CACHE_SECONDS` (a Redis GET per request was
a sixth of an authenticated read's CPU), but only while it is subscribed to `CHANNEL`: every
announced revocation drops the memory of its sessions at once, in every process, and without the
subscription (Redis away, reconnecting) every check goes to Redis as before. A verdict read while
a revocation was announced is not remembered (the announcement may have been handled first).
A socket connect may accept an older memory (`SOCKET_SESSION_MEMORY_SECONDS`: a user's sockets
reconnect every few seconds on a flapping network, each connect a Redis round trip otherwise):
the same announcements drop it, so a revoked session is still refused at its next connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterable

import structlog
from redis.asyncio import Redis

from src.infra import metrics
from src.infra.db import Database
from src.infra.redis import REDIS_ERRORS

CHANNEL = "auth:sessions:revoked"
ACTIVE_SQL = ("SELECT id FROM auth.sessions WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL"
              " AND refresh_expires_at > now()")
OWNER_SQL = "SELECT user_id FROM auth.sessions WHERE id = $1 AND revoked_at IS NULL AND refresh_expires_at > now()"
MEMORY_LIMIT = 100_000  # sessions remembered per process, at most
log = structlog.get_logger("chatty.auth")


def _key(session_id: uuid.UUID) -> str:
    return f"auth:session:{session_id}"


class SessionStatus:
    """Per-request session checks that keep working while Redis is down."""

    def __init__(self, redis: Redis, db: Database, access_ttl: int, memory_seconds: float = 0.0,
                 longest_memory: float = 0.0) -> None:
        self._redis, self._db = redis, db
        self._active_ttl = min(300, access_ttl)
        self._revoked_ttl = access_ttl + 60  # past that, the access tokens expired anyway
        self._memory_seconds = memory_seconds
        self._longest_memory = max(memory_seconds, longest_memory)  # what any caller may accept
        self._memory: dict[uuid.UUID, tuple[str, float]] = {}  # session -> (owner or "0", read at)
        self._subscribed = False
        self._announcements = 0  # revocations heard: a check that saw this change remembers nothing
        self._listener: asyncio.Task[None] | None = None

    async def is_active(self, session_id: uuid.UUID, user_id: uuid.UUID, memory_seconds: float | None = None) -> bool:
        """Whether the session may still use its access tokens and belongs to `user_id` (a token's
        `sid` and `sub` must agree: a forged `sub` beside a live `sid` is refused). A verdict remembered
        for up to `memory_seconds` (default: the REST horizon) answers without I/O."""
        if self._subscribed:
            remembered = self._memory.get(session_id)
            horizon = self._memory_seconds if memory_seconds is None else min(memory_seconds, self._longest_memory)
            if remembered is not None and remembered[1] + horizon > time.monotonic():
                return remembered[0] == str(user_id)
        heard = self._announcements
        try:
            cached = await self._redis.get(_key(session_id))
        except REDIS_ERRORS:
            metrics.REDIS_FALLBACKS.labels("session").inc()
            return await self._owner_in_db(session_id) == user_id
        if cached is not None and cached != "1":  # "1": written by an older release, owner unknown
            self._remember(session_id, str(cached), heard)
            return cached == str(user_id)
        owner = await self._owner_in_db(session_id)
        if cached is None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis.set(_key(session_id), str(owner) if owner else "0",
                                      ex=self._active_ttl if owner else self._revoked_ttl, nx=True)
        return owner == user_id

    def _remember(self, session_id: uuid.UUID, verdict: str, heard: int) -> None:
        if not self._subscribed or heard != self._announcements:
            return
        now = time.monotonic()
        if len(self._memory) >= MEMORY_LIMIT:
            self._memory = {s: v for s, v in self._memory.items() if v[1] + self._longest_memory > now}
            if len(self._memory) >= MEMORY_LIMIT:
                self._memory.clear()
        self._memory[session_id] = (verdict, now)

    async def mark_revoked(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Record revocations in Redis and announce them (raises when Redis is down, so the outbox
        retries)."""
        ids = list(session_ids)
        self._forget(ids)
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(_key(session_id), "0", ex=self._revoked_ttl)
            if ids:
                pipe.publish(CHANNEL, ",".join(str(s) for s in ids))
            await pipe.execute()
        self._forget(ids)  # a check that read Redis before the write must not be remembered

    def _forget(self, session_ids: Iterable[uuid.UUID]) -> None:
        self._announcements += 1
        for session_id in session_ids:
            self._memory.pop(session_id, None)

    def start(self) -> None:
        """Listen for announced revocations (API processes; without it nothing is remembered)."""
        if self._longest_memory > 0 and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="auth-session-revocations")

    async def stop(self) -> None:
        """Stop listening; forget every verdict."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        self._unsubscribed()

    def _unsubscribed(self) -> None:
        self._subscribed = False
        self._announcements += 1
        self._memory.clear()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            self._subscribed = True
                        elif message["type"] == "message":
                            ids = []
                            for part in str(message["data"]).split(","):
                                with contextlib.suppress(ValueError):
                                    ids.append(uuid.UUID(part))
                            self._forget(ids)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("auth.revocations_reconnect", error=repr(exc))
            finally:
                self._unsubscribed()
            await asyncio.sleep(1)

    async def active_in_db(self, session_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these sessions are active, from PostgreSQL only (one statement)."""
        if not session_ids:
            return set()
        # On the driver pool (one statement, no BEGIN/ROLLBACK): asked per socket event when a verdict is old.
        rows = await self._db.fetch(ACTIVE_SQL, list(session_ids))
        return {row[0] for row in rows}

    async def _owner_in_db(self, session_id: uuid.UUID) -> uuid.UUID | None:
        # One statement on the driver pool, no BEGIN/ROLLBACK: a Redis cache that lapsed makes every
        # connect of a reconnect storm ask here (a third of a connect's CPU through the ORM session).
        row = await self._db.fetchrow(OWNER_SQL, session_id)
        return row[0] if row else None
