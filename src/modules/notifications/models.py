"""Tables of the notifications module (schema `notifications`, migration 0013), as Core tables."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from src.infra.db import Base

SCHEMA = "notifications"
_meta = Base.metadata

# One row per notification: one id across in-app, push and email. A burst on one subject
# (`collapse_key`) within the collapse window updates the unread row in place (`version` + 1).
notifications = Table(
    "notifications", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("actor_id", UUID(as_uuid=True), nullable=False),  # the latest actor
    Column("actor_ids", ARRAY(UUID(as_uuid=True)), nullable=False),  # latest first, at most MAX_ACTORS
    Column("actor_count", Integer, nullable=False),  # distinct actors (exact up to MAX_ACTORS)
    Column("event_count", Integer, nullable=False),
    Column("subject_id", UUID(as_uuid=True)),  # the post, conversation, user… it is about
    Column("subject_seq", BigInteger),  # messages: the latest seq it covers
    Column("collapse_key", String(200)),
    Column("data", JSONB, nullable=False),
    Column("in_app", Boolean, nullable=False),
    Column("push", Boolean, nullable=False),
    Column("email", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("pushed_version", Integer, nullable=False, server_default="0"),
    Column("emailed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("read_at", DateTime(timezone=True)),
    Index("ix_notifications_list", "user_id", text("updated_at DESC"), text("id DESC"),
          postgresql_where=text("in_app")),
    Index("ix_notifications_unread", "user_id", "collapse_key", postgresql_where=text("read_at IS NULL")),
    Index("ix_notifications_subject", "user_id", "subject_id", postgresql_where=text("read_at IS NULL")),
    schema=SCHEMA,
)

# (recipient, event) pairs already turned into a notification: a redelivered event notifies once.
sources = Table(
    "sources", _meta,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_sources_created_at", "created_at", postgresql_using="brin"),
    schema=SCHEMA,
)

preferences = Table(
    "preferences", _meta,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("channels", JSONB, nullable=False),  # {kind: {channel: bool}}: only what differs from defaults
    Column("show_previews", Boolean, nullable=False, server_default="true"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    schema=SCHEMA,
)

# Push tokens: unique across users (sha256 of the token), never logged, never in a broker message.
devices = Table(
    "devices", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), nullable=False),
    Column("platform", String(10), nullable=False),  # fcm | webpush
    Column("token", Text, nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_devices_user_id", "user_id"),
    schema=SCHEMA,
)
