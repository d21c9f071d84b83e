"""Queries about conversations, answered by the messaging module."""

from __future__ import annotations

import uuid

from src.common.queries.base import Query


class IsConversationMember(Query[bool], frozen=True):
    """Whether `user_id` is a current member of conversation `conversation_id`."""

    user_id: uuid.UUID
    conversation_id: uuid.UUID


class ConversationMemberIds(Query[list[uuid.UUID]], frozen=True):
    """The current members of conversation `conversation_id` (empty when it does not exist)."""

    conversation_id: uuid.UUID


class ConversationPeerIds(Query[set[uuid.UUID]], frozen=True):
    """Users who share at least one conversation (direct or group) with `user_id`, not `user_id`
    itself; only those in `among` when given; only through groups of at most `max_group_members`
    when given; at most `limit` (presence asks: contacts)."""

    user_id: uuid.UUID
    among: list[uuid.UUID] | None = None
    max_group_members: int | None = None
    limit: int = 5000


class GetReadPositions(Query[dict[uuid.UUID, int]], frozen=True):
    """The read position (`last_read_seq`) of each of `user_ids` in conversation `conversation_id`;
    users who are not members are absent from the answer."""

    conversation_id: uuid.UUID
    user_ids: list[uuid.UUID]


class GetConversationMutes(Query[set[uuid.UUID]], frozen=True):
    """Which of `user_ids` have muted notifications of conversation `conversation_id` right now."""

    conversation_id: uuid.UUID
    user_ids: list[uuid.UUID]


class GetMessageBodies(Query[dict[uuid.UUID, str | None]], frozen=True):
    """The text of these messages (None for a deleted or media-only message; unknown ids absent),
    for notification previews."""

    message_ids: list[uuid.UUID]


class GetReadStates(Query[dict[tuple[uuid.UUID, uuid.UUID], tuple[int, bool]]], frozen=True):
    """For many (conversation_id, user_id) pairs at once: the member's read position and whether
    they muted the conversation right now (notifications' batched check); non-members are absent."""

    pairs: list[tuple[uuid.UUID, uuid.UUID]]


class GetMembersToNotify(Query[list[tuple[uuid.UUID, int]]], frozen=True):
    """The members of conversation `conversation_id` who may have a message up to `seq` to be
    notified of: not muted right now, and whose `seen` position (the larger of their read position
    and the seq they joined at: nothing at or below it concerns them) is below `seq`; as
    (user id, seen) pairs (notifications expands a conversation's pending messages once per window)."""

    conversation_id: uuid.UUID
    seq: int


class ConversationPeerIdsOfMany(Query[dict[uuid.UUID, set[uuid.UUID]]], frozen=True):
    """ConversationPeerIds of each of `user_ids` in one question (presence announces transitions
    in batches). Every id has an entry."""

    user_ids: list[uuid.UUID]
    max_group_members: int | None = None
    limit: int = 5000
