"""Events of the media module."""

from __future__ import annotations

import uuid

import msgspec

from src.common.events.base import Event


class AttachedMessage(msgspec.Struct, frozen=True):
    """A message that carries a media item."""

    message_id: uuid.UUID
    conversation_id: uuid.UUID


class MediaProcessed(Event, frozen=True, kw_only=True):
    """Processing of a media item ended (`status` ready or failed). `messages` are the messages
    known to carry it at that moment (messaging announces `message:updated` for them); a message
    recorded later gets its own MediaProcessed then."""

    name = "media.media_processed.v1"
    media_id: uuid.UUID
    owner_id: uuid.UUID
    status: str  # ready | failed
    messages: list[AttachedMessage] = []


class MediaDeleted(Event, frozen=True, kw_only=True):
    """A media item and its stored objects were removed (owner's delete, lifecycle, account deletion)."""

    name = "media.media_deleted.v1"
    media_id: uuid.UUID
    owner_id: uuid.UUID
    purpose: str
