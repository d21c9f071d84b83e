"""Queries answered by the users module."""

from __future__ import annotations

import uuid

import msgspec

from src.common.queries.base import Query


class PublicProfile(msgspec.Struct, frozen=True):
    """The short public face of a user, embedded by other modules (lists, messages)."""

    id: uuid.UUID
    username: str
    display_name: str
    avatar_url: str | None = None


class GetProfiles(Query[dict[uuid.UUID, PublicProfile]], frozen=True):
    """Public profiles of these users (deleted or unknown ids are absent from the answer).

    With `viewer_id`, profiles that viewer may not see (`CanViewProfile`, the rule of
    `GET /users/{id}`) are absent too: pass it whenever the answer is shown to that viewer."""

    user_ids: list[uuid.UUID]
    viewer_id: uuid.UUID | None = None


class GetEmailAddresses(Query[dict[uuid.UUID, str]], frozen=True):
    """The email addresses of these users, for mail sent on their behalf (deleted ids are absent)."""

    user_ids: list[uuid.UUID]
