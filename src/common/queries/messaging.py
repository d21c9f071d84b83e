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
