"""REST routes of calls: ICE servers and history (`/api/v1/calls…`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter

from src.common.auth import Principal
from src.common.clock import utcnow
from src.common.pagination import Page
from src.infra.context import AppContext
from src.modules.calls.ice import ice_servers
from src.modules.calls.schemas import CallView, IceServersView
from src.modules.calls.service import CallService

Limit = Annotated[int | None, Parameter(ge=1, le=1000)]
Cursor = Annotated[str | None, Parameter(max_length=512)]


class CallsController(Controller):
    path = "/calls"
    tags = ["calls"]

    @get("/ice-servers")
    async def ice_servers(self, principal: Principal, calls_ctx: AppContext) -> IceServersView:
        """STUN and TURN servers for WebRTC, with TURN credentials valid up to an hour."""
        return ice_servers(calls_ctx.settings, principal.user_id, utcnow())

    @get("/")
    async def list_calls(self, principal: Principal, call_service: CallService, limit: Limit = None,
                         cursor: Cursor = None) -> Page[CallView]:
        """Your ended calls, newest first."""
        return await call_service.history.list_of(principal.user_id, limit, cursor)

    @get("/{call_id:uuid}")
    async def get_call(self, call_id: uuid.UUID, principal: Principal, call_service: CallService) -> CallView:
        """A call you were invited to, live or ended (404 for anyone else)."""
        return await call_service.get(principal.user_id, call_id)
