"""REST route of presence."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from src.common.auth import Principal
from src.modules.presence.schemas import PresenceView
from src.modules.presence.service import PresenceService, parse_ids


class PresenceController(Controller):
    path = "/presence"
    tags = ["presence"]

    @get("/")
    async def presence(self, principal: Principal, presence_service: PresenceService,
                       user_ids: Annotated[str, Parameter(max_length=3800, description="comma-separated, ≤ 100")]
                       ) -> dict[str, PresenceView | None]:
        """Per id: `{online, last_seen_at}` for contacts who show it, null for anyone else."""
        return await presence_service.view(principal.user_id, parse_ids(user_ids))
