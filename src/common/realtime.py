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

    async def revoke_sessions(self, session_ids: Iterable[uuid.UUID]) -> None:
        """Tell the sockets of these sessions `session:revoked` and disconnect them."""
        ...
