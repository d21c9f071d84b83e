"""REST routes of the blocks module (`/api/v1/users/{id}/block`, `/api/v1/blocks`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Limit, Page
from src.modules.blocks.schemas import BlockView
from src.modules.blocks.service import BlocksService

BLOCK_EFFECTS = (
    "Block a user: 200 with the block, the same on a repeat (idempotent); 400 `cannot_block_self`, "
    "404 `user_not_found`. Blocking is one-way in who did it and two-way in effect: neither user sees the other's "
    "profile (GET /users/{id} answers 404 both ways), and the friendship, the follows both ways "
    "and pending friend requests between them are removed. The blocker's own attempts to "
    "message, call, follow or befriend the blocked user get 403 with code `blocked`; the blocked "
    "user sees the blocker as absent (404) wherever the target is a profile, and gets 403 "
    "`blocked` when messaging or calling. Only the blocker's own devices receive the socket event "
    "`block:changed {user_id, blocked}`; the blocked user is never told."
)

UNBLOCK = ("Lift your block of a user: 204 whether or not there was one. Nothing the block removed "
           "(friendship, follows, requests) comes back. Only your own devices receive "
           "`block:changed {user_id, blocked: false}`.")
LIST = ("The users you blocked (never anyone else's list), newest first, with their public profiles, "
        "so that you can find them to unblock; cursor-paginated (`limit` ≤ 100).")


class BlocksController(Controller):
    path = "/"
    tags = ["blocks"]

    @put("/users/{user_id:uuid}/block", status_code=200, description=BLOCK_EFFECTS)
    async def block(self, user_id: uuid.UUID, principal: Principal, blocks_service: BlocksService) -> BlockView:
        """Block a user (idempotent: blocking again changes nothing); 400 on yourself, 404 if unknown."""
        return await blocks_service.block(principal, user_id)

    @delete("/users/{user_id:uuid}/block", status_code=HTTP_204_NO_CONTENT, description=UNBLOCK)
    async def unblock(self, user_id: uuid.UUID, principal: Principal, blocks_service: BlocksService) -> None:
        """Lift your block of a user (idempotent: 204 whether or not there was one)."""
        await blocks_service.unblock(principal, user_id)

    @get("/blocks", description=LIST)
    async def list_blocks(self, principal: Principal, blocks_service: BlocksService,
                          limit: Limit = None,
                          cursor: Annotated[str | None, Parameter(max_length=512)] = None) -> Page[BlockView]:
        """The users you blocked, newest first, with their public profiles (cursor-paginated)."""
        return await blocks_service.list_blocked(principal, limit, cursor)
