"""Request and response bodies of the media API and the `media:ready` payload."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

Purpose = Literal["avatar", "background", "message", "post"]


class NewUpload(msgspec.Struct, forbid_unknown_fields=True):
    """An upload to be made: its name, declared type and exact size in bytes."""

    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    content_type: Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[\w.+-]+/[\w.+-]+$")]
    size: Annotated[int, msgspec.Meta(ge=1, le=2**40)]
    purpose: Purpose


class UploadTicket(msgspec.Struct):
    """Where to upload: POST multipart/form-data to `url` with every one of `fields`, then the
    file as the part named `file`; then call `/media/uploads/{upload_id}/complete`."""

    upload_id: uuid.UUID
    url: str
    method: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime
    max_size: int


class VariantView(msgspec.Struct):
    """A downloadable form of the media (`thumb`, `display`, `original`); `url` is signed, short-lived."""

    url: str
    content_type: str
    width: int | None = None
    height: int | None = None


class MediaView(msgspec.Struct, kw_only=True):
    """A media item. `variants` (signed URLs valid until `urls_expire_at`) appear once it is ready and
    only for whoever may see it; `processing` is "skipped" when a video could not be probed."""

    id: uuid.UUID
    owner_id: uuid.UUID
    purpose: str
    kind: str
    status: str
    filename: str
    content_type: str
    size: int
    width: int | None
    height: int | None
    duration_s: float | None
    placeholder: str | None
    processing: str | None
    failure_reason: str | None
    created_at: datetime
    variants: dict[str, VariantView] = {}
    urls_expire_at: datetime | None = None
