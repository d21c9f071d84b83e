"""Events of the follows module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class FollowCreated(Event, frozen=True, kw_only=True):
    """`follower_id` started following `followee_id` (fires once per new edge)."""

    name = "follows.follow_created.v1"
    follower_id: uuid.UUID
    followee_id: uuid.UUID


class FollowDeleted(Event, frozen=True, kw_only=True):
    """A follow edge was removed (unfollow, block or account deletion); once per removed edge."""

    name = "follows.follow_deleted.v1"
    follower_id: uuid.UUID
    followee_id: uuid.UUID
    reason: str


class UserFollowsRemoved(Event, frozen=True, kw_only=True):
    """A deleted user's follow edges were removed in bulk (one event, not one per edge).

    `follower_ids` followed the deleted user (their following_count drops by one each);
    `followee_ids` were followed by the deleted user (their followers_count drops by one each).
    """

    name = "follows.user_follows_removed.v1"
    user_id: uuid.UUID
    follower_ids: list[uuid.UUID]
    followee_ids: list[uuid.UUID]
