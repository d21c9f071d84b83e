"""media — uploads straight to object storage, processing in workers, signed downloads.

Tables (schema `media`): items (one per upload: owner, purpose, kind, status
uploading|processing|ready|failed, sniffed type, dimensions, placeholder, variants' keys),
attachments (which message, post or profile carries an item: access and lifecycle).
Storage (src/infra/storage): S3 through boto3 when `S3_BUCKET` is set, else local disk whose
signed URLs this module mounts (`/storage/upload`, `/storage/download`).
Publishes: `media.media_processed.v1` (MediaProcessed: ready or failed, with the messages that
carry it), `media.media_deleted.v1` (MediaDeleted).
Listens: `messaging.message_created.v1` (records message attachments), `messaging.message_deleted.v1`
(removes the message's media), `posts.post_created.v1` / `posts.post_deleted.v1` (records / removes
post media), `users.profile_image_changed.v1` (records avatars and backgrounds: the latest is public),
`users.user_deleted.v1` (enqueues the purge of the user's media).
Asks: IsConversationMember (messaging), CanViewPost (posts), CanViewProfile (privacy).
Answers: GetAttachableMedia, GetMediaViews.
Socket events out: `media:ready` (to the owner, when processing ends, ready or failed; no URL).
Tasks: `media.process` (queue `media`), `media.expire_uploads` (every 10 min),
`media.remove_orphans` (hourly), `media.purge_user` (queue `maintenance`).
"""

from __future__ import annotations

import uuid

from litestar import Router
from litestar.di import Provide

from src.common.queries.media import GetAttachableMedia, GetMediaViews, MediaView
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.infra.storage import LocalStorage
from src.infra.storage.routes import storage_router
from src.modules.media.actors import TASKS, process_task, storage_for
from src.modules.media.controller import MediaController
from src.modules.media.listeners import register_listeners
from src.modules.media.service import MediaService


def build(ctx: AppContext) -> ModuleParts:
    """Wire storage, the media service, its listeners, query handlers and routes."""
    storage = storage_for(ctx)
    service = MediaService(ctx, storage, process_task)
    register_listeners(ctx, storage)

    async def attachable(query: GetAttachableMedia) -> list[MediaView]:
        return await service.attachable(query.owner_id, query.media_ids, query.purpose)

    async def views(query: GetMediaViews) -> dict[uuid.UUID, MediaView]:
        return await service.views(query.media_ids)

    ctx.queries.register(GetAttachableMedia, attachable)
    ctx.queries.register(GetMediaViews, views)
    handlers: list[object] = [MediaController]
    if isinstance(storage, LocalStorage):
        handlers.append(storage_router(storage))
    router = Router(path="/", route_handlers=handlers,  # type: ignore[arg-type]
                    dependencies={"media_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="media", build=build, tasks=TASKS)
