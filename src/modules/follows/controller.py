"""REST routes of the follows module (`/api/v1/users/{id}/follow…`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Limit, Page
from src.modules.follows.schemas import FollowItem, FollowView
from src.modules.follows.service import FollowsService

Cursor = Annotated[str | None, Parameter(max_length=512)]


class FollowsController(Controller):
    path = "/users"
    tags = ["follows"]

    @put("/{user_id:uuid}/follow")
    async def follow(self, user_id: uuid.UUID, principal: Principal,
                     follows_service: FollowsService) -> FollowView:
        """Follow a user; following again keeps the one edge (403 `blocked` if you blocked them)."""
        return await follows_service.follow(principal.user_id, user_id)

    @delete("/{user_id:uuid}/follow", status_code=HTTP_204_NO_CONTENT)
    async def unfollow(self, user_id: uuid.UUID, principal: Principal, follows_service: FollowsService) -> None:
        """Stop following a user (204 also when you were not following)."""
        await follows_service.unfollow(principal.user_id, user_id)

    @get("/{user_id:uuid}/followers")
    async def followers(self, user_id: uuid.UUID, principal: Principal, follows_service: FollowsService,
                        limit: Limit = None, cursor: Cursor = None) -> Page[FollowItem]:
        """Who follows the user, newest first, with public profiles."""
        return await follows_service.followers(principal.user_id, user_id, limit, cursor)

    @get("/{user_id:uuid}/following")
    async def following(self, user_id: uuid.UUID, principal: Principal, follows_service: FollowsService,
                        limit: Limit = None, cursor: Cursor = None) -> Page[FollowItem]:
        """Whom the user follows, newest first, with public profiles."""
        return await follows_service.following(principal.user_id, user_id, limit, cursor)
