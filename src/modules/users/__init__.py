"""users — public profiles.

Tables (schema `users`): profiles (with avatar / background media ids and stable public URLs),
profile_images (the avatar and background history).
Publishes: `users.user_deleted.v1` (UserDeleted), `users.profile_image_changed.v1`
(ProfileImageChanged: media records the attachment; the latest image is public).
Listens: `auth.user_registered.v1` (creates the profile; inline, so the new account's first
request finds it), `users.user_deleted.v1` (nothing more: the profile row is deleted in the
publishing transaction, so the account is invisible everywhere once DELETE returns),
`follows.follow_created.v1`, `follows.follow_deleted.v1` (inline: the caller reads its counts
next) and `follows.user_follows_removed.v1` (in a worker: thousands of rows) (followers_count /
following_count, once per event, inbox), `media.media_deleted.v1` (an image leaves the history
and the profile).
Asks: VerifyPassword (auth), CanViewProfile / CanViewProfiles (privacy), FollowSuggestions /
FollowingIds (follows), BlockedEitherWay (blocks), GetAttachableMedia (media: the caller's ready
image of that purpose).
Answers: GetEmailAddresses (notifications' mail), SearchUsers (`/search?type=users`: blocks and
hidden profiles excluded), GetProfiles (with `viewer_id`: only the profiles that viewer may see; every profile
shown to someone else — one profile, search, suggestions, other modules' lists — applies one rule).
"""

from __future__ import annotations

from typing import Any

from litestar import Router
from litestar.di import Provide

from src.common.events.media import MediaDeleted
from src.common.events.users import UserRegistered
from src.common.pagination import Page
from src.common.queries.search import SearchUsers
from src.common.queries.users import GetEmailAddresses, GetProfiles
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.users.controller import UsersController
from src.modules.users.images import ProfileImages
from src.modules.users.listeners import register_listeners
from src.modules.users.service import UsersService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the users service, its listeners, query handler and routes."""
    service = UsersService(ctx)
    images = ProfileImages(ctx)

    async def get_profiles(query: GetProfiles) -> dict:  # type: ignore[type-arg]
        return await service.public_profiles(query.user_ids, viewer=query.viewer_id)

    async def search_users(query: SearchUsers) -> Page[Any]:
        return await service.search_visible(query.viewer_id, query.q, query.limit, query.cursor)  # type: ignore[return-value]

    async def get_emails(query: GetEmailAddresses) -> dict:  # type: ignore[type-arg]
        return await service.email_addresses(query.user_ids)

    ctx.queries.register(GetProfiles, get_profiles)
    ctx.queries.register(GetEmailAddresses, get_emails)
    ctx.queries.register(SearchUsers, search_users)
    # Inline: the new account's first request (GET /users/me) must find its profile.
    ctx.bus.subscribe(UserRegistered, "users.create_profile_on_registered", service.create_profile, inline=True)
    register_listeners(ctx, service)
    ctx.bus.subscribe(MediaDeleted, "users.forget_media_on_media_deleted", images.forget_media)
    router = Router(path="/", route_handlers=[UsersController],
                    dependencies={"users_service": Provide(lambda: service, sync_to_thread=False),
                                  "profile_images": Provide(lambda: images, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="users", build=build)
