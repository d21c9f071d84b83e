"""Local disk: objects are files under `root`; the API serves HMAC-signed, expiring URLs for them.

A URL signs (operation, key, content type, size limit, expiry); `routes.py` checks the signature
before reading a byte, streams uploads to disk and stops at the signed size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from src.infra.storage.base import UploadTarget

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


class SignatureError(Exception):
    """The signed URL is malformed, tampered with or expired."""


class LocalStorage:
    """Files under `root`; upload and download URLs point at the API (`base_url`)."""

    kind = "local"

    def __init__(self, *, root: str | Path, secret: bytes, base_url: str) -> None:
        self.root = Path(root).resolve()
        self._secret = secret
        self._base_url = base_url

    def path_of(self, key: str) -> Path:
        """The file holding `key` (a key never leaves `root`)."""
        if not _KEY.match(key) or ".." in key:
            raise SignatureError("bad key")
        return self.root / key

    def _sign(self, op: str, key: str, content_type: str, limit: int, expires: int) -> str:
        message = "\n".join((op, key, content_type, str(limit), str(expires))).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _signed_query(self, op: str, key: str, content_type: str, limit: int, expires_in: int) -> tuple[str, int]:
        expires = int(time.time()) + expires_in
        query = {"key": key, "ct": content_type, "max": limit, "exp": expires,
                 "sig": self._sign(op, key, content_type, limit, expires)}
        return urlencode(query), expires

    def verify(self, op: str, key: str, content_type: str, limit: int, expires: int, signature: str) -> None:
        """Raise SignatureError unless the query was signed by us for `op` and has not expired."""
        expected = self._sign(op, key, content_type, limit, expires)
        if not hmac.compare_digest(expected, signature):
            raise SignatureError("bad signature")
        if expires < time.time():
            raise SignatureError("expired")
        self.path_of(key)

    async def upload_target(self, key: str, content_type: str, max_size: int, expires_in: int) -> UploadTarget:
        query, expires = self._signed_query("put", key, content_type, max_size, expires_in)
        return UploadTarget(url=f"{self._base_url}/upload?{query}", method="POST",
                            fields={"Content-Type": content_type},
                            expires_at=datetime.fromtimestamp(expires, UTC))

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self.path_of(key))).st_size
        except FileNotFoundError:
            return None

    async def read_head(self, key: str, length: int) -> bytes:
        def read() -> bytes:
            with self.path_of(key).open("rb") as f:
                return f.read(length)

        return await asyncio.to_thread(read)

    async def download_to(self, key: str, path: Path) -> None:
        await asyncio.to_thread(shutil.copyfile, self.path_of(key), path)

    async def put(self, key: str, path: Path, content_type: str) -> None:
        target = self.path_of(key)

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            shutil.copyfile(path, partial)
            partial.replace(target)

        await asyncio.to_thread(copy)

    async def download_url(self, key: str, content_type: str, expires_in: int,
                           filename: str | None = None) -> str:
        query, _ = self._signed_query("get", key, content_type, 0, expires_in)
        if filename:
            query += "&" + urlencode({"filename": filename})
        return f"{self._base_url}/download?{query}"

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            for key in keys:
                path = self.path_of(key)
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # drop the object's now-empty folder
                    path.parent.rmdir()

        if keys:
            await asyncio.to_thread(remove)
