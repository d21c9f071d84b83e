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
