"""Events about accounts (published by auth) and profiles (published by users)."""

from __future__ import annotations

import uuid

from src.common.events.base import Event


class UserRegistered(Event, frozen=True, kw_only=True):
    """An account was created (auth). Fires once per account; the profile follows from it."""

    name = "auth.user_registered.v1"
    user_id: uuid.UUID
    username: str
    email: str
    display_name: str


class UserDeleted(Event, frozen=True, kw_only=True):
    """A user deleted their account (users). Every module removes or anonymises its rows."""

    name = "users.user_deleted.v1"
    user_id: uuid.UUID


class ProfileImageChanged(Event, frozen=True, kw_only=True):
    """A user set their avatar or background (users) to `media_id`; `occurred_at` orders the changes
    (the latest one is the current image)."""

    name = "users.profile_image_changed.v1"
    user_id: uuid.UUID
    kind: str  # avatar | background
    media_id: uuid.UUID
