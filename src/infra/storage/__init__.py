"""Object storage: one interface, two adapters (S3 through boto3, local disk served by the API).

`build_storage(settings)` picks S3 when `S3_BUCKET` is set, else local disk under `MEDIA_DIR`.
"""

from __future__ import annotations

from src.infra.config import Settings
from src.infra.storage.base import ObjectStorage, UploadTarget
from src.infra.storage.local import LocalStorage
from src.infra.storage.s3 import S3Storage

__all__ = ["LocalStorage", "ObjectStorage", "S3Storage", "UploadTarget", "build_storage"]


def build_storage(settings: Settings) -> ObjectStorage:
    """The S3 adapter when S3 is configured, else local disk (the default)."""
    if settings.s3_bucket:
        return S3Storage(bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url,
                         public_endpoint_url=settings.s3_public_endpoint_url, region=settings.s3_region,
                         access_key_id=settings.s3_access_key_id,
                         secret_access_key=settings.s3_secret_access_key)
    return LocalStorage(root=settings.media_dir, secret=settings.media_signing_key,
                        base_url=settings.public_base_url.rstrip("/") + "/api/v1/storage")
