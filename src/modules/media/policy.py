"""What may be uploaded: kinds of media per purpose, size limits, and the type sniffed from the bytes."""

from __future__ import annotations

import filetype

from src.common.errors import PayloadTooLarge, ValidationFailed
from src.infra.config import Settings

SNIFF_BYTES = 8192
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
VIDEO_TYPES = {"video/mp4", "video/quicktime", "video/webm", "video/x-matroska", "video/3gpp"}
AUDIO_TYPES = {"audio/mpeg", "audio/ogg", "audio/wav", "audio/x-wav", "audio/mp4", "audio/aac", "audio/webm",
               "audio/flac", "audio/x-flac", "audio/amr", "audio/m4a", "audio/x-m4a"}
KINDS_BY_PURPOSE = {"avatar": {"image"}, "background": {"image"},
                    "message": {"image", "video", "audio", "file"}, "post": {"image", "video"}}
FALLBACK_TYPE = "application/octet-stream"


def kind_of(content_type: str) -> str:
    """image | video | audio | file, from a MIME type."""
    if content_type in IMAGE_TYPES:
        return "image"
    if content_type in VIDEO_TYPES:
        return "video"
    if content_type in AUDIO_TYPES:
        return "audio"
    return "file"


def max_bytes(settings: Settings, kind: str) -> int:
    """The largest upload allowed for a kind of media."""
    return {"image": settings.media_max_image_bytes, "video": settings.media_max_video_bytes,
            "audio": settings.media_max_audio_bytes}.get(kind, settings.media_max_file_bytes)


def check_upload(settings: Settings, purpose: str, content_type: str, size: int) -> str:
    """The kind of a requested upload; 400 when the type is not allowed for the purpose, 413 when too big."""
    kind = kind_of(content_type.lower())
    if kind not in KINDS_BY_PURPOSE[purpose]:
        raise ValidationFailed(f"{content_type} is not allowed for {purpose}", field="content_type",
                               code="type_not_allowed")
    limit = max_bytes(settings, kind)
    if size > limit:
        raise PayloadTooLarge(f"{kind} uploads are limited to {limit} bytes", code="upload_too_large")
    return kind


def sniff(head: bytes, declared_kind: str) -> str | None:
    """The real type of an upload from its first bytes, or None when it is not of the declared kind.

    A PNG declared as JPEG is fine (stored as PNG); a script declared as PNG is refused. Files of
    kind `file` that no signature recognises are stored as `application/octet-stream`.
    """
    guess = filetype.guess(head)
    mime = guess.mime if guess else None
    if mime == "video/webm" and declared_kind == "audio":
        mime = "audio/webm"  # browsers' voice notes: the container cannot tell audio-only apart
    if mime == "video/mp4" and declared_kind == "audio":
        mime = "audio/mp4"
    if declared_kind == "file":
        return mime if mime and kind_of(mime) == "file" else FALLBACK_TYPE
    if mime is None or kind_of(mime) != declared_kind:
        return None
    return mime
