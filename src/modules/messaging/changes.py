"""The per-user change log behind `/sync`, its Redis hot copy, and the work done after a commit.

Every change a user must see is a row `messaging.changes (user_id, position)` written in the
same transaction as the change itself. `position` comes from the user's `sync_heads` row,
incremented under its row lock: positions are gapless and, per user, in commit order (a
transaction that takes position n+1 waits for the one holding n to commit), so a reader that
saw position n never misses a row committed later. Head rows are locked in user-id order,
which keeps concurrent writers free of deadlocks.

After the commit, the entries are copied to a capped Redis stream `sync:{user_id}` with entry
ids `{position}-1`. Redis is only a cache: an XADD that arrives out of order is refused by
Redis and simply missing from the stream, and the reader serves from the stream only a
contiguous run starting right after the cursor (positions are gapless, so a hole is visible).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

import msgspec
import structlog
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.realtime import Realtime
from src.infra import metrics
from src.infra.redis import REDIS_ERRORS
from src.infra.redis_tick import run_script
from src.infra.uow import UnitOfWork

log = structlog.get_logger("chatty.messaging")

STREAM_MAXLEN = 1000
STREAM_TTL = 7 * 24 * 3600  # seconds; refreshed by every XADD

RECORD_SQL = text("""
WITH heads AS (
    INSERT INTO messaging.sync_heads AS h (user_id, position)
    SELECT u, 1 FROM unnest(CAST(:user_ids AS uuid[])) AS u ORDER BY u
    ON CONFLICT (user_id) DO UPDATE SET position = h.position + 1
    RETURNING h.user_id, h.position
)
INSERT INTO messaging.changes (user_id, position, type, conversation_id, payload)
SELECT user_id, position, CAST(:type AS varchar), CAST(:conversation_id AS uuid), CAST(:payload AS jsonb)
FROM heads
RETURNING user_id, position
""")


# Several changes in one statement; a user named in k of them takes k consecutive positions,
# in the order of the items.
RECORD_MANY_SQL = text("""
WITH items AS (
    SELECT t.user_id, t.item FROM unnest(CAST(:user_ids AS uuid[]), CAST(:items AS int[])) AS t(user_id, item)
), counted AS (
    SELECT user_id, count(*) AS n FROM items GROUP BY user_id
), heads AS (
    INSERT INTO messaging.sync_heads AS h (user_id, position)
    SELECT user_id, n FROM counted ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET position = h.position + EXCLUDED.position
    RETURNING h.user_id, h.position
), numbered AS (
    SELECT i.user_id, i.item,
           heads.position - counted.n + row_number() OVER (PARTITION BY i.user_id ORDER BY i.item) AS position
    FROM items i JOIN counted ON counted.user_id = i.user_id JOIN heads ON heads.user_id = i.user_id
)
INSERT INTO messaging.changes (user_id, position, type, conversation_id, payload)
SELECT n.user_id, n.position, (CAST(:types AS varchar[]))[n.item], CAST(:conversation_id AS uuid),
       (CAST(:payloads AS jsonb[]))[n.item]
FROM numbered n
RETURNING user_id, position, type
""")


# XADD one change to each user's stream (KEYS), each with its own entry id (ARGV[6...]), and refresh the
# streams' TTL. A refused XADD (an id not after the stream's last) does not stop the others.
APPEND_SCRIPT = """
for i, key in ipairs(KEYS) do
    redis.pcall('XADD', key, 'MAXLEN', '~', ARGV[1], ARGV[5 + i], 't', ARGV[3], 'c', ARGV[4], 'd', ARGV[5])
    redis.call('EXPIRE', key, ARGV[2])
end
return 0
"""


def stream_key(user_id: uuid.UUID | str) -> str:
    return f"sync:{user_id}"


@dataclass(frozen=True)
class Entry:
    """A committed change of one user (what the stream holds)."""

    user_id: uuid.UUID
    position: int
    type: str
    conversation_id: uuid.UUID | None
    payload: str  # JSON


@dataclass
class Pending:
    """Work for after the commit: stream entries to copy and socket events to emit."""

    entries: list[Entry] = field(default_factory=list)
    emits: list[tuple[str, Any, list[uuid.UUID], str | None]] = field(default_factory=list)

    def emit(self, event: str, data: Any, user_ids: list[uuid.UUID], skip_sid: str | None = None) -> None:
        if user_ids:
            self.emits.append((event, data, user_ids, skip_sid))


def encode(payload: Any) -> str:
    """A payload as JSON text (for PostgreSQL and the stream)."""
    return msgspec.json.encode(payload).decode()


async def record(conn: AsyncConnection, pending: Pending, user_ids: list[uuid.UUID], type_: str,
                 conversation_id: uuid.UUID | None, payload: Any, *, emit: bool = True,
                 skip_sid: str | None = None) -> None:
    """Append one change to the logs of `user_ids` (in the caller's transaction).

    With `emit`, the same payload goes to those users' sockets after the commit.
    """
    users = sorted(set(user_ids))
    if not users:
        return
    data = encode(payload)
    rows = (await conn.execute(RECORD_SQL, {"user_ids": users, "type": type_,
                                            "conversation_id": conversation_id, "payload": data})).all()
    pending.entries.extend(Entry(r.user_id, r.position, type_, conversation_id, data) for r in rows)
    if emit:
        pending.emit(type_, payload, users, skip_sid)


async def record_many(conn: AsyncConnection, pending: Pending, conversation_id: uuid.UUID | None,
                      changes: list[tuple[str, Any, list[uuid.UUID]]], *, skip_sid: str | None = None) -> None:
    """Like `record` for several (type, payload, user_ids) at once: one statement, emitted after the commit."""
    changes = [(t, p, sorted(set(u))) for t, p, u in changes if u]
    if not changes:
        return
    assert len({t for t, _, _ in changes}) == len(changes), "one change per type"
    data = [encode(p) for _, p, _ in changes]
    user_ids = [u for _, _, users in changes for u in users]
    items = [i for i, (_, _, users) in enumerate(changes, start=1) for _ in users]
    rows = (await conn.execute(RECORD_MANY_SQL, {
        "user_ids": user_ids, "items": items, "types": [t for t, _, _ in changes], "payloads": data,
        "conversation_id": conversation_id})).all()
    by_type = {t: d for (t, _, _), d in zip(changes, data, strict=True)}
    pending.entries.extend(Entry(r.user_id, r.position, r.type, conversation_id, by_type[r.type]) for r in rows)
    for type_, payload, users in changes:
        pending.emit(type_, payload, users, skip_sid)


class SyncStream:
    """The Redis copy of recent changes: written after commits, read when it is complete."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._append = redis.register_script(APPEND_SCRIPT)

    async def append(self, entries: list[Entry]) -> None:
        """XADD the entries, in the turn's shared write on the lean connection (redis_tick.py: no
        caller waits for another's round trip, and commands reach Redis in call order); refusals
        and errors only cost a cache miss. Entries sharing their change (a message's for both
        members) go as one script call (`run_script`: EVALSHA, loaded again when Redis lacks it):
        a message's two XADDs and two EXPIREs as four commands were a good part of the send's
        Redis client CPU."""
        if not entries:
            return
        groups: dict[tuple[str, str, str], list[Entry]] = {}
        for e in entries:
            groups.setdefault((e.type, str(e.conversation_id or ""), e.payload), []).append(e)
        if len(groups) == 1:  # a message's change: no task for it
            [(key, group)] = groups.items()
            await self._append_group(key, group)
        else:
            await asyncio.gather(*(self._append_group(key, group) for key, group in groups.items()))

    async def _append_group(self, change: tuple[str, str, str], group: list[Entry]) -> None:
        type_, conversation, payload = change
        try:
            await run_script(self._append, keys=[stream_key(e.user_id) for e in group],
                             args=[STREAM_MAXLEN, STREAM_TTL, type_, conversation, payload,
                                   *(f"{e.position}-1" for e in group)])
        except REDIS_ERRORS as exc:
            log.warning("messaging.stream_append_failed", error=repr(exc))

    async def read(self, user_id: uuid.UUID, after: int, limit: int) -> tuple[list[Entry], bool] | None:
        """Up to `limit` entries after position `after`, or None when the stream cannot prove them."""
        try:
            rows = cast(list[tuple[str, dict[str, str]]],
                        await self._redis.xrange(stream_key(user_id), min=f"{after + 1}-0", max="+",
                                                 count=limit + 1))
        except REDIS_ERRORS as exc:
            metrics.REDIS_FALLBACKS.labels("messaging_sync").inc()
            log.warning("messaging.stream_read_failed", error=repr(exc))
            return None
        run: list[Entry] = []
        expected = after + 1
        for entry_id, fields in rows:
            position = int(str(entry_id).split("-", 1)[0])
            if position != expected:
                break
            conversation = fields.get("c") or None
            run.append(Entry(user_id, position, fields["t"], uuid.UUID(conversation) if conversation else None,
                             fields["d"]))
            expected += 1
        if not run:
            return None
        if len(run) > limit:
            return run[:limit], True
        # A hole after the run: more exists (the next read goes to PostgreSQL for it).
        return run, len(rows) > len(run)


class Fanout:
    """Runs a `Pending` after the commit: the stream copy and the emits, concurrently."""

    def __init__(self, stream: SyncStream, realtime: Realtime) -> None:
        self._stream = stream
        self._realtime = realtime

    def after_commit(self, tx: UnitOfWork) -> Pending:
        """A `Pending` that `tx` flushes once it has committed (nothing on a rollback)."""
        pending = Pending()
        tx.on_commit(lambda: self.flush(pending))
        return pending

    async def flush(self, pending: Pending) -> None:
        await asyncio.gather(*self.jobs(pending))

    def jobs(self, pending: Pending) -> list[Coroutine[Any, Any, None]]:
        """The stream copy and the emits of `pending`, to run concurrently (e.g. with other after-commit work)."""
        jobs = [self._stream.append(pending.entries)]
        jobs += [self._realtime.emit_to_users(event, data, users, skip_sid=sid)
                 for event, data, users, sid in pending.emits]
        return jobs
