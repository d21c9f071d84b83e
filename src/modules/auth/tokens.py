"""Access tokens (JWT, strictly checked) and opaque secrets (refresh, reset), stored hashed."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections import OrderedDict

import jwt

from src.common.auth import Principal

ALGORITHM = "HS256"
ACCESS_TYPE = "access"


VERIFIED_CACHE_SIZE = 10_000


class AccessTokens:
    """Issue and verify short-lived access tokens carrying the session id."""

    def __init__(self, secret: str, audience: str, ttl_seconds: int) -> None:
        self._secret, self._audience, self.ttl = secret, audience, ttl_seconds
        # A token's signature and claims never change: remember good ones until they expire, so
        # a client's every request does not pay the decode (the session check still runs each time).
        self._verified: OrderedDict[str, tuple[Principal, int]] = OrderedDict()

    def issue(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        """A signed access token for this session."""
        now = int(time.time())
        claims = {"sub": str(user_id), "sid": str(session_id), "typ": ACCESS_TYPE, "aud": self._audience,
                  "iat": now, "nbf": now, "exp": now + self.ttl}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid access token; None for anything else."""
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires_at = remembered
            if time.time() < expires_at:
                return principal
            del self._verified[token]
        decoded = self._decode(token)
        if decoded is None:
            return None
        self._verified[token] = decoded
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return decoded[0]

    def _decode(self, token: str) -> tuple[Principal, int] | None:
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], audience=self._audience,
                                options={"require": ["exp", "nbf", "iat", "aud", "sub", "sid", "typ"]})
            if claims["typ"] != ACCESS_TYPE:
                return None
            principal = Principal(user_id=uuid.UUID(claims["sub"]), session_id=uuid.UUID(claims["sid"]))
            return principal, int(claims["exp"])
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            return None


def new_secret() -> str:
    """A fresh high-entropy opaque token (refresh or reset)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """How an opaque token is stored: SHA-256 is enough for 256-bit random secrets."""
    return hashlib.sha256(secret.encode()).hexdigest()
