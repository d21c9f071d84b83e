"""Call history in PostgreSQL: the archive of ended calls (with CallEnded) and its reads."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from src.common.events.calls import CallEnded
from src.common.pagination import Page, clamp_limit, decode_time_cursor, page_of, time_position
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.calls.models import calls, participants
from src.modules.calls.schemas import CallView, ParticipantView
from src.modules.calls.state import CallState


def view_of(call: CallState) -> CallView:
    """The API shape of a live (or just ended) call."""
    return CallView(
        id=call.id, kind=call.kind, conversation_id=call.conversation_id, media=call.media,
        caller_id=call.caller_id, status=call.status, end_reason=call.end_reason,
        participants=[ParticipantView(user_id=p.user_id, state=p.state, joined_at=p.joined_at, left_at=p.left_at)
                      for p in call.participants],
        created_at=call.created_at, answered_at=call.answered_at, ended_at=call.ended_at,
        duration_s=call.duration_s)


class CallHistory:
    """Writes ended calls once; lists and reads a user's calls."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def archive(self, call: CallState) -> bool:
        """Write an ended call and publish CallEnded in one transaction; False when already written."""
        return bool(await self.archive_many([call]))

    async def archive_many(self, ended: list[CallState]) -> set[uuid.UUID]:
        """Write ended calls (one transaction, three statements whatever their number) and publish
        CallEnded for each; the ids written (those already in history are skipped)."""
        if not ended:
            return set()
        async with self._ctx.uow() as tx:
            written = set((await tx.session.execute(
                insert(calls).values([
                    {"id": c.id, "kind": c.kind, "media": c.media, "conversation_id": c.conversation_id,
                     "caller_id": c.caller_id, "end_reason": c.end_reason, "created_at": c.created_at,
                     "answered_at": c.answered_at, "ended_at": c.ended_at, "duration_s": c.duration_s}
                    for c in ended])
                .on_conflict_do_nothing(index_elements=[calls.c.id]).returning(calls.c.id))).scalars())
            new = [c for c in ended if c.id in written]
            if not new:
                return written
            await tx.session.execute(insert(participants), [
                {"call_id": c.id, "user_id": p.user_id, "position": i, "state": p.state,
                 "joined_at": p.joined_at, "left_at": p.left_at, "created_at": c.created_at}
                for c in new for i, p in enumerate(c.participants)])
            for call in new:
                assert call.status == "ended" and call.end_reason and call.ended_at
                tx.publish(CallEnded(
                    call_id=call.id, kind=call.kind, media=call.media, conversation_id=call.conversation_id,
                    caller_id=call.caller_id, participant_ids=[p.user_id for p in call.participants],
                    answered_ids=[p.user_id for p in call.participants if p.joined_at is not None],
                    missed_ids=[p.user_id for p in call.participants if p.state == "missed"],
                    end_reason=call.end_reason, created_at=call.created_at, answered_at=call.answered_at,
                    ended_at=call.ended_at, duration_s=call.duration_s))
        return written

    async def list_of(self, user_id: uuid.UUID, limit: int | None, cursor: str | None) -> Page[CallView]:
        """The user's ended calls, newest first."""
        size = clamp_limit(limit)
        position = decode_time_cursor(cursor)
        query = (select(participants.c.call_id, participants.c.created_at)
                 .where(participants.c.user_id == user_id)
                 .order_by(participants.c.created_at.desc(), participants.c.call_id.desc()).limit(size + 1))
        if position:
            query = query.where(tuple_(participants.c.created_at, participants.c.call_id) < position)
        async with self._ctx.db.session() as session:
            rows = (await session.execute(query)).all()
            page = page_of(list(rows), size, lambda r: time_position(r.created_at, r.call_id))
            views = await self._views(session, [r.call_id for r in page.items])
        return Page(items=[views[r.call_id] for r in page.items if r.call_id in views], next_cursor=page.next_cursor)

    async def get(self, user_id: uuid.UUID, call_id: uuid.UUID) -> CallView | None:
        """An ended call of the user's, or None (not theirs, or not in history)."""
        async with self._ctx.db.session() as session:
            mine = await session.scalar(select(exists().where(
                participants.c.call_id == call_id, participants.c.user_id == user_id)))
            if not mine:
                return None
            return (await self._views(session, [call_id])).get(call_id)

    @staticmethod
    async def _views(session: Any, call_ids: list[uuid.UUID]) -> dict[uuid.UUID, CallView]:
        if not call_ids:
            return {}
        heads = (await session.execute(select(calls).where(calls.c.id.in_(call_ids)))).all()
        parts = (await session.execute(select(participants).where(participants.c.call_id.in_(call_ids))
                                       .order_by(participants.c.call_id, participants.c.position))).all()
        by_call: dict[uuid.UUID, list[ParticipantView]] = {}
        for p in parts:
            by_call.setdefault(p.call_id, []).append(
                ParticipantView(user_id=p.user_id, state=p.state, joined_at=p.joined_at, left_at=p.left_at))
        return {h.id: CallView(
            id=h.id, kind=h.kind, conversation_id=h.conversation_id, media=h.media, caller_id=h.caller_id,
            status="ended", end_reason=h.end_reason, participants=by_call.get(h.id, []), created_at=h.created_at,
            answered_at=h.answered_at, ended_at=h.ended_at, duration_s=h.duration_s) for h in heads}

    @staticmethod
    async def forget_user(tx: UnitOfWork, user_id: uuid.UUID) -> None:
        """A deleted account leaves no history: its participant rows go, and calls nobody is left in."""
        gone = (await tx.session.execute(delete(participants).where(participants.c.user_id == user_id)
                                         .returning(participants.c.call_id))).scalars().all()
        if gone:
            await tx.session.execute(delete(calls).where(
                calls.c.id.in_(gone), ~exists().where(participants.c.call_id == calls.c.id)))
