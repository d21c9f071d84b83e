"""Tables of the privacy module (schema `privacy`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, String, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from src.infra.db import Base

SCHEMA = "privacy"
AUDIENCES = "('everyone', 'friends', 'nobody')"


class PrivacySettings(Base):
    """A user's privacy settings; a row exists only while some setting differs from the defaults."""

    __tablename__ = "settings"
    __table_args__ = (
        CheckConstraint(f"who_can_message IN {AUDIENCES}", name="who_can_message"),
        CheckConstraint(f"who_can_call IN {AUDIENCES}", name="who_can_call"),
        CheckConstraint(f"profile_visibility IN {AUDIENCES}", name="profile_visibility"),
        {"schema": SCHEMA},
    )

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    who_can_message: Mapped[str] = mapped_column(String(10), server_default="everyone")
    who_can_call: Mapped[str] = mapped_column(String(10), server_default="everyone")
    profile_visibility: Mapped[str] = mapped_column(String(10), server_default="everyone")
    show_last_seen: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    read_receipts: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
