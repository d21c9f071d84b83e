"""Notification preferences: per kind and channel over the defaults, plus `show_previews`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from src.infra.context import AppContext
from src.modules.notifications.kinds import CHANNELS, KINDS, default_channels
from src.modules.notifications.models import preferences
from src.modules.notifications.schemas import PreferencesPatch, PreferencesView


@dataclass(frozen=True)
class Preferences:
    """One user's effective preferences."""

    overrides: dict[str, dict[str, bool]]
    show_previews: bool

    def channels(self, kind: str) -> dict[str, bool]:
        """Which channels this kind goes to."""
        return {**default_channels(kind), **self.overrides.get(kind, {})}

    def view(self) -> PreferencesView:
        return PreferencesView(kinds={k: self.channels(k) for k in KINDS}, show_previews=self.show_previews)


DEFAULTS = Preferences(overrides={}, show_previews=True)


class PreferencesService:
    """Reads and writes the preferences table (a missing row is the defaults)."""

    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx

    async def get(self, user_id: uuid.UUID) -> Preferences:
        """The user's effective preferences."""
        async with self._ctx.db.session() as session:
            row = (await session.execute(select(preferences.c.channels, preferences.c.show_previews)
                                         .where(preferences.c.user_id == user_id))).first()
        if row is None:
            return Preferences(overrides={}, show_previews=True)
        return Preferences(overrides=row.channels, show_previews=row.show_previews)

    async def get_many(self, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, Preferences]:
        """Effective preferences of many users (one query)."""
        async with self._ctx.db.session() as session:
            rows = (await session.execute(select(preferences.c.user_id, preferences.c.channels,
                                                 preferences.c.show_previews)
                                          .where(preferences.c.user_id.in_(user_ids)))).all()
        found = {r.user_id: Preferences(overrides=r.channels, show_previews=r.show_previews) for r in rows}
        return {u: found.get(u, DEFAULTS) for u in user_ids}

    async def patch(self, user_id: uuid.UUID, data: PreferencesPatch) -> PreferencesView:
        """Change some kinds' channels and/or `show_previews`; store only what differs from defaults."""
        await self._ctx.limiter.hit(self._ctx.settings.write_limit_per_user, "write", str(user_id))
        async with self._ctx.db.session() as session, session.begin():
            row = (await session.execute(select(preferences.c.channels, preferences.c.show_previews)
                                         .where(preferences.c.user_id == user_id).with_for_update())).first()
            overrides: dict[str, dict[str, bool]] = dict(row.channels) if row else {}
            show = row.show_previews if row else True
            for kind, channels in (data.kinds or {}).items():
                merged: dict[str, bool] = {**default_channels(kind), **overrides.get(kind, {})}
                merged.update({str(c): v for c, v in channels.items()})
                diff: dict[str, bool] = {c: merged[c] for c in CHANNELS if merged[c] != default_channels(kind)[c]}
                if diff:
                    overrides[kind] = diff
                else:
                    overrides.pop(kind, None)
            if data.show_previews is not None:
                show = data.show_previews
            await session.execute(insert(preferences).values(user_id=user_id, channels=overrides, show_previews=show)
                                  .on_conflict_do_update(index_elements=[preferences.c.user_id],
                                                         set_={"channels": overrides, "show_previews": show}))
        return Preferences(overrides=overrides, show_previews=show).view()
