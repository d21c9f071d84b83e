"""Request and response bodies of the friendship API (and its socket payloads)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from src.common.queries.users import PublicProfile

RequestStatus = Literal["pending", "accepted"]
Direction = Literal["incoming", "outgoing"]


class SendFriendRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Ask `user_id` to be friends."""

    user_id: uuid.UUID


class FriendRequestView(msgspec.Struct):
    """A friend request; `user` is the other party's public profile (the caller's point of view).

    Also the `friend:request` socket payload (to the recipient, `user` being the sender).
    """

    id: uuid.UUID
    from_user_id: uuid.UUID
    to_user_id: uuid.UUID
    status: RequestStatus
    created_at: datetime
    user: PublicProfile | None = None


class FriendView(msgspec.Struct):
    """An entry of the friends list."""

    user: PublicProfile
    since: datetime


class FriendAccepted(msgspec.Struct):
    """The `friend:accepted` socket payload; `user` is the other party's public profile."""

    request_id: uuid.UUID
    requester_id: uuid.UUID
    accepter_id: uuid.UUID
    user: PublicProfile
    since: datetime
