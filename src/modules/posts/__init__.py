"""posts — posts, comments, reactions and the feed.

Tables (schema `posts`): posts (counts `comment_count`, `reaction_counts` kept exact under a row
lock; generated `tsvector` for search), comments, reactions (one per user per post),
pull_authors (authors whose posts feeds pull at read time instead of fan-out).
Redis: `feed:{user_id}` capped timelines (FEED_TIMELINE_SIZE, TTL FEED_TIMELINE_TTL; see
timeline.py), `feed:{user_id}:building` (rebuild lock, 30 s), `feedpost:{post_id}` pre-encoded
posts (FEED_POST_CACHE_TTL; tombstones 30 s) and `feedgraph:{user_id}` graph tokens (see
feed_cache.py).
Publishes: `posts.post_created.v1`, `posts.post_deleted.v1`, `posts.comment_created.v1`,
`posts.comment_deleted.v1`, `posts.post_reaction_set.v1`, `posts.post_reaction_removed.v1`.
Listens: `posts.post_created.v1` (enqueues the fan-out), `follows.follow_created.v1` /
`follows.follow_deleted.v1` / `blocks.user_blocked.v1` (drop the affected timelines; reads
filter at once anyway; inline, with `blocks.user_unblocked.v1`, they also drop the feed's graph
tokens), its own post, comment and reaction events (inline: the feed's cached post goes),
`users.user_deleted.v1` (the user's posts, comments and reactions go,
counts corrected; inbox-guarded, in a worker).
Asks: BlockedEitherWay, GetBlockState, FollowingIds, FollowsAmong, FollowerCount,
FollowerIdsAfter (blocks, follows), GetProfiles (users), CanViewProfile (privacy),
GetAttachableMedia / GetMediaViews (media; only for posts that carry media).
Answers: CanViewPost, SearchPosts.
Socket events in: post:watch, post:unwatch {post_id} (viewers of the post only).
Socket events out: post:new / post:updated / post:deleted (the author and the followers allowed
to see it, from workers), comment:new and post:reaction (the post's author and `post:{id}` watchers).
Tasks (queue `feed`): `posts.fanout` (timelines + post:new), `posts.broadcast` (post:updated / deleted).
Feelings (fixed list): happy, loved, sad, excited, thankful, angry, blessed, tired.
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.di import Provide

from src.common.pagination import Page
from src.common.queries.posts import CanViewPost
from src.common.queries.search import SearchPosts
from src.infra.context import AppContext
from src.infra.http.principal import optional_principal
from src.infra.modules import Module, ModuleParts
from src.modules.posts.actors import TASKS
from src.modules.posts.comments import CommentsService
from src.modules.posts.controller import PostsController, UserReactionsController
from src.modules.posts.feed import FeedService
from src.modules.posts.gateway import socket_handlers
from src.modules.posts.listeners import register_listeners
from src.modules.posts.reactions import ReactionsService
from src.modules.posts.search import search_posts
from src.modules.posts.service import PostsService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the posts services, listeners, query handlers, routes and socket handlers."""
    feed = FeedService(ctx)
    service = PostsService(ctx, feed.big_authors, feed.cache)
    services: dict[str, Any] = {
        "posts_service": service, "feed_service": feed,
        "comments_service": CommentsService(ctx, service), "reactions_service": ReactionsService(ctx, service),
    }
    register_listeners(ctx, feed)

    async def can_view_post(query: CanViewPost) -> bool:
        return await service.can_view_post(query.viewer_id, query.post_id)

    async def search(query: SearchPosts) -> Page[Any]:
        return await search_posts(ctx, query)

    ctx.queries.register(CanViewPost, can_view_post)
    ctx.queries.register(SearchPosts, search)
    dependencies = {name: Provide(_constant(value), sync_to_thread=False) for name, value in services.items()}
    dependencies["viewer"] = Provide(optional_principal)
    router = Router(path="/", route_handlers=[PostsController, UserReactionsController], dependencies=dependencies)
    return ModuleParts(route_handlers=[router], socket_handlers=socket_handlers(ctx, service))


def _constant(value: object):  # type: ignore[no-untyped-def]
    return lambda: value


module = Module(name="posts", build=build, tasks=TASKS)
