"""Events of the friendship module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class FriendRequestSent(Event, frozen=True, kw_only=True):
    """`from_user_id` asked `to_user_id` to be friends (a new pending request)."""

    name = "friendship.request_sent.v1"
    request_id: uuid.UUID
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID


class FriendshipAccepted(Event, frozen=True, kw_only=True):
    """Two users became friends (`requester_id` asked, `accepter_id` accepted)."""

    name = "friendship.accepted.v1"
    request_id: uuid.UUID
    requester_id: uuid.UUID
    accepter_id: uuid.UUID


class FriendshipDeleted(Event, frozen=True, kw_only=True):
    """Two users stopped being friends (unfriend, block, account deletion)."""

    name = "friendship.deleted.v1"
    user_a: uuid.UUID
    user_b: uuid.UUID
    reason: str


class UserFriendshipsRemoved(Event, frozen=True, kw_only=True):
    """Every friendship of a deleted account was removed, in one event (an account may have
    thousands: one FriendshipDeleted each made deletion slow). `friend_ids` are its former friends."""

    name = "friendship.user_friendships_removed.v1"
    user_id: uuid.UUID
    friend_ids: list[uuid.UUID]
