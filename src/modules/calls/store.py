"""Live call state in Redis, changed only by optimistic transactions (WATCH / MULTI / EXEC).

Keys (each with a TTL):
- `call:{id}`: the call's state as JSON (state.CallState), kept a while after it ended so late
  events get a clear "call ended" and history reads find it before it is archived;
- `call:user:{user_id}`: the id of the one live call a user rings in or takes part in (busy check);
  deleted, only if it still names that call, in the transaction where the user leaves it;
- `calls:unarchived`: sorted set of ended calls not yet written to PostgreSQL (by end time), added
  in the transaction that ends the call, removed once history holds it (a sweep retries the rest).

Every transition watches the call key: of two processes changing one call at once, one commits
and the other re-reads and re-decides (so the first `call:accept` wins, the second sees it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import msgspec
from redis.asyncio import Redis
from redis.exceptions import WatchError

from src.common.errors import Conflict, ServiceUnavailable
from src.modules.calls.state import CallState, call_not_found

T = TypeVar("T")
LIVE_TTL = 12 * 3600  # seconds: a call (or a stale busy mark) outlives no process by more
ENDED_TTL = 3600
UNARCHIVED = "calls:unarchived"
_TRIES = 20
# Delete a user's busy mark only if it still names this call (they may be in a newer one by now).
_DEL_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CallState)


def call_key(call_id: uuid.UUID | str) -> str:
    return f"call:{call_id}"


def user_key(user_id: uuid.UUID | str) -> str:
    return f"call:user:{user_id}"


class CallStore:
    """Create, read and transition calls atomically."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, call_id: uuid.UUID) -> CallState | None:
        """The call's state, or None when Redis holds no such call (never existed, or expired)."""
        raw = await self._redis.get(call_key(call_id))
        return _decoder.decode(raw) if raw else None

    async def current_call_id(self, user_id: uuid.UUID) -> uuid.UUID | None:
        """The live call `user_id` is in (ringing or joined), if any."""
        raw = await self._redis.get(user_key(user_id))
        return uuid.UUID(str(raw)) if raw else None

    async def create(self, call: CallState, decide: Callable[[CallState, set[uuid.UUID]], None]) -> CallState:
        """Store a new call: `decide(call, busy_user_ids)` sees who is already in a live call
        (it raises for a busy caller and marks busy callees) under WATCH of their busy marks,
        so that two calls never take the same user."""
        keys = [user_key(p.user_id) for p in call.participants]
        for _ in range(_TRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(*keys)
                    taken = await pipe.mget(keys)
                    attempt = msgspec.convert(msgspec.to_builtins(call), CallState)
                    decide(attempt, {p.user_id for p, v in zip(call.participants, taken, strict=True) if v})
                    pipe.multi()
                    self._write(pipe, attempt)
                    await pipe.execute()
                    return attempt
                except WatchError:
                    continue
        raise ServiceUnavailable("The call service is busy, try again", code="overloaded")

    async def update(self, call_id: uuid.UUID, change: Callable[[CallState], T]) -> tuple[CallState, CallState, T]:
        """Apply `change` to the call atomically (re-run on a concurrent change): the state
        before, the state after and what `change` returned. 404 when there is no such call."""
        key = call_key(call_id)
        for _ in range(_TRIES):
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        raise call_not_found()
                    before, after = _decoder.decode(raw), _decoder.decode(raw)
                    result = change(after)
                    pipe.multi()
                    self._write(pipe, after)
                    await pipe.execute()
                    return before, after, result
                except WatchError:
                    continue
        raise Conflict("The call changed too often at once, try again", code="concurrent_update")

    async def archived(self, call_id: uuid.UUID) -> None:
        """History holds the call now: stop retrying its archive."""
        await self._redis.zrem(UNARCHIVED, str(call_id))

    async def unarchived(self, older_than: datetime, limit: int = 100) -> list[uuid.UUID]:
        """Ended calls whose archive did not happen (a crash, PostgreSQL down) before `older_than`."""
        ids = await self._redis.zrangebyscore(UNARCHIVED, "-inf", older_than.timestamp(), start=0, num=limit)
        return [uuid.UUID(str(i)) for i in ids]

    @staticmethod
    def _write(pipe: object, call: CallState) -> None:
        """Queue the writes of `call` in a MULTI: state, busy marks, the archive queue."""
        call_id = str(call.id)
        ended = call.status == "ended"
        pipe.set(call_key(call_id), _encoder.encode(call), ex=ENDED_TTL if ended else LIVE_TTL)  # type: ignore[attr-defined]
        live = set(call.live_user_ids())
        for part in call.participants:
            if part.user_id in live:
                pipe.set(user_key(part.user_id), call_id, ex=LIVE_TTL)  # type: ignore[attr-defined]
            else:
                pipe.eval(_DEL_IF, 1, user_key(part.user_id), call_id)  # type: ignore[attr-defined]
        if ended:
            assert call.ended_at is not None
            pipe.zadd(UNARCHIVED, {call_id: call.ended_at.timestamp()})  # type: ignore[attr-defined]
