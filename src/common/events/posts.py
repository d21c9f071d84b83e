"""Events of the posts module (the posts module adds comments and reactions here)."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class PostCreated(Event, frozen=True, kw_only=True):
    """A post was published; `media_ids` are the media it carries (media records the attachment)."""

    name = "posts.post_created.v1"
    post_id: uuid.UUID
    author_id: uuid.UUID
    privacy: str  # public | followers | private
    media_ids: list[uuid.UUID]


class PostDeleted(Event, frozen=True, kw_only=True):
    """A post was deleted; its media, comments and reactions go with it."""

    name = "posts.post_deleted.v1"
    post_id: uuid.UUID
    author_id: uuid.UUID
    media_ids: list[uuid.UUID]
