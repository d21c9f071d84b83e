"""S3 (or MinIO) through boto3: presigned POST uploads, presigned GET downloads, deletes by key.

boto3 is blocking: every call runs in a thread (`asyncio.to_thread`), never on the event loop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from src.common.clock import utcnow
from src.infra.storage.base import UploadTarget

_DELETE_BATCH = 1000  # S3's limit per DeleteObjects call


class S3Storage:
    """Objects in one bucket, created on first use when missing."""

    kind = "s3"

    def __init__(self, *, bucket: str, endpoint_url: str | None, region: str, access_key_id: str | None,
                 secret_access_key: str | None, public_endpoint_url: str | None = None) -> None:
        self._bucket = bucket
        config = Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"},
                        s3={"addressing_style": "path"})

        def client(endpoint: str | None) -> Any:
            return boto3.client("s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key_id,
                                aws_secret_access_key=secret_access_key, config=config)

        self._client: Any = client(endpoint_url)
        # Presigning is local computation: URLs for clients are signed for the endpoint they reach.
        self._signer: Any = client(public_endpoint_url) if public_endpoint_url else self._client
        self._bucket_ready = False

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return

        def ensure() -> None:
            try:
                self._client.head_bucket(Bucket=self._bucket)
            except ClientError:
                self._client.create_bucket(Bucket=self._bucket)

        await asyncio.to_thread(ensure)
        self._bucket_ready = True

    async def upload_target(self, key: str, content_type: str, max_size: int, expires_in: int) -> UploadTarget:
        """A presigned POST: S3 itself refuses another type or more than `max_size` bytes."""
        await self._ensure_bucket()
        post = await asyncio.to_thread(
            self._signer.generate_presigned_post, Bucket=self._bucket, Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_size]],
            ExpiresIn=expires_in)
        return UploadTarget(url=post["url"], method="POST", fields=post["fields"],
                            expires_at=utcnow() + timedelta(seconds=expires_in))

    async def size(self, key: str) -> int | None:
        try:
            head = await asyncio.to_thread(self._client.head_object, Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    async def read_head(self, key: str, length: int) -> bytes:
        def read() -> bytes:
            body = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes=0-{length - 1}")["Body"]
            with body:
                data: bytes = body.read()
            return data

        return await asyncio.to_thread(read)

    async def download_to(self, key: str, path: Path) -> None:
        await asyncio.to_thread(self._client.download_file, self._bucket, key, str(path))

    async def put(self, key: str, path: Path, content_type: str) -> None:
        await asyncio.to_thread(self._client.upload_file, str(path), self._bucket, key,
                                ExtraArgs={"ContentType": content_type})

    async def download_url(self, key: str, content_type: str, expires_in: int,
                           filename: str | None = None) -> str:
        params = {"Bucket": self._bucket, "Key": key, "ResponseContentType": content_type}
        if filename:
            params["ResponseContentDisposition"] = _attachment(filename)
        url: str = await asyncio.to_thread(self._signer.generate_presigned_url, "get_object",
                                           Params=params, ExpiresIn=expires_in)
        return url

    async def delete(self, keys: list[str]) -> None:
        def remove() -> None:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start:start + _DELETE_BATCH]
                self._client.delete_objects(Bucket=self._bucket, Delete={
                    "Objects": [{"Key": k} for k in batch], "Quiet": True})

        if keys:
            await asyncio.to_thread(remove)


def _attachment(filename: str) -> str:
    """A Content-Disposition that downloads under `filename` (ASCII fallback, RFC 5987 UTF-8 name)."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
