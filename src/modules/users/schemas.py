"""Request and response bodies of the users API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

Text100 = Annotated[str, msgspec.Meta(max_length=100)]
SocialLinks = Annotated[dict[Annotated[str, msgspec.Meta(min_length=1, max_length=32)],
                             Annotated[str, msgspec.Meta(max_length=300)]], msgspec.Meta(max_length=10)]


class ProfileView(msgspec.Struct):
    """A public profile."""

    id: uuid.UUID
    username: str
    display_name: str
    quote: str | None
    work: str | None
    school: str | None
    location: str | None
    social_links: dict[str, str]
    avatar_url: str | None
    background_url: str | None
    avatar_media_id: uuid.UUID | None
    background_media_id: uuid.UUID | None
    followers_count: int
    following_count: int
    created_at: datetime


class MyProfile(ProfileView):
    """The caller's own profile, with private fields."""

    email: str


class ProfilePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; absent fields stay, null clears (display_name cannot be null)."""

    display_name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    quote: Annotated[str, msgspec.Meta(max_length=280)] | msgspec.UnsetType | None = msgspec.UNSET
    work: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    school: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    location: Text100 | msgspec.UnsetType | None = msgspec.UNSET
    social_links: SocialLinks | msgspec.UnsetType = msgspec.UNSET


class DeleteAccount(msgspec.Struct, forbid_unknown_fields=True):
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class SetProfileImage(msgspec.Struct, forbid_unknown_fields=True):
    """The caller's ready image uploaded with purpose `avatar` (or `background`)."""

    media_id: uuid.UUID


class ProfileImageView(msgspec.Struct):
    """An avatar or background the user set; `current` while it still is. Its signed URLs come from
    `GET /media/{media_id}` (allowed to whoever may see the profile); `url` is the stable public
    address of a current one."""

    media_id: uuid.UUID
    kind: str
    set_at: datetime
    current: bool
    url: str | None
