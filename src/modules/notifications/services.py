"""The notifications services of one process, built once by `build(ctx)`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from src.infra.coalesce import Coalescer
from src.infra.context import AppContext
from src.modules.notifications.clearing import Clearing
from src.modules.notifications.delivery import Pusher
from src.modules.notifications.devices import DeviceService
from src.modules.notifications.digest import EmailDigest
from src.modules.notifications.messages import MessageNotifications
from src.modules.notifications.notifier import Notifier
from src.modules.notifications.preferences import PreferencesService
from src.modules.notifications.presence import SocketPresence
from src.modules.notifications.push.sender import PushSender
from src.modules.notifications.schemas import NotificationView
from src.modules.notifications.store import NotificationStore
from src.modules.notifications.views import build_views


class Services:
    """Everything the routes, listeners and jobs of notifications call."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.store = NotificationStore(ctx)
        self.prefs = PreferencesService(ctx)
        self.devices = DeviceService(ctx)
        self.presence = SocketPresence(ctx)
        self.sender = PushSender(ctx.settings)
        self.digest = EmailDigest(self)
        self.clearing = Clearing(self)
        self.notifier = Notifier(self)
        self.pusher = Pusher(self)
        self.messages = MessageNotifications(self)
        # A worker's concurrent due-message jobs of old releases, taken together (coalesce.py).
        self.due_batches: Coalescer[tuple[uuid.UUID, uuid.UUID]] = Coalescer(self.messages.due_windows)

    async def views(self, rows: Sequence[Any]) -> list[NotificationView]:
        return await build_views(self.ctx, rows)
