"""Events of the messaging module."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class MessageCreated(Event, frozen=True, kw_only=True):
    """A new message was stored (once per message; a retried `client_msg_id` publishes nothing).

    `recipient_ids` are the conversation's members other than the sender when it was stored;
    `seq` is the message's position in its conversation (gapless, from 1).
    """

    name = "messaging.message_created.v1"
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    recipient_ids: list[uuid.UUID]
    seq: int
    media_ids: list[uuid.UUID] = []  # media carried by the message (media records the attachment)


class MessageDeleted(Event, frozen=True, kw_only=True):
    """A message was deleted for everyone (now a tombstone); `media_ids` were its media (media removes them)."""

    name = "messaging.message_deleted.v1"
    message_id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    media_ids: list[uuid.UUID] = []


class ConversationRead(Event, frozen=True, kw_only=True):
    """`user_id` read conversation `conversation_id` up to `up_to_seq` (fires when the read
    position moves forward, on any device; `up_to_seq` is the new position)."""

    name = "messaging.conversation_read.v1"
    conversation_id: uuid.UUID
    user_id: uuid.UUID
    up_to_seq: int
