"""The generic pipeline every kind goes through: intents → checks → rows → channels, in batches.

Checks: never to the actor, never across a block (either way), only on the channels the
recipient's preferences allow. A row is written once per (recipient, event id), so a
redelivered event notifies once, wherever it is handled. Intents of one recipient about one
collapsible subject (a window of messages in a conversation) become one upsert. After the
commit: `notification:new` to each recipient's sockets, the pushes (here, or one job for the
batch, delayed as asked), an email digest scheduled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from src.common.queries.graph import BlockedPairs
from src.modules.notifications.jobs import PUSH, push_items
from src.modules.notifications.store import Intent

if TYPE_CHECKING:
    from src.modules.notifications.services import Services


class Notifier:
    """Turns intents into notifications on the allowed channels."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx

    async def notify(self, intents: Iterable[Intent], *, push_delay: float = 0,
                     push_here: bool = False) -> list[Any]:
        """Notify each intent's recipient, all in one transaction; the rows written.

        `push_here`: a worker already on the push path pushes at once instead of enqueueing.
        """
        wanted = [i for i in intents if i.recipient_id != i.actor_id]
        if not wanted:
            return []
        blocked = await self._blocked(wanted)
        prefs = await self._s.prefs.get_many({i.recipient_id for i in wanted})
        todo = [(i, channels) for i in wanted if (i.recipient_id, i.actor_id) not in blocked
                and any((channels := prefs[i.recipient_id].channels(i.kind)).values())]
        if not todo:
            return []
        async with self._ctx.uow() as tx:
            fresh = await self._s.store.claim_sources(tx, [(i.recipient_id, i.event_id) for i, _ in todo])
            groups: dict[str, tuple[list[Intent], dict[str, bool]]] = {}
            for intent, channels in todo:
                if (intent.recipient_id, intent.event_id) in fresh:
                    key = f"{intent.recipient_id}:{intent.collapse_key or intent.event_id}"
                    groups.setdefault(key, ([], channels))[0].append(intent)
            # Sorted, so that two batches take the per-subject locks in one order (no deadlock).
            ordered = [groups[key] for key in sorted(groups)]
            rows = await self._s.store.upsert_groups(tx, ordered)
        written = [(row, channels) for row, (_, channels) in zip(rows, ordered, strict=True)]
        await self._after_commit(written, push_delay, push_here)
        return rows

    async def _blocked(self, intents: list[Intent]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """(recipient, actor) pairs with a block either way: one question for them all."""
        pairs = list(dict.fromkeys((i.recipient_id, i.actor_id) for i in intents))
        return await self._ctx.queries.ask(BlockedPairs(pairs=pairs))  # type: ignore[no-any-return]

    async def _after_commit(self, written: list[tuple[Any, dict[str, bool]]], push_delay: float,
                            push_here: bool) -> None:
        shown = [row for row, channels in written if channels["in_app"]]
        if shown:
            for row, view in zip(shown, await self._s.views(shown), strict=True):
                await self._ctx.realtime.emit_to_users("notification:new", view, [row.user_id])
        pushes = [(row.id, row.version) for row, channels in written if channels["push"]]
        if pushes and push_here:
            # Claiming an alert writes its row: only for users who have somewhere to receive it.
            reachable = await self._s.devices.users_with_devices(
                list({row.user_id for row, channels in written if channels["push"]}))
            pushes = [(row.id, row.version) for row, channels in written
                      if channels["push"] and row.user_id in reachable]
            if pushes:
                await self._s.pusher.push_alerts(pushes)
        elif pushes:
            self._ctx.tasks.enqueue_in(PUSH, int(push_delay * 1000), items=push_items(pushes))
        await self._s.digest.schedule_many(list(dict.fromkeys(row.user_id for row, channels in written
                                                              if channels["email"])))
