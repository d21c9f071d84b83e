"""What posts does when events arrive (each listener idempotent)."""

from __future__ import annotations

from src.common.events.blocks import UserBlocked
from src.common.events.follows import FollowCreated, FollowDeleted
from src.common.events.posts import PostCreated
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
        await remove_user_content(tx, event.user_id)

    ctx.bus.subscribe_idempotent(PostCreated, "posts.fan_out_new_post", fan_out_new_post)
    ctx.bus.subscribe_idempotent(FollowCreated, "posts.refresh_feed_on_follow", refresh_feed_on_follow)
    ctx.bus.subscribe_idempotent(FollowDeleted, "posts.refresh_feed_on_unfollow", refresh_feed_on_unfollow)
    ctx.bus.subscribe_idempotent(UserBlocked, "posts.refresh_feeds_on_block", refresh_feeds_on_block)
    ctx.bus.subscribe(UserDeleted, "posts.remove_content_on_user_deleted", remove_content_on_user_deleted,
                      worker=True)
