"""Is a session still active? Answered from Redis, falling back to PostgreSQL.

Keys `auth:session:{id}` hold the owner's user id (active) or "0" (revoked). A revocation writes "0"
(overwriting); a cache fill only writes when the key is absent, so a fill that raced with
a revocation can never resurrect the session. Flushed keys are simply re-read from PostgreSQL.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable

from redis.asyncio import Redis
from sqlalchemy import func, select

from src.infra import metrics
from src.infra.db import Database
from src.infra.redis import REDIS_ERRORS
from src.modules.auth.models import Session


def _key(session_id: uuid.UUID) -> str:
    return f"auth:session:{session_id}"


class SessionStatus:
    """Per-request session checks that keep working while Redis is down."""

    def __init__(self, redis: Redis, db: Database, access_ttl: int) -> None:
        self._redis, self._db = redis, db
        self._active_ttl = min(300, access_ttl)
        self._revoked_ttl = access_ttl + 60  # past that, the access tokens expired anyway

    async def is_active(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Whether the session may still use its access tokens and belongs to `user_id` (a token's
        `sid` and `sub` must agree: a forged `sub` beside a live `sid` is refused)."""
        try:
            cached = await self._redis.get(_key(session_id))
        except REDIS_ERRORS:
            metrics.REDIS_FALLBACKS.labels("session").inc()
            return await self._owner_in_db(session_id) == user_id
        if cached is not None and cached != "1":  # "1": written by an older release, owner unknown
            return cached == str(user_id)
        owner = await self._owner_in_db(session_id)
        if cached is None:
            with contextlib.suppress(*REDIS_ERRORS):
                await self._redis.set(_key(session_id), str(owner) if owner else "0",
                                      ex=self._active_ttl if owner else self._revoked_ttl, nx=True)
        return owner == user_id

    async def mark_revoked(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Record revocations in Redis (raises when Redis is down, so the outbox retries)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for session_id in session_ids:
                pipe.set(_key(session_id), "0", ex=self._revoked_ttl)
            await pipe.execute()

    async def active_in_db(self, session_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these sessions are active, from PostgreSQL only (one statement)."""
        if not session_ids:
            return set()
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Session.id).where(Session.id.in_(session_ids), Session.revoked_at.is_(None),
                                         Session.refresh_expires_at > func.now()))
            return set(rows.all())

    async def _owner_in_db(self, session_id: uuid.UUID) -> uuid.UUID | None:
        async with self._db.session() as session:
            return await session.scalar(
                select(Session.user_id).where(Session.id == session_id, Session.revoked_at.is_(None),
                                              Session.refresh_expires_at > func.now()))
