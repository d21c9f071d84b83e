"""Request and response bodies of the notifications API, and its socket payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from src.common.queries.users import PublicProfile
from src.modules.notifications.kinds import Kind

MAX_TOKEN_CHARS = 4096


class NotificationView(msgspec.Struct):
    """A notification: `actors` are the latest (at most 3) of `actor_count` people; `count` events
    were collapsed into it; `text` reads "Ann and 11 others reacted to your post"."""

    id: uuid.UUID
    kind: str
    actors: list[PublicProfile]
    actor_count: int
    count: int
    text: str
    subject_id: uuid.UUID | None
    data: dict[str, Any]
    read: bool
    created_at: datetime
    updated_at: datetime


class NotificationPage(msgspec.Struct):
    """A page of notifications, newest first, and the caller's unread count."""

    items: list[NotificationView]
    unread_count: int
    next_cursor: str | None = None


class MarkRead(msgspec.Struct, forbid_unknown_fields=True):
    read: bool


class ReadAllResult(msgspec.Struct):
    cleared: int


class Cleared(msgspec.Struct):
    """`notification:cleared`: these notifications were read (or deleted) somewhere."""

    ids: list[uuid.UUID]


ChannelPrefs = dict[Literal["in_app", "push", "email"], bool]


class PreferencesView(msgspec.Struct):
    """Effective preferences: every kind and channel, and whether push shows message text."""

    kinds: dict[str, dict[str, bool]]
    show_previews: bool


class PreferencesPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Only what changes: `{"kinds": {"follow": {"push": false}}, "show_previews": false}`."""

    kinds: dict[Kind, ChannelPrefs] | None = None
    show_previews: bool | None = None


class RegisterDevice(msgspec.Struct, forbid_unknown_fields=True):
    """A push target: an FCM registration token, or (web push) the browser's subscription JSON."""

    platform: Literal["fcm", "webpush"]
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOKEN_CHARS)]


class DeviceView(msgspec.Struct):
    id: uuid.UUID
    platform: str
    created_at: datetime
