"""REST routes of the users module (`/api/v1/users`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, put
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from src.common.auth import Principal
from src.common.pagination import Limit, Page
from src.modules.users.images import ProfileImages
from src.modules.users.schemas import (
    DeleteAccount,
    MyProfile,
    ProfileImageView,
    ProfilePatch,
    ProfileView,
    SetProfileImage,
)
from src.modules.users.service import UsersService


class UsersController(Controller):
    path = "/users"
    tags = ["users"]

    @get("/me")
    async def me(self, principal: Principal, users_service: UsersService) -> MyProfile:
        """The caller's own profile."""
        return await users_service.me(principal)

    @patch("/me")
    async def update_me(self, data: ProfilePatch, principal: Principal,
                        users_service: UsersService) -> MyProfile:
        """Edit the caller's profile (absent fields stay as they are)."""
        return await users_service.update(principal, data)

    @delete("/me", status_code=HTTP_204_NO_CONTENT)
    async def delete_me(self, data: DeleteAccount, principal: Principal, users_service: UsersService) -> None:
        """Delete the account and its data in every module (password required)."""
        await users_service.delete_account(principal, data.password)

    @put("/me/avatar")
    async def set_avatar(self, data: SetProfileImage, principal: Principal, users_service: UsersService,
                         profile_images: ProfileImages) -> MyProfile:
        """Make one of your processed images uploaded for `avatar` your avatar."""
        await profile_images.set_image(principal.user_id, "avatar", data.media_id)
        return await users_service.me(principal)

    @put("/me/background")
    async def set_background(self, data: SetProfileImage, principal: Principal, users_service: UsersService,
                             profile_images: ProfileImages) -> MyProfile:
        """Make one of your processed images uploaded for `background` your background."""
        await profile_images.set_image(principal.user_id, "background", data.media_id)
        return await users_service.me(principal)

    @get("/{user_id:uuid}/images")
    async def images(self, user_id: uuid.UUID, principal: Principal, profile_images: ProfileImages,
                     limit: Limit = None,
                     cursor: Annotated[str | None, Parameter(max_length=512)] = None) -> Page[ProfileImageView]:
        """The user's avatars and backgrounds, newest first (visible to whoever may see the profile)."""
        return await profile_images.history(principal.user_id, user_id, limit, cursor)

    @get("/suggestions")
    async def suggestions(self, principal: Principal, users_service: UsersService,
                          limit: Limit = None) -> Page[ProfileView]:
        """People to follow or befriend: followed by people you follow first, then popular users."""
        return await users_service.suggestions(principal, limit)

    @get("/{user_id:uuid}")
    async def profile(self, user_id: uuid.UUID, principal: Principal,
                      users_service: UsersService) -> ProfileView:
        """A user's public profile; 404 when blocked either way or hidden by privacy."""
        return await users_service.profile(principal, user_id)

    @get("/")
    async def search(self, principal: Principal, users_service: UsersService,
                     q: Annotated[str | None, Parameter(max_length=64)] = None,
                     limit: Limit = None,
                     cursor: Annotated[str | None, Parameter(max_length=512)] = None) -> Page[ProfileView]:
        """Users by username or display-name prefix; without `q`, all users."""
        return await users_service.search(principal, q, limit, cursor)
