"""Notification rows as the API shows them (actors' profiles, a sentence)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from src.common.queries.users import GetProfiles, PublicProfile
from src.infra.context import AppContext
from src.modules.notifications.kinds import VERBS
from src.modules.notifications.schemas import NotificationView

SHOWN_ACTORS = 3


def sentence(kind: str, names: list[str], actor_count: int, event_count: int) -> str:
    """ "Ann", "Ann and Bob", "Ann and 11 others" + the kind's verb; messages count themselves."""
    first = names[0] if names else "Someone"
    if actor_count <= 1:
        who = first
    elif actor_count == 2 and len(names) >= 2:
        who = f"{first} and {names[1]}"
    else:
        who = f"{first} and {actor_count - 1} others"
    if kind == "message" and event_count > 1:
        return f"{who} sent you {event_count} messages"
    return f"{who} {VERBS.get(kind, 'did something')}"


async def build_views(ctx: AppContext, rows: Sequence[Any]) -> list[NotificationView]:
    """Views of notification rows, with one profile lookup for them all."""
    wanted = list({a for r in rows for a in r.actor_ids[:SHOWN_ACTORS]})
    profiles: dict[uuid.UUID, PublicProfile] = await ctx.queries.ask(GetProfiles(user_ids=wanted)) if wanted else {}
    views = []
    for r in rows:
        actors = [profiles[a] for a in r.actor_ids[:SHOWN_ACTORS] if a in profiles]
        views.append(NotificationView(
            id=r.id, kind=r.kind, actors=actors, actor_count=r.actor_count, count=r.event_count,
            text=sentence(r.kind, [a.display_name for a in actors], r.actor_count, r.event_count),
            subject_id=r.subject_id, data=r.data, read=r.read_at is not None, created_at=r.created_at,
            updated_at=r.updated_at))
    return views
