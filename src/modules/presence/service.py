"""Presence: socket lifecycle and heartbeats (API processes), transitions and fan-out (workers).

The API side appends each connect, heartbeat or disconnect to a batch written every
`PRESENCE_WRITE_WINDOW` seconds as one Redis script call (changes.py; a socket's hooks await
nothing) and gathers the online transitions of ANNOUNCE_WAIT seconds into one `presence.announce`
task: no contact list is read, nothing is emitted and no broker call is made on a socket's or a
request's path. Workers find the
recipients (online contacts, at most `PRESENCE_FANOUT_LIMIT`) and emit in batches of user rooms,
one publish per batch; the offline side comes from the sweep (`presence.sweep`), which also
writes `last_seen_at`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from src.common.auth import Principal
from src.common.clock import utcnow
from src.common.errors import ValidationFailed
from src.common.queries.privacy import HidingLastSeen
from src.infra.context import AppContext
from src.infra.redis import REDIS_ERRORS
from src.infra.tasks import TaskSpec
from src.modules.presence.changes import Applied, SocketChanges
from src.modules.presence.models import last_seen
from src.modules.presence.schemas import HeartbeatAck, PresenceEvent, PresenceView
from src.modules.presence.state import PresenceState, online_key, sockets_key
from src.modules.presence.visibility import contacts_of_many, visible_to

log = structlog.get_logger("chatty.presence")
MAX_IDS = 100
EMIT_BATCH = 1000  # user rooms per publish
ANNOUNCE_WAIT = 0.05  # seconds an online transition waits for others to share its announce task
ANNOUNCE_BATCH = 500  # users per announce task


def parse_ids(raw: str | None) -> list[uuid.UUID]:
    """`a,b,c` as ids (1..100, duplicates dropped); 400 otherwise."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if not parts:
        raise ValidationFailed("user_ids is required", field="user_ids")
    try:
        ids = list(dict.fromkeys(uuid.UUID(p) for p in parts))
    except ValueError:
        raise ValidationFailed("user_ids must be comma-separated ids", field="user_ids") from None
    if len(ids) > MAX_IDS:
        raise ValidationFailed(f"at most {MAX_IDS} user_ids", field="user_ids")
    return ids


class PresenceService:
    """Tracks sockets, answers who is online, announces transitions."""

    def __init__(self, ctx: AppContext, sweep_task: Callable[[], TaskSpec], announce_task: Callable[[], TaskSpec]
                 ) -> None:
        self._ctx = ctx
        settings = ctx.settings
        self.state = PresenceState(ctx.redis)
        self.changes = SocketChanges(ctx.redis, timeout=settings.presence_timeout, debounce=settings.presence_debounce,
                                     window=settings.presence_write_window, on_applied=self._applied)
        self._sweep_task = sweep_task
        self._announce_task = announce_task
        self._to_announce: set[uuid.UUID] = set()
        self._announcing: asyncio.Task[None] | None = None

    # -- API process: sockets ------------------------------------------------------------------

    async def connected(self, principal: Principal, sid: str) -> None:
        """A socket connected (lifecycle hook): written with the next batch, not awaited."""
        self.changes.alive(principal.user_id, sid)

    async def heartbeat(self, principal: Principal, sid: str, _: object = None) -> HeartbeatAck:
        """`presence:heartbeat`: the socket is still there for another `PRESENCE_TIMEOUT` seconds."""
        await self.changes.alive(principal.user_id, sid)
        return HeartbeatAck(online=True, expires_in=self._ctx.settings.presence_timeout)

    async def disconnected(self, principal: Principal, sid: str) -> None:
        """A socket disconnected (lifecycle hook): after the last one, a check is due after the
        debounce (written with the next batch, not awaited)."""
        self.changes.gone(principal.user_id, sid)

    async def _applied(self, applied: Applied) -> None:
        """A batch of socket changes was written: announce who came online, start the sweep if asked."""
        if applied.came_online:
            self._to_announce.update(applied.came_online)
            if self._announcing is None:
                self._announcing = asyncio.create_task(self._announce_soon())
        if applied.kick:
            await self._enqueue(self._sweep_task())

    async def _announce_soon(self) -> None:
        """One announce task for the online transitions of the next ANNOUNCE_WAIT seconds."""
        try:
            await asyncio.sleep(ANNOUNCE_WAIT)
        finally:
            users, self._to_announce, self._announcing = sorted(self._to_announce), set(), None
        for start in range(0, len(users), ANNOUNCE_BATCH):
            await self._enqueue(self._announce_task(), user_ids=[str(u) for u in users[start:start + ANNOUNCE_BATCH]])

    async def _enqueue(self, task: TaskSpec, **kwargs: Any) -> None:
        try:
            # The broker's client is synchronous: off the event loop, so sockets never wait on it.
            await asyncio.to_thread(self._ctx.tasks.enqueue, task, **kwargs)
        except REDIS_ERRORS as exc:  # the workers' periodic kick restarts a sweep chain anyway
            log.warning("presence.enqueue_failed", task=task.name, error=repr(exc))

    # -- reads ---------------------------------------------------------------------------------

    async def view(self, viewer: uuid.UUID, user_ids: list[uuid.UUID]) -> dict[str, PresenceView | None]:
        """Per id: its presence if `viewer` may see it, else null (never an error that tells why)."""
        visible = await visible_to(self._ctx, viewer, user_ids)
        online = await self.state.online(sorted(visible))
        seen: dict[uuid.UUID, object] = {}
        if visible - online:
            async with self._ctx.db.engine.connect() as conn:
                rows = (await conn.execute(select(last_seen.c.user_id, last_seen.c.last_seen_at)
                                           .where(last_seen.c.user_id.in_(sorted(visible - online))))).all()
            seen = {r.user_id: r.last_seen_at for r in rows}
        return {str(u): (PresenceView(online=u in online, last_seen_at=None if u in online else seen.get(u))  # type: ignore[arg-type]
                         if u in visible else None) for u in user_ids}

    # -- workers -------------------------------------------------------------------------------

    async def settle_due(self, batch: int = 500) -> int:
        """Decide the due checks: record and announce who went offline; how many went."""
        gone = await self.state.settle(batch)
        if gone:
            now = utcnow()
            async with self._ctx.db.engine.begin() as conn:
                statement = pg_insert(last_seen).values([{"user_id": u, "last_seen_at": now} for u in sorted(gone)])
                await conn.execute(statement.on_conflict_do_update(
                    index_elements=[last_seen.c.user_id], set_={"last_seen_at": statement.excluded.last_seen_at}))
            await self.announce_many(gone, last_seen_at=now)
        return len(gone)

    async def announce_many(self, user_ids: list[uuid.UUID], last_seen_at: datetime | None = None) -> None:
        """Tell each user's online contacts their current state (idempotent: the state is read now;
        `last_seen_at`: the sweep just wrote it for all of them). A batch costs the same few
        questions whatever its size: who hides their last seen, who is online, the last-seen rows
        of the offline, three for the contacts, who of those is online."""
        candidates = sorted(set(user_ids))
        hidden = await self._ctx.queries.ask(HidingLastSeen(user_ids=candidates))
        users = [u for u in candidates if u not in hidden]
        if not users:
            return
        online = await self.state.online(users)
        seen: dict[uuid.UUID, datetime | None] = {}
        offline = [u for u in users if u not in online]
        if offline and last_seen_at is not None:
            seen = dict.fromkeys(offline, last_seen_at)
        elif offline:
            async with self._ctx.db.engine.connect() as conn:
                seen = dict((await conn.execute(select(last_seen.c.user_id, last_seen.c.last_seen_at)
                                                .where(last_seen.c.user_id.in_(offline)))).tuples().all())
        settings = self._ctx.settings
        contacts = await contacts_of_many(self._ctx, users, limit=settings.presence_fanout_limit,
                                          max_group_members=settings.presence_push_group_max)
        reachable = await self.state.online(sorted(set().union(*contacts.values())))
        for user_id in users:
            recipients = sorted(contacts[user_id] & reachable)
            event = PresenceEvent(user_id=user_id, online=user_id in online, last_seen_at=seen.get(user_id))
            for start in range(0, len(recipients), EMIT_BATCH):
                await self._ctx.realtime.emit_to_users("presence", event, recipients[start:start + EMIT_BATCH])

    async def forget(self, user_id: uuid.UUID) -> None:
        """A deleted account: drop its last-seen row and Redis state (idempotent)."""
        async with self._ctx.db.engine.begin() as conn:
            await conn.execute(last_seen.delete().where(last_seen.c.user_id == user_id))
        await self._ctx.redis.delete(online_key(user_id), sockets_key(user_id))
