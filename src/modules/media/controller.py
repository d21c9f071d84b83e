"""REST routes of the media module (`/api/v1/media…`)."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, post
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT, HTTP_302_FOUND

from src.common.auth import Principal
from src.modules.media.schemas import MediaView, NewUpload, UploadTicket
from src.modules.media.service import MediaService, check_variant


class MediaController(Controller):
    path = "/media"
    tags = ["media"]

    @post("/uploads", status_code=HTTP_201_CREATED)
    async def create_upload(self, data: NewUpload, principal: Principal, media_service: MediaService) -> UploadTicket:
        """Start an upload: the type and size are checked for the purpose; the answer is a signed target
        to POST the file to directly (413 when too big, 400 when the type is not allowed, 429 past the limit)."""
        return await media_service.create_upload(principal.user_id, data)

    @post("/uploads/{upload_id:uuid}/complete", status_code=200)
    async def complete(self, upload_id: uuid.UUID, principal: Principal, media_service: MediaService) -> MediaView:
        """Finish an upload: the stored object must have the declared size and a type sniffed from its bytes
        that matches the declared kind; processing starts (`media:ready` tells when it ends)."""
        return await media_service.complete(principal.user_id, upload_id)

    @get("/{media_id:uuid}")
    async def get_media(self, media_id: uuid.UUID, principal: Principal, media_service: MediaService) -> MediaView:
        """Metadata and short-lived signed URLs of the variants; 404 for whoever may not see the media."""
        return await media_service.get(principal.user_id, media_id)

    @delete("/{media_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_media(self, media_id: uuid.UUID, principal: Principal, media_service: MediaService) -> None:
        """Delete one's own media and every stored variant."""
        await media_service.delete(principal.user_id, media_id)

    @get("/{media_id:uuid}/content/{variant:str}", security=[], status_code=HTTP_302_FOUND)
    async def content(self, media_id: uuid.UUID, variant: str, media_service: MediaService) -> Response[None]:
        """The stable public address of a current avatar or background: redirects to a fresh signed URL
        (no token needed; 404 for any other media)."""
        url = await media_service.public_url(media_id, check_variant(variant))
        return Response(None, status_code=HTTP_302_FOUND,
                        headers={"Location": url, "Cache-Control": "private, max-age=60"})
