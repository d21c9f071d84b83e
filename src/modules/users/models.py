"""Tables of the users module (schema `users`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from src.infra.db import Base

SCHEMA = "users"


class Profile(Base):
    """A user's public profile and counters kept from other modules' events."""

    __tablename__ = "profiles"
    __table_args__ = (
        Index("ix_profiles_username_prefix", text("lower(username) text_pattern_ops")),
        Index("ix_profiles_display_name_prefix", text("lower(display_name) text_pattern_ops")),
        {"schema": SCHEMA},
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    username: Mapped[str] = mapped_column(String(32))
    email: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(64))
    quote: Mapped[str | None] = mapped_column(String(280))
    work: Mapped[str | None] = mapped_column(String(100))
    school: Mapped[str | None] = mapped_column(String(100))
    location: Mapped[str | None] = mapped_column(String(100))
    social_links: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    background_url: Mapped[str | None] = mapped_column(String(500))
    avatar_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    background_media_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    followers_count: Mapped[int] = mapped_column(Integer, server_default="0")
    following_count: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProfileImage(Base):
    """An avatar or background the user set (their history; the media itself lives in media)."""

    __tablename__ = "profile_images"
    __table_args__ = (Index("ix_profile_images_recent", "user_id", text("set_at DESC"), text("media_id DESC")),
                      {"schema": SCHEMA})

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    media_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    kind: Mapped[str] = mapped_column(String(12), primary_key=True)  # avatar | background
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
