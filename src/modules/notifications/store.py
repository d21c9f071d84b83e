"""The notifications table: create or collapse, list, read, delete, claim a push or an email.

The only code that writes `notifications.notifications` and `notifications.sources`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, select, text, tuple_, update

from src.common.ids import new_id
from src.infra.context import AppContext
from src.infra.uow import UnitOfWork
from src.modules.notifications.kinds import Kind
from src.modules.notifications.models import notifications

MAX_ACTORS = 50  # actors remembered per collapsed notification (the count stays exact up to here)


@dataclass(frozen=True)
class Intent:
    """What a listener wants to tell one user about one event.

    With `collapse`, intents of one kind about one subject within the collapse window update one
    unread notification in place ("Ann and 11 others reacted to your post").
    """

    recipient_id: uuid.UUID
    kind: Kind
    actor_id: uuid.UUID
    event_id: uuid.UUID
    subject_id: uuid.UUID | None = None
    subject_seq: int | None = None
    collapse: bool = False
    data: dict[str, Any] = field(default_factory=dict)  # ids for clients, JSON-ready
    events: int = 1  # events of this actor it stands for (a window's messages of one sender, the latest)

    @property
    def collapse_key(self) -> str | None:
        return f"{self.kind}:{self.subject_id}" if self.collapse else None


# Many intents at once (one per (recipient, subject) group), `w` their arrays: each collapses into
# the latest unread notification of its subject within the window, if there is one.
COLLAPSE_MANY_SQL = text("""
UPDATE notifications.notifications n SET
    actor_id = w.actor,
    actor_ids = (ARRAY[w.actor] || array_remove(n.actor_ids, w.actor))[1:50],
    actor_count = n.actor_count + CASE WHEN w.actor = ANY(n.actor_ids) THEN 0 ELSE 1 END,
    event_count = n.event_count + w.events,
    subject_seq = GREATEST(n.subject_seq, w.seq),
    data = n.data || CAST(w.data AS jsonb),
    in_app = w.in_app, push = w.push, email = w.email,
    version = n.version + 1, updated_at = now()
FROM (
    SELECT w.*, open.id
    FROM unnest(CAST(:users AS uuid[]), CAST(:keys AS text[]), CAST(:actors AS uuid[]), CAST(:events AS int[]),
                CAST(:seqs AS bigint[]), CAST(:datas AS text[]), CAST(:in_app AS boolean[]),
                CAST(:push AS boolean[]), CAST(:email AS boolean[]))
         AS w(user_id, key, actor, events, seq, data, in_app, push, email)
    CROSS JOIN LATERAL (
        SELECT x.id FROM notifications.notifications x
        WHERE x.user_id = w.user_id AND x.collapse_key = w.key AND x.read_at IS NULL
          AND x.created_at > now() - make_interval(secs => :window)
        ORDER BY x.created_at DESC LIMIT 1) open
) w
WHERE n.id = w.id
RETURNING n.*
""")

INSERT_MANY_SQL = text("""
INSERT INTO notifications.notifications (id, user_id, kind, actor_id, actor_ids, actor_count, event_count,
    subject_id, subject_seq, collapse_key, data, version, in_app, push, email)
SELECT w.id, w.user_id, w.kind, w.actor, ARRAY[w.actor], 1, w.events, w.subject, w.seq, w.key,
       CAST(w.data AS jsonb), 1, w.in_app, w.push, w.email
FROM unnest(CAST(:ids AS uuid[]), CAST(:users AS uuid[]), CAST(:kinds AS text[]), CAST(:actors AS uuid[]),
            CAST(:events AS int[]), CAST(:subjects AS uuid[]), CAST(:seqs AS bigint[]), CAST(:keys AS text[]),
            CAST(:datas AS text[]), CAST(:in_app AS boolean[]), CAST(:push AS boolean[]), CAST(:email AS boolean[]))
     AS w(id, user_id, kind, actor, events, subject, seq, key, data, in_app, push, email)
RETURNING *
""")

# Two bursts on one subject must not both insert: one lock per (user, key), taken in the order given.
LOCK_MANY_SQL = text("SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
                     "FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS l(k, i)")


CLAIM_SOURCES_SQL = text("""
INSERT INTO notifications.sources (user_id, event_id)
SELECT * FROM unnest(CAST(:users AS uuid[]), CAST(:events AS uuid[]))
ON CONFLICT DO NOTHING
RETURNING user_id, event_id
""")


@dataclass
class Claimed:
    """A notification whose alert this process may push: the row, its user's devices, previews."""

    row: Any
    devices: list[Any]
    show_previews: bool


class NotificationStore:
    """Rows of one user's notifications; every method checks the owner."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def claim_sources(self, tx: UnitOfWork,
                            pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Record that each event notified its user, in one statement; answers the pairs that had
        not been recorded before (a redelivered event finds its pair taken)."""
        pairs = list(dict.fromkeys(pairs))
        if not pairs:
            return set()
        rows = await tx.session.execute(CLAIM_SOURCES_SQL, {"users": [u for u, _ in pairs],
                                                            "events": [e for _, e in pairs]})
        return {(r.user_id, r.event_id) for r in rows}

    async def upsert_groups(self, tx: UnitOfWork, groups: list[tuple[list[Intent], dict[str, bool]]]) -> list[Any]:
        """One notification per group (the intents of one recipient about one subject, with its
        channels), created or collapsed into the open one of its subject: the rows, in order.

        A group counts each actor's events, the latest actor last; its distinct actors are applied
        in rounds, each round one statement for every group (collapse, then insert the misses).
        """
        plans: list[list[tuple[Intent, int]]] = []
        for group, _ in groups:
            counts: dict[uuid.UUID, int] = {}
            last: dict[uuid.UUID, Intent] = {}
            for intent in sorted(group, key=lambda i: i.subject_seq or 0):
                counts[intent.actor_id] = counts.get(intent.actor_id, 0) + intent.events
                last.pop(intent.actor_id, None)
                last[intent.actor_id] = intent  # insertion order: the most recent actor ends last
            plans.append([(intent, counts[actor]) for actor, intent in last.items()])
        locks = sorted({f"{g[0].recipient_id}:{g[0].collapse_key}" for g, _ in groups if g and g[0].collapse_key})
        if locks:
            await tx.session.execute(LOCK_MANY_SQL, {"keys": locks})
        rows: list[Any] = [None] * len(groups)
        for step in range(max((len(p) for p in plans), default=0)):
            batch = [(i, *plans[i][step], groups[i][1]) for i in range(len(groups)) if step < len(plans[i])]
            collapsed = await self._collapse(tx, [b for b in batch if b[1].collapse_key is not None])
            missing = []
            for i, intent, events, channels in batch:
                row = collapsed.get((str(intent.recipient_id), intent.collapse_key))
                if row is None:
                    missing.append((i, intent, events, channels))
                else:
                    rows[i] = row
            for i, row in zip([m[0] for m in missing], await self._insert(tx, missing), strict=True):
                rows[i] = row
        return rows

    async def _collapse(self, tx: UnitOfWork, batch: list[tuple[int, Intent, int, dict[str, bool]]]) -> dict[Any, Any]:
        """Collapse each intent into its subject's open notification: (user id, key) → updated row."""
        if not batch:
            return {}
        result = await tx.session.execute(COLLAPSE_MANY_SQL, {
            "users": [b[1].recipient_id for b in batch], "keys": [b[1].collapse_key for b in batch],
            "actors": [b[1].actor_id for b in batch], "events": [b[2] for b in batch],
            "seqs": [b[1].subject_seq for b in batch], "datas": [json.dumps(b[1].data) for b in batch],
            "in_app": [b[3]["in_app"] for b in batch], "push": [b[3]["push"] for b in batch],
            "email": [b[3]["email"] for b in batch], "window": self._ctx.settings.notification_collapse_window})
        return {(str(row.user_id), row.collapse_key): row for row in result}

    async def _insert(self, tx: UnitOfWork, batch: list[tuple[int, Intent, int, dict[str, bool]]]) -> list[Any]:
        """Create one notification per intent (one statement): the rows, in order."""
        if not batch:
            return []
        ids = [new_id() for _ in batch]
        result = await tx.session.execute(INSERT_MANY_SQL, {
            "ids": ids, "users": [b[1].recipient_id for b in batch], "kinds": [b[1].kind for b in batch],
            "actors": [b[1].actor_id for b in batch], "events": [b[2] for b in batch],
            "subjects": [b[1].subject_id for b in batch], "seqs": [b[1].subject_seq for b in batch],
            "keys": [b[1].collapse_key for b in batch], "datas": [json.dumps(b[1].data) for b in batch],
            "in_app": [b[3]["in_app"] for b in batch], "push": [b[3]["push"] for b in batch],
            "email": [b[3]["email"] for b in batch]})
        by_id = {row.id: row for row in result}
        return [by_id[note_id] for note_id in ids]

    async def page(self, user_id: uuid.UUID, unread: bool, size: int,
                   position: tuple[datetime, uuid.UUID] | None) -> tuple[list[Any], int]:
        """`size + 1` in-app rows newest first after `position`, and the unread count."""
        mine = and_(notifications.c.user_id == user_id, notifications.c.in_app)
        query = select(notifications).where(mine).order_by(
            notifications.c.updated_at.desc(), notifications.c.id.desc()).limit(size + 1)
        if unread:
            query = query.where(notifications.c.read_at.is_(None))
        if position:
            query = query.where(tuple_(notifications.c.updated_at, notifications.c.id) < position)
        async with self._ctx.db.session() as session:
            rows = list((await session.execute(query)).all())
            count = await session.scalar(select(func.count()).where(mine, notifications.c.read_at.is_(None)))
        return rows, int(count or 0)

    async def get(self, user_id: uuid.UUID, note_id: uuid.UUID) -> Any:
        async with self._ctx.db.session() as session:
            return (await session.execute(select(notifications).where(
                notifications.c.id == note_id, notifications.c.user_id == user_id))).first()

    async def mark_read(self, user_id: uuid.UUID, *, ids: list[uuid.UUID] | None = None,
                        conversation: tuple[uuid.UUID, int] | None = None) -> list[tuple[uuid.UUID, bool]]:
        """Mark unread notifications read: these `ids`, those of a conversation up to a seq, or all.

        Answers (id, was pushed) of the rows this call changed (a repeat changes none).
        """
        where = [notifications.c.user_id == user_id, notifications.c.read_at.is_(None)]
        if ids is not None:
            where.append(notifications.c.id.in_(ids))
        if conversation is not None:
            where += [notifications.c.kind == "message", notifications.c.subject_id == conversation[0],
                      notifications.c.subject_seq <= conversation[1]]
        async with self._ctx.db.session() as session, session.begin():
            rows = (await session.execute(update(notifications).where(*where).values(read_at=func.now())
                                          .returning(notifications.c.id, notifications.c.pushed_version))).all()
        return [(r.id, r.pushed_version > 0) for r in rows]

    async def mark_unread(self, user_id: uuid.UUID, note_id: uuid.UUID) -> None:
        async with self._ctx.db.session() as session, session.begin():
            await session.execute(update(notifications).where(
                notifications.c.id == note_id, notifications.c.user_id == user_id).values(read_at=None))

    async def delete(self, user_id: uuid.UUID, note_id: uuid.UUID) -> Any:
        """Delete one notification; the deleted row (None when it was not the user's)."""
        async with self._ctx.db.session() as session, session.begin():
            return (await session.execute(delete(notifications).where(
                notifications.c.id == note_id, notifications.c.user_id == user_id)
                .returning(notifications.c.id, notifications.c.read_at, notifications.c.pushed_version))).first()

    async def delete_about(self, subject_id: uuid.UUID, kinds: list[str]) -> list[Any]:
        """Delete every notification of these kinds about a subject (a deleted post): the rows."""
        async with self._ctx.db.session() as session, session.begin():
            return list((await session.execute(delete(notifications).where(
                notifications.c.subject_id == subject_id, notifications.c.kind.in_(kinds))
                .returning(notifications.c.id, notifications.c.user_id, notifications.c.read_at,
                           notifications.c.pushed_version))).all())

    async def by_id(self, note_id: uuid.UUID) -> Any:
        """A notification whoever owns it (for workers)."""
        async with self._ctx.db.session() as session:
            return (await session.execute(select(notifications).where(notifications.c.id == note_id))).first()
