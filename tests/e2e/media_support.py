"""Helpers of the media tests: images with metadata, direct uploads, waiting for processing."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import httpx
from PIL import Image

from tests.e2e.harness import User, auth_headers

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_gps(width: int = 640, height: int = 480, *, orientation: int = 6) -> bytes:
    """A JPEG carrying EXIF GPS coordinates, a camera make and an orientation tag."""
    image = Image.new("RGB", (width, height), (30, 120, 200))
    image.paste((250, 200, 10), (0, 0, width // 2, height // 3))
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "SpyCam"  # Make
    exif[GPS_IFD] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (10, 200, 30, 128)).save(out, "PNG")
    return out.getvalue()


def bomb_png(width: int = 12_000, height: int = 6_000) -> bytes:
    """A small file that decodes to 72 million pixels."""
    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


def headers_of(user: User | dict[str, Any]) -> dict[str, str]:
    """Auth headers of a harness User or of a signup response."""
    return user.headers if isinstance(user, User) else auth_headers(user["access_token"])


async def start_upload(http: httpx.AsyncClient, user: User | dict[str, Any], *, size: int,
                       content_type: str = "image/jpeg", purpose: str = "message",
                       filename: str = "photo.jpg") -> httpx.Response:
    return await http.post("/media/uploads", headers=headers_of(user), json={
        "filename": filename, "content_type": content_type, "size": size, "purpose": purpose})


async def post_file(ticket: dict[str, Any], data: bytes, filename: str = "photo.jpg") -> httpx.Response:
    """The client's direct upload: multipart POST of the ticket's fields, then the file."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(ticket["url"], data=ticket["fields"],
                                 files={"file": (filename, data, ticket["fields"].get("Content-Type"))})


async def upload(http: httpx.AsyncClient, user: User | dict[str, Any], data: bytes, *, content_type: str = "image/jpeg",
                 purpose: str = "message", filename: str = "photo.jpg") -> dict[str, Any]:
    """Upload and complete; the media as `complete` answered it."""
    started = await start_upload(http, user, size=len(data), content_type=content_type, purpose=purpose,
                                 filename=filename)
    assert started.status_code == 201, started.text
    ticket = started.json()
    stored = await post_file(ticket, data, filename)
    assert stored.status_code in (200, 201, 204), stored.text
    done = await http.post(f"/media/uploads/{ticket['upload_id']}/complete", headers=headers_of(user))
    assert done.status_code == 200, done.text
    media: dict[str, Any] = done.json()
    return media


async def wait_processed(http: httpx.AsyncClient, user: User, media_id: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    """The media once its processing ended (ready or failed), as its owner sees it."""
    deadline = time.monotonic() + timeout
    while True:
        found = (await http.get(f"/media/{media_id}", headers=user.headers)).json()
        if found.get("status") in ("ready", "failed"):
            return dict(found)
        if time.monotonic() > deadline:
            raise TimeoutError(f"media {media_id} still {found.get('status')}")
        await asyncio.sleep(0.1)


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.get(url)
