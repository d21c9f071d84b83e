"""Queries about media, answered by the media module."""

from __future__ import annotations

import uuid

import msgspec

from src.common.queries.base import Query


class MediaView(msgspec.Struct, frozen=True, kw_only=True):
    """What another module may show of a media item (no URL: URLs are signed per viewer by media)."""

    id: uuid.UUID
    owner_id: uuid.UUID
    purpose: str  # avatar | background | message | post
    kind: str  # image | video | audio | file
    status: str  # uploading | processing | ready | failed
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None


class GetAttachableMedia(Query[list[MediaView]], frozen=True):
    """The media among `media_ids` that `owner_id` owns with this `purpose` and that are ready or
    processing (answered by media). The caller refuses the request when some id is missing."""

    owner_id: uuid.UUID
    media_ids: list[uuid.UUID]
    purpose: str


class GetMediaViews(Query[dict[uuid.UUID, MediaView]], frozen=True):
    """Media by id, whatever their owner (for views of messages and posts that carry them)."""

    media_ids: list[uuid.UUID]


def public_media_url(base_url: str, media_id: uuid.UUID, variant: str = "display") -> str:
    """The stable URL of a current avatar or background: it redirects to a fresh signed URL."""
    return f"{base_url.rstrip('/')}/api/v1/media/{media_id}/content/{variant}"
