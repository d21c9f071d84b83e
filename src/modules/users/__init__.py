"""users — public profiles.

Tables (schema `users`): profiles.
Publishes: `users.user_deleted.v1` (UserDeleted).
Listens: `auth.user_registered.v1` (creates the profile), `users.user_deleted.v1` (nothing
more: the profile row is deleted in the publishing transaction), `follows.follow_created.v1`,
`follows.follow_deleted.v1` and `follows.user_follows_removed.v1` (followers_count /
following_count, once per event).
Answers: GetProfiles, GetEmailAddresses.
"""

from __future__ import annotations

from litestar import Router
from litestar.di import Provide

from src.common.events.users import UserRegistered
from src.common.queries.users import GetEmailAddresses, GetProfiles
from src.infra.context import AppContext
from src.infra.modules import Module, ModuleParts
from src.modules.users.controller import UsersController
from src.modules.users.listeners import register_listeners
from src.modules.users.service import UsersService


def build(ctx: AppContext) -> ModuleParts:
    """Wire the users service, its listeners, query handler and routes."""
    service = UsersService(ctx)

    async def get_profiles(query: GetProfiles) -> dict:  # type: ignore[type-arg]
        return await service.public_profiles(query.user_ids)

    async def get_emails(query: GetEmailAddresses) -> dict:  # type: ignore[type-arg]
        return await service.email_addresses(query.user_ids)

    ctx.queries.register(GetProfiles, get_profiles)
    ctx.queries.register(GetEmailAddresses, get_emails)
    ctx.bus.subscribe(UserRegistered, "users.create_profile_on_registered", service.create_profile)
    register_listeners(ctx, service)
    router = Router(path="/", route_handlers=[UsersController],
                    dependencies={"users_service": Provide(lambda: service, sync_to_thread=False)})
    return ModuleParts(route_handlers=[router])


module = Module(name="users", build=build)
