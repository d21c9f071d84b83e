"""Response and event payloads of presence."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec


class PresenceView(msgspec.Struct):
    """`online`, and when offline the time the user was last seen (null if never recorded)."""

    online: bool
    last_seen_at: datetime | None


class PresenceEvent(msgspec.Struct):
    """`presence`: a contact went online or offline (transitions only, debounced)."""

    user_id: uuid.UUID
    online: bool
    last_seen_at: datetime | None


class HeartbeatAck(msgspec.Struct):
    online: bool
    expires_in: float
