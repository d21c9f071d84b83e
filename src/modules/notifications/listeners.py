"""Events that become notifications: one small listener per kind, all through `Notifier`.

Each listener is idempotent by the event id: `Notifier` writes a notification once per
(recipient, event id), so these are subscribed as naturally idempotent (they run their own units
of work, to emit and enqueue after the commit). Messages are only scheduled here (see messages.py).
"""

from __future__ import annotations

from src.common.events.calls import CallEnded
from src.common.events.follows import FollowCreated
from src.common.events.friendship import FriendRequestSent, FriendshipAccepted
from src.common.events.groups import GroupMemberAdded
from src.common.events.messaging import ConversationRead, MessageCreated
from src.common.events.posts import CommentCreated, PostDeleted, PostReactionSet
from src.common.events.users import UserDeleted
from src.modules.notifications.housekeeping import forget_user
from src.modules.notifications.services import Services
from src.modules.notifications.store import Intent


def register_listeners(s: Services) -> None:
    """Subscribe the notifications listeners to the bus."""

    async def notify_follow(event: FollowCreated) -> None:
        await s.notifier.notify([Intent(
            recipient_id=event.followee_id, kind="follow", actor_id=event.follower_id, event_id=event.event_id,
            subject_id=event.followee_id, collapse=True, data={"user_id": str(event.follower_id)})])

    async def notify_friend_request(event: FriendRequestSent) -> None:
        await s.notifier.notify([Intent(
            recipient_id=event.to_user_id, kind="friend_request", actor_id=event.from_user_id,
            event_id=event.event_id, subject_id=event.request_id,
            data={"request_id": str(event.request_id), "user_id": str(event.from_user_id)})])

    async def notify_friend_accepted(event: FriendshipAccepted) -> None:
        await s.notifier.notify([Intent(
            recipient_id=event.requester_id, kind="friend_accepted", actor_id=event.accepter_id,
            event_id=event.event_id, subject_id=event.request_id, data={"user_id": str(event.accepter_id)})])

    async def notify_reaction(event: PostReactionSet) -> None:
        await s.notifier.notify([Intent(
            recipient_id=event.post_author_id, kind="reaction", actor_id=event.user_id, event_id=event.event_id,
            subject_id=event.post_id, collapse=True, data={"post_id": str(event.post_id)})])

    async def notify_comment(event: CommentCreated) -> None:
        await s.notifier.notify([Intent(
            recipient_id=event.post_author_id, kind="comment", actor_id=event.author_id, event_id=event.event_id,
            subject_id=event.post_id, collapse=True,
            data={"post_id": str(event.post_id), "comment_id": str(event.comment_id)})])

    async def notify_missed_call(event: CallEnded) -> None:
        if event.end_reason != "missed":
            return
        data = {"call_id": str(event.call_id),
                "conversation_id": str(event.conversation_id) if event.conversation_id else None}
        await s.notifier.notify([Intent(
            recipient_id=user_id, kind="call", actor_id=event.caller_id, event_id=event.event_id,
            subject_id=event.call_id, data=data) for user_id in event.missed_ids])

    async def notify_group_added(event: GroupMemberAdded) -> None:
        await s.notifier.notify([Intent(
            recipient_id=user_id, kind="group", actor_id=event.actor_id, event_id=event.event_id,
            subject_id=event.group_id, data={"group_id": str(event.group_id)}) for user_id in event.user_ids])

    async def schedule_messages(events: list[MessageCreated]) -> None:
        await s.messages.schedule_many(events)

    async def clear_on_conversation_read(event: ConversationRead) -> None:
        # Idempotent by nature: only unread rows change, and a repeat changes none.
        await s.clearing.read(event.user_id, conversation=(event.conversation_id, event.up_to_seq))

    async def forget_deleted_user(event: UserDeleted) -> None:
        await forget_user(s.ctx, event.user_id)  # deleting rows: idempotent by nature

    async def forget_deleted_post(event: PostDeleted) -> None:
        # Idempotent by nature: a repeat finds nothing to delete.
        for row in await s.store.delete_about(event.post_id, ["reaction", "comment"]):
            if row.read_at is None:
                await s.clearing.announce(row.user_id, [(row.id, row.pushed_version > 0)])

    bus = s.ctx.bus
    bus.subscribe_idempotent(FollowCreated, "notifications.notify_follow", notify_follow)
    bus.subscribe_idempotent(FriendRequestSent, "notifications.notify_friend_request", notify_friend_request)
    bus.subscribe_idempotent(FriendshipAccepted, "notifications.notify_friend_accepted", notify_friend_accepted)
    bus.subscribe_idempotent(PostReactionSet, "notifications.notify_reaction", notify_reaction)
    bus.subscribe_idempotent(CommentCreated, "notifications.notify_comment", notify_comment)
    bus.subscribe_idempotent(CallEnded, "notifications.notify_missed_call", notify_missed_call)
    bus.subscribe_idempotent(GroupMemberAdded, "notifications.notify_group_added", notify_group_added)
    # No inbox row (no database work per message): a redelivery rewrites its own pending entry,
    # and the due check claims each (recipient, event) once. The messages the dispatcher took
    # together are scheduled in one Redis round trip.
    bus.subscribe_batch(MessageCreated, "notifications.schedule_message", schedule_messages)
    bus.subscribe_idempotent(ConversationRead, "notifications.clear_on_conversation_read", clear_on_conversation_read)
    bus.subscribe_idempotent(UserDeleted, "notifications.forget_deleted_user", forget_deleted_user,
                            worker=True)
    bus.subscribe_idempotent(PostDeleted, "notifications.forget_deleted_post", forget_deleted_post)
