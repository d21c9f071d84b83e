"""Socket.IO client events of messaging; each does what its REST twin does (same service method).

Payloads are validated with the REST structs (`msgspec.convert`); a bad one is acked
`validation_failed` naming the field.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from src.common.auth import Principal
from src.common.errors import ValidationFailed
from src.infra.modules import SocketHandler
from src.modules.messaging.receipts import ReceiptService
from src.modules.messaging.schemas import SocketConversationRef, SocketSendMessage, SocketUpTo
from src.modules.messaging.sending import SendService
from src.modules.messaging.typing import TypingService

T = TypeVar("T")
_FIELD = re.compile(r"`\$\.([A-Za-z_]+)|field `([A-Za-z_]+)`")


def convert(data: Any, type_: type[T]) -> T:
    """A socket payload as `type_`, or ValidationFailed naming the first bad field."""
    if not isinstance(data, dict):
        raise ValidationFailed("the payload must be an object", code="validation_failed")
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        match = _FIELD.search(str(exc))
        field = (match.group(1) or match.group(2)) if match else None
        raise ValidationFailed(str(exc), field=field, code="validation_failed") from None


def socket_handlers(sender: SendService, receipts: ReceiptService, typing: TypingService) -> dict[str, SocketHandler]:
    """The messaging client events and their handlers."""

    async def send(principal: Principal, sid: str, data: Any) -> Any:
        payload = convert(data, SocketSendMessage)
        view, _ = await sender.send(principal.user_id, payload.conversation_id, payload, sid=sid)
        return view

    async def read(principal: Principal, sid: str, data: Any) -> Any:
        payload = convert(data, SocketUpTo)
        return await receipts.mark_read(principal.user_id, payload.conversation_id, payload.up_to_seq, sid=sid)

    async def delivered(principal: Principal, sid: str, data: Any) -> Any:
        payload = convert(data, SocketUpTo)
        return await receipts.mark_delivered(principal.user_id, payload.conversation_id, payload.up_to_seq,
                                             sid=sid)

    async def typing_start(principal: Principal, sid: str, data: Any) -> Any:
        payload = convert(data, SocketConversationRef)
        return await typing.set_typing(principal.user_id, payload.conversation_id, True, sid=sid)

    async def typing_stop(principal: Principal, sid: str, data: Any) -> Any:
        payload = convert(data, SocketConversationRef)
        return await typing.set_typing(principal.user_id, payload.conversation_id, False, sid=sid)

    return {"message:send": send, "message:read": read, "message:delivered": delivered,
            "typing:start": typing_start, "typing:stop": typing_stop}
