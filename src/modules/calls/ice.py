"""ICE servers for clients: STUN and TURN URLs, TURN credentials in coturn's REST-API scheme.

coturn (`use-auth-secret`, `static-auth-secret=<TURN_SECRET>`) accepts username
`"<expiry-unix>:<user_id>"` with password base64(HMAC-SHA1(secret, username)) until the expiry,
without Chatty and coturn ever talking to each other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

from src.infra.config import Settings
from src.modules.calls.schemas import IceServer, IceServersView


def split_urls(value: str) -> list[str]:
    """A comma-separated setting as a list."""
    return [url.strip() for url in value.split(",") if url.strip()]


def turn_credential(secret: str, username: str) -> str:
    """coturn's REST-API password for `username`."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


def ice_servers(settings: Settings, user_id: uuid.UUID, now: datetime) -> IceServersView:
    """The ICE servers of `user_id`, the TURN entry valid for TURN_CREDENTIAL_TTL seconds."""
    servers: list[IceServer] = []
    if stun := split_urls(settings.stun_urls):
        servers.append(IceServer(urls=stun))
    turn = split_urls(settings.turn_urls)
    if not (turn and settings.turn_secret):
        return IceServersView(ice_servers=servers, expires_at=None)
    expiry = int(now.timestamp()) + settings.turn_credential_ttl
    username = f"{expiry}:{user_id}"
    servers.append(IceServer(urls=turn, username=username, credential=turn_credential(settings.turn_secret, username)))
    return IceServersView(ice_servers=servers, expires_at=datetime.fromtimestamp(expiry, UTC))
