"""Message search: PostgreSQL full text ('simple' configuration) over what the caller may read.

Only `type=messages` exists for now; users, posts and groups answer 400 `unsupported_type`
until their modules provide search.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from src.common.errors import ValidationFailed
from src.common.pagination import Page, clamp_limit, decode_cursor, encode_cursor
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.models import members, messages
from src.modules.messaging.schemas import MessageView
from src.modules.messaging.text import check_text
from src.modules.messaging.views import MESSAGE_COLUMNS, message_views, not_hidden

SUPPORTED_TYPES = ("messages",)


class SearchService:
    """Full-text search in the caller's conversations, newest first."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._read = reader(ctx)

    async def search(self, me: uuid.UUID, type_: str, q: str | None, limit: int | None,
                     cursor: str | None) -> Page[MessageView]:
        """Messages matching `q` in conversations the caller belongs to (not deleted, not hidden)."""
        await self._ctx.limiter.hit(self._ctx.settings.search_limit_per_user, "search", str(me))
        if type_ not in SUPPORTED_TYPES:
            raise ValidationFailed(f"search type {type_!r} is not supported yet (only messages)", field="type",
                                   code="unsupported_type")
        q = (q or "").strip()
        if not q:
            raise ValidationFailed("q is required", field="q", code="validation_failed")
        check_text(q, "q")
        size = clamp_limit(limit)
        before = _before_id(decode_cursor(cursor))
        tsquery = func.websearch_to_tsquery("simple", q)
        query = (select(*MESSAGE_COLUMNS)
                 .join(members, (members.c.conversation_id == messages.c.conversation_id)
                       & (members.c.user_id == me) & (messages.c.seq > members.c.joined_seq))
                 .where(messages.c.search.op("@@")(tsquery), messages.c.deleted_at.is_(None), not_hidden(me))
                 .order_by(messages.c.id.desc()).limit(size + 1))
        if before is not None:
            query = query.where(messages.c.id < before)
        async with self._read.connect() as conn:
            rows = (await conn.execute(query)).all()
            items = await message_views(conn, rows[:size], me)
        next_cursor = encode_cursor({"id": str(items[-1].id)}) if len(rows) > size else None
        return Page(items=items, next_cursor=next_cursor)


def _before_id(position: dict[str, object] | None) -> uuid.UUID | None:
    if position is None:
        return None
    try:
        return uuid.UUID(str(position["id"]))
    except (KeyError, ValueError):
        raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None
