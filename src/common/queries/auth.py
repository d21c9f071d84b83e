"""Queries answered by the auth module."""

from __future__ import annotations

import uuid

from src.common.auth import Principal
from src.common.queries.base import Query


class AuthenticateAccessToken(Query[Principal | None], frozen=True):
    """Is this access token valid right now (signature, claims, session not revoked)?

    Answers the principal, or None when the token must be refused. `socket`: asked at a socket
    connect (a session verdict remembered a little longer may answer, see auth/session_status.py).
    """

    token: str
    socket: bool = False


class VerifyPassword(Query[bool], frozen=True):
    """Is this the user's current password? (Confirms destructive actions such as deletion.)"""

    user_id: uuid.UUID
    password: str


class ActiveSessions(Query[set[uuid.UUID]], frozen=True):
    """Which of these sessions are still active, read from PostgreSQL (the truth, whatever Redis
    holds). Sockets re-check their session with it, so a revocation made while Redis was away
    still ends the socket."""

    session_ids: list[uuid.UUID]
