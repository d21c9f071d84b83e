"""The call state machine, free of I/O: a call's live state and the transitions on it.

A call is `ringing → accepted → ended`, or `ringing → ended` (rejected, missed, cancelled, busy,
failed). Each participant has its own state: the caller starts `joined`; a callee is `ringing`,
then `joined` (accepted on one device, whose socket id is kept: signaling reaches only that
device), `rejected`, `missed` or `busy`; whoever was joined ends `left`, or `failed` when their
socket stayed away past the reconnect grace. Transitions raise AppError subclasses, which the
socket gateway turns into error acks; the store (store.py) runs them atomically.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from src.common.errors import Conflict, Forbidden, NotFound

Kind = Literal["direct", "group"]
Media = Literal["audio", "video"]
Status = Literal["ringing", "accepted", "ended"]
EndReason = Literal["completed", "rejected", "missed", "busy", "cancelled", "failed"]
PartState = Literal["ringing", "joined", "left", "rejected", "missed", "busy", "failed"]
LIVE: frozenset[str] = frozenset({"ringing", "joined"})


class Participant(msgspec.Struct, kw_only=True):
    """One user in a call. `sid` is the joined device's socket, `session` its sign-in session and
    `node` the API process holding it; `disconnected_at` is set while that socket is gone (within
    the reconnect grace)."""

    user_id: uuid.UUID
    state: PartState
    sid: str | None = None
    session: str | None = None
    node: str | None = None
    joined_at: datetime | None = None
    left_at: datetime | None = None
    disconnected_at: datetime | None = None


class CallState(msgspec.Struct, kw_only=True):
    """The live state of one call (kept in Redis as JSON while it is not archived)."""

    id: uuid.UUID
    kind: Kind
    media: Media
    conversation_id: uuid.UUID | None
    caller_id: uuid.UUID
    status: Status
    participants: list[Participant]  # the caller first
    created_at: datetime
    ring_deadline: datetime
    end_reason: EndReason | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None

    def part(self, user_id: uuid.UUID) -> Participant | None:
        """The participant `user_id`, or None."""
        return next((p for p in self.participants if p.user_id == user_id), None)

    def member(self, user_id: uuid.UUID) -> Participant:
        """The participant `user_id`; 404 for anyone else (they may not know the call exists)."""
        part = self.part(user_id)
        if part is None:
            raise call_not_found()
        return part

    def in_state(self, *states: str) -> list[Participant]:
        return [p for p in self.participants if p.state in states]

    def live_user_ids(self) -> list[uuid.UUID]:
        """Users still ringing or in the call."""
        return [p.user_id for p in self.in_state(*LIVE)]

    @property
    def duration_s(self) -> int | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0, round((self.ended_at - self.answered_at).total_seconds()))


def call_not_found() -> NotFound:
    return NotFound("No such call", code="call_not_found")


def _ensure_live(call: CallState) -> None:
    if call.status == "ended":
        raise Conflict("The call has ended", code="call_ended")


def _leave(part: Participant, now: datetime, state: PartState = "left") -> None:
    part.state, part.left_at, part.sid, part.node, part.disconnected_at = state, now, None, None, None


def end(call: CallState, reason: EndReason, now: datetime) -> None:
    """End the call: whoever is joined leaves, whoever still rings missed it."""
    for part in call.participants:
        if part.state == "joined":
            _leave(part, now)
        elif part.state == "ringing":
            part.state = "missed"
    call.status, call.end_reason, call.ended_at = "ended", reason, now


def _settle(call: CallState, now: datetime, *, default: EndReason) -> None:
    """End the call once it cannot go on: fewer than two joined and nobody left to answer
    (or, once answered, fewer than two joined at all)."""
    joined = call.in_state("joined")
    ringing = call.in_state("ringing")
    if (call.status == "accepted" and len(joined) < 2) or (call.status == "ringing" and not ringing):
        end(call, default, now)


def accept(call: CallState, user_id: uuid.UUID, sid: str, node: str, now: datetime, *,
           lost_sid: str | None = None, session: str | None = None) -> bool:
    """`user_id` answers on socket `sid` (of sign-in `session`) of API process `node`; True when
    this resumes the call instead: the joined socket dropped, or is `lost_sid` (its process is
    gone), or belongs to the same session (the device reconnected before its old socket's drop
    was noticed).

    The first device to accept wins; the user's other devices get an error. A joined participant
    whose socket dropped may accept again (from any socket, on any process) to resume."""
    part = call.member(user_id)
    _ensure_live(call)
    if part.state == "joined":
        same_device = session is not None and part.session == session
        if part.disconnected_at is None and not same_device and (lost_sid is None or part.sid != lost_sid):
            raise Conflict("The call was answered on another device", code="already_answered")
        part.sid, part.session, part.node, part.disconnected_at = sid, session, node, None
        return True
    if part.state != "ringing":
        raise Conflict("You are not ringing in this call", code="not_ringing")
    part.state, part.sid, part.session, part.node, part.joined_at = "joined", sid, session, node, now
    if call.status == "ringing":
        call.status, call.answered_at = "accepted", now
    return False


def reject(call: CallState, user_id: uuid.UUID, now: datetime) -> None:
    """A ringing callee declines; a 1:1 call (or a group call nobody else can answer) ends."""
    part = call.member(user_id)
    _ensure_live(call)
    if part.state != "ringing":
        raise Conflict("You are not ringing in this call", code="not_ringing")
    part.state = "rejected"
    _settle(call, now, default="rejected")


def cancel(call: CallState, user_id: uuid.UUID, now: datetime) -> None:
    """The caller gives up before anyone answered."""
    call.member(user_id)
    _ensure_live(call)
    if user_id != call.caller_id:
        raise Forbidden("Only the caller can cancel", code="not_caller")
    if call.status != "ringing":
        raise Conflict("The call was already answered", code="already_answered")
    end(call, "cancelled", now)


def hang_up(call: CallState, user_id: uuid.UUID, now: datetime) -> None:
    """`user_id` leaves whatever their state: the caller while ringing cancels, a ringing callee
    rejects, a joined participant leaves (the call ends when fewer than two remain)."""
    part = call.member(user_id)
    _ensure_live(call)
    if part.state == "ringing":
        reject(call, user_id, now)
    elif part.state == "joined":
        if call.status == "ringing":  # the caller, before anyone answered
            end(call, "cancelled", now)
        else:
            _leave(part, now)
            _settle(call, now, default="completed")
    else:
        raise Conflict("You are no longer in this call", code="not_in_call")


def ring_timeout(call: CallState, now: datetime) -> bool:
    """Whoever still rings missed the call; True when something changed."""
    if call.status == "ended" or now < call.ring_deadline:
        return False
    ringing = call.in_state("ringing")
    for part in ringing:
        part.state = "missed"
    if call.status == "ringing":
        end(call, "missed", now)
        return True
    return bool(ringing)


def disconnected(call: CallState, user_id: uuid.UUID, sid: str, now: datetime) -> bool:
    """The joined device `sid` of `user_id` dropped; True when it was the one in the call."""
    part = call.part(user_id)
    if call.status == "ended" or part is None or part.state != "joined" or part.sid != sid:
        return False
    part.disconnected_at = now
    return True


def grace_expired(call: CallState, user_id: uuid.UUID, since: datetime, now: datetime) -> bool:
    """`user_id` did not come back after dropping at `since`: they fail out of the call, and a
    call left with fewer than two ends `failed`. True when something changed."""
    part = call.part(user_id)
    if call.status == "ended" or part is None or part.state != "joined" or part.disconnected_at != since:
        return False
    _leave(part, now, "failed")
    if call.status == "ringing":  # the caller vanished before anyone answered
        end(call, "failed", now)
    else:
        _settle(call, now, default="failed")
    return True
