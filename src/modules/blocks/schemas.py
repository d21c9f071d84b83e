"""Response bodies of the blocks API."""

from __future__ import annotations

from datetime import datetime

import msgspec

from src.common.queries.users import PublicProfile


class BlockView(msgspec.Struct):
    """A user the caller blocked, with their public profile and when."""

    user: PublicProfile
    blocked_at: datetime


class BlockChanged(msgspec.Struct):
    """Payload of the `block:changed` socket event (sent to the blocker's own devices only)."""

    user_id: str
    blocked: bool
