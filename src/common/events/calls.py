"""Events of the calls module."""

from __future__ import annotations

import uuid
from datetime import datetime

from src.common.events.base import Event


class CallEnded(Event, frozen=True, kw_only=True):
    """A call ended and was written to history: once per call, with the same transaction.

    `end_reason`: completed | rejected | missed | busy | cancelled | failed. `answered_ids` took
    part (joined at some point); `missed_ids` were rung and never answered (a missed call, also
    when the caller cancelled); `participant_ids` is everyone invited, caller first.
    """

    name = "calls.call_ended.v1"
    call_id: uuid.UUID
    kind: str  # direct | group
    media: str  # audio | video
    conversation_id: uuid.UUID | None
    caller_id: uuid.UUID
    participant_ids: list[uuid.UUID]
    answered_ids: list[uuid.UUID]
    missed_ids: list[uuid.UUID]
    end_reason: str
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    duration_s: int | None
