"""The storage interface every adapter implements."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

import msgspec


class UploadTarget(msgspec.Struct, frozen=True):
    """Where and how a client uploads one object: a multipart/form-data POST of `fields`
    followed by the file part named `file`, to `url`, before `expires_at`."""

    url: str
    method: str
    fields: dict[str, str]
    expires_at: datetime


class ObjectStorage(Protocol):
    """Objects by key. Every method is safe to call from the event loop (blocking work runs in threads)."""

    kind: str  # "s3" | "local"

    async def upload_target(self, key: str, content_type: str, max_size: int, expires_in: int) -> UploadTarget:
        """A signed direct-upload target accepting one object of at most `max_size` bytes of that type."""
        ...

    async def size(self, key: str) -> int | None:
        """The stored object's size, or None when it does not exist."""
        ...

    async def read_head(self, key: str, length: int) -> bytes:
        """The first `length` bytes of the object (for type sniffing)."""
        ...

    async def download_to(self, key: str, path: Path) -> None:
        """Copy the object into a local file (for processing)."""
        ...

    async def put(self, key: str, path: Path, content_type: str) -> None:
        """Store a local file under `key`."""
        ...

    async def download_url(self, key: str, content_type: str, expires_in: int,
                           filename: str | None = None) -> str:
        """A signed URL that reads the object until it expires."""
        ...

    async def delete(self, keys: list[str]) -> None:
        """Delete these objects (absent ones are fine)."""
        ...
