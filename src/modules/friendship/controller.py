"""REST routes of the friendship module (`/api/v1/friends`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Limit, Page
from src.modules.friendship.schemas import Direction, FriendRequestView, FriendView, SendFriendRequest
from src.modules.friendship.service import FriendshipService

Cursor = Annotated[str | None, Parameter(max_length=512)]


class FriendshipController(Controller):
    path = "/friends"
    tags = ["friendship"]

    @post("/requests", status_code=HTTP_201_CREATED, responses={HTTP_200_OK: ResponseSpec(
        FriendRequestView, description="The pending request again, or theirs accepted")})
    async def send_request(self, data: SendFriendRequest, principal: Principal,
                           friendship_service: FriendshipService) -> Response[FriendRequestView]:
        """Ask a user to be friends: 201 a new request; 200 the pending one, or theirs accepted if they asked first."""
        view, created = await friendship_service.send_request(principal.user_id, data.user_id)
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/requests")
    async def requests(self, principal: Principal, friendship_service: FriendshipService,
                       direction: Direction = "incoming", limit: Limit = None,
                       cursor: Cursor = None) -> Page[FriendRequestView]:
        """Pending requests received (`incoming`) or sent (`outgoing`), newest first."""
        return await friendship_service.requests(principal.user_id, direction, limit, cursor)

    @post("/requests/{request_id:uuid}/accept", status_code=HTTP_200_OK)
    async def accept(self, request_id: uuid.UUID, principal: Principal,
                     friendship_service: FriendshipService) -> FriendRequestView:
        """Accept a request you received (404 for anyone else)."""
        return await friendship_service.accept(principal.user_id, request_id)

    @post("/requests/{request_id:uuid}/decline", status_code=HTTP_204_NO_CONTENT)
    async def decline(self, request_id: uuid.UUID, principal: Principal,
                      friendship_service: FriendshipService) -> None:
        """Decline a request you received (404 for anyone else)."""
        await friendship_service.decline(principal.user_id, request_id)

    @delete("/requests/{request_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def cancel(self, request_id: uuid.UUID, principal: Principal,
                     friendship_service: FriendshipService) -> None:
        """Cancel a request you sent (404 for anyone else)."""
        await friendship_service.cancel(principal.user_id, request_id)

    @get("/")
    async def friends(self, principal: Principal, friendship_service: FriendshipService,
                      limit: Limit = None, cursor: Cursor = None) -> Page[FriendView]:
        """Your friends, newest friendship first, with public profiles."""
        return await friendship_service.friends(principal.user_id, limit, cursor)

    @delete("/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def unfriend(self, user_id: uuid.UUID, principal: Principal,
                       friendship_service: FriendshipService) -> None:
        """End a friendship (204 also when you were not friends)."""
        await friendship_service.unfriend(principal.user_id, user_id)
