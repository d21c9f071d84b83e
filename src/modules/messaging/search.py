"""`GET /search`: messages here (PostgreSQL full text, 'simple' configuration, over what the
caller may read); `type=posts|users|groups` through the search queries of `src/common/queries/search.py`
(posts and users answer theirs; groups is answered below, by name, among the caller's groups).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, tuple_

from src.common.errors import ValidationFailed
from src.common.pagination import Page, clamp_limit, decode_cursor, encode_cursor, page_of
from src.common.queries.search import SearchGroups, SearchPosts, SearchUsers
from src.infra.context import AppContext
from src.modules.messaging.access import reader
from src.modules.messaging.models import conversations, members, messages
from src.modules.messaging.schemas import GroupHit, MessageView
from src.modules.messaging.text import check_text
from src.modules.messaging.views import MESSAGE_COLUMNS, message_views, not_hidden

SUPPORTED_TYPES = ("messages", "posts", "users", "groups")
_QUERIES = {"posts": SearchPosts, "users": SearchUsers, "groups": SearchGroups}


class SearchService:
    """Full-text search in the caller's conversations, newest first."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._read = reader(ctx)

    async def search(self, me: uuid.UUID, type_: str, q: str | None, limit: int | None,
                     cursor: str | None) -> Page[Any]:
        """What matches `q` among what the caller may see: messages, posts, users or groups."""
        await self._ctx.limiter.hit(self._ctx.settings.search_limit_per_user, "search", str(me))
        if type_ not in SUPPORTED_TYPES:
            raise ValidationFailed(f"search type {type_!r} is not supported (messages, posts, users, groups)",
                                   field="type", code="unsupported_type")
        q = (q or "").strip()
        if not q:
            raise ValidationFailed("q is required", field="q", code="validation_failed")
        check_text(q, "q")
        size = clamp_limit(limit)
        if type_ in _QUERIES:
            return await self._ctx.queries.ask(_QUERIES[type_](viewer_id=me, q=q, limit=size, cursor=cursor))
        return await self._messages(me, q, size, cursor)

    async def groups(self, query: SearchGroups) -> Page[GroupHit]:
        """Groups whose name contains `q`, by name: those the caller belongs to, and those open to
        join requests (`join_policy: request`) that anyone may find."""
        position = decode_cursor(query.cursor)
        pattern = "%" + query.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        name = func.lower(conversations.c.name)
        statement = (select(conversations.c.id, conversations.c.name, conversations.c.description,
                            conversations.c.created_at)
                     .outerjoin(members, (members.c.conversation_id == conversations.c.id)
                                & (members.c.user_id == query.viewer_id))
                     .where(conversations.c.kind == "group", name.like(pattern),
                            (members.c.user_id.is_not(None)) | (conversations.c.join_policy == "request"))
                     .order_by(name, conversations.c.id).limit(query.limit + 1))
        if position is not None:
            try:
                after = (str(position["n"]), uuid.UUID(str(position["id"])))
            except (KeyError, ValueError):
                raise ValidationFailed("cursor is malformed", field="cursor", code="invalid_cursor") from None
            statement = statement.where(tuple_(name, conversations.c.id) > after)
        async with self._read.connect() as conn:
            rows = (await conn.execute(statement)).all()
        hits = [GroupHit(id=r.id, name=r.name or "", description=r.description, created_at=r.created_at)
                for r in rows]
        return page_of(hits, query.limit, lambda h: {"n": h.name.lower(), "id": str(h.id)})

    async def _messages(self, me: uuid.UUID, q: str, size: int, cursor: str | None) -> Page[MessageView]:
        """Messages matching `q` in conversations the caller belongs to (not deleted, not hidden)."""
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
