"""REST routes of group management (creating and reading a group live in controller.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Page
from src.modules.messaging.group_members import MemberService
from src.modules.messaging.group_schemas import (
    AddedMembers,
    AddMembers,
    ChangeRole,
    GroupMemberView,
    GroupUpdatedEvent,
    JoinRequestView,
    UpdateGroup,
)
from src.modules.messaging.groups import GroupService
from src.modules.messaging.join_requests import JoinRequestService

Limit = Annotated[int | None, Parameter(ge=1, le=1000, description="page size (at most 100 are returned)")]
Cursor = Annotated[str | None, Parameter(max_length=512)]


class GroupAdminController(Controller):
    path = "/groups/{group_id:uuid}"
    tags = ["groups"]

    @patch("/")
    async def update_group(self, group_id: uuid.UUID, data: UpdateGroup, principal: Principal,
                           group_service: GroupService) -> GroupUpdatedEvent:
        """Rename, describe or change the join policy of a group (admins)."""
        return await group_service.update(principal.user_id, group_id, data)

    @delete("/", status_code=HTTP_204_NO_CONTENT)
    async def delete_group(self, group_id: uuid.UUID, principal: Principal, group_service: GroupService) -> None:
        """Delete a group and its history (owner only); members are told."""
        await group_service.delete(principal.user_id, group_id)

    @get("/members")
    async def list_members(self, group_id: uuid.UUID, principal: Principal, member_service: MemberService,
                           limit: Limit = None, cursor: Cursor = None) -> Page[GroupMemberView]:
        """Members with their role and join time, oldest first."""
        return await member_service.page(principal.user_id, group_id, limit, cursor)

    @post("/members", status_code=HTTP_200_OK)
    async def add_members(self, group_id: uuid.UUID, data: AddMembers, principal: Principal,
                          member_service: MemberService) -> AddedMembers:
        """Add users (admins; each one someone the caller may message); 409 `group_full` past the limit."""
        return await member_service.add(principal.user_id, group_id, data.user_ids)

    @delete("/members/{user_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID, principal: Principal,
                            member_service: MemberService) -> None:
        """Leave (your own id) or remove a member (admins; admins only by the owner)."""
        await member_service.remove(principal.user_id, group_id, user_id)

    @patch("/members/{user_id:uuid}")
    async def change_role(self, group_id: uuid.UUID, user_id: uuid.UUID, data: ChangeRole, principal: Principal,
                          member_service: MemberService) -> GroupMemberView:
        """Change a member's role (owner only); `owner` transfers the ownership (you become an admin)."""
        return await member_service.change_role(principal.user_id, group_id, user_id, data.role)

    @post("/join-requests")
    async def request_to_join(self, group_id: uuid.UUID, principal: Principal,
                              join_request_service: JoinRequestService) -> Response[JoinRequestView]:
        """Ask to join a group whose join policy is `request`: 201, or 200 with the pending request."""
        view, created = await join_request_service.request(principal.user_id, group_id)
        return Response(view, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/join-requests")
    async def list_join_requests(self, group_id: uuid.UUID, principal: Principal,
                                 join_request_service: JoinRequestService, limit: Limit = None,
                                 cursor: Cursor = None) -> Page[JoinRequestView]:
        """Pending join requests, oldest first (admins)."""
        return await join_request_service.page(principal.user_id, group_id, limit, cursor)

    @post("/join-requests/{request_id:uuid}/accept", status_code=HTTP_200_OK)
    async def accept_join_request(self, group_id: uuid.UUID, request_id: uuid.UUID, principal: Principal,
                                  join_request_service: JoinRequestService) -> AddedMembers:
        """Admit the requester (admins)."""
        return await join_request_service.accept(principal.user_id, group_id, request_id)

    @post("/join-requests/{request_id:uuid}/decline", status_code=HTTP_204_NO_CONTENT)
    async def decline_join_request(self, group_id: uuid.UUID, request_id: uuid.UUID, principal: Principal,
                                   join_request_service: JoinRequestService) -> None:
        """Drop a pending request (admins)."""
        await join_request_service.decline(principal.user_id, group_id, request_id)
