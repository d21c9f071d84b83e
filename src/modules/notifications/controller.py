"""REST routes of notifications: `/notifications…` and `/devices…`."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.errors import NotFound
from src.common.pagination import clamp_limit, decode_time_cursor, encode_cursor, time_position
from src.modules.notifications.schemas import (
    DeviceView,
    MarkRead,
    NotificationPage,
    NotificationView,
    PreferencesPatch,
    PreferencesView,
    ReadAllResult,
    RegisterDevice,
)
from src.modules.notifications.services import Services

Limit = Annotated[int | None, Parameter(ge=1, le=1000, description="page size (at most 100 are returned)")]
Cursor = Annotated[str | None, Parameter(max_length=512)]


def _not_found() -> NotFound:
    return NotFound("No such notification", code="notification_not_found")


class NotificationsController(Controller):
    path = "/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_notifications(self, principal: Principal, notifications: Services, unread: bool = False,
                                 limit: Limit = None, cursor: Cursor = None) -> NotificationPage:
        """The caller's notifications, newest first (`unread=true`: unread only), with the unread count."""
        size = clamp_limit(limit)
        rows, unread_count = await notifications.store.page(principal.user_id, unread, size, decode_time_cursor(cursor))
        more = len(rows) > size
        rows = rows[:size]
        return NotificationPage(
            items=await notifications.views(rows), unread_count=unread_count,
            next_cursor=encode_cursor(time_position(rows[-1].updated_at, rows[-1].id)) if more else None)

    @get("/preferences")
    async def get_preferences(self, principal: Principal, notifications: Services) -> PreferencesView:
        """Every kind and channel (`in_app`, `push`, `email`) and `show_previews`."""
        return (await notifications.prefs.get(principal.user_id)).view()

    @patch("/preferences")
    async def patch_preferences(self, data: PreferencesPatch, principal: Principal,
                                notifications: Services) -> PreferencesView:
        """Change some kinds' channels and/or `show_previews`; answers the effective preferences."""
        return await notifications.prefs.patch(principal.user_id, data)

    @post("/read-all", status_code=HTTP_200_OK)
    async def read_all(self, principal: Principal, notifications: Services) -> ReadAllResult:
        """Mark every notification read (pending pushes and mails of them are cancelled)."""
        await notifications.ctx.limiter.hit(notifications.ctx.settings.write_limit_per_user, "write",
                                            str(principal.user_id))
        return ReadAllResult(cleared=len(await notifications.clearing.read(principal.user_id)))

    @patch("/{notification_id:uuid}")
    async def mark(self, notification_id: uuid.UUID, data: MarkRead, principal: Principal,
                   notifications: Services) -> NotificationView:
        """`{read: true}` marks it read everywhere (sockets, devices; pending push and mail cancelled)."""
        me = principal.user_id
        await notifications.ctx.limiter.hit(notifications.ctx.settings.write_limit_per_user, "write", str(me))
        if data.read:
            await notifications.clearing.read(me, ids=[notification_id])
        else:
            await notifications.store.mark_unread(me, notification_id)
        row = await notifications.store.get(me, notification_id)
        if row is None:
            raise _not_found()
        return (await notifications.views([row]))[0]

    @delete("/{notification_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove(self, notification_id: uuid.UUID, principal: Principal, notifications: Services) -> None:
        """Delete a notification (an unread one is cleared from sockets and devices too)."""
        me = principal.user_id
        await notifications.ctx.limiter.hit(notifications.ctx.settings.write_limit_per_user, "write", str(me))
        row = await notifications.store.delete(me, notification_id)
        if row is None:
            raise _not_found()
        if row.read_at is None:
            await notifications.clearing.announce(me, [(row.id, row.pushed_version > 0)])


class DevicesController(Controller):
    path = "/devices"
    tags = ["notifications"]

    @post("/")
    async def register(self, data: RegisterDevice, principal: Principal,
                       notifications: Services) -> Response[DeviceView]:
        """Register a push target (`fcm` token, or `webpush` subscription JSON as `token`)."""
        view = await notifications.devices.register(principal.user_id, data)
        return Response(view, status_code=HTTP_201_CREATED)

    @delete("/{device_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def unregister(self, device_id: uuid.UUID, principal: Principal, notifications: Services) -> None:
        """Remove one of the caller's devices."""
        await notifications.devices.remove(principal.user_id, device_id)
