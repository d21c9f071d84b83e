"""Tables of the messaging module (schema `messaging`), as Core tables: the hot paths use Core."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID
from sqlalchemy.types import UserDefinedType

from src.infra.db import Base

SCHEMA = "messaging"
_meta = Base.metadata


class Xid8(UserDefinedType):  # type: ignore[type-arg]
    """PostgreSQL's 64-bit transaction id (`xid8`), written by the database and read by raw SQL."""

    cache_ok = True

    def get_col_spec(self, **_: object) -> str:
        return "xid8"

conversations = Table(
    "conversations", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("kind", String(10), nullable=False),  # direct | group
    Column("direct_key", String(80), unique=True),  # "minid:maxid" of a direct pair
    Column("name", String(100)),
    Column("description", String(1000)),
    Column("owner_id", UUID(as_uuid=True)),
    Column("created_by", UUID(as_uuid=True), nullable=False),
    Column("last_seq", BigInteger, nullable=False, server_default="0"),
    Column("read_only", Boolean, nullable=False, server_default="false"),
    Column("join_policy", String(12), nullable=False, server_default="invite_only"),  # groups: invite_only | request
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("activity_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

members = Table(
    "members", _meta,
    Column("conversation_id", UUID(as_uuid=True), ForeignKey(conversations.c.id, ondelete="CASCADE"),
           primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("role", String(10), nullable=False, server_default="member"),  # owner | admin | member
    Column("joined_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("joined_seq", BigInteger, nullable=False, server_default="0"),  # sees messages with seq > this
    Column("last_read_seq", BigInteger, nullable=False, server_default="0"),
    Column("last_delivered_seq", BigInteger, nullable=False, server_default="0"),
    # What the other members may know of this member's reading (frozen while read receipts are off).
    Column("public_read_seq", BigInteger, nullable=False, server_default="0"),
    Index("ix_members_user_id", "user_id", "conversation_id"),
    Index("uq_members_one_owner", "conversation_id", unique=True, postgresql_where=text("role = 'owner'")),
    schema=SCHEMA,
)

messages = Table(
    "messages", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("conversation_id", UUID(as_uuid=True), ForeignKey(conversations.c.id, ondelete="CASCADE"),
           nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", UUID(as_uuid=True), nullable=False),
    Column("sender_deleted", Boolean, nullable=False, server_default="false"),
    Column("client_msg_id", String(64), nullable=False),
    Column("body", Text),
    Column("media_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    Column("reply_to", UUID(as_uuid=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("edited_at", DateTime(timezone=True)),
    Column("deleted_at", DateTime(timezone=True)),
    Column("search", TSVECTOR),  # generated: to_tsvector('simple', coalesce(body, ''))
    UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    UniqueConstraint("conversation_id", "sender_id", "client_msg_id", name="uq_messages_client_msg"),
    Index("ix_messages_search", "search", postgresql_using="gin"),
    Index("ix_messages_sender_id", "sender_id"),
    # The writing transaction, behind the group stream of `/sync` (group_stream.py); only raw SQL reads it.
    Column("xid", Xid8(), nullable=False, server_default=text("pg_current_xact_id()")),
    Index("ix_messages_conversation_xid", "conversation_id", "xid"),
    schema=SCHEMA,
)

reactions = Table(
    "reactions", _meta,
    Column("message_id", UUID(as_uuid=True), ForeignKey(messages.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("emoji", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_reactions_user_id", "user_id"),
    schema=SCHEMA,
)

hidden_messages = Table(
    "hidden_messages", _meta,
    Column("message_id", UUID(as_uuid=True), ForeignKey(messages.c.id, ondelete="CASCADE"), primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("conversation_id", UUID(as_uuid=True), nullable=False),
    Column("hidden_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_hidden_messages_user_id", "user_id"),
    schema=SCHEMA,
)

sync_heads = Table(
    "sync_heads", _meta,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("position", BigInteger, nullable=False, server_default="0"),
    schema=SCHEMA,
)

changes = Table(
    "changes", _meta,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("type", String(40), nullable=False),
    Column("conversation_id", UUID(as_uuid=True)),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_changes_created_at", "created_at", postgresql_using="brin"),
    schema=SCHEMA,
)

join_requests = Table(
    "join_requests", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("conversation_id", UUID(as_uuid=True), ForeignKey(conversations.c.id, ondelete="CASCADE"),
           nullable=False),
    Column("user_id", UUID(as_uuid=True), nullable=False),  # one pending request per (group, user)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("uq_join_requests_pending", "conversation_id", "user_id", unique=True),
    Index("ix_join_requests_user_id", "user_id"),
    schema=SCHEMA,
)
