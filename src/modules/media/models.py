"""Tables of the media module (schema `media`), as Core tables."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, ForeignKey, Index, Integer, String, Table, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

from src.infra.db import Base

SCHEMA = "media"
_meta = Base.metadata

items = Table(
    "items", _meta,
    Column("id", UUID(as_uuid=True), primary_key=True),  # also the upload id
    Column("owner_id", UUID(as_uuid=True), nullable=False),
    Column("purpose", String(12), nullable=False),  # avatar | background | message | post
    Column("kind", String(8), nullable=False),  # image | video | audio | file
    Column("status", String(12), nullable=False),  # uploading | processing | ready | failed
    Column("filename", String(255), nullable=False),
    Column("declared_type", String(100), nullable=False),
    Column("content_type", String(100), nullable=False),  # sniffed from the bytes at completion
    Column("size", BigInteger, nullable=False),  # declared, checked against the stored object
    Column("width", Integer),
    Column("height", Integer),
    Column("duration_s", Float),
    Column("placeholder", String(100)),  # blurhash of images and video posters
    Column("processing", String(20)),  # a note: "skipped" when video tools are missing
    Column("failure_reason", String(200)),
    Column("variants", JSONB, nullable=False, server_default="{}"),  # name -> {key, content_type, ...}
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("completed_at", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
    Index("ix_media_items_owner", "owner_id", text("created_at DESC")),
    Index("ix_media_items_status_created", "status", "created_at"),
    schema=SCHEMA,
)

attachments = Table(
    "attachments", _meta,
    Column("media_id", UUID(as_uuid=True), ForeignKey(items.c.id, ondelete="CASCADE"), primary_key=True),
    Column("kind", String(12), primary_key=True),  # message | post | avatar | background
    Column("target_id", UUID(as_uuid=True), primary_key=True),  # message, post or user id
    Column("conversation_id", UUID(as_uuid=True)),  # of a message attachment
    Column("attached_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_media_attachments_target", "kind", "target_id", text("attached_at DESC")),
    schema=SCHEMA,
)
