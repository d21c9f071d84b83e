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


class CommentCreated(Event, frozen=True, kw_only=True):
    """A comment was added to a post (fires once per comment)."""

    name = "posts.comment_created.v1"
    post_id: uuid.UUID
    comment_id: uuid.UUID
    author_id: uuid.UUID
    post_author_id: uuid.UUID


class CommentDeleted(Event, frozen=True, kw_only=True):
    """A comment was deleted by its author or by the post's author."""

    name = "posts.comment_deleted.v1"
    post_id: uuid.UUID
    comment_id: uuid.UUID
    author_id: uuid.UUID
    post_author_id: uuid.UUID


class PostReactionSet(Event, frozen=True, kw_only=True):
    """`user_id` reacted to a post with `type` (new, or replacing another type; not on a repeat)."""

    name = "posts.post_reaction_set.v1"
    post_id: uuid.UUID
    user_id: uuid.UUID
    post_author_id: uuid.UUID
    type: str  # like | love | happy | wow | sad | angry


class PostReactionRemoved(Event, frozen=True, kw_only=True):
    """`user_id` took their reaction off a post."""

    name = "posts.post_reaction_removed.v1"
    post_id: uuid.UUID
    user_id: uuid.UUID
    post_author_id: uuid.UUID
