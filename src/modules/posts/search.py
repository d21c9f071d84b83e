"""`SearchPosts`: full text ('simple' configuration) over the posts the viewer may see, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, tuple_

from src.common.pagination import Page, decode_time_cursor, page_of, time_position
from src.common.queries.search import SearchPosts
from src.infra.context import AppContext
from src.modules.posts.models import posts
from src.modules.posts.views import post_views, reads, select_posts
from src.modules.posts.visibility import load_viewer, visible_to


async def search_posts(ctx: AppContext, query: SearchPosts) -> Page[Any]:
    """Posts matching every word of `q` that the viewer may see."""
    position = decode_time_cursor(query.cursor)
    viewer = await load_viewer(ctx, query.viewer_id)
    statement = (select_posts(query.viewer_id)
                 .where(posts.c.search.op("@@")(func.websearch_to_tsquery("simple", query.q)), visible_to(viewer))
                 .order_by(posts.c.created_at.desc(), posts.c.id.desc()).limit(query.limit + 1))
    if position is not None:
        statement = statement.where(tuple_(posts.c.created_at, posts.c.id) < position)
    async with reads(ctx).connect() as session:
        rows = list((await session.execute(statement)).all())
    page = page_of(rows, query.limit, lambda r: time_position(r.created_at, r.id))
    return Page(items=await post_views(ctx, page.items), next_cursor=page.next_cursor)
