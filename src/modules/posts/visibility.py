"""Who may see which post: `public` everyone, `followers` the author's followers, `private` the
author; never someone blocked either way with the author. Applied in SQL for lists (`visible_to`)
and per post (`can_view`)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ARRAY, and_, any_, bindparam, false, literal, not_, or_
from sqlalchemy.dialects.postgresql import UUID

from src.common.queries.graph import BlockedEitherWay, FollowingIds, FollowsAmong, GetBlockState
from src.infra.context import AppContext
from src.modules.posts.models import posts

# Whom a viewer follows is loaded whole for list predicates; beyond this the oldest extra
# followees' followers-only posts may be missed in lists (single posts are always exact).
MAX_FOLLOWEES = 20_000


def in_ids(column: Any, ids: list[uuid.UUID]) -> Any:
    """`column = ANY($1)` with one array parameter: a long IN list would be compiled and bound
    element by element on every request (milliseconds for a few hundred ids)."""
    return column == any_(bindparam(None, ids, type_=ARRAY(UUID(as_uuid=True))))  # type: ignore[arg-type]


def not_in_ids(column: Any, ids: list[uuid.UUID]) -> Any:
    return not_(in_ids(column, ids))


@dataclass(frozen=True)
class Viewer:
    """A viewer and the graph facts the predicate needs (`id` None: signed out)."""

    id: uuid.UUID | None
    following: frozenset[uuid.UUID] = field(default_factory=frozenset)
    blocked: frozenset[uuid.UUID] = field(default_factory=frozenset)

    @property
    def followed_unblocked(self) -> list[uuid.UUID]:
        return list(self.following - self.blocked)

    @property
    def feed_authors(self) -> frozenset[uuid.UUID]:
        """The viewer and the followed authors not blocked either way (whose posts the feed shows)."""
        return (self.following - self.blocked) | {self.id} if self.id is not None else frozenset()


async def load_viewer(ctx: AppContext, viewer_id: uuid.UUID | None) -> Viewer:
    """The viewer's followees and blocks (two indexed reads, concurrently)."""
    if viewer_id is None:
        return Viewer(id=None)
    following, blocked = await asyncio.gather(
        ctx.queries.ask(FollowingIds(user_id=viewer_id, limit=MAX_FOLLOWEES)),
        ctx.queries.ask(BlockedEitherWay(user_id=viewer_id)))
    return Viewer(id=viewer_id, following=frozenset(following), blocked=frozenset(blocked))


def visible_to(viewer: Viewer) -> Any:
    """A SQL predicate over `posts` true for the posts `viewer` may see."""
    if viewer.id is None:
        return posts.c.privacy == "public"
    blocked = list(viewer.blocked)
    not_blocked = not_in_ids(posts.c.author_id, blocked) if blocked else literal(True)
    followed = viewer.followed_unblocked
    by_follow = (and_(posts.c.privacy == "followers", in_ids(posts.c.author_id, followed)) if followed else false())
    return or_(posts.c.author_id == viewer.id,
               and_(not_blocked, or_(posts.c.privacy == "public", by_follow)))


def viewer_sees(viewer: Viewer, author_id: uuid.UUID, privacy: str) -> bool:
    """`visible_to` in Python, for rows already loaded."""
    if viewer.id == author_id:
        return True
    if author_id in viewer.blocked:
        return False
    if privacy == "public":
        return True
    return privacy == "followers" and author_id in viewer.following


async def can_view(ctx: AppContext, viewer_id: uuid.UUID | None, author_id: uuid.UUID, privacy: str) -> bool:
    """Whether `viewer_id` may see a post of `author_id` with this privacy (exact pair checks)."""
    if viewer_id == author_id:
        return True
    if privacy == "private":
        return False
    if viewer_id is None:
        return privacy == "public"
    if (await ctx.queries.ask(GetBlockState(user_a=viewer_id, user_b=author_id))).any:
        return False
    if privacy == "public":
        return True
    return author_id in await ctx.queries.ask(FollowsAmong(follower_id=viewer_id, followee_ids=[author_id]))
