"""Sending a message: the product's hot path (REST and socket share this one method).

Round trips of a send: the rate limit (Redis) and, side by side with it once the conversation is
known to be direct, privacy's `CanMessage` (one Redis MGET when cached), then ONE statement
(run on asyncpg itself, raw_sql.py), its own transaction, that checks membership, `read_only` and the
reply target, allocates `seq`, inserts the message and, in a direct conversation, bumps the two
members' sync heads and writes their change rows, and writes the message's `MessageCreated`
outbox row (always: the publisher never asks who listens); after it, one pipelined XADD alongside
the emit and the hand-over of the event to the bus's dispatcher. A group message writes no row per
member (O(1) writes whatever the group's size): `/sync` reads group messages from the messages
themselves (group_stream.py). Why nothing was written
(404, read_only, invalid_reply_to) is asked only when that happens.

`seq` comes from `UPDATE conversations SET last_seq = last_seq + 1 ... RETURNING` in the
statement that inserts the message: the row lock serializes senders of a conversation until
the commit, and a duplicate `client_msg_id` fails the unique index, which rolls the whole
statement back (seq included), so seqs have no gaps.

A conversation's kind and direct pair never change, so they are cached in-process without
invalidation; membership and `read_only` are always read in the statement.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from src.common.clock import utcnow
from src.common.errors import AppError, ValidationFailed
from src.common.events.messaging import MessageCreated
from src.common.ids import new_id
from src.infra.context import AppContext
from src.modules.messaging.access import (
    conversation_not_found,
    ensure_can_message,
    ensure_writable,
)
from src.modules.messaging.changes import Entry, Fanout, Pending, encode
from src.modules.messaging.media import checked_media, with_media
from src.modules.messaging.models import conversations, messages
from src.modules.messaging.raw_sql import Statement, fetch
from src.modules.messaging.schemas import MediaRef, MessageView, SendMessage
from src.modules.messaging.text import check_body, check_text
from src.modules.messaging.views import MESSAGE_COLUMNS, message_views, peer_of

MAX_CACHED_KINDS = 100_000

INSERT_SQL = Statement("""
WITH conv AS (
    UPDATE messaging.conversations c SET last_seq = c.last_seq + 1, activity_at = CAST(:now AS timestamptz)
    WHERE c.id = :conversation_id AND NOT c.read_only
      AND EXISTS (SELECT 1 FROM messaging.members m
                  WHERE m.conversation_id = :conversation_id AND m.user_id = :sender)
      AND (CAST(:reply_to AS uuid) IS NULL OR EXISTS (
          SELECT 1 FROM messaging.messages r WHERE r.id = :reply_to AND r.conversation_id = :conversation_id))
    RETURNING c.last_seq
), msg AS (
    INSERT INTO messaging.messages (id, conversation_id, seq, sender_id, client_msg_id, body, media_ids,
                                    reply_to, created_at)
    SELECT CAST(:id AS uuid), CAST(:conversation_id AS uuid), conv.last_seq, CAST(:sender AS uuid),
           CAST(:client_msg_id AS varchar), CAST(:body AS text), CAST(:media_ids AS uuid[]),
           CAST(:reply_to AS uuid), CAST(:now AS timestamptz)
    FROM conv
    RETURNING seq
), audience AS (
    SELECT m.user_id FROM messaging.members m, msg WHERE m.conversation_id = :conversation_id
), heads AS (
    INSERT INTO messaging.sync_heads AS h (user_id, position)
    SELECT a.user_id, 1 FROM audience a WHERE :log_members ORDER BY a.user_id
    ON CONFLICT (user_id) DO UPDATE SET position = h.position + 1
    RETURNING h.user_id, h.position
), logged AS (
    INSERT INTO messaging.changes (user_id, position, type, conversation_id, payload)
    SELECT heads.user_id, heads.position, 'message:new', CAST(:conversation_id AS uuid),
           jsonb_set(CAST(:payload AS jsonb), '{seq}', to_jsonb(msg.seq))
    FROM heads, msg
    RETURNING user_id, position
), event AS (
    INSERT INTO infra.outbox (event_id, name, payload, next_attempt_at)
    SELECT CAST(:event_id AS uuid), CAST(:event_name AS varchar),
           CAST(:event AS jsonb) || jsonb_build_object(
               'seq', msg.seq,
               'recipient_ids', COALESCE((SELECT jsonb_agg(a.user_id ORDER BY a.user_id) FROM audience a
                                          WHERE a.user_id <> CAST(:sender AS uuid)), '[]'::jsonb)),
           CAST(:now AS timestamptz) + CAST(:lease AS interval)
    FROM msg
)
SELECT (SELECT last_seq FROM conv) AS seq, (SELECT seq FROM msg) AS inserted, told.user_id, told.position
FROM (SELECT 1) AS one LEFT JOIN (
    SELECT a.user_id, logged.position FROM audience a LEFT JOIN logged ON logged.user_id = a.user_id) AS told ON true
""")  # run on the driver (raw_sql.py): the one statement of every send

DIAGNOSE_SQL = text("""
SELECT c.read_only,
       EXISTS (SELECT 1 FROM messaging.members m
               WHERE m.conversation_id = c.id AND m.user_id = :sender) AS is_member,
       EXISTS (SELECT 1 FROM messaging.messages x WHERE x.conversation_id = c.id AND x.sender_id = :sender
               AND x.client_msg_id = :client_msg_id) AS duplicate,
       (SELECT r.conversation_id FROM messaging.messages r WHERE r.id = CAST(:reply_to AS uuid)) AS reply_conversation
FROM messaging.conversations c WHERE c.id = :conversation_id
""")


class _Duplicate(Exception):
    """This client_msg_id is already stored: roll back (returning the seq) and answer that message."""


class SendService:
    """Stores a message once per (conversation, sender, client_msg_id) and fans it out."""

    def __init__(self, ctx: AppContext, fanout: Fanout) -> None:
        self._ctx = ctx
        self._fanout = fanout
        self._kinds: dict[uuid.UUID, tuple[str, str | None]] = {}
        self._autocommit = ctx.db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def send(self, me: uuid.UUID, conversation_id: uuid.UUID, data: SendMessage, *,
                   sid: str | None = None) -> tuple[MessageView, bool]:
        """Store and deliver a message; (message, created). A retry returns the stored one, created=False."""
        limit = self._ctx.limiter.hit(self._ctx.settings.send_limit_per_user, "send", str(me))
        known = self._kinds.get(conversation_id)
        early_peer = (peer_of(known[1], me) if known and known[0] == "direct" and known[1] and str(me) in known[1]
                      else None)
        allowed: BaseException | None = None
        if early_peer is not None:  # a known direct conversation: the two Redis round trips side by side
            privacy = asyncio.ensure_future(self._may_message(me, early_peer))  # one task, not gather's two
            try:
                await limit  # a refusal of the rate limit is raised here, before any other answer
            except BaseException:
                privacy.cancel()
                raise
            allowed = await privacy
        else:
            await limit
        check_text(data.client_msg_id, "client_msg_id")
        check_body(data.body, has_media=bool(data.media_ids))
        params: dict[str, Any] = {"conversation_id": conversation_id, "sender": me,
                                  "client_msg_id": data.client_msg_id, "reply_to": data.reply_to}
        try:
            kind, pair = await self._kind(conversation_id)
            if kind == "direct":
                peer = peer_of(pair, me)
                if pair is None or str(me) not in pair or peer is None:
                    raise conversation_not_found()
                try:
                    if early_peer is None:
                        await ensure_can_message(self._ctx, me, peer)
                    elif allowed is not None:
                        raise allowed
                except AppError:
                    await self._diagnose(params, data.reply_to)  # a clearer answer (404, read_only, a retry)
                    raise
            media = await checked_media(self._ctx, me, list(dict.fromkeys(data.media_ids)))
            return await self._store(me, conversation_id, data, {**params, "log_members": kind == "direct"},
                                     sid, media)
        except _Duplicate:
            return await self._existing(me, conversation_id, data.client_msg_id), False

    async def _may_message(self, me: uuid.UUID, peer: uuid.UUID) -> BaseException | None:
        """Privacy's answer as a value: None when allowed, else what `ensure_can_message` raised."""
        try:
            await ensure_can_message(self._ctx, me, peer)
        except Exception as exc:
            return exc
        return None

    async def _kind(self, conversation_id: uuid.UUID) -> tuple[str, str | None]:
        found = self._kinds.get(conversation_id)
        if found is None:
            async with self._autocommit.connect() as conn:
                row = (await conn.execute(select(conversations.c.kind, conversations.c.direct_key)
                                          .where(conversations.c.id == conversation_id))).first()
            if row is None:
                raise conversation_not_found()
            if len(self._kinds) >= MAX_CACHED_KINDS:
                self._kinds.clear()
            found = self._kinds[conversation_id] = (row.kind, row.direct_key)
        return found

    async def _store(self, me: uuid.UUID, conversation_id: uuid.UUID, data: SendMessage, params: dict[str, Any],
                     sid: str | None, media: list[MediaRef]) -> tuple[MessageView, bool]:
        media_ids = [m.id for m in media]
        now = utcnow()
        view = MessageView(id=new_id(), conversation_id=conversation_id, seq=0, sender_id=me,
                           client_msg_id=data.client_msg_id, body=data.body,
                           media=media, reply_to=data.reply_to, reactions={},
                           my_reactions=[], created_at=now, edited_at=None, deleted=False)
        values = {**params, "id": view.id, "body": data.body, "media_ids": media_ids, "now": now,
                  "payload": encode(view)}
        event = MessageCreated(message_id=view.id, conversation_id=conversation_id, sender_id=me,
                               recipient_ids=[], seq=0, media_ids=media_ids, occurred_at=now)
        values.update(event_id=event.event_id, event_name=event.name, event=encode(event),
                      lease=self._ctx.bus.fast_path_lease)
        try:
            # One statement is its own transaction: no BEGIN / COMMIT round trips. Its last step
            # writes the message's durable MessageCreated to the outbox, always.
            rows = await fetch(self._ctx.db, INSERT_SQL, values)
        except asyncpg.UniqueViolationError as exc:
            if "uq_messages_client_msg" in (exc.constraint_name or str(exc)):
                raise _Duplicate from None  # the statement, seq included, was rolled back
            raise
        first = rows[0]
        if first["inserted"] is None:  # nothing was written: say why
            await self._diagnose(values, view.reply_to)
            raise conversation_not_found()
        view.seq = first["inserted"]
        payload = encode(view)
        users = [r["user_id"] for r in rows if r["user_id"] is not None]
        pending = Pending()
        pending.entries.extend(Entry(r["user_id"], r["position"], "message:new", conversation_id, payload)
                               for r in rows if r["position"] is not None)
        pending.emit("message:new", view, users, sid)
        committed = msgspec.structs.replace(event, seq=view.seq, recipient_ids=sorted(u for u in users if u != me))
        await asyncio.gather(*self._fanout.jobs(pending), self._ctx.bus.committed([committed]))
        return view, True

    async def _diagnose(self, params: dict[str, Any], reply_to: uuid.UUID | None,
                        conn: AsyncConnection | None = None) -> None:
        """Why nothing was stored: raise the answer (404, read_only, invalid_reply_to) or _Duplicate."""
        if conn is None:
            async with self._autocommit.connect() as own:
                found = (await own.execute(DIAGNOSE_SQL, params)).first()
        else:
            found = (await conn.execute(DIAGNOSE_SQL, params)).first()
        if found is None or not found.is_member:
            raise conversation_not_found()
        if found.duplicate:
            raise _Duplicate
        ensure_writable(found)
        if reply_to is not None and found.reply_conversation != params["conversation_id"]:
            raise ValidationFailed("reply_to is not a message of this conversation", field="reply_to",
                                   code="invalid_reply_to")

    async def _existing(self, me: uuid.UUID, conversation_id: uuid.UUID, client_msg_id: str) -> MessageView:
        async with self._autocommit.connect() as conn:
            row = (await conn.execute(select(*MESSAGE_COLUMNS).where(
                messages.c.conversation_id == conversation_id, messages.c.sender_id == me,
                messages.c.client_msg_id == client_msg_id))).one()
            views = await message_views(conn, [row], me)
        return (await with_media(self._ctx, views))[0]
