"""Live call state in Redis, changed only by compare-and-set: read, decide in Python, write
with one Lua script that first checks nothing changed since the read (else re-read, re-decide).

Keys (each with a TTL):
- `call:{id}`: the call's state as JSON (state.CallState), kept a while after it ended so late
  events get a clear "call ended" and history reads find it before it is archived;
- `call:user:{user_id}`: the id of the one live call a user rings in or takes part in (busy check);
  deleted, only if it still names that call, in the write where the user leaves it;
- `calls:unarchived`: sorted set of ended calls not yet written to PostgreSQL (by end time), added
  in the write that ends the call, removed once history holds it (a sweep retries the rest).

Of two processes changing one call at once, one writes and the other re-reads and re-decides (so
the first `call:accept` wins and the second sees it). Two round trips per transition: the read
and the script (WATCH / GET / MULTI-EXEC / UNWATCH took four).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import msgspec
from redis.asyncio import Redis

from src.common.errors import Conflict, ServiceUnavailable
from src.modules.calls.state import CallState, call_not_found

T = TypeVar("T")
LIVE_TTL = 12 * 3600  # seconds: a call (or a stale busy mark) outlives no process by more
ENDED_TTL = 3600
UNARCHIVED = "calls:unarchived"
_TRIES = 20
# KEYS: the call key, then n user keys. ARGV: the call's JSON as read ("" when absent), its new
# JSON, its TTL, the call id, the end time ("" while live), n, then per user key the value it must
# still hold ("*": any) and what to do: "set" (this call's busy mark), "del" (drop it if it still
# names this call), "" (nothing). Returns 0, writing nothing, when anything changed since the read.
_CAS = """
local n = tonumber(ARGV[6])
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
for i = 1, n do
  local want = ARGV[6 + 2 * i - 1]
  if want ~= '*' and (redis.call('GET', KEYS[1 + i]) or '') ~= want then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
for i = 1, n do
  local op = ARGV[6 + 2 * i]
  if op == 'set' then
    redis.call('SET', KEYS[1 + i], ARGV[4], 'EX', ARGV[3])
  elseif op == 'del' and redis.call('GET', KEYS[1 + i]) == ARGV[4] then
    redis.call('DEL', KEYS[1 + i])
  end
end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[n + 2], ARGV[5], ARGV[4]) end
return 1
"""

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
        self._cas = redis.register_script(_CAS)

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
        (it raises for a busy caller and marks busy callees); the write checks those busy marks
        did not change meanwhile, so that two calls never take the same user."""
        keys = [user_key(p.user_id) for p in call.participants]
        for _ in range(_TRIES):
            taken = await self._redis.mget(keys)
            attempt = msgspec.convert(msgspec.to_builtins(call), CallState)
            decide(attempt, {p.user_id for p, v in zip(call.participants, taken, strict=True) if v})
            if await self._write("", attempt, [str(v or "") for v in taken]):
                return attempt
        raise ServiceUnavailable("The call service is busy, try again", code="overloaded")

    async def update(self, call_id: uuid.UUID, change: Callable[[CallState], T]) -> tuple[CallState, CallState, T]:
        """Apply `change` to the call atomically (re-run on a concurrent change): the state
        before, the state after and what `change` returned. 404 when there is no such call."""
        for _ in range(_TRIES):
            raw = await self._redis.get(call_key(call_id))
            if not raw:
                raise call_not_found()
            before, after = _decoder.decode(raw), _decoder.decode(raw)
            result = change(after)
            if await self._write(raw, after, ["*"] * len(after.participants)):
                return before, after, result
        raise Conflict("The call changed too often at once, try again", code="concurrent_update")

    async def archived(self, *call_ids: uuid.UUID) -> None:
        """History holds these calls now: stop retrying their archive."""
        if call_ids:
            await self._redis.zrem(UNARCHIVED, *(str(i) for i in call_ids))

    async def unarchived(self, older_than: datetime, limit: int = 100) -> list[uuid.UUID]:
        """Ended calls whose archive did not happen (a crash, PostgreSQL down) before `older_than`."""
        ids = await self._redis.zrangebyscore(UNARCHIVED, "-inf", older_than.timestamp(), start=0, num=limit)
        return [uuid.UUID(str(i)) for i in ids]

    async def _write(self, expected: str | bytes, call: CallState, user_guards: list[str]) -> bool:
        """Write `call` (its state, busy marks, the archive queue) if nothing changed since the read."""
        ended = call.status == "ended"
        live = set(call.live_user_ids())
        user_args: list[str] = []
        for part, guard in zip(call.participants, user_guards, strict=True):
            user_args += [guard, "set" if part.user_id in live else "del"]
        keys = [call_key(call.id), *(user_key(p.user_id) for p in call.participants), UNARCHIVED]
        args = [expected, _encoder.encode(call), ENDED_TTL if ended else LIVE_TTL, str(call.id),
                call.ended_at.timestamp() if ended and call.ended_at else "", len(call.participants), *user_args]
        return bool(await self._cas(keys=keys, args=args))
