"""Socket.IO client events of calls; every one rate-limited per user, acked with the result."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from src.common.auth import Principal
from src.common.errors import ValidationFailed
from src.infra.context import AppContext
from src.infra.modules import SocketHandler
from src.modules.calls.schemas import CallRef, IceCandidate, InviteIn, SessionDescription, SignalIn
from src.modules.calls.service import CallService

T = TypeVar("T")
_FIELD = re.compile(r"`\$\.([A-Za-z_]+)|field `([A-Za-z_]+)`")


def convert(data: Any, type_: type[T]) -> T:
    """A socket payload as `type_`, or ValidationFailed naming the first bad field."""
    if not isinstance(data, dict):
        raise ValidationFailed("the payload must be an object")
    try:
        return msgspec.convert(data, type_)
    except msgspec.ValidationError as exc:
        match = _FIELD.search(str(exc))
        raise ValidationFailed(str(exc), field=(match.group(1) or match.group(2)) if match else None) from None


def _checked_signal(data: Any) -> SignalIn:
    """A `call:signal` whose payload is an SDP (offer, answer) or an ICE candidate, re-encoded
    from the validated shape so that nothing else is relayed."""
    body = convert(data, SignalIn)
    if body.kind == "ice":
        payload: Any = None if body.payload is None else convert(body.payload, IceCandidate)
    else:
        payload = convert(body.payload, SessionDescription)
        if payload.type != body.kind:
            raise ValidationFailed("payload.type must match kind", field="payload")
        if len(payload.sdp.encode()) > 16 * 1024:
            raise ValidationFailed("The SDP is larger than 16 KB", field="payload", code="payload_too_large")
    return SignalIn(call_id=body.call_id, to_user_id=body.to_user_id, kind=body.kind,
                    payload=msgspec.to_builtins(payload) if payload is not None else None)


def socket_handlers(ctx: AppContext, service: CallService) -> dict[str, SocketHandler]:
    """The calls client events and their handlers."""
    write_limit = ctx.settings.write_limit_per_user

    async def invite(principal: Principal, sid: str, data: Any) -> Any:
        body = convert(data, InviteIn)
        await ctx.limiter.hit(write_limit, "write", str(principal.user_id))
        return await service.invite(principal.user_id, sid, body)

    def action(method: Any) -> SocketHandler:
        async def handle(principal: Principal, sid: str, data: Any) -> Any:
            ref = convert(data, CallRef)
            await ctx.limiter.hit(write_limit, "write", str(principal.user_id))
            return await method(principal.user_id, sid, ref.call_id)
        return handle

    async def signal(principal: Principal, sid: str, data: Any) -> Any:
        body = _checked_signal(data)
        await service.signal(principal.user_id, sid, body, ctx.limiter.hit(
            ctx.settings.call_signal_limit_per_user, "call_signal", str(principal.user_id)))
        return None

    async def accept(principal: Principal, sid: str, data: Any) -> Any:
        ref = convert(data, CallRef)
        await ctx.limiter.hit(write_limit, "write", str(principal.user_id))
        return await service.accept(principal.user_id, sid, ref.call_id, principal.session_id)

    return {"call:invite": invite, "call:accept": accept, "call:reject": action(service.reject),
            "call:cancel": action(service.cancel), "call:end": action(service.hang_up), "call:signal": signal}
