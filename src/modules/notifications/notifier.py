"""The generic pipeline every kind goes through: intent → checks → one row → channels.

Checks: never to the actor, never across a block (either way), only on the channels the
recipient's preferences allow. The row is written once per (recipient, event id), so a
redelivered event notifies once, wherever it is handled. After the commit: `notification:new`
to the recipient's sockets, a push job (delayed as asked), an email digest scheduled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from src.common.queries.graph import GetBlockState
from src.modules.notifications.jobs import PUSH
from src.modules.notifications.store import Intent

if TYPE_CHECKING:
    from src.modules.notifications.services import Services


class Notifier:
    """Turns intents into notifications on the allowed channels."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx

    async def notify(self, intents: Iterable[Intent], *, push_delay: float = 0, push_here: bool = False) -> None:
        """Notify each intent's recipient (each intent on its own transaction).

        `push_here`: a worker already on the push path pushes at once instead of enqueueing.
        """
        for intent in intents:
            await self._one(intent, push_delay, push_here)

    async def _one(self, intent: Intent, push_delay: float, push_here: bool) -> None:
        if intent.recipient_id == intent.actor_id:
            return
        if (await self._ctx.queries.ask(GetBlockState(user_a=intent.recipient_id, user_b=intent.actor_id))).any:
            return
        channels = (await self._s.prefs.get(intent.recipient_id)).channels(intent.kind)
        if not any(channels.values()):
            return
        async with self._ctx.uow() as tx:
            if not await self._s.store.claim_source(tx, intent.recipient_id, intent.event_id):
                return
            row = await self._s.store.upsert(tx, intent, channels)
        if channels["in_app"]:
            view = (await self._s.views([row]))[0]
            await self._ctx.realtime.emit_to_users("notification:new", view, [intent.recipient_id])
        if channels["push"] and push_here:
            await self._s.pusher.push_alert(row.id, row.version)
        elif channels["push"]:
            self._ctx.tasks.enqueue_in(PUSH, int(push_delay * 1000), notification_id=str(row.id), version=row.version)
        if channels["email"]:
            await self._s.digest.schedule(intent.recipient_id)
