"""Request and response bodies of the posts API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from src.common.queries.media import MediaView
from src.common.queries.users import PublicProfile

Privacy = Literal["public", "followers", "private"]
# The documented fixed list of feelings a post may carry.
Feeling = Literal["happy", "loved", "sad", "excited", "thankful", "angry", "blessed", "tired"]
ReactionType = Literal["like", "love", "happy", "wow", "sad", "angry"]
REACTION_TYPES: tuple[str, ...] = ("like", "love", "happy", "wow", "sad", "angry")
MediaKind = Literal["image", "video"]

PostBody = Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
BgColor = Annotated[str, msgspec.Meta(pattern=r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")]
GifUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https://[^\s/$.?#][^\s]*$")]
MediaIds = Annotated[list[uuid.UUID], msgspec.Meta(max_length=10)]
CommentBody = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class NewPost(msgspec.Struct, forbid_unknown_fields=True):
    """A post: at least one of body, gif_url or media_ids."""

    privacy: Privacy = "public"
    body: PostBody | None = None
    bg_color: BgColor | None = None
    feelings: Feeling | None = None
    gif_url: GifUrl | None = None
    media_ids: MediaIds = msgspec.field(default_factory=list)


class PostPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; absent fields stay, null clears (the post must keep a body, gif or media)."""

    body: PostBody | msgspec.UnsetType | None = msgspec.UNSET
    bg_color: BgColor | msgspec.UnsetType | None = msgspec.UNSET
    feelings: Feeling | msgspec.UnsetType | None = msgspec.UNSET
    gif_url: GifUrl | msgspec.UnsetType | None = msgspec.UNSET
    privacy: Privacy | msgspec.UnsetType = msgspec.UNSET


class PostView(msgspec.Struct):
    """A post as its viewer sees it; `my_reaction` is the viewer's own (null signed out)."""

    id: uuid.UUID
    author_id: uuid.UUID
    author: PublicProfile | None
    body: str | None
    bg_color: str | None
    feelings: str | None
    gif_url: str | None
    media_ids: list[uuid.UUID]
    media: list[MediaView]
    privacy: str
    comment_count: int
    reaction_counts: dict[str, int]
    my_reaction: str | None
    created_at: datetime
    edited_at: datetime | None


class NewComment(msgspec.Struct, forbid_unknown_fields=True):
    body: CommentBody


class CommentView(msgspec.Struct):
    """A comment (also the `comment:new` socket payload)."""

    id: uuid.UUID
    post_id: uuid.UUID
    author_id: uuid.UUID
    author: PublicProfile | None
    body: str
    created_at: datetime


class SetReaction(msgspec.Struct, forbid_unknown_fields=True):
    type: ReactionType


class ReactionView(msgspec.Struct):
    """Who reacted to a post, how and when."""

    user: PublicProfile
    type: str
    created_at: datetime


class ReactionPage(msgspec.Struct):
    """A page of a post's reactions with the exact count per type."""

    items: list[ReactionView]
    counts: dict[str, int]
    next_cursor: str | None = None


class PostReactionState(msgspec.Struct):
    """The `post:reaction` socket payload and the answer to PUT/DELETE reactions."""

    post_id: uuid.UUID
    user_id: uuid.UUID
    type: str | None
    counts: dict[str, int]


class GivenReaction(msgspec.Struct):
    """A reaction a user gave (`GET /users/{id}/reactions`)."""

    post_id: uuid.UUID
    post_author_id: uuid.UUID
    type: str
    created_at: datetime


class PostRef(msgspec.Struct):
    """The `post:deleted` socket payload."""

    id: uuid.UUID
    author_id: uuid.UUID


class WatchPost(msgspec.Struct, forbid_unknown_fields=True):
    """`post:watch` / `post:unwatch` payload."""

    post_id: uuid.UUID
