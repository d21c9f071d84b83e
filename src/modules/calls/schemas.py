"""Socket payloads and REST responses of the calls module."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

MAX_SDP_BYTES = 16 * 1024

# --- client → server socket payloads -------------------------------------------------------


class InviteIn(msgspec.Struct, forbid_unknown_fields=True):
    """`call:invite`: exactly one of `user_id` (1:1) and `conversation_id` (its members)."""

    media: Literal["audio", "video"]
    user_id: uuid.UUID | None = None
    conversation_id: uuid.UUID | None = None


class CallRef(msgspec.Struct):
    """`call:accept|reject|cancel|end`."""

    call_id: uuid.UUID


class SessionDescription(msgspec.Struct, forbid_unknown_fields=True):
    """An SDP offer or answer (RTCSessionDescriptionInit)."""

    type: Literal["offer", "answer"]
    sdp: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SDP_BYTES)]


class IceCandidate(msgspec.Struct, forbid_unknown_fields=True):
    """An ICE candidate (RTCIceCandidateInit); an empty `candidate` ends the gathering."""

    candidate: Annotated[str, msgspec.Meta(max_length=1024)]
    sdpMid: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    sdpMLineIndex: Annotated[int, msgspec.Meta(ge=0, le=1024)] | None = None
    usernameFragment: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class SignalIn(msgspec.Struct, forbid_unknown_fields=True):
    """`call:signal`: relayed to `to_user_id`'s joined device only."""

    call_id: uuid.UUID
    to_user_id: uuid.UUID
    kind: Literal["offer", "answer", "ice"]
    payload: dict[str, object] | None = None


# --- views --------------------------------------------------------------------------------


class ParticipantView(msgspec.Struct):
    """A participant: `state` ringing | joined | left | rejected | missed | busy | failed."""

    user_id: uuid.UUID
    state: str
    joined_at: datetime | None
    left_at: datetime | None


class CallView(msgspec.Struct):
    """A call (live or from history); also the `call:incoming` payload."""

    id: uuid.UUID
    kind: str
    conversation_id: uuid.UUID | None
    media: str
    caller_id: uuid.UUID
    status: str
    end_reason: str | None
    participants: list[ParticipantView]
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: int | None


class IceServer(msgspec.Struct, omit_defaults=True):
    """One RTCIceServer entry."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


class IceServersView(msgspec.Struct):
    """STUN and TURN servers; the TURN credential is valid until `expires_at`."""

    ice_servers: list[IceServer]
    expires_at: datetime | None
