"""`/sync`: everything a user missed since a cursor, in order and once (see `changes.py`); group
messages come after the log is read up, from their own stream (see `group_stream.py`)."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.errors import AppError, ValidationFailed
from src.common.pagination import clamp_limit, decode_cursor, encode_cursor
from src.infra.context import AppContext
from src.modules.messaging import group_stream
from src.modules.messaging.access import reader
from src.modules.messaging.changes import SyncStream
from src.modules.messaging.models import sync_heads
from src.modules.messaging.schemas import SyncItem, SyncPage

RETENTION_DAYS = 45  # cursors stay valid at least 30 days; `prune_changes` removes older rows


READ_SQL = text("""
SELECT h.position AS head, c.position, c.type, c.conversation_id, c.payload
FROM messaging.sync_heads h LEFT JOIN LATERAL (
    SELECT x.position, x.type, x.conversation_id, x.payload FROM messaging.changes x
    WHERE x.user_id = h.user_id AND x.position > :after ORDER BY x.position LIMIT :n) AS c ON true
WHERE h.user_id = :me
ORDER BY c.position
""").columns(payload=JSONB)


class CursorExpired(AppError):
    status, code, title = 410, "cursor_expired", "Gone"


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor")


class SyncService:
    """Reads a user's change log: the Redis stream when it holds the run, PostgreSQL otherwise."""

    def __init__(self, ctx: AppContext, stream: SyncStream) -> None:
        self._read = reader(ctx)
        self._stream = stream

    async def read(self, me: uuid.UUID, cursor: str | None, limit: int | None) -> SyncPage:
        """Changes after `cursor`; without one, the current head and no items."""
        size = clamp_limit(limit)
        position = decode_cursor(cursor)
        if position is None:
            async with self._read.connect() as conn:
                head, xmin = await self._head(me, conn), await group_stream.current_xmin(conn)
            return SyncPage(items=[], next_cursor=encode_cursor({"p": head, "x": xmin}), has_more=False)
        after = position.get("p")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise _bad_cursor()
        served = await self._stream.read(me, after, size)
        if served is not None:
            entries, has_more = served
            items = [SyncItem(position=e.position, type=e.type, conversation_id=e.conversation_id,
                              data=msgspec.json.decode(e.payload)) for e in entries]
        else:
            items, has_more = await self._from_postgres(me, after, size)
        last = items[-1].position if items else after
        groups: dict[str, Any] = {k: position[k] for k in ("x", "h", "k") if k in position}
        if not has_more and len(items) < size:  # the log is read up: group messages (group_stream.py)
            async with self._read.connect() as conn:
                more, groups, has_more = await group_stream.read_window(conn, me, groups, last, size - len(items))
            items += more
        return SyncPage(items=items, next_cursor=encode_cursor({"p": last, **groups}), has_more=has_more)

    @staticmethod
    async def _head(me: uuid.UUID, conn: AsyncConnection) -> int:
        head = await conn.scalar(select(sync_heads.c.position).where(sync_heads.c.user_id == me))
        return int(head or 0)

    async def _from_postgres(self, me: uuid.UUID, after: int, size: int) -> tuple[list[SyncItem], bool]:
        async with self._read.connect() as conn:  # the head and the rows from one snapshot
            rows = (await conn.execute(READ_SQL, {"me": me, "after": after, "n": size + 1})).all()
        head = int(rows[0].head) if rows else 0
        found = [r for r in rows if r.position is not None]
        pruned = found[0].position != after + 1 if found else after < head  # positions are gapless
        if pruned:
            raise CursorExpired("The cursor is older than the change history: fetch again without a cursor")
        if after > head:
            raise _bad_cursor()
        items = [SyncItem(position=r.position, type=r.type, conversation_id=r.conversation_id, data=r.payload)
                 for r in found[:size]]
        return items, len(found) > size
