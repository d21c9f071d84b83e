"""Who is calling: the principal every authenticated request and socket carries."""

from __future__ import annotations

import uuid

import msgspec


class Principal(msgspec.Struct, frozen=True):
    """A signed-in user on one session (one device)."""

    user_id: uuid.UUID
    session_id: uuid.UUID
