"""The group half of `/sync`: group messages read from the messages table, not from per-member rows.

A group message writes no row per member (sending.py), so a member's change log does not hold
it. Instead every message row carries `xid`, the id of the transaction that wrote it, and
`/sync` reads the group messages of the caller's current groups (after their `joined_seq`)
whose `xid` lies in a window `[lo, hi)`, where `hi` is `pg_snapshot_xmin(pg_current_snapshot())`
when the window opens: every transaction below it has committed or aborted, so the window is
final and nothing committed later can land in it. The next window starts at `hi`. The cost: a
group message appears in `/sync` once every older writing transaction has ended (a long one
anywhere in the database delays it, never loses it); sockets deliver it at once meanwhile.

Cursor fields: `x` (the window's start), `h` (its end, while a window is paged through) and `k`
(the last (xid, conversation, seq) returned inside it). A removed member reads nothing of the
group any more: only current memberships are read.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.errors import ValidationFailed
from src.modules.messaging.schemas import SyncItem
from src.modules.messaging.views import message_views

XMIN_SQL = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin")

WINDOW_SQL = text("""
SELECT x.id, x.conversation_id, x.seq, x.sender_id, x.sender_deleted, x.client_msg_id, x.body, x.media_ids,
       x.reply_to, x.created_at, x.edited_at, x.deleted_at, x.xid::text AS xid
FROM messaging.members m
JOIN messaging.conversations c ON c.id = m.conversation_id AND c.kind = 'group'
JOIN LATERAL (
    SELECT * FROM messaging.messages y
    WHERE y.conversation_id = m.conversation_id AND y.seq > m.joined_seq
      AND y.xid >= CAST(:lo AS xid8) AND y.xid < CAST(:hi AS xid8)
      AND (CAST(:kx AS xid8) IS NULL
           OR (y.xid, y.conversation_id, y.seq) > (CAST(:kx AS xid8), CAST(:kc AS uuid), CAST(:ks AS bigint)))
    ORDER BY y.xid, y.seq LIMIT :n) AS x ON true
WHERE m.user_id = :me
ORDER BY x.xid, x.conversation_id, x.seq
LIMIT :n
""")


def _bad_cursor() -> ValidationFailed:
    return ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor")


async def current_xmin(conn: AsyncConnection) -> str:
    """Where a new window ends: below it, every transaction has ended."""
    return str(await conn.scalar(XMIN_SQL))


def _xid(value: Any) -> str:
    if not isinstance(value, str) or not value.isdigit():
        raise _bad_cursor()
    return value


async def read_window(conn: AsyncConnection, me: uuid.UUID, position: dict[str, Any], at: int,
                      size: int) -> tuple[list[SyncItem], dict[str, Any], bool]:
    """Up to `size` group messages after the cursor's group position: (items as `message:new`
    at log position `at`, the next group position, whether more are waiting in this window)."""
    lo = position.get("x")
    if lo is None:  # a cursor from before group streams: from now on
        return [], {"x": await current_xmin(conn)}, False
    lo = _xid(lo)
    hi = _xid(position["h"]) if "h" in position else await current_xmin(conn)
    key = position.get("k")
    if key is not None and not (isinstance(key, list) and len(key) == 3):
        raise _bad_cursor()
    try:
        params = {"me": me, "lo": int(lo), "hi": int(hi), "n": size + 1, "kx": int(_xid(key[0])) if key else None,
                  "kc": uuid.UUID(str(key[1])) if key else None, "ks": int(key[2]) if key else None}
    except (ValueError, TypeError):
        raise _bad_cursor() from None
    rows = (await conn.execute(WINDOW_SQL, params)).all()
    more = len(rows) > size
    rows = rows[:size]
    views = await message_views(conn, rows, None)
    items = [SyncItem(position=at, type="message:new", conversation_id=v.conversation_id,
                      data=msgspec.to_builtins(v)) for v in views]
    if more:
        last = rows[-1]
        return items, {"x": lo, "h": hi, "k": [last.xid, str(last.conversation_id), last.seq]}, True
    return items, {"x": hi}, False
