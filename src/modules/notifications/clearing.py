"""Read anywhere, cleared everywhere: marking notifications read tells the user's sockets
(`notification:cleared`) and, for those already pushed, sends a silent clear push to their
devices. Pending pushes and emails of a read notification never go (they check `read_at`)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from src.modules.notifications.jobs import CLEAR
from src.modules.notifications.schemas import Cleared

if TYPE_CHECKING:
    from src.modules.notifications.services import Services


class Clearing:
    """Mark read and spread the news."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx

    async def read(self, user_id: uuid.UUID, *, ids: list[uuid.UUID] | None = None,
                   conversation: tuple[uuid.UUID, int] | None = None) -> list[uuid.UUID]:
        """Mark read (these ids, a conversation up to a seq, or all); the ids this call changed."""
        changed = await self._s.store.mark_read(user_id, ids=ids, conversation=conversation)
        await self.announce(user_id, changed)
        return [note_id for note_id, _ in changed]

    async def announce(self, user_id: uuid.UUID, changed: list[tuple[uuid.UUID, bool]]) -> None:
        """Tell sockets and (for pushed ones) devices that these notifications are gone."""
        if not changed:
            return
        await self._ctx.realtime.emit_to_users("notification:cleared", Cleared(ids=[i for i, _ in changed]),
                                               [user_id])
        pushed = [str(note_id) for note_id, was_pushed in changed if was_pushed]
        if pushed:
            self._ctx.tasks.enqueue(CLEAR, user_id=str(user_id), notification_ids=pushed)
