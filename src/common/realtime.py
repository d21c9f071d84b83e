"""The realtime interface modules call to reach connected clients (implemented in src.socket).

Delivery is at most once: an emit is a hint, the truth is PostgreSQL plus a sync cursor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol


class Realtime(Protocol):
    """Emit events to users' connected sockets on every API process."""

    async def emit_to_users(self, event: str, data: Any, user_ids: Iterable[uuid.UUID], *,
                            skip_sid: str | None = None) -> None:
        """Send `event` to every socket of these users (except `skip_sid`, the sender's own)."""
        ...

    async def emit_to_room(self, event: str, data: Any, room: str, *, skip_sid: str | None = None) -> None:
        """Send `event` to every socket in `room` on every process (a socket id is a room too)."""
        ...

    async def enter_room(self, sid: str, room: str) -> None:
        """Put socket `sid` in `room` (API process only: `sid` must be connected to this process)."""
        ...

    async def leave_room(self, sid: str, room: str) -> None:
        """Take socket `sid` out of `room` (API process only)."""
        ...

    async def revoke_sessions(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Tell the sockets of these sessions `session:revoked` and disconnect them."""
        ...
