"""Queries about the social graph, answered by blocks and friendship."""

from __future__ import annotations

import uuid

import msgspec

from src.common.queries.base import Query


class BlockState(msgspec.Struct, frozen=True):
    """Blocks between two users, each direction."""

    a_blocked_b: bool
    b_blocked_a: bool

    @property
    def any(self) -> bool:
        """Whether either blocked the other."""
        return self.a_blocked_b or self.b_blocked_a


class GetBlockState(Query[BlockState], frozen=True):
    """Who blocked whom between `user_a` and `user_b` (answered by blocks)."""

    user_a: uuid.UUID
    user_b: uuid.UUID


class AreFriends(Query[bool], frozen=True):
    """Whether `user_a` and `user_b` are friends (answered by friendship)."""

    user_a: uuid.UUID
    user_b: uuid.UUID


class FollowSuggestions(Query[list[uuid.UUID]], frozen=True):
    """Users followed by the people `user_id` follows, most shared first, excluding users
    `user_id` already follows and `user_id` itself (answered by follows)."""

    user_id: uuid.UUID
    limit: int = 20


class BlockedEitherWay(Query[set[uuid.UUID]], frozen=True):
    """Every user `user_id` blocked or was blocked by (answered by blocks)."""

    user_id: uuid.UUID


class FollowingIds(Query[set[uuid.UUID]], frozen=True):
    """Whom `user_id` follows (answered by follows; at most `limit` ids)."""

    user_id: uuid.UUID
    limit: int = 5000


class GetBlockStates(Query[dict[uuid.UUID, BlockState]], frozen=True):
    """Who blocked whom between `user_id` (as `a`) and each of `other_ids` (as `b`), in one
    question (answered by blocks). Every id of `other_ids` has an entry."""

    user_id: uuid.UUID
    other_ids: list[uuid.UUID]


class BlockedPairs(Query[set[tuple[uuid.UUID, uuid.UUID]]], frozen=True):
    """Which of these (a, b) pairs have a block either way, in one question (answered by blocks;
    notifications' batched check of many recipients and actors)."""

    pairs: list[tuple[uuid.UUID, uuid.UUID]]


class FriendsAmong(Query[set[uuid.UUID]], frozen=True):
    """Which of `other_ids` are friends of `user_id` (answered by friendship)."""

    user_id: uuid.UUID
    other_ids: list[uuid.UUID]


class FriendIds(Query[set[uuid.UUID]], frozen=True):
    """The friends of `user_id`; only those in `among` when given, at most `limit`
    (answered by friendship; presence asks: contacts)."""

    user_id: uuid.UUID
    among: list[uuid.UUID] | None = None
    limit: int = 5000


class FollowsAmong(Query[set[uuid.UUID]], frozen=True):
    """Which of `followee_ids` `follower_id` follows (answered by follows)."""

    follower_id: uuid.UUID
    followee_ids: list[uuid.UUID]


class FollowerCount(Query[int], frozen=True):
    """How many users follow `user_id`, counted up to `cap` (answered by follows)."""

    user_id: uuid.UUID
    cap: int


class FollowerIdsAfter(Query[list[uuid.UUID]], frozen=True):
    """Followers of `user_id` in id order after `after` (None: from the start), at most `limit`
    (answered by follows; pages through large audiences for fan-out)."""

    user_id: uuid.UUID
    after: uuid.UUID | None = None
    limit: int = 1000


class FriendIdsOfMany(Query[dict[uuid.UUID, set[uuid.UUID]]], frozen=True):
    """The friends of each of `user_ids`, at most `limit` each, in one question (answered by
    friendship; presence announces transitions in batches). Every id has an entry."""

    user_ids: list[uuid.UUID]
    limit: int = 5000


class BlockedEitherWayOfMany(Query[dict[uuid.UUID, set[uuid.UUID]]], frozen=True):
    """Everyone each of `user_ids` blocked or was blocked by, in one question (answered by blocks).
    Every id has an entry."""

    user_ids: list[uuid.UUID]
