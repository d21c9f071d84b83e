"""Response bodies of the follows API (the routes take no body)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from src.common.queries.users import PublicProfile


class FollowView(msgspec.Struct):
    """A follow edge: `follower_id` follows `followee_id` since `created_at`."""

    follower_id: uuid.UUID
    followee_id: uuid.UUID
    created_at: datetime


class FollowItem(msgspec.Struct):
    """An entry of a followers / following list (also the `follow:new` socket payload)."""

    user: PublicProfile
    followed_at: datetime
