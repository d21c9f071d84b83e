"""Socket.IO client events of posts: watch a post's comments and reactions live."""

from __future__ import annotations

from typing import Any

import msgspec

from src.common.auth import Principal
from src.common.errors import ValidationFailed
from src.infra.context import AppContext
from src.infra.modules import SocketHandler
from src.modules.posts.schemas import WatchPost
from src.modules.posts.service import PostsService


def _payload(data: Any) -> WatchPost:
    if not isinstance(data, dict):
        raise ValidationFailed("the payload must be an object")
    try:
        return msgspec.convert(data, WatchPost)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), field="post_id") from None


def socket_handlers(ctx: AppContext, service: PostsService) -> dict[str, SocketHandler]:
    """`post:watch` (viewers of the post only; 404 ack otherwise) and `post:unwatch`."""

    async def watch(principal: Principal, sid: str, data: Any) -> Any:
        post_id = _payload(data).post_id
        await service.visible_author(principal.user_id, post_id)
        await ctx.realtime.enter_room(sid, f"post:{post_id}")
        return {"post_id": str(post_id)}

    async def unwatch(principal: Principal, sid: str, data: Any) -> Any:
        post_id = _payload(data).post_id
        await ctx.realtime.leave_room(sid, f"post:{post_id}")
        return {"post_id": str(post_id)}

    return {"post:watch": watch, "post:unwatch": unwatch}
