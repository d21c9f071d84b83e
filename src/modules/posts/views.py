"""Turning post rows into `PostView`s: one query for the rows (with the viewer's reaction),
one for the authors' profiles, one for media only when some post carries media."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, and_, null, select
from sqlalchemy.ext.asyncio import AsyncEngine

from src.common.errors import NotFound
from src.common.queries.media import GetMediaViews
from src.common.queries.users import GetProfiles
from src.infra.context import AppContext
from src.modules.posts.models import posts, reactions
from src.modules.posts.schemas import PostView

POST_COLUMNS = [posts.c.id, posts.c.author_id, posts.c.body, posts.c.bg_color, posts.c.feelings,
                posts.c.gif_url, posts.c.media_ids, posts.c.privacy, posts.c.comment_count,
                posts.c.reaction_counts, posts.c.created_at, posts.c.edited_at]


def select_posts(viewer_id: uuid.UUID | None) -> Select[Any]:
    """SELECT of the view columns plus `my_reaction` (the viewer's own reaction type)."""
    if viewer_id is None:
        return select(*POST_COLUMNS, null().label("my_reaction"))
    mine = (select(reactions.c.type).where(and_(reactions.c.post_id == posts.c.id, reactions.c.user_id == viewer_id))
            .scalar_subquery().label("my_reaction"))
    return select(*POST_COLUMNS, mine)


class PostRow(NamedTuple):
    """A post row read by asyncpg directly (`POST_SQL_COLUMNS`), with attribute access like a
    SQLAlchemy row."""

    id: uuid.UUID
    author_id: uuid.UUID
    body: str | None
    bg_color: str | None
    feelings: str | None
    gif_url: str | None
    media_ids: list[uuid.UUID]
    privacy: str
    comment_count: int
    reaction_counts: dict[str, int]
    created_at: datetime
    edited_at: datetime | None
    my_reaction: str | None


# `select_posts` as SQL text for Database.fetch ($1: the viewer); rows become `PostRow(*record)`.
POST_SQL_COLUMNS = (
    "p.id, p.author_id, p.body, p.bg_color, p.feelings, p.gif_url, p.media_ids, p.privacy, p.comment_count, "
    "p.reaction_counts, p.created_at, p.edited_at, "
    "(SELECT r.type FROM posts.reactions r WHERE r.post_id = p.id AND r.user_id = $1) AS my_reaction")


def reads(ctx: AppContext) -> AsyncEngine:
    """The engine for single-statement reads: autocommit skips the BEGIN / ROLLBACK round trips."""
    engine = _READS.get(id(ctx))
    if engine is None:
        engine = _READS[id(ctx)] = ctx.db.engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


_READS: dict[int, AsyncEngine] = {}


def post_not_found() -> NotFound:
    return NotFound("No such post", code="post_not_found")


async def post_views(ctx: AppContext, rows: Sequence[Any]) -> list[PostView]:
    """Views of these rows, in order, with author profiles and media."""
    if not rows:
        return []
    profiles = await ctx.queries.ask(GetProfiles(user_ids=list({r.author_id for r in rows})))
    media_ids = [m for r in rows for m in r.media_ids]
    media = await ctx.queries.ask(GetMediaViews(media_ids=media_ids)) if media_ids else {}
    return [PostView(
        id=r.id, author_id=r.author_id, author=profiles.get(r.author_id), body=r.body, bg_color=r.bg_color,
        feelings=r.feelings, gif_url=r.gif_url, media_ids=list(r.media_ids),
        media=[media[m] for m in r.media_ids if m in media], privacy=r.privacy, comment_count=r.comment_count,
        reaction_counts={k: v for k, v in r.reaction_counts.items() if v > 0},
        my_reaction=r.my_reaction,
        created_at=r.created_at, edited_at=r.edited_at) for r in rows]
