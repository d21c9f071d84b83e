"""Messages notify late and only if still unread: a message is checked PUSH_DELAY seconds after
it was stored (at once for a recipient with no socket connected), and becomes a notification
(one per conversation, collapsed while unread) only for recipients whose read position is still
below it and who did not mute the conversation."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from src.common.events.messaging import MessageCreated
from src.common.queries.messaging import GetConversationMutes, GetReadPositions
from src.modules.notifications.jobs import MESSAGE_DUE
from src.modules.notifications.store import Intent

if TYPE_CHECKING:
    from src.modules.notifications.services import Services


class MessageNotifications:
    """Schedules the check of a new message, and runs it."""

    def __init__(self, services: Services) -> None:
        self._s = services
        self._ctx = services.ctx

    async def schedule(self, event: MessageCreated) -> None:
        """Enqueue the due check: now for recipients with no socket, after PUSH_DELAY for the others."""
        online = await self._s.presence.online(event.recipient_ids)
        offline = [r for r in event.recipient_ids if r not in online]
        for group, delay in ((offline, 0.0), ([r for r in event.recipient_ids if r in online],
                                              self._ctx.settings.push_delay)):
            if group:
                self._ctx.tasks.enqueue_in(
                    MESSAGE_DUE, int(delay * 1000), event_id=str(event.event_id), message_id=str(event.message_id),
                    conversation_id=str(event.conversation_id), sender_id=str(event.sender_id), seq=event.seq,
                    recipient_ids=[str(r) for r in group])

    async def due(self, event_id: uuid.UUID, message_id: uuid.UUID, conversation_id: uuid.UUID,
                  sender_id: uuid.UUID, seq: int, recipient_ids: list[uuid.UUID]) -> None:
        """Notify the recipients who have not read the message and did not mute the conversation."""
        unread = await self._unread(conversation_id, seq, recipient_ids)
        muted = await self._ctx.queries.ask(GetConversationMutes(conversation_id=conversation_id, user_ids=unread))
        targets = [r for r in unread if r not in muted]
        await self._s.notifier.notify([Intent(
            recipient_id=r, kind="message", actor_id=sender_id, event_id=event_id, subject_id=conversation_id,
            subject_seq=seq, collapse=True,
            data={"conversation_id": str(conversation_id), "message_id": str(message_id), "seq": seq},
        ) for r in targets], push_here=True)
        # A read that landed while the notification was being written found nothing to clear.
        for r in set(targets) - set(await self._unread(conversation_id, seq, targets)):
            await self._s.clearing.read(r, conversation=(conversation_id, seq))

    async def _unread(self, conversation_id: uuid.UUID, seq: int, user_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        if not user_ids:
            return []
        positions = await self._ctx.queries.ask(GetReadPositions(conversation_id=conversation_id, user_ids=user_ids))
        return [u for u in user_ids if u in positions and positions[u] < seq]
