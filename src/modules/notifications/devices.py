"""Push targets of a user: FCM registration tokens and Web Push subscriptions.

A token is unique across users (by its sha256): registering one a different account held moves
it (the device changed hands). Tokens never leave this module in a log line or a broker message.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from src.common.errors import NotFound, ValidationFailed
from src.common.ids import new_id
from src.infra.context import AppContext
from src.modules.notifications.models import devices
from src.modules.notifications.schemas import DeviceView, RegisterDevice


def parse_subscription(token: str) -> dict[str, Any]:
    """A browser's PushSubscription JSON: `{endpoint, keys: {p256dh, auth}}`; 400 otherwise."""
    try:
        sub = json.loads(token)
        endpoint, keys = sub["endpoint"], sub["keys"]
        if not (isinstance(endpoint, str) and endpoint.startswith(("https://", "http://"))
                and isinstance(keys.get("p256dh"), str) and isinstance(keys.get("auth"), str)):
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValidationFailed("a webpush token is the subscription JSON {endpoint, keys: {p256dh, auth}}",
                               field="token", code="invalid_subscription") from None
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


class DeviceService:
    """Registers, lists and removes devices."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def register(self, user_id: uuid.UUID, data: RegisterDevice) -> DeviceView:
        """Register (or re-register) a push target for the caller."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(user_id))
        token = data.token.strip() if data.platform == "fcm" else json.dumps(parse_subscription(data.token))
        digest = hashlib.sha256(token.encode()).digest()
        async with self._ctx.db.session() as session, session.begin():
            row = (await session.execute(
                insert(devices).values(id=new_id(), user_id=user_id, platform=data.platform, token=token,
                                       token_hash=digest)
                .on_conflict_do_update(index_elements=[devices.c.token_hash],
                                       set_={"user_id": user_id, "platform": data.platform})
                .returning(devices.c.id, devices.c.platform, devices.c.created_at))).one()
        return DeviceView(id=row.id, platform=row.platform, created_at=row.created_at)

    async def remove(self, user_id: uuid.UUID, device_id: uuid.UUID) -> None:
        """Remove one of the caller's devices (404 when it is not theirs)."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(user_id))
        async with self._ctx.db.session() as session, session.begin():
            gone = (await session.execute(delete(devices).where(devices.c.id == device_id, devices.c.user_id == user_id)
                                          .returning(devices.c.id))).first()
        if gone is None:
            raise NotFound("No such device", code="device_not_found")

    async def of_user(self, user_id: uuid.UUID) -> list[Any]:
        """Every device of a user (id, platform, token)."""
        async with self._ctx.db.session() as session:
            return list((await session.execute(select(devices.c.id, devices.c.platform, devices.c.token)
                                               .where(devices.c.user_id == user_id))).all())

    async def users_with_devices(self, user_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these users have a device (one autocommitted statement): nobody else is pushed."""
        if not user_ids:
            return set()
        rows = await self._ctx.db.fetch("SELECT DISTINCT user_id FROM notifications.devices "
                                        "WHERE user_id = ANY($1::uuid[])", user_ids)
        return {row[0] for row in rows}

    async def by_id(self, device_id: uuid.UUID) -> Any:
        async with self._ctx.db.session() as session:
            return (await session.execute(select(devices.c.id, devices.c.user_id, devices.c.platform, devices.c.token)
                                          .where(devices.c.id == device_id))).first()

    async def forget(self, device_id: uuid.UUID) -> None:
        """Delete a device whose token the push service reported gone."""
        async with self._ctx.db.session() as session, session.begin():
            await session.execute(delete(devices).where(devices.c.id == device_id))
