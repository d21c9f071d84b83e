"""Calls: the only code that changes a call (through the store's atomic transitions).

After every transition the service tells the sockets concerned (notify.py) and, once the call
ended, writes it to history (history.py). Timers are delayed Dramatiq messages (actors.py),
enqueued before the state they guard exists, so a process dying right after an invite or a
socket drop never leaves a call ringing or waiting forever.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import structlog

from src.common.clock import utcnow
from src.common.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from src.common.ids import new_id
from src.common.queries.messaging import ConversationMemberIds, IsConversationMember
from src.common.queries.privacy import CanCall
from src.infra.context import AppContext
from src.infra.tasks import TaskSpec
from src.modules.calls import actors, notify, state
from src.modules.calls.archiver import Archiver
from src.modules.calls.history import CallHistory, view_of
from src.modules.calls.nodes import NodeHeartbeat
from src.modules.calls.schemas import CallView, InviteIn, SignalIn
from src.modules.calls.state import CallState, Participant, call_not_found
from src.modules.calls.store import CallStore

log = structlog.get_logger("chatty.calls")
T = TypeVar("T")


class CallService:
    """Invite, answer, decline, cancel, hang up, relay signals; timers; block and deletion."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self.store = CallStore(ctx.redis)
        self.history = CallHistory(ctx)
        self._archiver = Archiver(self.history, self.store)
        self.node = NodeHeartbeat(ctx.redis)
        # Sockets of this process that invited or answered a call: only they can be a call's joined
        # socket (a socket lives on one process), so any other disconnect asks Redis nothing.
        self.call_sids: set[str] = set()

    # --- client actions -------------------------------------------------------------------

    async def invite(self, caller: uuid.UUID, sid: str, body: InviteIn) -> dict[str, object]:
        """Start a call; ack `{call_id, status, end_reason}` (ended `busy` when every callee is busy)."""
        self.call_sids.add(sid)
        call_id = new_id()
        # The timer is enqueued (in a thread) while the callees are checked: it must exist before
        # the call does; when the invite is refused instead, it finds no call and does nothing.
        (callees, conversation_id), _ = await asyncio.gather(
            self._callees(caller, body),
            self._schedule(actors.RING_TIMEOUT, self._ctx.settings.call_ring_timeout, call_id=str(call_id)))
        now = utcnow()
        call = CallState(
            id=call_id, kind="group" if len(callees) > 1 else "direct", media=body.media,
            conversation_id=conversation_id, caller_id=caller, status="ringing", created_at=now,
            ring_deadline=now + timedelta(seconds=self._ctx.settings.call_ring_timeout),
            participants=[Participant(user_id=caller, state="joined", sid=sid, node=self.node.id, joined_at=now),
                          *(Participant(user_id=u, state="ringing") for u in callees)])
        call = await self.store.create(call, _mark_busy)
        if call.status == "ended":
            await self._ctx.realtime.emit_to_users("call:ended", {"call_id": str(call.id), "reason": "busy"}, [caller])
            await self._archive(call)
        else:
            await notify.ringing(self._ctx.realtime, call)
        return {"call_id": call.id, "status": call.status, "end_reason": call.end_reason}

    async def _callees(self, caller: uuid.UUID, body: InviteIn) -> tuple[list[uuid.UUID], uuid.UUID | None]:
        if (body.user_id is None) == (body.conversation_id is None):
            raise ValidationFailed("Give exactly one of user_id and conversation_id", field="user_id")
        if body.user_id is not None:
            if body.user_id == caller:
                raise ValidationFailed("You cannot call yourself", field="user_id", code="cannot_call_self")
            await self._ensure_can_call(caller, body.user_id)
            return [body.user_id], None
        assert body.conversation_id is not None
        if not await self._ctx.queries.ask(IsConversationMember(user_id=caller, conversation_id=body.conversation_id)):
            raise NotFound("No such conversation", code="conversation_not_found")
        members = [u for u in await self._ctx.queries.ask(ConversationMemberIds(conversation_id=body.conversation_id))
                   if u != caller]
        if len(members) + 1 > self._ctx.settings.call_max_participants:
            raise ValidationFailed(f"A call has at most {self._ctx.settings.call_max_participants} participants",
                                   field="conversation_id", code="too_many_participants")
        allowed = [u for u in members if (await self._ctx.queries.ask(CanCall(actor_id=caller, target_id=u))).allowed]
        if not allowed:
            raise Forbidden("You cannot call anyone in this conversation", code="not_allowed")
        return allowed, body.conversation_id

    async def _ensure_can_call(self, caller: uuid.UUID, callee: uuid.UUID) -> None:
        decision = await self._ctx.queries.ask(CanCall(actor_id=caller, target_id=callee))
        if not decision.allowed:
            reason = decision.reason or "not_allowed"
            raise Forbidden("Calling is blocked" if reason == "blocked" else "You cannot call this user", code=reason)

    async def accept(self, user_id: uuid.UUID, sid: str, call_id: uuid.UUID,
                     session_id: uuid.UUID | None = None) -> CallView:
        """Answer on this socket (or resume the call here after the joined socket dropped, or
        when this is the joined device's session reconnecting)."""
        self.call_sids.add(sid)
        session = str(session_id) if session_id else None

        def answer(lost_sid: str | None) -> Callable[[CallState], bool]:
            return lambda c: state.accept(c, user_id, sid, self.node.id, utcnow(), lost_sid=lost_sid, session=session)

        try:
            before, after, resumed = await self.store.update(call_id, answer(None))
        except Conflict as exc:
            # Joined on a socket of a process that died (no disconnect hook ran)? Then resume
            # here; checked only now, so that an ordinary answer costs no extra read.
            if exc.code != "already_answered" or (lost_sid := await self._lost_sid(call_id, user_id)) is None:
                raise
            before, after, resumed = await self.store.update(call_id, answer(lost_sid))
        await notify.changed(self._ctx.realtime, before, after, actor_sid=sid, resumed=resumed)
        return view_of(after)

    async def _lost_sid(self, call_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
        """The user's joined socket in the call if the process holding it died (it may resume)."""
        call = await self.store.get(call_id)
        part = call.part(user_id) if call else None
        if part is None or part.state != "joined" or part.disconnected_at is not None:
            return None
        return None if await self.node.alive(part.node) else part.sid

    async def reject(self, user_id: uuid.UUID, sid: str, call_id: uuid.UUID) -> CallView:
        """Decline a ringing call."""
        return await self._act(call_id, sid, lambda c: state.reject(c, user_id, utcnow()))

    async def cancel(self, user_id: uuid.UUID, sid: str, call_id: uuid.UUID) -> CallView:
        """The caller gives up before anyone answered."""
        return await self._act(call_id, sid, lambda c: state.cancel(c, user_id, utcnow()))

    async def hang_up(self, user_id: uuid.UUID, sid: str | None, call_id: uuid.UUID) -> CallView:
        """Leave the call, whatever one's state (`call:end`)."""
        return await self._act(call_id, sid, lambda c: state.hang_up(c, user_id, utcnow()))

    async def _act(self, call_id: uuid.UUID, sid: str | None, change: Callable[[CallState], T], *,
                   wait: bool = False) -> CallView:
        before, after, _ = await self.store.update(call_id, change)
        await self._after(before, after, actor_sid=sid, wait=wait)
        return view_of(after)

    async def _after(self, before: CallState, after: CallState, *, actor_sid: str | None = None,
                     wait: bool = False) -> None:
        await notify.changed(self._ctx.realtime, before, after, actor_sid=actor_sid)
        if after.status != "ended" or before.status == "ended":
            return
        if wait:
            await self._archive(after)
            return
        # Off the ack's path, batched with other calls ending meanwhile (archiver.py).
        self._archiver.submit(after)

    async def signal(self, user_id: uuid.UUID, sid: str, body: SignalIn, admit: Awaitable[None]) -> None:
        """Relay an offer, answer or ICE candidate from the sender's joined device to the
        recipient's joined device; anything else is refused and relayed nowhere. `admit` (the
        rate limit, which may raise) runs alongside the read of the call: one round trip of wait."""
        call, _ = await asyncio.gather(self.store.get(body.call_id), admit)
        if call is None:
            raise call_not_found()
        sender = call.member(user_id)
        if call.status == "ended":
            raise Conflict("The call has ended", code="call_ended")
        if sender.state != "joined" or sender.sid != sid:
            raise Conflict("This device is not in the call", code="not_joined")
        target = call.part(body.to_user_id)
        if target is None or target.user_id == user_id:
            raise NotFound("No such participant", code="participant_not_found", field="to_user_id")
        if (target.state != "joined" or target.sid is None or target.disconnected_at is not None
                or not await self.node.alive(target.node)):
            raise Conflict("That participant is not connected to the call", code="peer_not_joined")
        await self._ctx.realtime.emit_to_room(
            "call:signal", {"call_id": str(call.id), "from_user_id": str(user_id), "kind": body.kind,
                            "payload": body.payload}, target.sid)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, user_id: uuid.UUID, call_id: uuid.UUID) -> CallView:
        """A call the user was invited to (live from Redis, else from history); 404 otherwise."""
        live = await self.store.get(call_id)
        if live is not None and live.part(user_id) is not None:
            return view_of(live)
        found = await self.history.get(user_id, call_id)
        if found is None:
            raise call_not_found()
        return found

    # --- sockets, timers, other modules ---------------------------------------------------

    async def socket_dropped(self, user_id: uuid.UUID, sid: str) -> None:
        """The socket `sid` went away: if it was the one in a call, the reconnect grace starts."""
        if sid not in self.call_sids:
            return
        self.call_sids.discard(sid)
        call_id = await self.store.current_call_id(user_id)
        call = await self.store.get(call_id) if call_id else None
        part = call.part(user_id) if call else None
        if call_id is None or part is None or part.state != "joined" or part.sid != sid:
            return
        now = utcnow()
        # The timer first: should this process die right after the state change, it still fires.
        await self._schedule(actors.GRACE_EXPIRED, self._ctx.settings.call_reconnect_grace, call_id=str(call_id),
                             user_id=str(user_id), since=now.isoformat())
        try:
            await self.store.update(call_id, lambda c: state.disconnected(c, user_id, sid, now))
        except AppError:  # the call is gone already
            return

    async def ring_timeout(self, call_id: uuid.UUID) -> None:
        """The ring timer fired: whoever still rings missed the call (a no-op once answered by all)."""
        await self._timer(call_id, lambda c: state.ring_timeout(c, utcnow()))

    async def grace_expired(self, call_id: uuid.UUID, user_id: uuid.UUID, since: datetime) -> None:
        """The reconnect grace of `user_id` ran out: a no-op when they came back (or left) meanwhile."""
        await self._timer(call_id, lambda c: state.grace_expired(c, user_id, since, utcnow()))

    async def _timer(self, call_id: uuid.UUID, change: Callable[[CallState], bool]) -> None:
        try:
            before, after, changed = await self.store.update(call_id, change)
        except NotFound:
            return
        if changed:
            await self._after(before, after, wait=True)  # a worker's actor: done when the task is

    async def end_calls_of(self, user_id: uuid.UUID, *, with_user: uuid.UUID | None = None) -> None:
        """`user_id` hangs up their live call (only one shared with `with_user`, if given)."""
        call_id = await self.store.current_call_id(user_id)
        if call_id is None:
            return
        call = await self.store.get(call_id)
        if call is None or call.status == "ended":
            return
        if with_user is not None and with_user not in call.live_user_ids():
            return
        try:  # history written before returning: a deleted account's rows are removed next
            await self._act(call_id, None, lambda c: state.hang_up(c, user_id, utcnow()), wait=True)
        except AppError as exc:  # they left meanwhile
            log.info("calls.end_skipped", call_id=str(call_id), reason=exc.code)

    async def archive_leftovers(self) -> int:
        """Write the ended calls whose archive did not happen (crash, PostgreSQL down)."""
        done = 0
        for call_id in await self.store.unarchived(utcnow() - timedelta(seconds=30)):
            call = await self.store.get(call_id)
            if call is not None:
                await self.history.archive(call)
                done += 1
            await self.store.archived(call_id)
        return done

    async def _schedule(self, spec: TaskSpec, seconds: float, **kwargs: str) -> None:
        """A durable timer: a delayed message in Redis (the broker's client blocks, so off the loop)."""
        await asyncio.to_thread(self._ctx.tasks.enqueue, spec, delay_ms=round(seconds * 1000), **kwargs)

    async def _archive(self, call: CallState) -> None:
        """Write `call` to history now (a failure is left to the sweep in archive_leftovers)."""
        await self._archiver.write([call])


def _mark_busy(call: CallState, busy: set[uuid.UUID]) -> None:
    """At invite: a caller already in a call is refused; busy callees do not ring, and a call
    whose callees are all busy ends `busy` at once."""
    if call.caller_id in busy:
        raise Conflict("You are already in a call", code="already_in_call")
    for part in call.participants[1:]:
        if part.user_id in busy:
            part.state = "busy"
    if not call.in_state("ringing"):
        state.end(call, "busy", call.created_at)
