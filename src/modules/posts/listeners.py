"""What posts does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked, UserUnblocked
from src.common.events.follows import FollowCreated, FollowDeleted
from src.common.events.posts import (
    CommentCreated,
    CommentDeleted,
    PostCreated,
    PostDeleted,
    PostReactionRemoved,
    PostReactionSet,
)
from src.common.events.users import UserDeleted
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.posts.accounts import remove_user_content
from src.modules.posts.actors import fanout_task
from src.modules.posts.feed import FeedService


def register_listeners(ctx: AppContext, feed: FeedService) -> None:
    """Subscribe the posts listeners to the bus."""

    async def fan_out_new_post(event: PostCreated) -> None:
        # Idempotent by nature: a timeline holds a post once; emits are hints.
        ctx.tasks.enqueue(fanout_task, post_id=str(event.post_id))

    async def refresh_feed_on_follow(event: FollowCreated) -> None:
        # The new followee's earlier posts are not in the timeline: the next read rebuilds it.
        await feed.timelines.drop(event.follower_id)

    async def refresh_feed_on_unfollow(event: FollowDeleted) -> None:
        # Reads already filter the author out; dropping frees the timeline of their posts.
        await feed.timelines.drop(event.follower_id)

    async def refresh_feeds_on_block(event: UserBlocked) -> None:
        await feed.timelines.drop(event.blocker_id)
        await feed.timelines.drop(event.blocked_id)

    async def remove_content_on_user_deleted(tx: UnitOfWork, event: UserDeleted) -> None:
        touched = await remove_user_content(tx, event.user_id)
        # Before the commit: readers cannot cache the old counts again while it lands.
        await feed.cache.tombstone(touched)

    # The feed's caches (feed_cache.py), inline: the caller's next feed read must see the change.
    async def forget_graph_on_follow(event: FollowCreated | FollowDeleted) -> None:
        await feed.cache.forget_graph([event.follower_id])

    async def forget_graphs_on_block(event: UserBlocked | UserUnblocked) -> None:
        await feed.cache.forget_graph([event.blocker_id, event.blocked_id])

    async def forget_cached_post(event: PostDeleted | CommentCreated | CommentDeleted) -> None:
        await feed.cache.tombstone([event.post_id])

    async def forget_reacted_post(event: PostReactionSet | PostReactionRemoved) -> None:
        # The counts changed, and the reacting user's cached reactions too.
        await feed.cache.tombstone([event.post_id], forget_graph_of=event.user_id)

    async def forget_graph_on_post(event: PostCreated) -> None:
        await feed.cache.forget_graph([event.author_id])  # their newest own post changed

    ctx.bus.subscribe_idempotent(PostCreated, "posts.fan_out_new_post", fan_out_new_post)
    ctx.bus.subscribe_idempotent(FollowCreated, "posts.refresh_feed_on_follow", refresh_feed_on_follow)
    ctx.bus.subscribe_idempotent(FollowDeleted, "posts.refresh_feed_on_unfollow", refresh_feed_on_unfollow)
    ctx.bus.subscribe_idempotent(UserBlocked, "posts.refresh_feeds_on_block", refresh_feeds_on_block)
    inline = {"inline": True}
    ctx.bus.subscribe_idempotent(FollowCreated, "posts.feed_graph_on_follow", forget_graph_on_follow, **inline)
    ctx.bus.subscribe_idempotent(FollowDeleted, "posts.feed_graph_on_unfollow", forget_graph_on_follow, **inline)
    ctx.bus.subscribe_idempotent(UserBlocked, "posts.feed_graph_on_block", forget_graphs_on_block, **inline)
    ctx.bus.subscribe_idempotent(UserUnblocked, "posts.feed_graph_on_unblock", forget_graphs_on_block, **inline)
    ctx.bus.subscribe_idempotent(PostDeleted, "posts.feed_post_on_delete", forget_cached_post, **inline)
    ctx.bus.subscribe_idempotent(CommentCreated, "posts.feed_post_on_comment", forget_cached_post, **inline)
    ctx.bus.subscribe_idempotent(CommentDeleted, "posts.feed_post_on_uncomment", forget_cached_post, **inline)
    ctx.bus.subscribe_idempotent(PostReactionSet, "posts.feed_post_on_reaction", forget_reacted_post, **inline)
    ctx.bus.subscribe_idempotent(PostReactionRemoved, "posts.feed_post_on_unreaction", forget_reacted_post,
                                 **inline)
    ctx.bus.subscribe_idempotent(PostCreated, "posts.feed_graph_on_post", forget_graph_on_post, **inline)
    ctx.bus.subscribe(UserDeleted, "posts.remove_content_on_user_deleted", remove_content_on_user_deleted,
                      worker=True)
