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
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from src.common.queries.graph import BlockedPairs
from src.infra.uow import UnitOfWork
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
        todo = (await self._checker(wanted))(wanted)
        if not todo:
            return []
        async with self._ctx.uow() as tx:
            fresh = await self._s.store.claim_sources(tx, [(i.recipient_id, i.event_id) for i, _ in todo])
            written = await self._write(tx, [(i, c) for i, c in todo if (i.recipient_id, i.event_id) in fresh])
        await self._after_commit(written, push_delay, push_here)
        return [row for row, _ in written]

    async def notify_once(self, scope_id: uuid.UUID, event_ids: list[uuid.UUID],
                          build: Callable[[set[uuid.UUID]], list[Intent]], *, push_here: bool = False) -> list[Any]:
        """Notify the intents `build` makes of these events (a window of a conversation's messages,
        for all its members): each event is claimed once under `scope_id` (one idempotency row per
        event, not one per recipient), so a window taken twice notifies once; the rows written."""
        wanted = [i for i in build(set(event_ids)) if i.recipient_id != i.actor_id]
        if not wanted:
            return []
        check = await self._checker(wanted)
        async with self._ctx.uow() as tx:
            fresh = {e for _, e in await self._s.store.claim_sources(tx, [(scope_id, e) for e in event_ids])}
            if fresh != set(event_ids):  # taken again after a crash: only the events not notified yet
                wanted = [i for i in build(fresh) if i.recipient_id != i.actor_id] if fresh else []
            written = await self._write(tx, check(wanted))
        await self._after_commit(written, 0, push_here)
        return [row for row, _ in written]

    async def _checker(self, intents: list[Intent]) -> Callable[[list[Intent]], list[tuple[Intent, dict[str, bool]]]]:
        """The checks of these intents (no block either way, a channel the preferences allow), one
        query each; the filter they make, with each intent's channels (for these intents or a subset)."""
        blocked = await self._blocked(intents)
        prefs = await self._s.prefs.get_many({i.recipient_id for i in intents})

        def check(batch: list[Intent]) -> list[tuple[Intent, dict[str, bool]]]:
            return [(i, channels) for i in batch if (i.recipient_id, i.actor_id) not in blocked
                    and any((channels := prefs[i.recipient_id].channels(i.kind)).values())]

        return check

    async def _write(self, tx: UnitOfWork,
                     todo: list[tuple[Intent, dict[str, bool]]]) -> list[tuple[Any, dict[str, bool]]]:
        """Create or collapse one notification per (recipient, subject) of these intents: the rows
        with their channels."""
        if not todo:
            return []
        groups: dict[str, tuple[list[Intent], dict[str, bool]]] = {}
        for intent, channels in todo:
            key = f"{intent.recipient_id}:{intent.collapse_key or intent.event_id}"
            groups.setdefault(key, ([], channels))[0].append(intent)
        # Sorted, so that two batches take the per-subject locks in one order (no deadlock).
        ordered = [groups[key] for key in sorted(groups)]
        rows = await self._s.store.upsert_groups(tx, ordered)
        return [(row, channels) for row, (_, channels) in zip(rows, ordered, strict=True)]

    async def _blocked(self, intents: list[Intent]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """(recipient, actor) pairs with a block either way: one question for them all."""
        pairs = list(dict.fromkeys((i.recipient_id, i.actor_id) for i in intents))
        return await self._ctx.queries.ask(BlockedPairs(pairs=pairs))  # type: ignore[no-any-return]

    async def _after_commit(self, written: list[tuple[Any, dict[str, bool]]], push_delay: float,
                            push_here: bool) -> None:
        if not written:
            return
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
